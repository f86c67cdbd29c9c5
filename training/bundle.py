"""A trained model and everything needed to score a row with it: the one object training logs and serving loads.

A bundle is one LightGBM booster (the MLflow model, native flavor) plus ``bundle.json`` and, for a slip model, the extra
boosters of the range and of the late probability, all in the MLflow model's ``extra_files``. ``bundle.json`` holds
the feature list and order, the category levels, the calibrator, the conformal correction and the thresholds, so
a row is rebuilt and scored the same way wherever the bundle goes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

BUNDLE_FILE = "bundle.json"
# One thread per prediction: for the few rows of a request, starting OpenMP threads costs more than it saves
# (measured here: TreeSHAP for 3 rows takes 4 ms with the default threads, 0.3 ms with one).
ONE_THREAD = {"num_threads": 1}


@dataclass
class Calibrator:
    """Maps a raw probability onto a calibrated one.

    - ``logit_spline`` (what training fits, ``training.calibration``): piecewise linear on the logit scale through
      the knots, ``x`` (raw) and ``y`` (calibrated) as logits, on beyond them with ``slope_below`` / ``slope_above``;
      strictly increasing, so it keeps the booster's order and its ranking metrics. Logits, not probabilities: a
      knot's calibrated probability can be too close to 0 or 1 for a float to hold.
    - ``isotonic`` (bundles before issue 10 §4): step points, linearly interpolated and clipped at the ends.
    - ``sigmoid`` (Platt on the logit: slope ``a``, intercept ``b``); ``identity``.
    """

    method: str  # "logit_spline" | "isotonic" | "sigmoid" | "identity"
    x: list[float] = field(default_factory=list)  # isotonic: raw probabilities; logit_spline: raw logits
    y: list[float] = field(default_factory=list)  # the calibrated value at each x, on the same scale
    a: float = 1.0
    b: float = 0.0
    slope_below: float = 0.0  # logit_spline: logit per logit below the first knot and above the last
    slope_above: float = 0.0

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype="float64")
        if self.method == "logit_spline":
            z, kx, ky = self.logit(raw), np.asarray(self.x), np.asarray(self.y)
            out = np.interp(z, kx, ky)
            out = np.where(z < kx[0], ky[0] + self.slope_below * (z - kx[0]), out)
            out = np.where(z > kx[-1], ky[-1] + self.slope_above * (z - kx[-1]), out)
            return self.expit(out)
        if self.method == "isotonic":
            return np.interp(raw, self.x, self.y)  # what sklearn's IsotonicRegression.predict does
        if self.method == "sigmoid":
            logit = np.log(np.clip(raw, 1e-12, 1 - 1e-12) / np.clip(1 - raw, 1e-12, 1))
            return 1.0 / (1.0 + np.exp(-(self.a * logit + self.b)))
        return raw

    def to_dict(self) -> dict:
        out = {"method": self.method, "x": self.x, "y": self.y, "a": self.a, "b": self.b}
        if self.method == "logit_spline":  # the older methods' dicts stay as they were
            out.update(slope_below=self.slope_below, slope_above=self.slope_above)
        return out

    @staticmethod
    def logit(p) -> np.ndarray:
        """log(p / (1 - p)), finite for every probability: 0 and 1 are taken as the nearest floats inside (0, 1)."""
        p = np.clip(np.asarray(p, dtype="float64"), np.finfo("float64").tiny, np.nextafter(1.0, 0.0))
        return np.log(p) - np.log1p(-p)

    @staticmethod
    def expit(z) -> np.ndarray:
        """1 / (1 + exp(-z)) without overflow."""
        z = np.asarray(z, dtype="float64")
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@dataclass
class ModelBundle:
    """One target's model; ``kind`` names its strategy (``training.kinds``): what it outputs and how."""

    target: str
    kind: str
    features: list[str]
    categorical: list[str]
    booster: lgb.Booster  # classifier: P(label); slip model: expected slip
    calibrator: Calibrator | None = None  # classifier, and the slip model's late probability
    lower: lgb.Booster | None = None  # slip model: quantile boosters of the range, before conformal correction
    upper: lgb.Booster | None = None
    late: lgb.Booster | None = None  # slip model: P(slip > tolerance), raw
    conformal: float = 0.0  # slip model: widen [lower, upper] by this many days on each side
    meta: dict = field(default_factory=dict)  # nominal coverage, tolerance, thresholds, data window, metrics

    # ----------------------------------------------------------------------------------------------- scoring
    def frame(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The model's columns in training order; absent ones are missing; categories as at training."""
        X = rows.reindex(columns=self.features)
        levels = dict(zip(self.categorical, self.booster.pandas_categorical or [], strict=False))
        for col in self.categorical:
            X[col] = pd.Categorical(X[col].astype("object"), categories=levels.get(col))
        return X

    def matrix(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """The model's columns as a float matrix, categories as their training codes (unknown or missing: NaN).

        What LightGBM itself does to a pandas frame, without building one: the serving hot path (DESIGN.md).
        """
        n = len(next(iter(columns.values())))
        X = np.full((n, len(self.features)), np.nan)
        codes = self._category_codes()
        for j, name in enumerate(self.features):
            if name not in columns:
                continue
            if name in codes:
                lookup = codes[name]
                X[:, j] = [lookup.get(v, np.nan) for v in columns[name]]
            else:
                X[:, j] = np.asarray(columns[name], dtype="float64")
        return X

    def _category_codes(self) -> dict[str, dict[object, float]]:
        if "_codes" not in self.__dict__:
            levels = zip(self.categorical, self.booster.pandas_categorical or [], strict=False)
            self.__dict__["_codes"] = {col: {v: float(i) for i, v in enumerate(lv)} for col, lv in levels}
        return self.__dict__["_codes"]

    def predict(self, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        return self.outputs(self.frame(rows))

    @property
    def strategy(self):
        """The kind's strategy (``training.kinds``), looked up once."""
        if "_strategy" not in self.__dict__:
            from training.kinds import strategy  # the strategies fit bundles: imported when first needed

            self.__dict__["_strategy"] = strategy(self.kind)
        return self.__dict__["_strategy"]

    def outputs(self, X: pd.DataFrame | np.ndarray) -> dict[str, np.ndarray]:
        """Predictions for rows already in the model's layout (``frame`` or ``matrix``)."""
        return self.strategy.outputs(self, X)

    def contributions(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Exact TreeSHAP values of the main booster, one column a feature and the bias last."""
        return self.booster.predict(X, pred_contrib=True, **ONE_THREAD)

    def score(self, rows: pd.DataFrame) -> np.ndarray:
        """The one number the promotion gate and the directional checks compare."""
        return self.predict(rows)[self.strategy.main_output]

    # ------------------------------------------------------------------------------------------- persistence
    def extra_boosters(self) -> dict[str, lgb.Booster]:
        return {name: b for name, b in (("lower", self.lower), ("upper", self.upper), ("late", self.late)) if b}

    def write_extras(self, folder: Path) -> list[Path]:
        """``bundle.json`` and the extra boosters as files, for the MLflow model's ``extra_files``."""
        folder.mkdir(parents=True, exist_ok=True)
        spec = {
            "target": self.target,
            "kind": self.kind,
            "features": self.features,
            "categorical": self.categorical,
            "calibrator": self.calibrator.to_dict() if self.calibrator else None,
            "conformal": self.conformal,
            "meta": self.meta,
            "boosters": sorted(self.extra_boosters()),
        }
        paths = [folder / BUNDLE_FILE]
        paths[0].write_text(json.dumps(spec, indent=2, default=_jsonable))
        for name, booster in self.extra_boosters().items():
            path = folder / f"{name}.lgb.txt"
            booster.save_model(str(path))
            paths.append(path)
        return paths

    @classmethod
    def from_model_dir(cls, model_dir: Path) -> ModelBundle:
        """A bundle from a downloaded MLflow model folder (``MLmodel``, ``model.lgb``, ``extra_files/``)."""
        extras = model_dir / "extra_files"
        spec = json.loads((extras / BUNDLE_FILE).read_text())
        booster = lgb.Booster(model_file=str(model_dir / "model.lgb"))
        boosters = {name: lgb.Booster(model_file=str(extras / f"{name}.lgb.txt")) for name in spec["boosters"]}
        calibrator = Calibrator(**spec["calibrator"]) if spec["calibrator"] else None
        return cls(
            target=spec["target"],
            kind=spec["kind"],
            features=spec["features"],
            categorical=spec["categorical"],
            booster=booster,
            calibrator=calibrator,
            conformal=spec["conformal"],
            meta=spec["meta"],
            **boosters,
        )


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)
