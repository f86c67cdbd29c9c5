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

    # Training (issue 3): time split shares, backtest, LightGBM, intervals, the promotion gate.
    mlflow_tracking_uri: str | None = Field(
        None, description="tracking store; default: MLFLOW_TRACKING_URI if set, else sqlite in work_dir"
    )
    train_share: float = Field(0.6, gt=0, lt=1, description="earliest rows, by as_of, to fit on")
    calibration_share: float = Field(0.2, gt=0, lt=1, description="next rows: calibration and conformal correction")
    backtest_folds: int = Field(3, ge=2, description="rolling-origin folds reported beside the main split")
    interval_coverage: float = Field(0.8, gt=0, lt=1, description="nominal coverage of the delay range")
    delay_objective: str = Field(
        "regression", description="LightGBM objective of the slip estimate: regression (mean) or regression_l1 (median)"
    )
    backtest_delay_objective: str = Field(
        "regression_l1", description="`eqsms backtest` judges delay by MAE, which the median minimises"
    )
    n_estimators: int = Field(400, gt=0, description="LightGBM trees at most (early stopping picks fewer)")
    learning_rate: float = Field(0.05, gt=0)
    num_leaves: int = Field(15, gt=1)
    num_leaves_by_model: dict[str, int] = Field(
        {"churn": 7}, description="per-model leaves; churn has about a tenth of the milestone targets' rows"
    )
    max_depth: int = Field(5, description="caps explanation cost at serving time (DESIGN.md)")
    min_child_samples: int = Field(20, gt=0)
    early_stopping_rounds: int = Field(40, gt=0)
    seed: int = Field(7, description="seed for every model")
    lgb_threads: int = Field(1, gt=0, description="LightGBM threads (1 is fastest here below ~50k rows)")
    promotion_tolerance: float = Field(0.005, ge=0, description="a challenger may be this much worse and still win")

    # Serving (issue 4).
    host: str = Field("127.0.0.1", description="where `eqsms serve` listens")
    port: int = Field(3000, gt=0, lt=65536)
    risk_levels: dict[str, list[float]] = Field(
        {"defect_risk": [0.15, 0.30], "churn": [0.30, 0.50]},
        description="probability cut-offs between low, medium and high",
    )
    max_batch_projects: int = Field(5000, gt=0, description="largest /v1/risk/batch request")
    serve_workers: int = Field(2, gt=0, description="server processes (one a core here)")
    default_top_k: int = Field(5, ge=0, le=50, description="drivers per prediction unless a request says")

    @property
    def tracking_uri(self) -> str:
        import os

        return (
            self.mlflow_tracking_uri
            or os.environ.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{(self.work_dir / 'mlflow.db').resolve()}"
        )

    @property
    def quarantine_dir(self) -> Path:
        return self.work_dir / "quarantine"

    @property
    def datasets_dir(self) -> Path:
        return self.work_dir / "datasets"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
