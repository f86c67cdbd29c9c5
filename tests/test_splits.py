"""Splits by time: folds that do not repeat the test, and a word when ties in time move the shares."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.splits import folds_before, share_note, time_split


def test_backtest_folds_lie_before_the_test_rows_and_never_repeat_them():
    as_of = pd.Series(pd.date_range("2020-01-01", periods=500, freq="D"))
    main = time_split(as_of, 0.6, 0.2)
    folds, skipped = folds_before(as_of, main, 3)
    assert len(folds) == 3 and not skipped
    test_start = as_of.iloc[main.test].min()
    for fold in folds:
        assert not np.intersect1d(fold.test, main.test).size
        assert as_of.iloc[fold.test].max() < test_start
        assert as_of.iloc[fold.train].max() < as_of.iloc[fold.calibration].min() <= as_of.iloc[fold.test].min()


def test_ties_in_time_are_said_and_folds_that_cannot_be_built_are_skipped_with_a_reason():
    # Half the rows share one day in the middle: they cannot be split, so the shares move and some folds are empty.
    days = list(pd.date_range("2021-01-01", periods=100, freq="D"))
    later = list(pd.date_range("2021-06-01", periods=200, freq="D"))
    as_of = pd.Series(pd.to_datetime(days + [pd.Timestamp("2021-05-01")] * 300 + later))
    main = time_split(as_of, 0.6, 0.2)
    note = share_note(main, len(as_of), {"train": 0.6, "calibration": 0.2, "test": 0.2})
    assert note and "the split came out" in note and "settings 60%/20%/20%" in note
    assert share_note(time_split(pd.Series(np.arange(500)), 0.6, 0.2), 500, {"train": 0.6, "calibration": 0.2}) is None
    folds, skipped = folds_before(as_of, main, 3)
    assert skipped and all("skipped: no" in reason for reason in skipped)
    assert all(min(len(f.train), len(f.calibration), len(f.test)) for f in folds)
