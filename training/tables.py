"""A table a data scientist prepared (``eqsms train --dataset``): ids, a time column, a label and features.

Such a table is not ours, so it is read defensively and every decision is said: which columns are features, which
rows were left out and why, which columns look like ids or like the label itself. What cannot be used is a
:class:`TableError` whose message names the column and what to do; the command prints it as one line.

- The time column orders the rows: dates and timestamps, or numbers (a row number, a year-week) taken as they are.
- Rows without a label or a time are left out and counted.
- Text (also pandas' nullable ``string``) and booleans become categories; dates become days since 1970-01-01.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from eqsms.settings import Settings
from features.datasets import Dataset, tables_fingerprint
from features.targets import CLASSIFIER, target
from training.splits import moment

DATE_ORIGIN = pd.Timestamp("1970-01-01")
ID_LIKE_UNIQUE_SHARE = 0.95  # a text or integer column this unique looks like an id, not a feature
LEAK_SCORE = 0.99  # a feature that alone ranks the label this well (ROC-AUC or |correlation|) is suspicious


class TableError(ValueError):
    """A prepared table cannot be used as it is; the message names the column and what to do."""


def model_name_of(path: Path) -> str:
    """A registry name from a table's file name (``defect_risk`` and the other product names get ``_table``)."""
    from features.targets import TARGETS

    name = re.sub(r"[^0-9A-Za-z_-]+", "_", path.stem).strip("_") or "table"
    return f"{name}_table" if name in TARGETS else name


def read_table(path: Path) -> pd.DataFrame:
    if path.suffix not in (".parquet", ".csv"):
        raise TableError(f"{path.name}: a prepared table is a .parquet or .csv file")
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise TableError(f"{path}: cannot be read ({err})") from err


def _near(missing: list[str], columns: list[str]) -> str:
    """Columns of the table that look like the missing names, or how many columns it has."""
    from difflib import get_close_matches

    near = list(dict.fromkeys(c for name in missing for c in get_close_matches(name, columns, n=3)))
    return f" (did you mean {', '.join(near)}?)" if near else f" (it has {len(columns)}: {', '.join(columns[:6])}, ...)"


def _ordering(values: pd.Series, column: str) -> pd.Series:
    """The time column as something that orders rows: datetimes, or numbers as they are."""
    if pd.api.types.is_bool_dtype(values):
        raise TableError(f"time column '{column}' is true/false; name a date, timestamp or number column")
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
        return values
    try:
        return pd.to_datetime(values, format="mixed")
    except (ValueError, TypeError) as err:
        raise TableError(f"time column '{column}' holds neither dates nor numbers ({err})") from err


def _as_feature(values: pd.Series) -> pd.Series:
    """Numbers stay; dates become days since 1970-01-01; text and booleans become categories."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return (values - DATE_ORIGIN) / pd.Timedelta(days=1)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    text = values.astype("object").where(values.notna(), None)
    return text.map(lambda v: v if v is None else str(v)).astype("category")


def _suspects(frame: pd.DataFrame, features: list[str], label: str, classifier: bool) -> list[str]:
    """Columns that look like ids, or that predict the label almost perfectly on their own."""
    from sklearn.metrics import roc_auc_score

    notes = []
    y = frame[label].to_numpy(dtype="float64")
    for col in features:
        values = frame[col]
        distinct = values.nunique(dropna=True)
        if len(values) > 20 and distinct >= ID_LIKE_UNIQUE_SHARE * len(values):
            if isinstance(values.dtype, pd.CategoricalDtype) or (values % 1 == 0).all():
                notes.append(f"'{col}' has a different value in almost every row: an id? (--exclude {col})")
                continue
        if isinstance(values.dtype, pd.CategoricalDtype):
            continue
        x = values.to_numpy(dtype="float64")
        known = ~np.isnan(x)
        if known.sum() < 20 or np.nanstd(x[known]) == 0:
            continue
        if classifier and len(np.unique(y[known])) == 2:
            auc = roc_auc_score(y[known], x[known])
            score = max(auc, 1 - auc)
        else:
            score = abs(np.corrcoef(x[known], y[known])[0, 1])
        if score >= LEAK_SCORE:
            notes.append(f"'{col}' alone predicts the label almost perfectly ({score:.3f}): a leak? (--exclude {col})")
    return notes


def dataset_from_table(
    path: Path,
    name: str,
    label: str,
    time_column: str,
    id_columns: list[str],
    settings: Settings,
    features: list[str] | None = None,
    exclude: list[str] | None = None,
    model_name: str | None = None,
) -> Dataset:
    """The table as the dataset of target ``name`` (its kind and metrics): the model learns ``label``.

    ``features`` names the feature columns (default: every column that is not an id, the time or a label),
    ``exclude`` leaves some out. ``meta["notes"]`` says what was decided; the model card names the label column.
    The model is registered as ``model_name`` (default: :func:`model_name_of` the file), never as a product model
    unless asked by name: a promotion must not judge a firm's own table against the milestone model.
    """
    spec = target(name)
    frame = read_table(path)
    named = [label, time_column, *id_columns, *(features or []), *(exclude or [])]
    if missing := [c for c in dict.fromkeys(named) if c not in frame]:
        raise TableError(f"{path.name} has no column {', '.join(missing)}{_near(missing, list(frame.columns))}")
    if not pd.api.types.is_numeric_dtype(frame[label]):
        raise TableError(f"label column '{label}' must hold numbers (0/1 for a {CLASSIFIER}, days for a slip)")
    frame = frame.rename(columns={time_column: "as_of", label: spec.label})
    frame["as_of"] = _ordering(frame["as_of"], time_column)
    notes = []
    unusable = frame[spec.label].isna() | frame["as_of"].isna()
    if unusable.any():
        notes.append(f"{int(unusable.sum()):,} of {len(frame):,} rows left out: no label or no time")
        frame = frame[~unusable]
    if spec.kind == CLASSIFIER and not frame[spec.label].isin([0, 1]).all():
        raise TableError(f"label column '{label}' must hold 0 and 1 for {spec.name} (a classifier)")
    frame = spec.derive_labels(frame, settings)
    labels = [c for c in spec.label_columns if c in frame]
    taken = {*id_columns, "as_of", *labels}
    chosen = features or [c for c in frame.columns if c not in taken and c not in (exclude or [])]
    if clash := [c for c in chosen if c in taken]:
        raise TableError(f"{', '.join(clash)}: an id, the time or a label cannot also be a feature")
    for col in chosen:
        if pd.api.types.is_datetime64_any_dtype(frame[col]):
            notes.append(f"'{col}' is a date: used as days since {DATE_ORIGIN.date()}")
        frame[col] = _as_feature(frame[col])
    frame = frame.sort_values("as_of", kind="stable").reset_index(drop=True)
    notes += _suspects(frame, chosen, spec.label, spec.kind == CLASSIFIER)
    meta = {
        "target": spec.name,
        "rows": len(frame),
        "feature_columns": chosen,
        "as_of_window": [moment(frame["as_of"].min()), moment(frame["as_of"].max())] if len(frame) else [None, None],
        "fingerprint": tables_fingerprint({"table": frame}),
        "source": str(path),
        "purpose": f"the label column '{label}' of {path.name}, as the {spec.name} model ({spec.purpose})",
        "notes": notes,
        "model_name": model_name or model_name_of(path),
    }
    return Dataset(spec.name, frame, list(id_columns), labels, chosen, meta, str(path))
