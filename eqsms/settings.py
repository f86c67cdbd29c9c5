"""One typed settings object for every stage, in a section per stage.

Every path and parameter has its default here and nowhere else; CLI options take their defaults from it, and any
field can be set from the environment with the ``EQSMS_`` prefix (``EQSMS_HORIZON_DAYS=21``). The sections are
mixins of the one :class:`Settings`, so a field keeps its short name and its environment variable.

Nothing here does work on import, and nothing anywhere reads settings on import: commands and the service call
:func:`get_settings` when they run, so a changed environment is always seen. Paths are resolved once, when the
object is made: a relative ``work_dir`` or ``data_dir`` is taken from the working directory at that moment.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class PathSettings(BaseSettings):
    """Where things live."""

    data_dir: Path = Field(REPO_ROOT / "data_samples" / "world", description="folder of raw exports (contract v1)")
    work_dir: Path = Field(Path("eqsms_work"), description="outputs: quarantine, datasets, models")

    @field_validator("data_dir", "work_dir")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        return path.expanduser().resolve()

    @property
    def quarantine_dir(self) -> Path:
        """Where rejected rows go: a folder per data folder below it (``quarantine_for``)."""
        return self.work_dir / "quarantine"

    def quarantine_for(self, data_dir: Path) -> Path:
        """The quarantine folder of one folder of exports, so one validation does not overwrite another's."""
        return self.quarantine_dir / data_name(data_dir)

    @property
    def datasets_dir(self) -> Path:
        return self.work_dir / "datasets"

    @property
    def monitor_page(self) -> Path:
        """`eqsms monitor`'s page, which the service shows at /v1/monitor."""
        return self.work_dir / "monitor" / "index.html"


class ContractSettings(BaseSettings):
    """Validation: which dates are plausible at all."""

    earliest_date: str = Field("1950-01-01", description="a date before this is refused (implausible_date)")
    latest_date: str = Field("2100-12-31", description="a date after this is refused (implausible_date)")


class TargetSettings(BaseSettings):
    """The targets (DESIGN.md, "The three targets")."""

    horizon_days: int | None = Field(
        None,
        ge=0,
        description="None: milestone rows at several as_of each (the bands below); a number: one row a milestone, "
        "this many days before its plan (the scheme before issue 10, kept for comparisons and backtests)",
    )
    as_of_lead_days: int = Field(182, gt=0, description="a milestone's earliest training row: this long before plan")
    as_of_step_days: int = Field(7, gt=0, description="training rows' as_of lie on a grid this many days apart")
    near_days: int = Field(
        30, ge=0, description="horizon bands: more than this many days ahead, 0 .. this many days ahead, overdue"
    )
    late_tolerance_days: float = Field(7.0, ge=0, description="a milestone is late when it slips more than this")
    churn_window_days: int = Field(365, gt=0, description="no new award within this window after handover = churn")


class FeatureSettings(BaseSettings):
    """Feature windows: the families derive their feature names from these."""

    short_window_days: int = Field(30, gt=0)
    long_window_days: int = Field(90, gt=0)
    recent_weeks: int = Field(4, gt=0, description="resource weeks in the 'recent' SPI, CPI and overtime figures")


class WorldSettings(BaseSettings):
    """The synthetic world (``eqsms generate``)."""

    generate_projects: int = Field(300, gt=0)
    generate_seed: int = Field(7)
    generate_start: str = Field("2018-01-01", description="first award date of the synthetic world")


class TrainingSettings(BaseSettings):
    """Training: time split shares, backtest, LightGBM, intervals, tracking, the promotion gate."""

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
    refit_on_all_rows: bool = Field(
        True,
        description="register a model refit on every labelled row (trees as early stopping chose; calibrator and "
        "range margin cross-fitted on out-of-fold rows); False registers the model the test metrics were measured on",
    )
    seed: int = Field(7, description="seed for every model")
    lgb_threads: int = Field(1, gt=0, description="LightGBM threads (1 is fastest here below ~50k rows)")
    training_engine: Literal["pandas", "dask"] = Field(
        "pandas", description="where boosters are fitted: this process, or the open Dask client's workers"
    )
    tuned_params: dict[str, dict[str, int | float]] = Field(
        {},
        description="per model (target name), LightGBM parameters over the ones above: what `eqsms train --tune` "
        "chose, or given to train with them again without a search; empty: untuned",
    )
    tune_budget_minutes: float = Field(
        10.0, gt=0, description="`eqsms train --tune`: minutes of search for all the models trained, in turn"
    )
    tune_trials: int = Field(100, gt=0, description="`eqsms train --tune`: at most this many trials a model")
    promotion_tolerance: float = Field(0.005, ge=0, description="a challenger may be this much worse and still win")
    moved_by: str | None = Field(
        None,
        description="who moves @champion, as the champion history records it (EQSMS_MOVED_BY=alice); default: the "
        "OS user@host; the command is added either way",
    )
    baseline_tolerance: float = Field(
        0.0, ge=0, description="the gate refuses a challenger worse than the reference class or the linear baseline"
    )


class ServingSettings(BaseSettings):
    """Serving: where it listens, how many workers, levels and limits of the answers."""

    host: str = Field("127.0.0.1", description="where `eqsms serve` listens")
    port: int = Field(3000, gt=0, lt=65536)
    risk_levels: dict[str, list[float]] = Field(
        {"defect_risk": [0.15, 0.30], "delay": [0.30, 0.60], "churn": [0.30, 0.50]},
        description="probability cut-offs between low, medium and high, per target (delay: of P(late))",
    )
    max_batch_projects: int = Field(5000, gt=0, description="largest /v1/risk/batch request")
    serve_workers: int = Field(2, gt=0, description="server processes (one a core here)")
    default_top_k: int = Field(5, ge=0, le=50, description="drivers per prediction unless a request says")
    stale_after_days: float = Field(
        14.0, gt=0, description="an answer whose newest fact is older than this (days before as_of) is flagged stale"
    )
    reload_check_seconds: float = Field(
        1.0, ge=0, description="how often a worker looks for a reload asked of another worker (0: never)"
    )
    reload_poll_seconds: float = Field(
        60.0, ge=0, description="how often a worker checks the data folder and the @champion versions (0: never)"
    )
    max_days_after_data: float = Field(
        365.0, gt=0, description="an as_of more than this many days after the data's newest fact is refused (400)"
    )
    # Limits on one request (issue 12): over one is a 413 naming the field, before the work is done.
    max_body_bytes: int = Field(
        4 * 1024 * 1024,
        gt=0,
        description="largest request body in bytes (413 before it is parsed): a /v1/predict of max_predict_rows "
        "complete rows (74 features, about 2.4 kB a row as JSON) fits",
    )
    max_predict_rows: int = Field(
        1000, gt=0, description="most rows one /v1/predict may score (413): about 0.5 s of a worker, with drivers"
    )
    max_whatif_changes: int = Field(
        100, gt=0, description="most features one /v1/whatif may change (413): more than the models have"
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        [],
        description="keys that may read /v1 (and the board's data), several so that one can be rotated: "
        "EQSMS_API_KEYS=key1,key2 (comma-separated; a JSON list is read too). None here and in admin_keys: no key "
        "is asked for. Set them in the environment, never in a committed file; they are never printed or logged",
    )
    admin_keys: Annotated[list[SecretStr], NoDecode] = Field(
        [],
        description="keys that may also call /v1/admin/... (reload): EQSMS_ADMIN_KEYS=key1,key2 (as api_keys); "
        "when any key is set, admin endpoints answer only these",
    )
    api_key: SecretStr | None = Field(
        None,
        description="the key eqsms's own commands send to a running service (`eqsms risk --url`, `worklist --url`, "
        "`reload --url`): EQSMS_API_KEY=...; a reload needs one of admin_keys",
    )
    metrics_need_key: bool = Field(
        False, description="when keys are set, /metrics asks for one too (health endpoints stay open)"
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        [],
        description="dashboard origins whose pages may call the API from a browser, each scheme://host[:port] "
        "matched exactly: EQSMS_CORS_ORIGINS=https://dash.example,http://localhost:8080 (comma-separated; a "
        "JSON list is read too); empty: no cross-origin calls",
    )

    @field_validator("api_keys", "admin_keys", "cors_origins", mode="before")
    @classmethod
    def _listed(cls, value: object) -> object:
        """A comma-separated string (or a JSON list) as a list, blanks dropped. Never fails on a string, so a
        mistyped key is never echoed in an error: a garbled list leaves wrong keys, which refuse every call."""
        if isinstance(value, str):
            value = _split(value)
        if isinstance(value, list | tuple):
            return [v.strip() if isinstance(v, str) else v for v in value if not _blank(v)]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if not re.fullmatch(r"https?://[^/\s]+", origin):
                raise ValueError(f"{origin!r} is not an origin: scheme://host[:port], no path, no trailing /")
        return origins


class ReportSettings(BaseSettings):
    """The KPI gap report (``eqsms report``): the quality-service targets and how each KPI is read."""

    first_pass_target: float = Field(0.95, ge=0, le=1, description="first-pass acceptance rate, at least")
    on_time_target: float = Field(
        0.90, ge=0, le=1, description="on-time milestone rate, at least (on time: slip <= late_tolerance_days)"
    )
    csat_target: float = Field(0.90, ge=0, le=1, description="share of survey answers satisfied, at least")
    csat_satisfied_min: float = Field(4.0, ge=1, le=5, description="a csat answer (1 to 5) this high is satisfied")
    nps_target: float = Field(30.0, ge=-100, le=100, description="net promoter score (-100 to 100), at least")
    response_median_target_hours: float = Field(24.0, gt=0, description="complaint first response, median, at most")
    response_p90_target_hours: float = Field(72.0, gt=0, description="complaint first response, 90th pct, at most")
    resolution_median_target_days: float = Field(7.0, gt=0, description="complaint resolution, median, at most")
    resolution_p90_target_days: float = Field(21.0, gt=0, description="complaint resolution, 90th pct, at most")
    defects_per_inspection_target: float = Field(1.0, gt=0, description="defects found per inspection, at most")
    failed_inspection_target: float = Field(0.10, gt=0, le=1, description="share of inspections failed, at most")
    rework_target: float = Field(
        0.20, gt=0, le=1, description="share of inspections needing rework (failed or conditional), at most"
    )
    spi_target: float = Field(1.0, gt=0, description="schedule performance index (earned / planned value), at least")
    cpi_target: float = Field(1.0, gt=0, description="cost performance index (earned value / actual cost), at least")
    report_top_projects: int = Field(5, gt=0, description="projects named behind each KPI's gap")
    forecast_coverage: float = Field(
        0.8, gt=0, lt=1, description="the forecast's range: this central share of its distribution (0.8: p10 to p90)"
    )


class LogSettings(BaseSettings):
    """The prediction log (issue 13): every prediction served, kept beside the planners' feedback."""

    prediction_log_url: str | None = Field(
        None,
        description="where predictions are recorded: any SQLAlchemy URL (postgresql://... for a team); None: "
        "sqlite in work_dir (predictions.db); 'off': nothing is recorded. A password in it is never logged",
    )
    prediction_log_flush_seconds: float = Field(
        1.0,
        gt=0,
        description="the log's writer thread writes what is waiting at least this often, off the request path",
    )
    prediction_log_max_queue: int = Field(
        200_000,
        gt=0,
        description="predictions waiting to be written at most (while the database is slow or down); beyond it new "
        "ones are dropped and counted rather than memory growing",
    )
    training_uses_feedback: bool = Field(
        True,
        description="training labels a milestone (or handover) the export has no outcome for with the outcome a "
        "planner stated in the prediction log's feedback, known from the feedback's time; the export's own outcome "
        "always wins. Only while the log is on",
    )


class MonitorSettings(BaseSettings):
    """Drift checks (issue 13 §3, ``monitoring.drift``): a reference window (training) against the latest weeks.

    A feature drifts when an effect size passes its threshold *and* a two-sample test confirms it at
    ``drift_pvalue``. The effect size alone is noisy on few rows; a p-value alone flags any trivial difference on
    many rows, and with ~70 features a 1% test flags 0.7 features a comparison of two samples of one
    distribution. Requiring both keeps the flag for changes large enough to matter and too large to be chance.
    """

    drift_bins: int = Field(
        10, ge=2, description="PSI of a number: bins at the reference's deciles (plus below, above and missing)"
    )
    drift_psi_threshold: float = Field(
        0.2,
        gt=0,
        description="PSI at which a feature or the predictions drift: 0.2 is the usual 'significant' cut (0.1 "
        "'moderate'); for a normal feature PSI ~ (mean shift in sd)^2, so 0.2 is a shift of ~0.45 sd. Two samples "
        "of one distribution give PSI ~ chi2(bins - 1) * (1/n_ref + 1/n_cur): at drift_min_rows a side, 0.2 is "
        "passed about once in 5,000 features (measured: 2e-4)",
    )
    drift_pvalue: float = Field(
        0.01,
        gt=0,
        lt=1,
        description="the two-sample test that must confirm an effect (Kolmogorov-Smirnov for numbers, chi-square for "
        "categories and missing shares): below this p-value. A confirmation, not the flag: see the section",
    )
    drift_missing_shift: float = Field(
        0.10,
        gt=0,
        le=1,
        description="a feature drifts when its missing share moves this much (absolute, 0.05 -> 0.15): an export "
        "or a field going dark; smaller moves are within a week's noise for a feature missing half the time",
    )
    drift_new_category_share: float = Field(
        0.05,
        gt=0,
        le=1,
        description="a category feature drifts when this share of current rows holds categories the reference "
        "never had (beyond the Good-Turing share it expected to be new): a new region or project type",
    )
    drift_min_rows: int = Field(
        300,
        gt=0,
        description="fewer rows than this in the reference or the current window: the feature is not judged (said "
        "so in the report); at 300 a side a 10-bin PSI of one distribution passes 0.2 about once in 5,000, 0.1 "
        "one time in ten",
    )
    drift_features_flagged: int = Field(
        3,
        gt=0,
        description="drifted features that flag a model (its predictions drifting flag it alone): one feature is "
        "listed to look at (often an export that changed), a shift in the projects moves several related ones",
    )


class Settings(
    PathSettings,
    ContractSettings,
    TargetSettings,
    FeatureSettings,
    WorldSettings,
    TrainingSettings,
    ServingSettings,
    ReportSettings,
    LogSettings,
    MonitorSettings,
):
    """Every stage's section in one object (``settings.horizon_days``, ``settings.serve_workers``)."""

    model_config = SettingsConfigDict(env_prefix="EQSMS_", extra="ignore")

    @property
    def tracking_uri(self) -> str:
        return (
            self.mlflow_tracking_uri
            or os.environ.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{self.work_dir / 'mlflow.db'}"
        )


def get_settings() -> Settings:
    """The settings as the environment says now (cheap: read afresh on every call, never cached)."""
    return Settings()


def data_name(data_dir: Path) -> str:
    """A short name for a folder of exports (``eqsms_work/real/nyc_sca`` -> ``nyc-sca``): it names the folder's
    quarantine and its backtests."""
    return re.sub(r"[^0-9a-z]+", "-", Path(data_dir).resolve().name.lower()).strip("-") or "data"


def _split(text: str) -> list[str]:
    """``a,b`` or ``["a", "b"]`` as a list of strings (settings that hold several values)."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            listed = json.loads(text)
        except ValueError:
            listed = None
        if isinstance(listed, list) and all(isinstance(v, str) for v in listed):
            return listed
    return text.split(",")


def _blank(value: object) -> bool:
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    return isinstance(text, str) and not text.strip()
