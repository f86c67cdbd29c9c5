"""Request and response models of the HTTP API, with the examples shown on the OpenAPI page (``/docs.json``, ``/``).

Requests forbid unknown keys, so a misspelt field is a 400 that names it rather than a silently ignored option.
The engine (:class:`serving.runtime.Engine`) builds the response models directly: the contract is stated here once.
A target's answer is a field named after it, built from the target specs (``features.targets``): a milestone
target's under each milestone, a client target's once per project; its shape is its kind's (a probability with a
level, or a slip with a range).
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, create_model

from features.targets import CLASSIFIER, CLIENT, MILESTONE, SLIP, TARGETS, of_scope
from serving.limits import MAX_ID_LENGTH, MAX_TEXT_LENGTH

MODELS = tuple(TARGETS)
Level = Literal["low", "medium", "high"]
ModelName = Literal[MODELS]

AS_OF = (
    "the time to score at (ISO date or timestamp; a timezone is converted to UTC); facts after it are not seen. "
    "Default: today (a date, UTC). At most max_days_after_data (settings) after the data's newest fact"
)
TOP_K = "drivers per prediction (default: settings.default_top_k, 5)"
LANG = "language of the driver texts: en or zh (default: the request's Accept-Language, else en)"
Lang = Literal["en", "zh"]


def _request(example: dict) -> ConfigDict:
    # allow_inf_nan: JSON's NaN and Infinity (which Python's parser reads) are refused in every float of a request
    return ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra={"example": example})


def _scalar(value: Any) -> Any:
    if isinstance(value, dict | list):
        raise ValueError("a feature value must be a number, text or null, not a list or an object")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("a feature value must be a finite number (not NaN or an infinity), text or null")
    if isinstance(value, str) and len(value) > MAX_TEXT_LENGTH:
        raise ValueError(f"a text value has at most {MAX_TEXT_LENGTH} characters, this one {len(value):,}")
    return value


# Times in answers are UTC without an offset ("2023-06-01T00:00:00"), as the engine keeps them: published as such, a
# string of that shape, rather than as `date-time`, which would promise an offset.
UtcTime = Annotated[
    datetime,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$",
            "description": "a UTC time, ISO 8601 without an offset",
        }
    ),
]

# Ids and feature names are bounded (serving.limits): an oversized one is a 400 naming the field, never echoed.
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
FeatureName = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
FeatureValue = Annotated[Any, AfterValidator(_scalar)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


# ------------------------------------------------------------------------------------------------------ requests
class RiskRequest(BaseModel):
    model_config = _request({"project_id": "P00142", "as_of": "2023-06-01", "top_k": 3})

    project_id: Id = Field(description="the project to score")
    as_of: datetime | None = Field(None, description=AS_OF)
    milestone_ids: list[Id] | None = Field(
        None, description="only these milestones of the project (default: all not yet reached at as_of)"
    )
    top_k: int | None = Field(None, ge=0, le=50, description=TOP_K)
    lang: Lang | None = Field(None, description=LANG)


class BatchRequest(BaseModel):
    model_config = _request({"project_ids": ["P00142", "P00151"], "as_of": "2023-06-01", "top_k": 1})

    project_ids: list[Id] | None = Field(
        None, min_length=1, description="projects to score (default: all open projects); at most max_batch_projects"
    )
    as_of: datetime | None = Field(None, description=AS_OF)
    top_k: int | None = Field(None, ge=0, le=50, description=TOP_K)
    lang: Lang | None = Field(None, description=LANG)


class PredictRequest(BaseModel):
    model_config = _request(
        {"model": MODELS[0], "rows": [{"inspections_failed_30d": 3, "defects_open": 7, "milestone_kind": "mep"}]}
    )

    model: ModelName = Field(description="which champion model scores the rows")
    rows: list[dict[FeatureName, FeatureValue]] = Field(
        min_length=1,
        description="feature rows, feature name -> value; missing features are allowed (GET /v1/models); at most "
        "max_predict_rows (settings)",
    )
    top_k: int | None = Field(None, ge=0, le=50, description=TOP_K)


class WhatIfRequest(BaseModel):
    model_config = _request(
        {
            "project_id": "P00142",
            "milestone_id": "M000778",
            "as_of": "2023-06-01",
            "changes": {"defects_open": 0, "labour_hours_ratio_recent": 1.1},
        }
    )

    project_id: Id
    milestone_id: Id = Field(description="a milestone of the project not yet reached at as_of")
    changes: dict[FeatureName, FiniteFloat] = Field(
        description="feature name -> new value (GET /v1/models lists the features), one the feature can take (no "
        "negative count, no share above 1); at most max_whatif_changes (settings)"
    )
    as_of: datetime | None = Field(None, description=AS_OF)


class FeaturesRequest(BaseModel):
    model_config = _request({"project_id": "P00142", "milestone_id": "M000778", "as_of": "2023-06-01"})

    project_id: Id
    milestone_id: Id = Field(description="a milestone of the project not yet reached at as_of")
    as_of: datetime | None = Field(None, description=AS_OF)


class TrendRequest(BaseModel):
    model_config = _request({"project_id": "P00142", "as_of": "2023-06-01", "weeks": 12})

    project_id: Id
    as_of: datetime | None = Field(None, description=AS_OF)
    weeks: int = Field(12, ge=1, le=104, description="weeks back from as_of, each scored as of its own date")


class FactsRequest(BaseModel):
    model_config = _request({"project_id": "P00142", "as_of": "2023-06-01"})

    project_id: Id
    as_of: datetime | None = Field(None, description=AS_OF)


# ----------------------------------------------------------------------------------------------------- responses
class Driver(BaseModel):
    model_config = ConfigDict(extra="allow")

    feature: str
    value: float | str | None = Field(description="the feature's value for this row (null: no data yet)")
    text: str = Field(description="the feature, its value and its push, in a planner's words")
    department: str = Field(
        description="who owns it: quality, technical, safety, cost, customer service, project office"
    )
    direction: Literal["up", "down"]
    contribution: float = Field(description="SHAP contribution, in `unit` (log-odds or days)")
    unit: str


class ProbabilityRisk(BaseModel):
    """A classifier target's answer."""

    probability: float = Field(description="calibrated probability of the target's event")
    level: Level
    drivers: list[Driver]

    def said(self, name: str) -> str:
        """The answer in a few words, for a terminal."""
        return f"{name} {self.probability:.0%} ({self.level})"


class SlipRisk(BaseModel):
    """A slip target's answer."""

    expected_slip_days: float
    range_days: list[float] = Field(description="[lower, upper] slip in days")
    range_coverage: float | None = Field(description="nominal share of milestones whose slip falls in the range")
    late_probability: float = Field(description="calibrated probability of slipping more than the tolerance")
    late_tolerance_days: float
    delay_incurred_days: float = Field(
        0.0,
        description="days already past the planned date at as_of (0 when not overdue): part of the slip for certain; "
        "the expected slip and the range are never below it",
    )
    drivers: list[Driver]

    def said(self, name: str) -> str:
        """The answer in a few words, for a terminal."""
        lo, hi = self.range_days
        said = f"{name} {self.expected_slip_days:.0f} days [{lo:.0f}, {hi:.0f}], late {self.late_probability:.0%}"
        return said + (f" ({self.delay_incurred_days:.0f} days overdue)" if self.delay_incurred_days else "")


ANSWER: dict[str, type[BaseModel]] = {CLASSIFIER: ProbabilityRisk, SLIP: SlipRisk}


def _answers(scope: str) -> dict[str, Any]:
    """One field a target of ``scope``: its answer model, described by the target's purpose."""
    return {spec.name: (ANSWER[spec.kind], Field(description=spec.purpose)) for spec in of_scope(scope)}


MilestoneRisk = create_model(
    "MilestoneRisk",
    milestone_id=(str, ...),
    kind=(str | None, ...),
    planned_date=(date | None, ...),
    **_answers(MILESTONE),
)
ProjectRisk = create_model(
    "ProjectRisk",
    project_id=(str, ...),
    client_id=(str | None, ...),
    as_of=(UtcTime, Field(description="the time the rows were scored at (UTC)")),
    milestones=(list[MilestoneRisk], ...),
    **_answers(CLIENT),
)


class Freshness(BaseModel):
    """How old the answer's newest fact is, relative to its as_of."""

    latest_fact: UtcTime | None = Field(description="the newest fact of the data known before as_of (null: none)")
    days_since_latest_fact: float | None = Field(description="as_of minus latest_fact, in days (never negative)")
    stale: bool = Field(description="the newest fact is older than stale_after_days: the answer may be out of date")
    stale_after_days: float = Field(description="the threshold in settings")


class DataSnapshot(BaseModel):
    """The data an answer was computed from, as the service loaded it."""

    fingerprint: str = Field(description="of the data folder's files (names, sizes, times) when loaded")
    latest_fact: UtcTime | None = Field(description="the newest fact in the data")


_DRIVER_EXAMPLE = {
    "feature": "inspections_failed_30d",
    "value": 3.0,
    "text": "3 failed inspections in the last 30 days (quality) pushed first-pass failure risk up",
    "department": "quality",
    "direction": "up",
    "contribution": 0.41,
    "unit": "log-odds",
}
_ANSWER_EXAMPLE = {
    CLASSIFIER: {"probability": 0.21, "level": "medium", "drivers": [_DRIVER_EXAMPLE]},
    SLIP: {
        "expected_slip_days": 38.2,
        "range_days": [12.5, 71.0],
        "range_coverage": 0.8,
        "late_probability": 0.83,
        "late_tolerance_days": 7.0,
        "drivers": [],
    },
}


def _examples(scope: str) -> dict[str, dict]:
    return {spec.name: _ANSWER_EXAMPLE[spec.kind] for spec in of_scope(scope)}


class RiskResponse(ProjectRisk):  # type: ignore[misc, valid-type]
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "project_id": "P00142",
                "client_id": "C00111",
                "as_of": "2023-06-01T00:00:00",
                "milestones": [
                    {
                        "milestone_id": "M000777",
                        "kind": "fit_out",
                        "planned_date": "2023-04-20",
                        **_examples(MILESTONE),
                    }
                ],
                **_examples(CLIENT),
                "model_versions": {name: "1" for name in MODELS},
                "data_snapshot": {
                    "fingerprint": "3f9c2a71d0b84e65",
                    "latest_fact": "2023-11-22T21:24:00",
                },
                "data_freshness": {
                    "latest_fact": "2023-05-31T16:05:00",
                    "days_since_latest_fact": 0.33,
                    "stale": False,
                    "stale_after_days": 14.0,
                },
            }
        }
    )

    model_versions: dict[str, str] = Field(description="model name -> registry version of the champion used")
    data_snapshot: DataSnapshot
    data_freshness: Freshness


class BatchResponse(BaseModel):
    projects: list[ProjectRisk]
    model_versions: dict[str, str]
    data_snapshot: DataSnapshot
    data_freshness: Freshness


class Prediction(BaseModel):
    model_config = ConfigDict(extra="allow")

    probability: float | None = Field(None, description="a classifier target")
    expected_slip_days: float | None = Field(None, description="a slip target")
    lower_days: float | None = Field(None, description="a slip target: the range")
    upper_days: float | None = None
    late_probability: float | None = Field(None, description="a slip target")
    drivers: list[Driver]


class Flag(BaseModel):
    model_config = ConfigDict(extra="allow")

    row: int
    feature: str = Field("", description="the feature flagged ('' for a flag about the whole row)")
    value: Any = None
    flag: Literal["unknown_category", "outside_training_range", "not_supplied"] | str
    features: list[str] = Field(
        default_factory=list, description="not_supplied: the features the row left out (scored as missing)"
    )
    # Never null: BentoML's Python client cannot decode a null where its schema says array.
    training_range: list[float] = Field(
        default_factory=list, description="outside_training_range: [lowest, highest] seen in training; else empty"
    )


class PredictResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model: str
    version: str
    predictions: list[Prediction]
    flags: list[Flag] = Field(
        description="rows scored but suspicious: unknown categories, values far out of range, features not supplied"
    )
    model_versions: dict[str, str] = Field(default_factory=dict, description="model name -> champion version used")
    data_snapshot: DataSnapshot | None = Field(None, description="the data the answer was computed from")


class WhatIfResponse(BaseModel):
    project_id: str
    milestone_id: str
    as_of: UtcTime
    changes: dict[str, float]
    before: dict[str, dict[str, float]] = Field(description="model -> output -> value, as the data stands")
    after: dict[str, dict[str, float]] = Field(description="the same with the changes applied")
    difference: dict[str, dict[str, float]] = Field(description="after minus before")
    data_freshness: Freshness
    model_versions: dict[str, str] = Field(default_factory=dict, description="model name -> champion version used")
    data_snapshot: DataSnapshot | None = Field(None, description="the data the answer was computed from")


class FeatureInfo(BaseModel):
    """A feature as the registry declares it (``features.registry``); undeclared features have the name alone."""

    name: str
    unit: str | None = None
    department: str | None = None
    description: str | None = None
    monotone: int = Field(0, description="+1: the prediction never falls as it rises; -1: never rises; 0: free")
    categorical: bool = False


class FeedbackRequest(BaseModel):
    model_config = _request(
        {
            "project_id": "P00142",
            "milestone_id": "M000778",
            "model": "defect_risk",
            "note": "we disagree: the subcontractor was replaced last week",
            "corrected_level": "medium",
            "author": "site QA",
        }
    )

    project_id: Id
    milestone_id: Id | None = Field(None, description="the milestone, for defect_risk and delay (not for churn)")
    model: ModelName = Field(description="which prediction the feedback is about")
    note: str = Field("", max_length=2000, description="the planner's words")
    corrected_level: Level | None = Field(None, description="the level the planner would give: an override")
    outcome_label: FiniteFloat | None = Field(
        None,
        description="what happened, when known: defect_risk and churn 1 (it happened) or 0; delay the actual slip "
        "in days. An outcome is an override training can read as a label",
    )
    author: str | None = Field(None, max_length=MAX_TEXT_LENGTH, description="who says so")


class FeedbackResponse(BaseModel):
    id: int = Field(description="the feedback's number in the prediction log")
    kind: Literal["note", "override"] = Field(description="override: a corrected level or an outcome; else note")
    project_id: str
    milestone_id: str | None
    model: str


class FeaturesResponse(BaseModel):
    project_id: str
    milestone_id: str
    as_of: UtcTime
    features: dict[str, float | str | None] = Field(
        description="feature name -> value at as_of (null: no data yet), as the models see it: a row for /v1/predict"
    )
    data_freshness: Freshness
    model_versions: dict[str, str] = Field(default_factory=dict, description="model name -> champion version used")
    data_snapshot: DataSnapshot | None = Field(None, description="the data the answer was computed from")


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    name: str
    version: str
    alias: str
    run_id: str | None = None
    trained_at: str | None = None
    reference_until: str | None = Field(
        None,
        description="the day its drift reference now ends, when the gate kept it after it held its quality on "
        "newer rows; else the reference is the quarter before the export it learned from",
    )
    kind: str = Field(description="classifier (a probability) or slip (days, a range, P(late))")
    purpose: str = Field(description="what the model predicts")
    data_window: dict[str, Any] = Field(default_factory=dict)
    rows: dict[str, Any] = Field(default_factory=dict)
    test_metrics: dict[str, Any] = Field(default_factory=dict)
    features: list[str]
    categorical_features: list[str]
    feature_details: list[FeatureInfo] = Field(default_factory=list)
    evidence: dict[str, Any] = Field(
        default_factory=dict,
        description="from the test rows: the reliability curve (predicted vs observed, equal-count bins) of the "
        "probability (P(late) for delay), metrics per horizon band, the range's coverage per band (delay)",
    )


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    data_snapshot: DataSnapshot | None = None
    last_reload: dict[str, Any] = Field(
        default_factory=dict, description="the last reload this worker tried: when, why, its outcome or its error"
    )


class TrendPoint(BaseModel):
    as_of: UtcTime
    defect_risk: float | None = Field(description="the highest defect risk over the milestones open that week")
    expected_slip_days: float | None = Field(description="the highest expected slip over them")
    late_probability: float | None = Field(description="the highest P(late) over them")
    churn: float | None = Field(description="the client's churn risk")


class TrendResponse(BaseModel):
    project_id: str
    as_of: UtcTime
    points: list[TrendPoint] = Field(description="oldest first; weeks before the project began are left out")


class FactsResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    project_id: str
    as_of: UtcTime
    project: dict[str, Any] = Field(description="type, region, client, planned start and end, contract value")
    inspections: list[dict[str, Any]] = Field(description="the latest inspections known at as_of, newest first")
    complaints: list[dict[str, Any]] = Field(description="the latest complaints known at as_of, newest first")
    open_defects: float | None
    open_inspections: float | None
    open_complaints: float | None
    spi: float | None = Field(description="schedule performance index to date")
    cpi: float | None = Field(description="cost performance index to date")
    cpi_recent: float | None = Field(description="cost performance index in recent weeks")


class WorklistItem(BaseModel):
    project_id: str
    client_id: str | None
    milestone_id: str | None = Field(description="null for a client target (churn)")
    kind: str | None
    planned_date: date | None
    target: str
    prediction: float = Field(description="the target's prediction: a probability, or the expected slip in days")
    level: Level = Field(description="the prediction's level (delay: its P(late)'s) against settings.risk_levels")
    added: float = Field(description="what the department's drivers add to the prediction, in its unit")
    share: float = Field(description="their share of everything that pushes the prediction up (0 to 1)")
    whatif_gain: float | None = Field(
        description="how much the prediction falls if the department's actionable drivers were at the firm's typical "
        "value today (null: none of its drivers is actionable)"
    )
    drivers: list[Driver]


class WorklistResponse(BaseModel):
    department: str
    as_of: UtcTime
    items: list[WorklistItem]
    total: int = Field(description="items before the limit")
    model_versions: dict[str, str]
    data_snapshot: DataSnapshot | None = None


class PortfolioResponse(BaseModel):
    as_of: UtcTime
    snapshot: dict[str, Any] = Field(description="when the precomputed view was built, how long it took, its data")
    model_versions: dict[str, str]
    data_snapshot: DataSnapshot
    data_freshness: Freshness
    levels: dict[str, list[float]] = Field(description="the probability cut-offs between low, medium and high")
    projects: list[dict[str, Any]] = Field(description="one line a project open at as_of")


class ErrorResponse(BaseModel):
    """The body of every 4xx this service sends."""

    error: str = Field(description="what is wrong, naming the field")
    field: str = Field(description="the part of the request at fault: `as_of`, `project_ids`, `rows[2].spi_recent`")
