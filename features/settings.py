"""One typed settings object for every stage.

Every path and parameter has its default here and nowhere else; CLI options take their defaults from it, and any
field can be set from the environment with the ``EQSMS_`` prefix (``EQSMS_HORIZON_DAYS=21``). Nothing here does
work on import: no folder is created and no tracking URI is set until a command asks for it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EQSMS_", extra="ignore")

    # Where things live.
    data_dir: Path = Field(REPO_ROOT / "data_samples" / "world", description="folder of raw exports (contract v1)")
    work_dir: Path = Field(Path("eqsms_work"), description="outputs: quarantine, datasets, models")

    # Targets (DESIGN.md "The three targets").
    horizon_days: int = Field(14, ge=0, description="milestone rows are scored this many days before the plan")
    late_tolerance_days: float = Field(7.0, ge=0, description="a milestone is late when it slips more than this")
    churn_window_days: int = Field(365, gt=0, description="no new award within this window after handover = churn")

    # Feature windows.
    short_window_days: int = Field(30, gt=0)
    long_window_days: int = Field(90, gt=0)
    recent_weeks: int = Field(4, gt=0, description="resource weeks in the 'recent' SPI, CPI and overtime figures")

    # The synthetic world.
    generate_projects: int = Field(300, gt=0)
    generate_seed: int = Field(7)
    generate_start: str = Field("2018-01-01", description="first award date of the synthetic world")

    @property
    def quarantine_dir(self) -> Path:
        return self.work_dir / "quarantine"

    @property
    def datasets_dir(self) -> Path:
        return self.work_dir / "datasets"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
