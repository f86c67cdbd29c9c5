"""Splits by time: the model is always judged on rows later than any it learned from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Split:
    """Row positions of each part, and the as_of window each covers."""

    train: np.ndarray
    calibration: np.ndarray
    test: np.ndarray

    def windows(self, as_of: pd.Series) -> dict[str, list[str]]:
        return {name: _window(as_of.iloc[idx]) for name, idx in self.parts().items()}

    def parts(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "calibration": self.calibration, "test": self.test}


def moment(value) -> str:
    """A point of the time order as text: a date (a time of day only if it has one), or a number as it is (a
    prepared table may order its rows by a row number or a year-week)."""
    if isinstance(value, pd.Timestamp):
        return str(value.date()) if value == value.normalize() else value.isoformat()
    return str(value)


def _window(as_of: pd.Series) -> list[str]:
    return [moment(as_of.min()), moment(as_of.max())] if len(as_of) else []


def _cut(as_of: pd.Series, shares: list[float]) -> list[np.ndarray]:
    """Consecutive blocks of rows by as_of with about the given shares; rows with the same as_of stay together."""
    dated = pd.api.types.is_datetime64_any_dtype(as_of)
    t = as_of.to_numpy(dtype="datetime64[s]" if dated else "float64")
    order = np.argsort(t, kind="stable")
    bounds = np.cumsum(shares)[:-1] * len(t)
    cut_times = [t[order[min(int(b), len(t) - 1)]] for b in bounds]
    labels = np.searchsorted(np.array(cut_times), t, side="right") if cut_times else np.zeros(len(t), int)
    return [np.flatnonzero(labels == k) for k in range(len(shares))]


def time_split(as_of: pd.Series, train_share: float, calibration_share: float) -> Split:
    """Earliest rows to train on, the next to calibrate on, the latest to test on."""
    test_share = 1.0 - train_share - calibration_share
    if test_share <= 0:
        raise ValueError("train_share + calibration_share must leave a test share above 0")
    train, calibration, test = _cut(as_of, [train_share, calibration_share, test_share])
    return Split(train, calibration, test)


def rolling_origin(as_of: pd.Series, folds: int) -> list[Split]:
    """Backtest folds: cut time into ``folds + 2`` blocks; fold k trains on blocks < k, calibrates on block k and
    tests on block k + 1 (k = 1 .. folds), so every fold's test lies after everything it learned from."""
    blocks = _cut(as_of, [1.0 / (folds + 2)] * (folds + 2))
    return [
        Split(np.concatenate(blocks[:k]), blocks[k], blocks[k + 1])
        for k in range(1, folds + 1)
        if len(blocks[k]) and len(blocks[k + 1])
    ]
