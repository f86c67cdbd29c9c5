"""The prediction log (issue 13, §1): every prediction the service serves, and the planners' feedback beside it.

Why: a model is judged later by what it actually said, on the data it actually had. Each prediction is kept once,
under a key made of everything that determines it (model and version, data snapshot, as_of, ids, the feature row's
hash); each answer adds one small ``served`` row naming its set of predictions (``answer_predictions``, written once
a set), so "rows in = predictions served" can be counted without storing a prediction twice, and a busy service
writes one row an answer, not one a prediction. Planners' notes and overrides (``POST /v1/feedback``) sit beside the
predictions so the monitor and training can read them as a feature, or as labels where they state an outcome.

Writes stay off the request path: :meth:`PredictionLog.record` appends to an in-memory queue and returns; one daemon
thread writes what is waiting, in one transaction a batch, every ``flush_seconds`` or as soon as ``batch_rows``
predictions wait. The queue is bounded (``max_queue_rows``): while the database is slow or down, predictions beyond
it are dropped and counted (``stats()["dropped"]``) rather than memory growing. A database that cannot be reached
or is locked (``OperationalError``, an ``OSError``) is retried with a growing pause for as long as the log is open,
the batch kept, so an outage shorter than the queue loses nothing; any other error (a row the database refuses) is
retried a few times and then counted as ``failed``. :meth:`PredictionLog.close` (also run at a normal interpreter
exit, ``atexit``) writes what is waiting, giving up after its timeout.

Where: any SQLAlchemy URL; by default an SQLite file in the work folder, in WAL mode with a busy timeout so the
service's worker processes can write the same file (``synchronous=NORMAL``: a process crash loses nothing written,
a power cut may lose the last transactions). A team uses PostgreSQL (``postgresql+psycopg://...``; the driver is
not a dependency of the project). One log a process, made after the process starts: a thread does not survive a
fork.

Schema: plain versioned steps (:data:`MIGRATIONS`), applied in order when a log is opened, under a lock so that
processes opening a new file together apply them once. A released step never changes; a change of schema is one
more step and a change of the current tables below. A database newer than the code is refused
(:class:`SchemaError`).
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import logging
import math
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url

from features.targets import CLASSIFIER, MILESTONE, TARGETS

logger = logging.getLogger("eqsms.predlog")

LEVELS = ("low", "medium", "high")
ENDPOINTS = ("risk", "batch", "worklist", "board", "whatif", "predict")
MAX_NOTE_LENGTH = 2000
MAX_AUTHOR_LENGTH = 200
KNOWN_ANSWERS = 100_000  # answer sets the writer remembers as written (then it forgets them all and starts again)
KEY_LENGTH = 32  # hex characters of a sha256 kept: 128 bits, no collision in any log's lifetime
OFF = "off"
# What outcome_label means, by the kind of the model the feedback is about (features.targets).
OUTCOME_MEANING = {
    CLASSIFIER: "1 when the event happened (defect_risk: the acceptance failed first pass; churn: the client "
    "churned), 0 when it did not",
    "slip": "the milestone's actual slip in days (negative: early)",
}
_TRANSIENT = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError, sa.exc.TimeoutError, OSError)


class SchemaError(RuntimeError):
    """The database's schema is newer than this code knows: refused rather than written in a shape it may not read."""


class LogDisabled(RuntimeError):
    """The log is off (``prediction_log_url='off'``): there is nothing to read feedback into."""


# ---------------------------------------------------------------------------------------------------- what comes in
@dataclass(slots=True, kw_only=True)
class PredictionRecord:
    """One prediction as served: what the key is made of, the answer, its top drivers.

    ``probability`` is a classifier's probability, or the slip model's P(late); ``slip_days``, ``slip_low`` and
    ``slip_high`` are the slip model's estimate and range. ``drivers`` may be the response's ``Driver`` models or
    dicts: the writer keeps ``feature``, ``value``, ``contribution`` and ``text`` (when there is one), off the request
    path. ``features_hash`` is :func:`features_hash` of the feature row; when it is not known, ``features`` (the row)
    may be given instead and is hashed by the writer.

    ``key`` and ``stored`` are the writer's: the key once it has computed it, and whether the prediction is in the
    database. A record served again (the day's snapshot answers the same records all day) then costs the writer one
    ``served`` row, not a prediction row rebuilt and refused as a duplicate.
    """

    model: str
    model_version: str
    project_id: str | None = None
    milestone_id: str | None = None
    client_id: str | None = None
    as_of: Any = None
    data_fingerprint: str | None = None
    data_latest_fact: Any = None
    probability: float | None = None
    slip_days: float | None = None
    slip_low: float | None = None
    slip_high: float | None = None
    level: str | None = None
    drivers: Sequence[Any] = ()
    features_hash: str | None = None
    features: Mapping[str, Any] | None = None
    key: str | None = None
    stored: bool = False

    @classmethod
    def from_answer(cls, model: str, answer: Any, *, model_version: str, **fields: Any) -> PredictionRecord:
        """A record from a target's answer (``serving.schemas.ProbabilityRisk`` or ``SlipRisk``, or their dicts):
        the probability and level, or the slip, its range and P(late); ``fields`` add the rest (ids, as_of, model
        version, data snapshot, features hash) and may override the level (the slip answer carries none)."""
        get = answer.get if isinstance(answer, Mapping) else lambda name: getattr(answer, name, None)
        taken: dict[str, Any] = {"drivers": get("drivers") or ()}
        if get("expected_slip_days") is not None:
            low, high = get("range_days") or (None, None)
            taken |= {"slip_days": get("expected_slip_days"), "slip_low": low, "slip_high": high}
            taken["probability"] = get("late_probability")
        else:
            taken["probability"] = get("probability")
        taken["level"] = get("level")
        return cls(model=model, model_version=model_version, **(taken | fields))


@dataclass(frozen=True, slots=True)
class Served:
    """Who was answered: an endpoint of :data:`ENDPOINTS`, the request's id, when (default: when recorded)."""

    endpoint: str
    request_id: str | None = None
    at: datetime | None = None

    def __post_init__(self) -> None:
        if self.endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint {self.endpoint!r} is not one of {', '.join(ENDPOINTS)}")


# ------------------------------------------------------------------------------------------------ pure functions
def features_hash(row: Mapping[str, Any]) -> str:
    """A feature row's fingerprint, the same in every process, platform and release: names sorted, every number as
    its float64 (3, 3.0, True and numpy's 3.0 agree; -0.0 is 0), a text by its own hash, and None, NaN, NA and NaT
    alike as missing. :func:`features_hashes` gives the same for each row of a frame, much faster."""
    names = sorted(row, key=str)
    return _digest(names, b"".join(_slot(row[name]) for name in names))


def features_hashes(rows: pd.DataFrame | Mapping[str, Any]) -> list[str]:
    """:func:`features_hash` of every row of a frame, or of a mapping of feature name -> column (the arrays the
    engine scores), numbers a block at a time rather than value by value: a few microseconds a row, so the service
    can hash the rows it scores on the request path."""
    names, numeric, numbers, others = _blocks(rows)
    n = numbers.shape[0]
    if n == 0:
        return []
    order = sorted(range(len(names)), key=names.__getitem__)
    place = np.empty(len(names), dtype=np.intp)
    place[order] = np.arange(len(names))  # column -> its slot
    slots = np.zeros((n, len(names), _SLOT), dtype=np.uint8)
    if numeric.any():
        at = place[numeric]
        numbers = np.ascontiguousarray(numbers + 0.0, dtype="<f8")  # + 0.0: -0.0 is 0.0
        slots[:, at, 0] = _NUMBER
        slots[:, at, 1:] = numbers.view(np.uint8).reshape(n, len(at), 8)
        row, col = np.nonzero(np.isnan(numbers))
        slots[row, at[col]] = np.frombuffer(_MISSING, dtype=np.uint8)
    seen: dict[Any, bytes] = {}  # text, categories, mixed: value by value, each distinct value encoded once
    for k, j in enumerate(place[~numeric]):
        encoded = b"".join(seen[v] if v in seen else seen.setdefault(v, _slot(v)) for v in others[:, k])
        slots[:, j] = np.frombuffer(encoded, dtype=np.uint8).reshape(n, _SLOT)
    prefix = _hasher(names[j] for j in order)
    out = []
    for slot_row in slots.reshape(n, -1):
        digest = prefix.copy()
        digest.update(slot_row)
        out.append(digest.hexdigest()[:KEY_LENGTH])
    return out


def _blocks(rows: pd.DataFrame | Mapping[str, Any]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Feature names, which are numeric, the numeric columns (rows x numeric, float64, NaN missing), the others
    (rows x others, objects). A frame is read whole: pandas' per-column access costs more than the hashing."""
    if isinstance(rows, pd.DataFrame):
        names = [str(name) for name in rows.columns]
        numeric = np.array([_numeric(dtype) for dtype in rows.dtypes], dtype=bool)
        if numeric.all():
            return names, numeric, rows.to_numpy(dtype="float64", na_value=np.nan), np.empty((len(rows), 0), object)
        whole = rows.to_numpy(dtype=object)
        return names, numeric, _floats(whole[:, numeric]), whole[:, ~numeric]
    names = [str(name) for name in rows]
    arrays = [np.asarray(values) for values in rows.values()]
    n = len(arrays[0]) if arrays else 0
    numeric = np.array([a.dtype.kind in "fiub" for a in arrays], dtype=bool)
    numbers = [a for a, is_number in zip(arrays, numeric, strict=True) if is_number]
    others = [a for a, is_number in zip(arrays, numeric, strict=True) if not is_number]
    return (
        names,
        numeric,
        np.array(numbers, dtype="float64").T.reshape(n, len(numbers)),
        np.array(others, dtype=object).T.reshape(n, len(others)),
    )


def _numeric(dtype: Any) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)


def _floats(block: np.ndarray) -> np.ndarray:
    """An object block of numbers (None, NaN, NA among them) as float64, missing as NaN."""
    return np.where(pd.isna(block), np.nan, block).astype("float64")


def prediction_key(
    *,
    model: str,
    model_version: str,
    data_fingerprint: str | None,
    as_of: Any,
    project_id: str | None,
    milestone_id: str | None,
    client_id: str | None,
    features_hash: str | None,
) -> str:
    """What identifies a prediction: the same model, data, time, ids and feature row always give the same answer, so
    the answer is stored once. The feature row's hash is part of it so that a what-if's changed row, or
    ``/v1/predict``'s rows (no ids, no as_of), are never taken for the real prediction or for one another."""
    parts = (model, str(model_version), data_fingerprint, _iso(_utc(as_of)), project_id, milestone_id, client_id)
    text = "\x1f".join("\x00" if part is None else str(part) for part in (*parts, features_hash))
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]


def prediction_row(record: PredictionRecord, first_served_at: datetime) -> dict[str, Any]:
    """The ``predictions`` row of a record (its key computed), checked: a level outside :data:`LEVELS` is refused."""
    if record.level is not None and record.level not in LEVELS:
        raise ValueError(f"level {record.level!r} is not one of {', '.join(LEVELS)}")
    hashed = record.features_hash
    if hashed is None and record.features is not None:
        hashed = features_hash(record.features)
    as_of = _utc(record.as_of)
    key = prediction_key(
        model=record.model,
        model_version=record.model_version,
        data_fingerprint=record.data_fingerprint,
        as_of=as_of,
        project_id=record.project_id,
        milestone_id=record.milestone_id,
        client_id=record.client_id,
        features_hash=hashed,
    )
    return {
        "key": key,
        "model": record.model,
        "model_version": str(record.model_version),
        "data_fingerprint": record.data_fingerprint,
        "data_latest_fact": _utc(record.data_latest_fact),
        "as_of": as_of,
        "project_id": record.project_id,
        "milestone_id": record.milestone_id,
        "client_id": record.client_id,
        "probability": _number(record.probability),
        "slip_days": _number(record.slip_days),
        "slip_low": _number(record.slip_low),
        "slip_high": _number(record.slip_high),
        "level": record.level,
        "drivers": drivers_json(record.drivers),
        "features_hash": hashed,
        "first_served_at": first_served_at,
    }


def drivers_json(drivers: Iterable[Any]) -> str:
    """Top drivers as compact JSON: each ``{feature, value, contribution}`` and its ``text`` when it has one. Plain
    values are dumped as they are (the writer's common case, kept cheap); anything JSON cannot say (NaN, numpy
    scalars) is cleaned first: a non-finite number is null."""
    items = [_driver(driver) for driver in drivers]
    try:
        return json.dumps(items, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        cleaned = [{name: _json_value(value) for name, value in item.items()} for item in items]
        return json.dumps(cleaned, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _driver(driver: Any) -> dict[str, Any]:
    if isinstance(driver, Mapping):
        item = {"feature": driver["feature"], "value": driver.get("value"), "contribution": driver.get("contribution")}
        text = driver.get("text")
    else:
        item = {"feature": driver.feature, "value": driver.value, "contribution": driver.contribution}
        text = getattr(driver, "text", None)
    if text is not None:
        item["text"] = text
    return item


def answer_key(prediction_keys: Sequence[str]) -> str:
    """What identifies an answer's set of predictions, in its order."""
    return hashlib.sha256("\x1f".join(prediction_keys).encode()).hexdigest()[:KEY_LENGTH]


@dataclass
class BatchRows:
    """What one batch writes (:func:`rows_of_batch`)."""

    predictions: list[dict]  # each distinct prediction not yet stored, once (its first serving)
    answers: list[dict]  # the predictions of each answer set not yet stored
    served: list[dict]  # one row an answer
    bad: int  # records that could not be made into rows (logged; counted as failed)
    fresh: list[PredictionRecord]  # marked ``stored`` once the batch is written
    fresh_answers: set[str]  # answer keys to remember once the batch is written


def rows_of_batch(
    items: Iterable[tuple[Sequence[PredictionRecord], Served | None, float]],
    known_answers: frozenset | set = frozenset(),
) -> BatchRows:
    """The rows one batch writes. A record already stored (see :class:`PredictionRecord`) and an answer set already
    in ``known_answers`` cost only the answer's ``served`` row."""
    predictions: dict[str, dict] = {}
    answers: list[dict] = []
    served: list[dict] = []
    fresh: list[PredictionRecord] = []
    fresh_answers: set[str] = set()
    bad = 0
    for records, answer, recorded_at in items:
        at = _utc(answer.at) if answer is not None and answer.at is not None else _from_epoch(recorded_at)
        keys = []
        for record in records:
            key = record.key
            if not record.stored:
                try:
                    row = prediction_row(record, at)
                except (TypeError, ValueError) as exc:
                    bad += 1
                    logger.error("prediction log: a %s prediction left out: %s", getattr(record, "model", "?"), exc)
                    continue
                key = record.key = row["key"]
                predictions.setdefault(key, row)
                fresh.append(record)
            keys.append(key)
        if answer is None or not keys:
            continue
        set_key = answer_key(keys)
        if set_key not in known_answers and set_key not in fresh_answers:
            fresh_answers.add(set_key)
            answers += [{"answer_key": set_key, "position": i, "prediction_key": k} for i, k in enumerate(keys)]
        served.append(
            {
                "request_id": answer.request_id,
                "served_at": at,
                "endpoint": answer.endpoint,
                "answer_key": set_key,
                "predictions": len(keys),
            }
        )
    return BatchRows(list(predictions.values()), answers, served, bad, fresh, fresh_answers)


def feedback_row(
    note: str,
    *,
    prediction_key: str | None,
    project_id: str | None,
    milestone_id: str | None,
    client_id: str | None,
    model: str | None,
    author: str | None,
    corrected_level: str | None,
    outcome_label: float | None,
    at: Any,
) -> dict[str, Any]:
    """A ``feedback`` row, checked: about one prediction (its key) or a target (model, project and, for a milestone
    model, the milestone); a note of at most :data:`MAX_NOTE_LENGTH` characters; a level of :data:`LEVELS`; an
    outcome as :data:`OUTCOME_MEANING` says. It is an override when it corrects the level or states an outcome."""
    note = (note or "").strip()
    if len(note) > MAX_NOTE_LENGTH:
        raise ValueError(f"note has {len(note):,} characters; at most {MAX_NOTE_LENGTH:,}")
    if author is not None and len(author) > MAX_AUTHOR_LENGTH:
        raise ValueError(f"author has {len(author):,} characters; at most {MAX_AUTHOR_LENGTH}")
    if corrected_level is not None and corrected_level not in LEVELS:
        raise ValueError(f"corrected_level {corrected_level!r} is not one of {', '.join(LEVELS)}")
    if not note and corrected_level is None and outcome_label is None:
        raise ValueError("feedback needs a note, a corrected_level or an outcome_label")
    if prediction_key is None:
        if model is None or project_id is None:
            raise ValueError("feedback is about a prediction_key, or a model and a project_id (and a milestone_id)")
    if model is not None:
        if model not in TARGETS:
            raise ValueError(f"model {model!r} is not one of {', '.join(TARGETS)}")
        if prediction_key is None and TARGETS[model].scope == MILESTONE and milestone_id is None:
            raise ValueError(f"feedback about {model} names the milestone (milestone_id)")
    outcome = _outcome(model, outcome_label)
    return {
        "prediction_key": prediction_key,
        "project_id": project_id,
        "milestone_id": milestone_id,
        "client_id": client_id,
        "model": model,
        "at": _utc(at) if at is not None else _now(),
        "author": author,
        "note": note,
        "kind": "override" if corrected_level is not None or outcome is not None else "note",
        "corrected_level": corrected_level,
        "outcome_label": outcome,
    }


def default_url(work_dir: Path) -> str:
    """The log's default place: an SQLite file in the work folder."""
    return f"sqlite:///{Path(work_dir) / 'predictions.db'}"


def safe_url(url: str) -> str:
    """The URL as messages may show it: any password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown by its scheme alone, never whole
        scheme = url.split("://", 1)[0] if "://" in url else ""
        return f"{scheme}://..." if scheme.replace("+", "").isalnum() else "(an unparsable URL)"


def _outcome(model: str | None, label: float | None) -> float | None:
    if label is None:
        return None
    value = _number(label)
    if value is None:
        raise ValueError("outcome_label must be a finite number")
    if model is not None and TARGETS[model].kind == CLASSIFIER and value not in (0.0, 1.0):
        raise ValueError(f"outcome_label of {model} is 1 (it happened) or 0 (it did not), not {label!r}")
    return value


# A feature value as the hash sees it, 9 bytes: b"n" and its little-endian float64, b"s" and the first 8 bytes of
# its text's sha256, or b"-" and zeros when missing. A fixed width lets a frame be encoded column by column.
_SLOT, _NUMBER = 9, ord("n")
_MISSING = b"-" + bytes(8)
_PACK = struct.Struct("<d").pack


def _slot(value: Any) -> bytes:
    if value is None or value is pd.NA or value is pd.NaT:
        return _MISSING
    if not isinstance(value, str):
        try:
            number = float(value)
        except (TypeError, ValueError):
            value = str(value)
        else:
            return _MISSING if math.isnan(number) else b"n" + _PACK(number + 0.0)
    return b"s" + hashlib.sha256(value.encode()).digest()[:8]


def _hasher(names: Iterable[Any]) -> Any:
    """A sha256 that has read the row's feature names: a row's hash is of its names, then its slots."""
    return hashlib.sha256("\x1f".join(map(str, names)).encode() + b"\x00")


def _digest(names: Sequence[Any], slots: bytes) -> str:
    digest = _hasher(names)
    digest.update(slots)
    return digest.hexdigest()[:KEY_LENGTH]


def _number(value: Any) -> float | None:
    """A float for the database; None, NaN and infinities as NULL (a log keeps what it can)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    try:
        return _number(value)
    except (TypeError, ValueError):
        return str(value)


def _utc(value: Any) -> datetime | None:
    """A time as the log keeps it: naive UTC (a date is its midnight, an aware time is converted, a string parsed)."""
    if type(value) is datetime and value.tzinfo is None:
        return value
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        return _parsed(value)
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    elif not isinstance(value, date):
        value = pd.Timestamp(value).to_pydatetime()  # numpy's datetime64 and the like
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value
    return datetime(value.year, value.month, value.day)


@functools.lru_cache(maxsize=4096)
def _parsed(text: str) -> datetime | None:
    """A time given as text (an answer's as_of, the data's latest fact: a few distinct values a batch), parsed once."""
    return _utc(datetime.fromisoformat(text))


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


# ---------------------------------------------------------------------------------------------------------- schema
def _tables_v1(metadata: sa.MetaData) -> dict[str, sa.Table]:
    """The tables of schema version 1: released, never changed (a change is the next migration)."""

    def ident() -> sa.Column:
        return sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True)

    text, when, number = sa.Text, sa.DateTime, sa.Float
    predictions = sa.Table(
        "predictions",
        metadata,
        sa.Column("key", text, primary_key=True),
        sa.Column("model", text, nullable=False),
        sa.Column("model_version", text, nullable=False),
        sa.Column("data_fingerprint", text),
        sa.Column("data_latest_fact", when),
        sa.Column("as_of", when),
        sa.Column("project_id", text),
        sa.Column("milestone_id", text),
        sa.Column("client_id", text),
        sa.Column("probability", number),
        sa.Column("slip_days", number),
        sa.Column("slip_low", number),
        sa.Column("slip_high", number),
        sa.Column("level", text),
        sa.Column("drivers", text, nullable=False),
        sa.Column("features_hash", text),
        sa.Column("first_served_at", when, nullable=False),
        sa.Index("ix_predictions_first_served_at", "first_served_at"),
        sa.Index("ix_predictions_target", "project_id", "milestone_id", "model"),
    )
    served = sa.Table(
        "served",
        metadata,
        ident(),
        sa.Column("request_id", text),
        sa.Column("served_at", when, nullable=False),
        sa.Column("endpoint", text, nullable=False),
        sa.Column("answer_key", text, nullable=False),
        sa.Column("predictions", sa.Integer, nullable=False),
        sa.Index("ix_served_served_at", "served_at"),
        sa.Index("ix_served_answer_key", "answer_key"),
    )
    answer_predictions = sa.Table(  # an answer's predictions, in its order: one set, served any number of times
        "answer_predictions",
        metadata,
        sa.Column("answer_key", text, primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("prediction_key", text, sa.ForeignKey("predictions.key"), nullable=False),
        sa.Index("ix_answer_predictions_prediction_key", "prediction_key"),
    )
    feedback = sa.Table(
        "feedback",
        metadata,
        ident(),
        sa.Column("prediction_key", text, sa.ForeignKey("predictions.key")),
        sa.Column("project_id", text),
        sa.Column("milestone_id", text),
        sa.Column("client_id", text),
        sa.Column("model", text),
        sa.Column("at", when, nullable=False),
        sa.Column("author", text),
        sa.Column("note", text, nullable=False),
        sa.Column("kind", text, nullable=False),
        sa.Column("corrected_level", text),
        sa.Column("outcome_label", number),
        sa.Index("ix_feedback_prediction_key", "prediction_key"),
        sa.Index("ix_feedback_target", "project_id", "milestone_id"),
    )
    return {
        "predictions": predictions,
        "served": served,
        "answer_predictions": answer_predictions,
        "feedback": feedback,
    }


def _migrate_to_1(conn: Connection) -> None:
    metadata = sa.MetaData()
    _tables_v1(metadata)
    metadata.create_all(conn)


# Version n is reached by MIGRATIONS[n - 1]. Append, never edit.
MIGRATIONS: tuple[Callable[[Connection], None], ...] = (_migrate_to_1,)
SCHEMA_VERSION = len(MIGRATIONS)

METADATA = sa.MetaData()
SCHEMA_VERSIONS = sa.Table(
    "schema_version",
    METADATA,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", sa.DateTime, nullable=False),
)
# The current tables, which the log reads and writes: version 1's.
_CURRENT = _tables_v1(METADATA)
PREDICTIONS, SERVED, FEEDBACK = _CURRENT["predictions"], _CURRENT["served"], _CURRENT["feedback"]
ANSWER_PREDICTIONS = _CURRENT["answer_predictions"]
# What the served() reader gives: a row per prediction of each answer.
SERVED_PREDICTIONS = (
    sa.select(
        SERVED.c.id,
        SERVED.c.request_id,
        SERVED.c.served_at,
        SERVED.c.endpoint,
        ANSWER_PREDICTIONS.c.prediction_key,
    )
    .select_from(SERVED.join(ANSWER_PREDICTIONS, SERVED.c.answer_key == ANSWER_PREDICTIONS.c.answer_key))
    .order_by(SERVED.c.id, ANSWER_PREDICTIONS.c.position)
)


def schema_version(conn: Connection) -> int:
    """The version a database is at (0: none of the log's tables yet)."""
    if not sa.inspect(conn).has_table(SCHEMA_VERSIONS.name):
        return 0
    return int(conn.scalar(sa.select(sa.func.max(SCHEMA_VERSIONS.c.version))) or 0)


def migrate(engine: Engine, migrations: Sequence[Callable[[Connection], None]] = MIGRATIONS) -> int:
    """Bring the database to ``len(migrations)`` in one transaction, under a lock (SQLite: ``BEGIN IMMEDIATE``;
    PostgreSQL: an advisory lock), so processes opening it together apply each step once. Returns the version found.
    A database at a later version than the code knows is refused (:class:`SchemaError`)."""
    with engine.connect() as conn:
        conn.execution_options(immediate=True)
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(7213401)"))
            SCHEMA_VERSIONS.create(conn, checkfirst=True)
            found = schema_version(conn)
            if found > len(migrations):
                raise SchemaError(
                    f"the prediction log at {safe_url(str(engine.url))} is at schema version {found}; this code knows "
                    f"versions up to {len(migrations)}. Upgrade eqsms, or point prediction_log_url at another database"
                )
            for version in range(found + 1, len(migrations) + 1):
                migrations[version - 1](conn)
                conn.execute(sa.insert(SCHEMA_VERSIONS).values(version=version, applied_at=_now()))
                logger.info("prediction log: schema version %d applied", version)
    return found


def make_engine(url: str, busy_timeout_seconds: float = 5.0) -> Engine:
    """An engine for the log. SQLite: WAL journal, a busy timeout, and real transactions (the driver's own begin
    only before writes, so DDL would not be atomic; ``immediate=True`` on a connection takes the write lock at once,
    so a transaction that reads then writes never fails on a lock it could have waited for)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, pool_pre_ping=True, hide_parameters=True)
    database = parsed.database or ""
    if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
        raise ValueError("an in-memory SQLite database is one a connection; give the prediction log a file")
    engine = sa.create_engine(
        parsed, pool_pre_ping=True, hide_parameters=True, connect_args={"timeout": busy_timeout_seconds}
    )
    busy_ms = int(busy_timeout_seconds * 1000)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver begins nothing; the "begin" event below does
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("immediate") else "BEGIN")

    return engine


def _prepare(url: str) -> None:
    """What must exist before an SQLite file can be opened: its folder."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


_PREDICTION_COLUMNS = tuple(column.name for column in PREDICTIONS.columns)
_SERVED_COLUMNS = ("request_id", "served_at", "endpoint", "answer_key", "predictions")
_ANSWER_COLUMNS = ("answer_key", "position", "prediction_key")
_SQLITE_PREDICTIONS = (
    f"INSERT INTO predictions ({', '.join(_PREDICTION_COLUMNS)}) VALUES ({', '.join('?' * len(_PREDICTION_COLUMNS))}) "
    "ON CONFLICT (key) DO NOTHING"
)
_SQLITE_SERVED = f"INSERT INTO served ({', '.join(_SERVED_COLUMNS)}) VALUES (?, ?, ?, ?, ?)"
_SQLITE_ANSWERS = (
    f"INSERT INTO answer_predictions ({', '.join(_ANSWER_COLUMNS)}) VALUES (?, ?, ?) "
    "ON CONFLICT (answer_key, position) DO NOTHING"
)


def _insert_sqlite(conn: Connection, rows: BatchRows) -> None:
    """SQLite: the driver's own executemany, times already in the text SQLAlchemy stores and reads back. SQLAlchemy's
    processing of each value would otherwise cost the writer (and the GIL the service's threads share) as much again
    as the database does."""
    if rows.predictions:
        conn.exec_driver_sql(_SQLITE_PREDICTIONS, [_sqlite_values(r, _PREDICTION_COLUMNS) for r in rows.predictions])
    if rows.answers:
        conn.exec_driver_sql(_SQLITE_ANSWERS, [tuple(r[c] for c in _ANSWER_COLUMNS) for r in rows.answers])
    if rows.served:
        conn.exec_driver_sql(_SQLITE_SERVED, [_sqlite_values(r, _SERVED_COLUMNS) for r in rows.served])


def _sqlite_values(row: dict[str, Any], columns: Sequence[str]) -> tuple:
    return tuple(
        value.isoformat(" ", "microseconds") if isinstance(value := row[name], datetime) else value for name in columns
    )


def _insert_ignore(dialect: str, table: sa.Table | None = None) -> Any | None:
    """An insert into ``table`` (default: the predictions) that skips keys already there, in the dialect's words;
    None: no such statement (read keys first)."""
    table = PREDICTIONS if table is None else table
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect in ("mysql", "mariadb"):
        return sa.insert(table).prefix_with("IGNORE")
    else:
        return None
    return insert(table).on_conflict_do_nothing(index_elements=[c.name for c in table.primary_key.columns])


# --------------------------------------------------------------------------------------------------------- the log
class PredictionLog:
    """The log: :meth:`record` from the request path, a writer thread behind it, readers for the monitor.

    ``batch_rows`` predictions waiting wake the writer at once; otherwise it writes every ``flush_seconds``. At most
    ``max_queue_rows`` predictions wait (written rows leave the count); beyond that :meth:`record` drops and counts.
    """

    enabled = True

    def __init__(
        self,
        url: str,
        *,
        batch_rows: int = 1000,
        flush_seconds: float = 1.0,
        max_queue_rows: int = 200_000,
        busy_timeout_seconds: float = 5.0,
        attempts: int = 3,
        close_timeout_seconds: float = 10.0,
    ) -> None:
        if batch_rows <= 0 or flush_seconds <= 0 or max_queue_rows <= 0 or attempts <= 0:
            raise ValueError("batch_rows, flush_seconds, max_queue_rows and attempts must be positive")
        self.url = safe_url(url)
        self._raw_url = url
        self._batch_rows, self._flush_seconds, self._max_queue = batch_rows, flush_seconds, max_queue_rows
        self._attempts, self._close_timeout = attempts, close_timeout_seconds
        self._engine = make_engine(url, busy_timeout_seconds)
        self._known_answers: set[str] = set()  # answer sets this log has written (the writer's own)
        self._queue: deque[tuple[tuple[PredictionRecord, ...], Served | None, float]] = deque()
        lock = threading.Lock()
        self._wake, self._done = threading.Condition(lock), threading.Condition(lock)
        self._waiting = self._queued = self._accepted = self._handled = self._flush_target = 0
        self._written = self._dropped = self._failed = self._errors = 0
        self._write_seconds = 0.0
        self._closing = self._closed = False
        self._give_up_at = math.inf
        self._last_drop_warning = -math.inf
        try:
            self._ready = self._open()
        except BaseException:
            self._engine.dispose()
            raise
        self._thread = threading.Thread(target=self._run, name="eqsms-predlog-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def __repr__(self) -> str:
        return f"PredictionLog({self.url!r})"

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------- the request path
    def record(self, predictions: Iterable[PredictionRecord], served: Served | None = None) -> bool:
        """Queue predictions for writing, with a ``served`` row each when ``served`` says who was answered (None:
        the predictions alone, say the board's snapshot). Returns at once and never touches the database; False
        when they were dropped (the queue full, or the log closed)."""
        rows = tuple(predictions)
        n = len(rows)
        if not n:
            return True
        with self._wake:
            if self._closing or self._queued + n > self._max_queue:
                self._dropped += n
                self._warn_dropped()
                return False
            self._queue.append((rows, served, time.time()))
            self._queued += n
            self._accepted += n
            self._waiting += n
            if self._waiting >= self._batch_rows and self._waiting - n < self._batch_rows:
                self._wake.notify()
        return True

    def stats(self) -> dict[str, float]:
        """Counters for /metrics, in predictions: queued (waiting or being written), written, dropped (queue full or
        log closed), failed (refused by the database, or still unwritten when close gave up); errors: write
        attempts that failed; write_seconds: time spent writing."""
        with self._wake:
            return {
                "queued": self._queued,
                "written": self._written,
                "dropped": self._dropped,
                "failed": self._failed,
                "errors": self._errors,
                "write_seconds": self._write_seconds,
            }

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every prediction queued before the call is written (or given up as failed). False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._done:
            target = self._accepted
            if self._handled >= target:
                return True
            self._flush_target = max(self._flush_target, target)
            self._wake.notify()
            while self._handled < target:
                left = None if deadline is None else deadline - time.monotonic()
                if (left is not None and left <= 0) or not self._thread.is_alive():
                    return False
                self._done.wait(0.5 if left is None else min(left, 0.5))
            return True

    def close(self, timeout: float | None = None) -> None:
        """Write what is waiting (for at most ``timeout`` seconds; default: close_timeout_seconds), then stop the
        writer. What is still unwritten then is counted as failed. Idempotent; also run at interpreter exit."""
        timeout = self._close_timeout if timeout is None else timeout
        with self._wake:
            if self._closed:
                return
            self._closed = self._closing = True
            self._give_up_at = time.monotonic() + timeout
            self._wake.notify()
        atexit.unregister(self.close)
        self._thread.join(timeout + 1.0)
        if self._thread.is_alive():
            logger.error("prediction log %s: the writer did not stop within %.0f s", self.url, timeout)
        self._engine.dispose()
        stats = self.stats()
        if stats["failed"] or stats["dropped"]:
            logger.warning("prediction log %s closed: %s", self.url, stats)

    # -------------------------------------------------------------------------------------------------- readers
    def predictions(
        self,
        since: Any = None,
        until: Any = None,
        model: str | None = None,
        project_id: str | None = None,
    ) -> pd.DataFrame:
        """Predictions first served in [since, until), oldest first; ``drivers`` parsed into lists of dicts.
        Only what is written: :meth:`flush` first to see what is queued."""
        query = _between(sa.select(PREDICTIONS), PREDICTIONS.c.first_served_at, since, until)
        query = _where(query, PREDICTIONS, model=model, project_id=project_id)
        return self._read(query.order_by(PREDICTIONS.c.first_served_at, PREDICTIONS.c.key), PREDICTIONS)

    def served(
        self,
        since: Any = None,
        until: Any = None,
        endpoint: str | None = None,
        request_id: str | None = None,
    ) -> pd.DataFrame:
        """What was served in [since, until), in the order written: a row per prediction of each answer (``id``: the
        answer's ``served`` row)."""
        query = _between(SERVED_PREDICTIONS, SERVED.c.served_at, since, until)
        query = _where(query, SERVED, endpoint=endpoint, request_id=request_id)
        return self._read(query, SERVED_PREDICTIONS.selected_columns)

    def feedback(
        self,
        since: Any = None,
        until: Any = None,
        model: str | None = None,
        project_id: str | None = None,
    ) -> pd.DataFrame:
        """Feedback given in [since, until), in the order given."""
        query = _between(sa.select(FEEDBACK), FEEDBACK.c.at, since, until)
        query = _where(query, FEEDBACK, model=model, project_id=project_id)
        return self._read(query.order_by(FEEDBACK.c.id), FEEDBACK)

    def add_feedback(
        self,
        note: str = "",
        *,
        prediction_key: str | None = None,
        project_id: str | None = None,
        milestone_id: str | None = None,
        client_id: str | None = None,
        model: str | None = None,
        author: str | None = None,
        corrected_level: str | None = None,
        outcome_label: float | None = None,
        at: Any = None,
    ) -> int:
        """Record a planner's note or override, at once (not queued); returns its id. About one prediction (its key:
        its model and ids are copied beside it) or about a target (model, project, milestone) when the planner means
        "the current prediction". Raises ValueError naming what is wrong, and an unknown key."""
        row = feedback_row(
            note,
            prediction_key=prediction_key,
            project_id=project_id,
            milestone_id=milestone_id,
            client_id=client_id,
            model=model,
            author=author,
            corrected_level=corrected_level,
            outcome_label=outcome_label,
            at=at,
        )
        if prediction_key is not None:
            found = self._prediction(prediction_key)
            if found is None and self._queued:
                self.flush(timeout=max(2 * self._flush_seconds, 2.0))  # it may be served but not yet written
                found = self._prediction(prediction_key)
            if found is None:
                raise ValueError(f"no prediction with key {prediction_key!r} in the log")
            for name in ("project_id", "milestone_id", "client_id", "model"):
                if row[name] is not None and row[name] != found[name]:
                    raise ValueError(f"{name} {row[name]!r} is not the prediction's ({found[name]!r})")
                row[name] = found[name]
            row["outcome_label"] = _outcome(row["model"] if row["model"] in TARGETS else None, outcome_label)
        with self._engine.begin() as conn:
            return int(conn.execute(sa.insert(FEEDBACK).values(**row)).inserted_primary_key[0])

    # ---------------------------------------------------------------------------------------------------- inside
    def _read(self, query: Any, table: sa.Table | Any) -> pd.DataFrame:
        """``table``: a table, or the selected columns of a query (their names and types type the frame)."""
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return _frame(rows, table)

    def _prediction(self, key: str) -> dict[str, Any] | None:
        with self._engine.connect() as conn:
            found = conn.execute(sa.select(PREDICTIONS).where(PREDICTIONS.c.key == key)).mappings().first()
        return None if found is None else dict(found)

    def _open(self) -> bool:
        """Make the schema current. A database that cannot be reached yet is logged and tried again by the writer;
        a newer schema raises."""
        try:
            _prepare(self._raw_url)
            found = migrate(self._engine)
        except _TRANSIENT as exc:
            logger.warning("prediction log %s cannot be opened yet (%s); the writer will retry", self.url, _said(exc))
            return False
        logger.info("prediction log at %s (schema version %d, found %d)", self.url, SCHEMA_VERSION, found)
        return True

    def _run(self) -> None:
        """The writer: a batch at a time, until closed and drained (or the close deadline passes)."""
        while True:
            with self._wake:
                deadline = time.monotonic() + self._flush_seconds
                while not self._due():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        if self._queue:
                            break
                        deadline, left = time.monotonic() + self._flush_seconds, self._flush_seconds
                    self._wake.wait(left)
                if self._closing and (not self._queue or time.monotonic() >= self._give_up_at):
                    break
                batch, n = self._take()
            try:
                self._write(batch, n)
            except Exception:  # noqa: BLE001 - the writer must outlive any one batch
                logger.exception("prediction log %s: %d predictions failed", self.url, n)
                self._finish(failed=n)
        self._fail_waiting()

    def _due(self) -> bool:
        """A batch is due now: the log is closing, or something waits and it is a whole batch or someone flushes."""
        return self._closing or (
            bool(self._queue) and (self._waiting >= self._batch_rows or self._flush_target > self._handled)
        )

    def _take(self) -> tuple[list, int]:
        batch, n = [], 0
        while self._queue and (n == 0 or n + len(self._queue[0][0]) <= self._batch_rows):
            item = self._queue.popleft()
            batch.append(item)
            n += len(item[0])
        self._waiting -= n
        return batch, n

    def _write(self, batch: list, n: int) -> None:
        """One transaction: the new predictions, then the served rows. Transient errors wait and retry, keeping the
        batch, while the log is open; other errors are retried ``attempts`` times."""
        rows = rows_of_batch(batch, self._known_answers)
        bad = rows.bad
        attempt, pause = 0, 0.1
        while True:
            started = time.perf_counter()
            try:
                if not self._ready:
                    _prepare(self._raw_url)
                    migrate(self._engine)
                    self._ready = True
                with self._engine.connect() as conn:
                    conn.execution_options(immediate=True)
                    with conn.begin():
                        self._insert(conn, rows)
                for record in rows.fresh:
                    record.stored = True
                if len(self._known_answers) > KNOWN_ANSWERS:
                    self._known_answers.clear()  # forgetting costs a skipped insert, never a wrong row
                self._known_answers |= rows.fresh_answers
                self._finish(written=n - bad, failed=bad, seconds=time.perf_counter() - started)
                return
            except Exception as exc:  # noqa: BLE001 - logged, retried or counted; never raised into the service
                attempt += 1
                transient = isinstance(exc, _TRANSIENT)
                with self._wake:
                    self._errors += 1
                    closing = self._closing
                give_up = (not transient and attempt >= self._attempts) or (
                    closing and time.monotonic() >= self._give_up_at
                )
                if give_up or attempt & (attempt - 1) == 0:  # attempts 1, 2, 4, 8...: an outage is not a flood
                    logger.warning(
                        "prediction log %s: writing %d predictions failed (attempt %d%s): %s",
                        self.url,
                        n,
                        attempt,
                        ", given up" if give_up else ", will retry",
                        _said(exc),
                    )
                if give_up:
                    self._finish(failed=n)
                    return
                with self._wake:
                    left = self._give_up_at - time.monotonic()
                    self._wake.wait(max(0.0, min(pause, left)))
                pause = min(pause * 2, 5.0)

    def _insert(self, conn: Connection, rows: BatchRows) -> None:
        """The new predictions and answer sets (a key already there is skipped), then the served rows."""
        if conn.dialect.name == "sqlite":
            _insert_sqlite(conn, rows)
            return
        if rows.predictions:
            self._insert_new(conn, PREDICTIONS, rows.predictions)
        if rows.answers:
            self._insert_new(conn, ANSWER_PREDICTIONS, rows.answers)
        if rows.served:
            conn.execute(sa.insert(SERVED), rows.served)

    def _insert_new(self, conn: Connection, table: sa.Table, rows: list[dict]) -> None:
        statement = _insert_ignore(conn.dialect.name, table)
        if statement is not None:
            conn.execute(statement, rows)
            return
        columns = list(table.primary_key.columns)
        first = sorted({row[columns[0].name] for row in rows})
        there: set[tuple] = set()
        for i in range(0, len(first), 500):  # no upsert in this dialect: read the keys already there, 500 at a time
            chunk = sa.select(*columns).where(columns[0].in_(first[i : i + 500]))
            there |= {tuple(found) for found in conn.execute(chunk)}
        new = [row for row in rows if tuple(row[c.name] for c in columns) not in there]
        if new:
            conn.execute(sa.insert(table), new)

    def _finish(self, written: int = 0, failed: int = 0, seconds: float = 0.0) -> None:
        with self._wake:
            self._written += written
            self._failed += failed
            self._queued -= written + failed
            self._handled += written + failed
            self._write_seconds += seconds
            self._done.notify_all()

    def _fail_waiting(self) -> None:
        """At close, past its deadline: what never reached the database is counted as failed."""
        with self._wake:
            lost = sum(len(item[0]) for item in self._queue)
            self._queue.clear()
            self._waiting = 0
        if lost:
            logger.error("prediction log %s: %d predictions unwritten at close", self.url, lost)
            self._finish(failed=lost)

    def _warn_dropped(self) -> None:
        now = time.monotonic()
        if now - self._last_drop_warning >= 60.0:
            self._last_drop_warning = now
            logger.warning(
                "prediction log %s: queue full (%d predictions); dropping (%d so far)",
                self.url,
                self._queued,
                self._dropped,
            )


class NullLog:
    """The log switched off (``prediction_log_url='off'``): the same calls, nothing kept."""

    enabled = False
    url = OFF

    def __repr__(self) -> str:
        return "NullLog()"

    def __enter__(self) -> NullLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def record(self, predictions: Iterable[PredictionRecord], served: Served | None = None) -> bool:  # noqa: ARG002
        return False

    def stats(self) -> dict[str, float]:
        return {"queued": 0, "written": 0, "dropped": 0, "failed": 0, "errors": 0, "write_seconds": 0.0}

    def flush(self, timeout: float | None = 10.0) -> bool:  # noqa: ARG002
        return True

    def close(self, timeout: float | None = None) -> None:
        return None

    def predictions(self, *_args: Any, **_kwargs: Any) -> pd.DataFrame:
        return _frame([], PREDICTIONS)

    def served(self, *_args: Any, **_kwargs: Any) -> pd.DataFrame:
        return _frame([], SERVED)

    def feedback(self, *_args: Any, **_kwargs: Any) -> pd.DataFrame:
        return _frame([], FEEDBACK)

    def add_feedback(self, *_args: Any, **_kwargs: Any) -> int:
        raise LogDisabled("the prediction log is off (prediction_log_url='off'): feedback cannot be kept")


def log_url(settings: Any) -> str | None:
    """The log's URL in settings: ``prediction_log_url``, by default SQLite in work_dir; None when it is 'off'."""
    url = settings.prediction_log_url or default_url(settings.work_dir)
    return None if url.strip().lower() == OFF else url


def read_feedback(url: str | None) -> pd.DataFrame:
    """Every feedback row of the log at ``url``, in the order given, for a reader that writes nothing (training):
    no writer thread, no migration, no file made. A log that is off (None), an SQLite file not made yet or a
    database without the ``feedback`` table reads as no feedback."""
    if url is None:
        return _frame([], FEEDBACK)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not (parsed.database and Path(parsed.database).expanduser().exists()):
        return _frame([], FEEDBACK)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(FEEDBACK.name):
                return _frame([], FEEDBACK)
            rows = conn.execute(sa.select(FEEDBACK).order_by(FEEDBACK.c.id)).all()
    finally:
        engine.dispose()
    return _frame(rows, FEEDBACK)


def from_settings(settings: Any) -> PredictionLog | NullLog:
    """The log the settings ask for (:func:`log_url`; off: a :class:`NullLog`)."""
    url = log_url(settings)
    if url is None:
        return NullLog()
    return PredictionLog(
        url,
        flush_seconds=settings.prediction_log_flush_seconds,
        max_queue_rows=settings.prediction_log_max_queue,
    )


# ------------------------------------------------------------------------------------------------------ helpers
def _between(query: Any, column: sa.Column, since: Any, until: Any) -> Any:
    if since is not None:
        query = query.where(column >= _utc(since))
    if until is not None:
        query = query.where(column < _utc(until))
    return query


def _where(query: Any, table: sa.Table, **equal: Any) -> Any:
    for name, value in equal.items():
        if value is not None:
            query = query.where(table.c[name] == value)
    return query


def _frame(rows: Sequence[Any], table: sa.Table | Any) -> pd.DataFrame:
    """Rows as a frame with the table's columns (or a query's selected columns), typed alike whatever the rows:
    times as datetime64, numbers as floats, texts as pandas' str; NULL as NaN (NaT); ``drivers`` parsed, a list of
    dicts a row."""
    described = table.columns if isinstance(table, sa.Table) else table
    columns = [column.name for column in described]
    frame = pd.DataFrame([tuple(row) for row in rows], columns=columns)
    for column in described:
        if isinstance(column.type, sa.DateTime):
            frame[column.name] = pd.to_datetime(frame[column.name])
        elif isinstance(column.type, sa.Float):
            frame[column.name] = pd.to_numeric(frame[column.name]).astype(float)
        elif column.name == "drivers":
            frame[column.name] = frame[column.name].map(json.loads).astype(object)
        elif isinstance(column.type, sa.Text):
            frame[column.name] = frame[column.name].astype("str")
        else:
            frame[column.name] = frame[column.name].astype("int64")
    return frame


def _said(exc: BaseException) -> str:
    """An error in one line, without the statement SQLAlchemy appends."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"
