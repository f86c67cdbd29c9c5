"""The feature registry: every computed feature is declared, and what is declared follows the settings' windows.

The families are run on the tiny world (tests/tiny_world.py) with the default windows and with other ones; the
columns they return are compared with what they declare, so a family that computes a column it does not declare
(or stops computing one it does) fails here, whatever the registry says of itself.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eqsms.settings import Settings
from features.families import MILESTONE_FAMILIES, PROJECT_FAMILIES, Context, Query, compute, compute_columns
from features.registry import (
    QUALITY,
    TECHNICAL,
    Feature,
    categorical_features,
    declared_names,
    declares,
    feature_specs,
    features_markdown,
    plan_features,
)
from features.targets import target as target_spec
from features.validate import validate_tables
from serving.drivers import describe, top_drivers
from tests.tiny_world import raw_frames
from training.models import lgb_params

AS_OF = pd.Timestamp("2020-12-17")
DEFAULT = Settings(short_window_days=30, long_window_days=90, recent_weeks=4)  # whatever the environment says
OTHER = Settings(short_window_days=14, long_window_days=60, recent_weeks=2)
README = Path(__file__).resolve().parent.parent / "data_samples" / "README.md"
# The constraints a quality manager asks for (the directional tests rely on them), by target: (count, sign).
CONSTRAINTS = {"defect_risk": (6, 1), "delay": (2, -1), "churn": (2, 1)}


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return validate_tables(raw_frames()).tables


def milestone_rows(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every milestone of the tiny world, scored at AS_OF (reached or not: the families do not care)."""
    ms = tables["milestones"][["milestone_id", "project_id", "kind", "sequence", "planned_date"]]
    return ms.assign(as_of=AS_OF).reset_index(drop=True)


def computed(tables: dict[str, pd.DataFrame], settings: Settings) -> dict[str, list[str]]:
    """The features of each target as the families compute them with ``settings``."""
    ctx = Context.build(tables, settings)
    rows = milestone_rows(tables)
    milestone = list(compute(ctx, rows, MILESTONE_FAMILIES).columns)
    project = list(compute(ctx, rows[["project_id", "as_of"]], PROJECT_FAMILIES).columns)
    return {"defect_risk": milestone, "delay": milestone, "churn": project}


@pytest.mark.parametrize("settings", [DEFAULT, OTHER], ids=["default", "other_windows"])
def test_each_family_computes_exactly_what_it_declares(tables, settings):
    ctx = Context.build(tables, settings)
    rows = milestone_rows(tables)
    q = Query(ctx, rows)
    for family in MILESTONE_FAMILIES:
        columns = family(ctx, rows, q)
        assert list(columns) == list(declared_names(family, settings)), family.__name__
        assert all(len(values) == len(rows) for values in columns.values()), family.__name__
    specs = feature_specs(settings)
    assert len(specs) == sum(len(declared_names(f, settings)) for f in MILESTONE_FAMILIES)  # no name twice
    assert list(specs) == list(compute_columns(ctx, rows, MILESTONE_FAMILIES))


def test_a_family_computing_an_undeclared_column_is_refused(tables):
    @declares(Feature("open_things", "count", "{v:.0f} open things", QUALITY))
    def sloppy(ctx, rows, q):
        return {"open_things": np.zeros(len(rows)), "forgotten": np.ones(len(rows))}

    ctx = Context.build(tables, DEFAULT)
    with pytest.raises(RuntimeError, match="forgotten"):
        compute_columns(ctx, milestone_rows(tables), (sloppy,))


def test_windows_that_collide_are_refused(tables):
    ctx = Context.build(tables, Settings(short_window_days=30, long_window_days=30))
    with pytest.raises(ValueError, match="must differ"):
        compute_columns(ctx, milestone_rows(tables), MILESTONE_FAMILIES)


@pytest.mark.parametrize("settings", [DEFAULT, OTHER], ids=["default", "other_windows"])
def test_every_monotone_constraint_survives_the_windows(tables, settings):
    for target, features in computed(tables, settings).items():
        count, sign = CONSTRAINTS[target]
        for objective in ("binary", "regression"):
            constraints = lgb_params(settings, objective, target, features)["monotone_constraints"]
            assert len(constraints) == len(features)
            constrained = [f for f, c in zip(features, constraints, strict=True) if c]
            assert len(constrained) == count, (target, constrained)
            assert all(c in (0, sign) for c in constraints), target
        assert "monotone_constraints" not in lgb_params(settings, "quantile", target, features, alpha=0.1)
    defect = lgb_params(OTHER, "binary", "defect_risk", computed(tables, OTHER)["defect_risk"])
    names = computed(tables, OTHER)["defect_risk"]
    assert {f for f, c in zip(names, defect["monotone_constraints"], strict=True) if c} == {
        "inspections_failed_14d",
        "inspections_failed_60d",
        "inspections_failed_to_date",
        "defects_open",
        "severe_findings_14d",
        "severe_findings_60d",
    }


def test_undeclared_features_get_no_constraint():
    params = lgb_params(DEFAULT, "binary", "defect_risk", ["my_own_score", "defects_open", "inspections_failed_14d"])
    assert params["monotone_constraints"] == [0, 1, 0]  # 14d is not a feature with the default windows


def test_every_feature_has_a_driver_text_with_its_window(tables):
    specs = feature_specs(OTHER)
    features = computed(tables, OTHER)
    for name in dict.fromkeys(features["defect_risk"] + features["churn"]):
        assert name in specs, f"{name} has no driver text: it would be told by its name"
        text, department = describe(name, 3.0, specs)
        assert (text, department) == (specs[name].text.format(v=3.0), specs[name].department)
        for days in (14, 60):
            if re.search(rf"_{days}d$", name):
                assert f"{days} days" in text, (name, text)
        assert not re.search(r"\b(30|90) days", text), (name, text)


def test_driver_texts_with_default_windows_are_unchanged(monkeypatch):
    for window in ("SHORT_WINDOW_DAYS", "LONG_WINDOW_DAYS", "RECENT_WEEKS"):
        monkeypatch.delenv(f"EQSMS_{window}", raising=False)
    specs = feature_specs(DEFAULT)
    expected = {
        ("defects_open", 7): ("open defects: 7", QUALITY),
        ("inspections_failed_30d", 3): ("3 failed inspections in the last 30 days", QUALITY),
        ("inspection_fail_rate_90d", 0.25): ("25% of inspections failed in the last 90 days", QUALITY),
        ("inspection_conditional_rate_90d", 0.1): ("10% of inspections passed with conditions in 90 days", QUALITY),
        ("contract_value", 1234567.0): ("contract value 1,234,567", "project office"),
        ("project_type", "school"): ("project type: school", "project office"),
        ("spi_recent", 0.8765): ("schedule performance index (SPI) 0.88 in recent weeks", "cost"),
        ("nps_trend", 2.0): ("likelihood to recommend changed by +2 since the survey before", "customer service"),
        ("defects_open", math.nan): ("open defects: unknown (no data yet)", QUALITY),
        ("my_own_score", 3): ("my own score: 3", TECHNICAL),
    }
    for (feature, value), words in expected.items():
        assert describe(feature, value, specs) == words, feature


def test_top_drivers_tell_the_window_of_the_settings_given():
    contributions = np.array([[0.4, -0.1, 0.0, 0.05]])
    features = ["inspections_failed_14d", "defects_open", "csat_latest", "my_own_score"]
    columns = {name: np.array([value]) for name, value in zip(features, [3.0, 7.0, 4.0, 1.5], strict=True)}
    (drivers,) = top_drivers(contributions, features, columns, target_spec("defect_risk"), 3, feature_specs(OTHER))
    assert [d["text"] for d in drivers] == [
        "3 failed inspections in the last 14 days (quality) pushed first-pass failure risk up",
        "open defects: 7 (quality) pushed first-pass failure risk down",
        "my own score: 1.5 (technical) pushed first-pass failure risk up",
    ]
    assert {d["unit"] for d in drivers} == {"log-odds"}


def test_categorical_and_plan_flags(tables):
    assert set(categorical_features(DEFAULT)) == {"project_type", "region", "milestone_kind"}
    assert plan_features(DEFAULT) == plan_features(OTHER) == ("milestones_in_plan", "milestone_share")
    ctx = Context.build(tables, OTHER)
    frame = compute(ctx, milestone_rows(tables), MILESTONE_FAMILIES)
    assert {c for c in frame if isinstance(frame[c].dtype, pd.CategoricalDtype)} == set(categorical_features(OTHER))


def test_data_dictionary_lists_the_registered_features():
    """data_samples/README.md's features table is the registry's, with the default windows."""
    text = README.read_text()
    table = features_markdown()
    assert table in text, "data_samples/README.md is stale: paste `python -m features.registry` into its Features"
    section = text.split("## Features\n", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"`([a-z0-9_]+)`", section.split("| family | features |", 1)[1])
    defaults = Settings.model_construct()
    assert set(feature_specs(defaults)) <= set(listed)
    assert {name for name in listed if not name.endswith("_features")} == set(feature_specs(defaults))
