"""Named baselines, fitted on the same training rows and scored on the same test rows as the model.

- ``reference_class``: the historical rate (or median slip, and its quantiles for a range) per milestone kind and
  project type in the training period, falling back to the kind alone, then to all rows: "reference class
  forecasting" as schedule-risk teams do it.
- ``logistic_regression`` (and, for slip, ridge regression): a linear model on the same features.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

MIN_CLASS_ROWS = 20


@dataclass
class ReferenceClass:
    """A statistic of the label per class, from the training rows; coarser classes fill in for small ones."""

    keys: list[list[str]]  # finest first, e.g. [["milestone_kind", "project_type"], ["milestone_kind"]]
    stat: str = "mean"  # or a quantile in (0, 1), e.g. 0.5 for the median
    tables: list[pd.Series] = field(default_factory=list)
    overall: float = float("nan")

    def fit(self, X: pd.DataFrame, y: pd.Series) -> ReferenceClass:
        y = pd.Series(np.asarray(y, dtype="float64"), index=X.index)
        self.overall = self._agg(y)
        self.tables = []
        for key in self.keys:
            groups = y.groupby([X[k].astype("object") for k in key], dropna=False)
            table = groups.agg(self._agg)
            self.tables.append(table[groups.size() >= MIN_CLASS_ROWS])
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        out = np.full(len(X), np.nan)
        for key, table in zip(self.keys, self.tables, strict=True):
            if table.empty:
                continue
            index = pd.MultiIndex.from_frame(X[key].astype("object")) if len(key) > 1 else X[key[0]].astype("object")
            found = table.reindex(index).to_numpy(dtype="float64")
            out = np.where(np.isnan(out), found, out)
        return np.where(np.isnan(out), self.overall, out)

    def _agg(self, values: pd.Series) -> float:
        return float(values.mean()) if self.stat == "mean" else float(values.quantile(float(self.stat)))


def reference_keys(X: pd.DataFrame) -> list[list[str]]:
    """Milestone kind and project type where the rows have them (churn rows have no milestone)."""
    fine = [c for c in ("milestone_kind", "project_type") if c in X]
    return [fine, fine[:1]] if len(fine) > 1 else [fine] if fine else []


def _linear_features(X: pd.DataFrame) -> ColumnTransformer:
    categorical = [c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)]
    numeric = [c for c in X.columns if c not in categorical]
    return ColumnTransformer(
        [
            (
                "num",
                make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()),
                numeric,
            ),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing", keep_empty_features=True),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                categorical,
            ),
        ]
    )


def _as_objects(X: pd.DataFrame) -> pd.DataFrame:
    """Categoricals as plain objects (sklearn's imputer does not take pandas categoricals with NaN)."""
    return X.apply(lambda s: s.astype("object") if isinstance(s.dtype, pd.CategoricalDtype) else s)


@dataclass
class Linear:
    """A linear baseline: logistic regression for a probability, ridge regression for a slip in days."""

    classifier: bool
    pipeline: Pipeline | None = None

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Linear:
        model = LogisticRegression(max_iter=2000, C=0.5) if self.classifier else Ridge(alpha=1.0)
        self.pipeline = Pipeline([("features", _linear_features(X)), ("model", model)])
        self.pipeline.fit(_as_objects(X), y)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if self.classifier:
            return self.pipeline.predict_proba(_as_objects(X))[:, 1]
        return self.pipeline.predict(_as_objects(X))
