"""The scoring engine behind the service: the three @champion models, the validated data and the feature code.

It knows nothing of HTTP: the BentoML service (``serving/service.py``) turns requests into calls here and
:class:`RequestError` into 4xx answers. Features come from ``features/`` (the same code that built the training
rows), models from the MLflow registry, explanations from LightGBM's exact TreeSHAP (``pred_contrib``), computed for
all rows of a request in one call per model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import TypeAdapter

from eqsms.settings import Settings
from features.contract import fact_times
from features.datasets import MilestoneIndex, milestone_columns, project_columns_at, today
from features.families import Columns, Context
from features.io import ContractError
from features.pit import to_seconds
from features.registry import FeatureSpec, feature_specs
from features.targets import CLASSIFIER, CLIENT, MILESTONE, SLIP, TARGETS, TargetSpec, of_scope, target
from features.validate import load
from serving import schemas
from serving.drivers import plain, top_drivers
from serving.limits import domain, out_of_domain, shown
from training.bundle import ModelBundle

CHAMPION = "champion"


@dataclass(frozen=True)
class Champion:
    """Where a loaded model came from: its registry name, version and alias, its run and when it was trained."""

    name: str
    version: str
    alias: str = CHAMPION
    run_id: str | None = None
    trained_at: str | None = None
    reference_until: str | None = None  # where the gate moved its drift reference (``tracking.REFERENCE_UNTIL``)


def model_info(champion: Champion, bundle: ModelBundle, specs: Mapping[str, FeatureSpec]) -> schemas.ModelInfo:
    """What ``/v1/models`` says of a model: its registry facts, its target, its data, its test metrics, its
    features as the registry declares them. The one place this is written."""
    meta, spec = bundle.meta, target(champion.name)
    return schemas.ModelInfo(
        **vars(champion),
        kind=spec.kind,
        purpose=spec.purpose,
        data_window=meta.get("windows", {}),
        rows=meta.get("rows", {}),
        test_metrics=meta.get("test_metrics", {}),
        evidence=meta.get("evidence", {}),
        features=bundle.features,
        categorical_features=bundle.categorical,
        feature_details=[feature_info(name, spec.name, specs.get(name)) for name in bundle.features],
    )


def feature_info(name: str, model: str, declared: FeatureSpec | None) -> schemas.FeatureInfo:
    """A model's feature as the registry declares it; a feature it does not know, by its name alone."""
    if declared is None:
        return schemas.FeatureInfo(name=name)
    return schemas.FeatureInfo(
        name=name,
        unit=declared.unit,
        department=declared.department,
        description=declared.description,
        monotone=declared.monotone.get(model, 0),
        categorical=declared.categorical,
    )


class NotReady(Exception):
    """The service cannot start: the message names what is missing and the command that creates it."""


class RequestError(Exception):
    """A request the engine cannot answer; ``field`` names the part of the request at fault."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.status = field, message, status


def load_tables(settings: Settings) -> dict[str, pd.DataFrame]:
    """The validated tables of the data folder in settings, or :class:`NotReady` saying what to do."""
    try:
        return load(settings.data_dir).tables
    except ContractError as err:
        raise NotReady(
            f"the data folder {settings.data_dir} cannot be used: {err}\n"
            "Point EQSMS_DATA_DIR at a folder of exports, or create a sample with `eqsms generate`."
        ) from err


def levels(p: np.ndarray, thresholds: list[float]) -> list[str]:
    """Each probability's level, low, medium or high, against the two cut-offs of ``settings.risk_levels``."""
    return np.array(["low", "medium", "high"])[np.searchsorted(thresholds, p, side="right")].tolist()


@dataclass
class Scored:
    """One model's answers for a block of rows (``contributions``: every feature's SHAP value, bias last, when
    asked for)."""

    outputs: dict[str, np.ndarray]
    drivers: list[list[dict]]
    contributions: np.ndarray | None = None


@dataclass
class Block:
    """Projects scored at one ``as_of``: their open milestones (``rows``), the feature columns of each scope, and
    each target's answers and scores (``scored``: target name -> :class:`Scored`)."""

    as_of: pd.Timestamp
    project_ids: list[str]
    rows: pd.DataFrame
    columns: dict[str, Columns]
    answers: dict[str, list[dict]]
    scored: dict[str, Scored]


def probability_answers(spec: TargetSpec, scored: Scored, bundle: ModelBundle, settings: Settings) -> list[dict]:
    """A classifier's answer per row (``schemas.ProbabilityRisk``): the calibrated probability, its level and the
    drivers."""
    p = scored.outputs["probability"]
    level = levels(p, settings.risk_levels[spec.name])
    return [{"probability": float(p[i]), "level": level[i], "drivers": scored.drivers[i]} for i in range(len(p))]


def slip_answers(spec: TargetSpec, scored: Scored, bundle: ModelBundle, settings: Settings) -> list[dict]:
    """A slip model's answer per row (``schemas.SlipRisk``): the expected slip, the range and its coverage, P(late)
    and the drivers."""
    out = scored.outputs
    coverage, tolerance = bundle.meta.get("interval_coverage"), settings.late_tolerance_days
    incurred = out.get("delay_incurred_days", np.zeros(len(out["expected_slip_days"])))
    return [
        {
            "expected_slip_days": float(out["expected_slip_days"][i]),
            "range_days": [float(out["lower_days"][i]), float(out["upper_days"][i])],
            "range_coverage": coverage,
            "late_probability": float(out["late_probability"][i]),
            "late_tolerance_days": tolerance,
            "delay_incurred_days": float(incurred[i]),
            "drivers": scored.drivers[i],
        }
        for i in range(len(out["expected_slip_days"]))
    ]


# A kind's answer per row, in the fields of its response model; the engine validates a request's answers into the
# response models in one pass (per object, pydantic's construction cost 40% more on a batch of 387 projects).
ANSWERS = {CLASSIFIER: probability_answers, SLIP: slip_answers}
_PROJECTS = TypeAdapter(list[schemas.ProjectRisk])


class Engine:
    def __init__(
        self,
        settings: Settings,
        tables: dict[str, pd.DataFrame],
        bundles: dict[str, ModelBundle],
        champions: dict[str, Champion],
    ):
        self.settings = settings
        self.tables = tables
        self.bundles = bundles
        self.feature_specs = feature_specs(settings)  # the registry with the windows the features are computed with
        self.info = {name: model_info(champions[name], bundle, self.feature_specs) for name, bundle in bundles.items()}
        self.ctx = Context.build(tables, settings)
        self.projects = tables["projects"].set_index("project_id", drop=False)
        milestones = tables["milestones"]
        self.milestones = milestones
        self.milestone_index = MilestoneIndex(milestones, self.ctx)
        self.milestone_ids = pd.Index(milestones["milestone_id"])
        self.fact_times = fact_times(tables)  # sorted: the newest fact known before any as_of is one search
        self.latest_fact = pd.Timestamp(self.fact_times[-1]) if len(self.fact_times) else None

    # ------------------------------------------------------------------------------------------------ start-up
    @classmethod
    def from_settings(cls, settings: Settings) -> Engine:
        """Load the validated data folder and every target's @champion model, or say what is missing."""
        from training.tracking import REFERENCE_UNTIL, alias_version, configure, load_bundle

        tables = load_tables(settings)
        client = configure(settings)
        versions = {name: alias_version(client, name, CHAMPION) for name in TARGETS}
        missing = [name for name, version in versions.items() if version is None]
        if missing:
            raise NotReady(
                f"no @{CHAMPION} model for {', '.join(missing)} in the MLflow store {settings.tracking_uri}.\n"
                "Create them with `eqsms train --promote` (or point MLFLOW_TRACKING_URI at the store that has them)."
            )
        bundles, champions = {}, {}
        for name, version in versions.items():
            bundles[name] = load_bundle(f"models:/{name}/{version}")
            mv = client.get_model_version(name, version)
            trained_at = pd.Timestamp(mv.creation_timestamp, unit="ms", tz="UTC").isoformat()
            moved = mv.tags.get(REFERENCE_UNTIL)
            champions[name] = Champion(name, str(version), CHAMPION, mv.run_id, trained_at, moved)
        return cls(settings, tables, bundles, champions)

    # ------------------------------------------------------------------------------------------------- scoring
    def _score(
        self, name: str, columns: Columns, top_k: int, supplied: np.ndarray | None = None, keep: bool = False
    ) -> Scored:
        """Predictions and drivers of one model for all rows at once (one TreeSHAP call); ``supplied`` marks the
        features a caller gave (the others are no drivers); ``keep`` keeps every feature's contribution."""
        bundle = self.bundles[name]
        frame = bundle.matrix(columns)
        outputs = bundle.outputs(frame)
        n = len(frame)
        if not top_k and not keep:
            return Scored(outputs, [[] for _ in range(n)])
        # Exact TreeSHAP for every row in one call; the outputs above come from predict itself, so that they equal
        # the training pipeline's to the last bit (a sum of contributions can differ in the last place).
        contrib = bundle.contributions(frame)
        drivers = top_drivers(contrib, bundle.features, columns, target(name), top_k, self.feature_specs, supplied)
        return Scored(outputs, drivers, contrib if keep else None)

    def _scores(self, scope: str, columns: Columns, top_k: int, keep: bool = False) -> dict[str, Scored]:
        """Each target of ``scope`` scored for every row of ``columns``: target name -> :class:`Scored`."""
        return {spec.name: self._score(spec.name, columns, top_k, keep=keep) for spec in of_scope(scope)}

    def _told(self, scored: dict[str, Scored]) -> dict[str, list[dict]]:
        """Each target's scores as answers in the fields of its response model: target name -> one answer a row."""
        return {
            name: ANSWERS[target(name).kind](target(name), s, self.bundles[name], self.settings)
            for name, s in scored.items()
        }

    # ---------------------------------------------------------------------------------------------- validation
    def check_projects(self, project_ids: list[str], field: str = "project_id") -> np.ndarray:
        """The projects' codes, or a 404 naming the ids the data does not have."""
        codes = self.ctx.code(pd.Series(project_ids, dtype="str"))
        if (codes < 0).any():
            unknown = [p for p, c in zip(project_ids, codes, strict=True) if c < 0]
            raise RequestError(field, f"unknown project id(s): {', '.join(map(shown, unknown[:10]))}", 404)
        return codes

    def resolve_as_of(self, as_of, project_ids: list[str], codes: np.ndarray | None = None) -> pd.Timestamp:
        """``as_of`` (default today) as a naive UTC time, or a 400 if it is before a project's planned start
        (``codes``: the projects' codes, when the caller has looked them up already)."""
        codes = self.check_projects(project_ids) if codes is None else codes
        t = today() if as_of is None else pd.Timestamp(as_of)
        if t.tzinfo is not None:
            t = t.tz_convert("UTC").tz_localize(None)
        self._check_not_beyond_data(t, as_of is None)
        starts = self.ctx.project_arrays["planned_start"][codes]
        early = np.flatnonzero(starts > to_seconds(np.array([t]))[0])
        if len(early):
            first = project_ids[early[0]]
            start = self.projects.at[first, "planned_start"].date()
            raise RequestError("as_of", f"{t.date()} is before project {first} began (planned start {start})")
        return t

    # ---------------------------------------------------------------------------------------------- endpoints
    def risk(
        self,
        project_ids: list[str],
        as_of=None,
        milestone_ids: list[str] | None = None,
        top_k: int = 5,
        field: str = "project_id",
    ) -> list[schemas.ProjectRisk]:
        """Each project's open milestones at ``as_of`` (all, or the given ids) with every milestone target's
        answer, and every client target's answer, in one vectorised pass over all the projects."""
        block = self.block(project_ids, as_of, milestone_ids, top_k, field)
        return self.projects_of(block)

    def block(
        self,
        project_ids: list[str],
        as_of=None,
        milestone_ids: list[str] | None = None,
        top_k: int = 5,
        field: str = "project_id",
        keep: bool = False,
    ) -> Block:
        """The projects' open milestones at ``as_of`` scored by every target in one vectorised pass (``keep``: with
        every feature's contribution, for the worklists)."""
        codes = self.check_projects(project_ids, field)  # the one lookup of the ids in this request
        t = self.resolve_as_of(as_of, project_ids, codes)
        rows = self._open_milestones(project_ids, t, milestone_ids)
        projects = pd.DataFrame({"project_id": project_ids, "project_code": codes, "as_of": t})
        columns = {CLIENT: project_columns_at(self.ctx, projects)}
        scored = self._scores(CLIENT, columns[CLIENT], top_k, keep)
        if len(rows):
            columns[MILESTONE] = milestone_columns(self.ctx, rows, columns[CLIENT])
            scored.update(self._scores(MILESTONE, columns[MILESTONE], top_k, keep))
        return Block(t, project_ids, rows, columns, self._told(scored), scored)

    def projects_of(self, block: Block) -> list[schemas.ProjectRisk]:
        """A block's answers as one :class:`schemas.ProjectRisk` a project."""
        rows, t, project_ids = block.rows, block.as_of, block.project_ids
        client = {spec.name: block.answers[spec.name] for spec in of_scope(CLIENT)}
        by_project: dict[str, list[dict]] = {p: [] for p in project_ids}
        if len(rows):
            answers = {spec.name: block.answers[spec.name] for spec in of_scope(MILESTONE)}
            for i, (milestone_id, project_id, kind, planned) in enumerate(
                zip(rows["milestone_id"], rows["project_id"], rows["kind"], rows["planned_date"], strict=True)
            ):
                by_project[project_id].append(
                    {
                        "milestone_id": milestone_id,
                        "kind": kind,
                        "planned_date": planned.date(),
                        **{name: answer[i] for name, answer in answers.items()},
                    }
                )
        return _PROJECTS.validate_python(
            [
                {
                    "project_id": p,
                    "client_id": self.client_of(p),
                    "as_of": t,
                    "milestones": by_project[p],
                    **{name: answer[i] for name, answer in client.items()},
                }
                for i, p in enumerate(project_ids)
            ]
        )

    def _open_milestones(
        self, project_ids: list[str], t: pd.Timestamp, milestone_ids: list[str] | None
    ) -> pd.DataFrame:
        """The projects' milestones not reached before ``t`` (only ``milestone_ids`` if given), with ``as_of``."""
        if milestone_ids is not None:
            self.check_milestones(milestone_ids, project_ids)
        return self.milestone_index.open(t, project_ids, milestone_ids)

    def client_of(self, project_id: str):
        client = self.projects.at[project_id, "client_id"]
        return None if pd.isna(client) else client

    def check_milestones(self, milestone_ids: list[str], project_ids: list[str]) -> None:
        found = self.milestones.iloc[self.milestone_ids.get_indexer(milestone_ids)]
        unknown = [
            m for m, pos in zip(milestone_ids, self.milestone_ids.get_indexer(milestone_ids), strict=True) if pos < 0
        ]
        if unknown:
            raise RequestError("milestone_ids", f"unknown milestone id(s): {', '.join(map(shown, unknown[:10]))}", 404)
        elsewhere = found[~found["project_id"].isin(project_ids)]["milestone_id"].tolist()
        if elsewhere:
            raise RequestError("milestone_ids", f"not milestones of this project: {', '.join(elsewhere[:10])}")

    def _check_not_beyond_data(self, t: pd.Timestamp, defaulted: bool) -> None:
        """A 400 for an ``as_of`` further after the data's newest fact than ``max_days_after_data``: an answer
        about a time the data knows nothing of would look as sure as any other."""
        limit = self.settings.max_days_after_data
        days = None if self.latest_fact is None else (t - self.latest_fact) / pd.Timedelta(days=1)
        if days is None or days <= limit:
            return
        what = f"{t.date()} (today: the default)" if defaulted else str(t.date())
        raise RequestError(
            "as_of",
            f"{what} is {days:,.0f} days after the data's newest fact ({self.latest_fact.date()}); the limit is "
            f"{limit:g} days (max_days_after_data). Ask as of an earlier date, or load a fresher export",
        )

    def open_projects(self, as_of: pd.Timestamp | None = None) -> list[str]:
        """What a dashboard means by 'all open projects': without ``as_of``, those with no handover date; at
        ``as_of``, those begun by then (planned start) and not handed over before it."""
        projects = self.projects
        if as_of is None:
            return projects.index[projects["actual_end"].isna()].tolist()
        begun = projects["planned_start"] <= as_of
        handed_over = projects["actual_end"] < as_of  # NaT compares False: not handed over
        return projects.index[begun & ~handed_over].tolist()

    def freshness(self, as_of: pd.Timestamp) -> schemas.Freshness:
        """How old the newest fact known before ``as_of`` is, and whether that is stale (settings)."""
        known = np.searchsorted(self.fact_times, np.datetime64(as_of, "us"), side="left")
        latest = pd.Timestamp(self.fact_times[known - 1]) if known else None
        days = round((as_of - latest) / pd.Timedelta(days=1), 2) if latest is not None else None
        limit = self.settings.stale_after_days
        stale = days is None or days > limit
        return schemas.Freshness(latest_fact=latest, days_since_latest_fact=days, stale=stale, stale_after_days=limit)

    def versions(self) -> dict[str, str]:
        return {name: info.version for name, info in self.info.items()}

    def predict(self, model: str, rows: list[dict], top_k: int = 5) -> schemas.PredictResponse:
        """Predictions and drivers for feature rows the caller supplies; missing features are allowed, unknown
        categories and values far outside the training range are scored but flagged."""
        if model not in self.bundles:
            raise RequestError("model", f"{shown(model)!r} is not one of {', '.join(self.bundles)}")
        limit = self.settings.max_predict_rows
        if len(rows) > limit:
            raise RequestError("rows", f"{len(rows):,} rows; at most {limit:,} a request (max_predict_rows)", 413)
        bundle = self.bundles[model]
        known = set(bundle.features)
        for i, row in enumerate(rows):
            extra = sorted(set(row) - known)
            if extra:
                raise RequestError(f"rows[{i}].{extra[0]}", f"not a feature of {model}; see GET /v1/models")
        X = pd.DataFrame.from_records(rows, columns=bundle.features)
        for col in bundle.features:
            if col in bundle.categorical:
                continue
            X[col] = self._numbers(col, X[col], rows)
        supplied = np.array([[f in row for f in bundle.features] for row in rows], dtype=bool)  # null: no data yet
        flags = self._flags(bundle, X) + _not_supplied(bundle.features, supplied)
        scored = self._score(model, {col: X[col].to_numpy() for col in X.columns}, top_k, supplied)
        keys = list(scored.outputs)
        return schemas.PredictResponse(
            model=model,
            version=self.info[model].version,
            predictions=[
                {**{k: float(scored.outputs[k][i]) for k in keys}, "drivers": scored.drivers[i]} for i in range(len(X))
            ],
            flags=flags,
        )

    def _numbers(self, col: str, values: pd.Series, rows: list[dict]) -> pd.Series:
        """A numeric feature's column of a /v1/predict request as floats, or a 400 naming the first row whose value
        is not a finite number (text, true/false, NaN, an infinity) or one the feature cannot take (a negative count,
        a share above 1)."""
        if not (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)):
            bad = next((i for i, row in enumerate(rows) if col in row and not _is_number(row[col])), None)
            if bad is not None:
                raise RequestError(f"rows[{bad}].{col}", f"must be a finite number, got {shown(rows[bad][col])}")
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        v = numbers.to_numpy()
        lo, hi = domain(col, self.feature_specs.get(col))
        out = np.flatnonzero(np.isinf(v) | (v < lo) | (v > hi))  # NaN compares False: missing is allowed
        if len(out):
            i = int(out[0])
            raise RequestError(f"rows[{i}].{col}", out_of_domain(col, self.feature_specs.get(col), float(v[i])))
        return numbers

    def _flags(self, bundle: ModelBundle, X: pd.DataFrame) -> list[dict]:
        flags = []
        levels = dict(zip(bundle.categorical, bundle.booster.pandas_categorical or [], strict=False))
        for col in bundle.categorical:
            known = set(levels.get(col, []))
            for i, value in enumerate(X[col]):
                if value is not None and not pd.isna(value) and value not in known:
                    flags.append({"row": i, "feature": col, "value": value, "flag": "unknown_category"})
        for col, (lo, hi) in bundle.meta.get("feature_ranges", {}).items():
            margin = 0.5 * (hi - lo) if hi > lo else max(abs(hi), 1.0)
            values = X[col].to_numpy(dtype="float64")
            for i in np.flatnonzero((values < lo - margin) | (values > hi + margin)):
                flags.append(
                    {
                        "row": int(i),
                        "feature": col,
                        "value": float(values[i]),
                        "flag": "outside_training_range",
                        "training_range": [lo, hi],
                    }
                )
        return flags

    def _open_milestone_columns(
        self, project_id: str, milestone_id: str, as_of
    ) -> tuple[pd.Timestamp, dict[str, Columns]]:
        """``as_of`` resolved, and one open milestone's feature columns by scope (its own, and its project's)."""
        t = self.resolve_as_of(as_of, [project_id], self.check_projects([project_id]))
        self.check_milestones([milestone_id], [project_id])
        row = self.milestones[self.milestones["milestone_id"] == milestone_id].assign(as_of=t)
        if (row["actual_date"] < t).any():
            raise RequestError("milestone_id", f"{milestone_id} was reached on {row['actual_date'].iloc[0].date()}")
        return t, {
            MILESTONE: milestone_columns(self.ctx, row),
            CLIENT: project_columns_at(self.ctx, pd.DataFrame({"project_id": [project_id], "as_of": t})),
        }

    def features(self, project_id: str, milestone_id: str, as_of=None) -> schemas.FeaturesResponse:
        """One open milestone's feature row at ``as_of``, as every model sees it: a realistic row for
        ``/v1/predict``."""
        t, columns = self._open_milestone_columns(project_id, milestone_id, as_of)
        values = {**columns[CLIENT], **columns[MILESTONE]}
        values.pop("project_id", None)
        return schemas.FeaturesResponse(
            project_id=project_id,
            milestone_id=milestone_id,
            as_of=t,
            features={name: plain(v[0]) for name, v in values.items()},
            data_freshness=self.freshness(t),
        )

    def whatif(
        self, project_id: str, milestone_id: str, changes: dict[str, float], as_of=None
    ) -> schemas.WhatIfResponse:
        """Every target's prediction for one open milestone before and after changing some features."""
        limit = self.settings.max_whatif_changes
        if len(changes) > limit:
            raise RequestError(
                "changes", f"{len(changes):,} features; at most {limit:,} a request (max_whatif_changes)", 413
            )
        t, columns = self._open_milestone_columns(project_id, milestone_id, as_of)
        allowed = set(columns[MILESTONE]) | set(columns[CLIENT])
        for key, value in changes.items():
            if key not in allowed:
                raise RequestError(f"changes.{key}", "not a feature; see GET /v1/models for the feature names")
            if not _is_number(value):
                raise RequestError(f"changes.{key}", f"must be a finite number, got {shown(value)}")
            problem = None if value is None else out_of_domain(key, self.feature_specs.get(key), float(value))
            if problem:
                raise RequestError(f"changes.{key}", problem)
        before = self._outputs(columns)
        changed = {k: np.array([np.nan if v is None else float(v)]) for k, v in changes.items()}
        after = self._outputs(
            {scope: {**cols, **{k: v for k, v in changed.items() if k in cols}} for scope, cols in columns.items()}
        )
        return schemas.WhatIfResponse(
            project_id=project_id,
            milestone_id=milestone_id,
            as_of=t,
            changes=changes,
            before=before,
            after=after,
            difference={m: {k: after[m][k] - before[m][k] for k in before[m]} for m in before},
            data_freshness=self.freshness(t),
        )

    def _outputs(self, columns: dict[str, Columns]) -> dict[str, dict[str, float]]:
        """Every target's outputs (no drivers) for the one row of its scope's columns."""
        return {
            spec.name: {k: float(v[0]) for k, v in self._score(spec.name, columns[spec.scope], 0).outputs.items()}
            for spec in TARGETS.values()
        }

    def models(self) -> list[schemas.ModelInfo]:
        return list(self.info.values())


def _not_supplied(features: list[str], supplied: np.ndarray) -> list[dict]:
    """One flag a row for the features it left out: scored as missing, never told as drivers."""
    flags = []
    for i, given in enumerate(supplied):
        if not given.all():
            missing = [f for f, g in zip(features, given, strict=True) if not g]
            flags.append({"row": i, "feature": "", "value": len(missing), "flag": "not_supplied", "features": missing})
    return flags


def _is_number(value) -> bool:
    """A finite number, or text pandas reads as one (None: missing, allowed); not true/false, NaN or an infinity."""
    if value is None:
        return True  # missing is allowed
    if isinstance(value, bool):
        return False
    try:
        number = float(pd.to_numeric(value))
    except (TypeError, ValueError, OverflowError):
        return False
    return np.isfinite(number)
