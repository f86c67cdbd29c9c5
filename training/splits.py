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


def split_time(as_of: pd.Series, ids: pd.Series) -> pd.Series:
    """The time that places a row in a split: its ``as_of``, or, when an id has several rows (a milestone at several
    as_of), the latest ``as_of`` of its rows, about when its label became known. All of one id's rows fall on one
    side, so a milestone is never learned from at one as_of and tested at another."""
    if not ids.duplicated().any():
        return as_of
    return as_of.groupby(ids.to_numpy(), sort=False).transform("max")


def split_time_of(ds) -> pd.Series:
    """:func:`split_time` of a dataset's rows, by its first id column (a row is its own group without ids)."""
    return split_time(ds.frame["as_of"], ds.frame[ds.id_columns[0]]) if ds.id_columns else ds.frame["as_of"]


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
    return rolling_origin_report(as_of, folds)[0]


def rolling_origin_report(as_of: pd.Series, folds: int) -> tuple[list[Split], list[str]]:
    """The folds of :func:`rolling_origin` that can be built, and why the others were skipped (a part left empty:
    many rows share a time, and rows that share one stay together)."""
    blocks = _cut(as_of, [1.0 / (folds + 2)] * (folds + 2))
    kept, skipped = [], []
    for k in range(1, folds + 1):
        fold = Split(np.concatenate(blocks[:k]), blocks[k], blocks[k + 1])
        if empty := [name for name, idx in fold.parts().items() if not len(idx)]:
            why = f"no {' or '.join(empty)} rows (rows sharing a time stay together)"
            skipped.append(f"backtest fold {k} skipped: {why}")
        else:
            kept.append(fold)
    return kept, skipped


def folds_before(as_of: pd.Series, main: Split, folds: int) -> tuple[list[Split], list[str]]:
    """Rolling-origin folds on the rows before ``main``'s test part, so that none repeats the main test (on the
    whole span, the last fold's test was the main test's rows); and why any was skipped."""
    before = np.sort(np.concatenate([main.train, main.calibration]))
    kept, skipped = rolling_origin_report(as_of.iloc[before], folds)
    return [Split(before[f.train], before[f.calibration], before[f.test]) for f in kept], skipped


def share_note(split: Split, n: int, nominal: dict[str, float], tolerance: float = 0.02) -> str | None:
    """A sentence when the parts' shares of the rows came out away from the settings' (ties in time)."""
    got = {name: len(idx) / n for name, idx in split.parts().items()} if n else {}
    if all(abs(got[name] - share) <= tolerance for name, share in nominal.items()):
        return None
    said = "/".join(f"{got[name]:.0%}" for name in nominal)
    wanted = "/".join(f"{share:.0%}" for share in nominal.values())
    return (
        f"rows sharing a time stay on one side: the split came out {said} (train/calibration/test; settings {wanted})"
    )
