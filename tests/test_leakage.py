"""No leakage: changing or deleting any fact known only after a row's as_of changes none of that row's features.

Property-based (hypothesis): for a random cut-off ``t`` and a random way of rewriting the future, the features of
every milestone and every project at ``as_of = t`` are identical before and after. A companion test rewrites the
past the same way and expects features to change, so the property cannot pass by computing nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eqsms.settings import Settings
from features.datasets import milestone_rows, project_rows
from features.families import Context
from features.validate import load

DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, pd.DataFrame]:
    from world import generate_world

    out = tmp_path_factory.mktemp("world")
    generate_world(n_projects=40, seed=3, out_dir=out, fmt="parquet", dirty=0.0)
    return load(out).tables


def features_at(tables: dict[str, pd.DataFrame], baseline: dict[str, pd.DataFrame], t: pd.Timestamp) -> pd.DataFrame:
    """Features of every baseline milestone and every project at ``as_of = t``, as one frame."""
    ctx = Context.build(tables, Settings())
    ms = baseline["milestones"][["milestone_id", "project_id", "kind", "sequence", "planned_date"]].assign(as_of=t)
    projects = baseline["projects"][["project_id"]].assign(as_of=t)
    return pd.concat(
        [milestone_rows(ctx, ms).add_prefix("m_"), project_rows(ctx, projects).add_prefix("p_")], axis=0
    ).reset_index(drop=True)


def _shift_or_blank(
    times: pd.Series, rows: np.ndarray, t: pd.Timestamp, rng: np.random.Generator, dates: bool = False
) -> pd.Series:
    """Move the chosen times to another moment at or after ``t`` (a whole day for date columns), or blank some."""
    times = times.copy()
    idx = times.index[rows]
    if dates:
        later = t.ceil("D") + pd.to_timedelta(rng.integers(0, 400, len(idx)), unit="D")
    else:
        later = t + pd.to_timedelta(rng.integers(0, 400 * 86_400, len(idx)), unit="s")
    times.loc[idx] = later.to_numpy(dtype=times.dtype)
    blank = idx[rng.random(len(idx)) < 0.3]
    times.loc[blank] = pd.NaT
    return times


def _scramble(df: pd.DataFrame, rows: np.ndarray, columns: list[str], rng: np.random.Generator) -> pd.DataFrame:
    """Replace the chosen rows' values in numeric and boolean columns with other plausible values."""
    df = df.copy()
    idx = df.index[rows]
    for col in columns:
        if df[col].dtype == "boolean":
            df.loc[idx, col] = ~df.loc[idx, col].fillna(False)
        elif col == "result":
            df.loc[idx, col] = rng.choice(["pass", "fail", "conditional"], len(idx))
        else:
            df.loc[idx, col] = rng.integers(0, 4, len(idx)).astype("float64")
    return df


def rewrite(tables: dict[str, pd.DataFrame], t: pd.Timestamp, rng: np.random.Generator, future: bool) -> dict:
    """Delete or change facts known only after ``t`` (``future=True``), or facts known before it (``False``)."""
    out = {name: df.copy() for name, df in tables.items()}

    def pick(known_at: pd.Series) -> np.ndarray:
        chosen = (known_at >= t) if future else (known_at < t)
        return chosen.fillna(False).to_numpy(dtype=bool) & (rng.random(len(known_at)) < 0.7)

    def drop(df: pd.DataFrame, known_at: pd.Series) -> pd.DataFrame:
        return df[~pick(known_at)]

    insp = out["inspections"]
    insp = _scramble(insp, pick(insp["inspected_at"]), ["defects_found", "max_severity", "result"], rng)
    insp = drop(insp, insp["inspected_at"])
    if future:  # a closure after t of an inspection made before t
        insp["closed_at"] = _shift_or_blank(insp["closed_at"], pick(insp["closed_at"]), t, rng)
    out["inspections"] = insp

    res = out["resources"]
    week_over = res["week_start"] + 7 * DAY
    known = week_over > t if future else week_over <= t
    res = res.copy()
    idx = res.index[known.to_numpy() & (rng.random(len(res)) < 0.7)]
    res.loc[idx, "earned_value"] = res.loc[idx, "earned_value"] * 3 + 1
    res.loc[idx, "overtime_hours"] = 99.0
    out["resources"] = res[~res.index.isin(idx[: len(idx) // 2])]

    comp = out["complaints"]
    comp = _scramble(comp, pick(comp["received_at"]), ["severity"], rng)
    comp = drop(comp, comp["received_at"])
    if future:
        comp["first_response_at"] = _shift_or_blank(comp["first_response_at"], pick(comp["first_response_at"]), t, rng)
        late_resolution = pick(comp["resolved_at"])
        comp = _scramble(comp, late_resolution, ["escalated"], rng)
        comp["resolved_at"] = _shift_or_blank(comp["resolved_at"], late_resolution, t, rng)
    out["complaints"] = comp

    surv = out["surveys"]
    surv = _scramble(surv, pick(surv["surveyed_at"]), ["csat", "nps"], rng)
    out["surveys"] = drop(surv, surv["surveyed_at"])

    ms = out["milestones"]
    reached = pick(ms["actual_date"])
    ms = _scramble(ms, reached, ["first_pass_accepted"], rng)
    if future:
        ms["actual_date"] = _shift_or_blank(ms["actual_date"], reached, t, rng, dates=True)
    else:
        ms.loc[reached, "actual_date"] = ms.loc[reached, "actual_date"] - 5 * DAY
    out["milestones"] = ms

    pr = out["projects"]
    if future:
        pr["actual_end"] = _shift_or_blank(pr["actual_end"], pick(pr["actual_end"]), t, rng, dates=True)
        pr["awarded_on"] = _shift_or_blank(pr["awarded_on"], pick(pr["awarded_on"]), t, rng, dates=True)
    out["projects"] = pr
    return out


def _cutoff(tables: dict[str, pd.DataFrame], share: float) -> pd.Timestamp:
    times = tables["inspections"]["inspected_at"]
    lo, hi = times.min(), times.max()
    return (lo + (hi - lo) * share).floor("s")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(share=st.floats(0.05, 0.95), seed=st.integers(0, 2**32 - 1))
def test_rewriting_the_future_changes_no_feature(world, share, seed):
    t = _cutoff(world, share)
    before = features_at(world, world, t)
    after = features_at(rewrite(world, t, np.random.default_rng(seed), future=True), world, t)
    pd.testing.assert_frame_equal(before, after, check_exact=True)


@pytest.mark.parametrize("share", [0.3, 0.7])
def test_rewriting_the_past_does_change_features(world, share):
    t = _cutoff(world, share)
    before = features_at(world, world, t)
    after = features_at(rewrite(world, t, np.random.default_rng(0), future=False), world, t)
    changed = [c for c in before.columns if not before[c].equals(after[c])]
    families = {"inspections", "spi", "overtime", "complaint", "csat", "prior_first_pass", "prior_slip_mean"}
    unchanged = [f for f in families if not any(f in c for c in changed)]
    assert not unchanged, f"rewriting the past left these families unchanged: {unchanged}"
