"""The scoring engine behind the service, in process: real champions from a real MLflow store, real sample data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eqsms.settings import Settings, get_settings
from features.datasets import build_dataset
from features.families import Context
from serving.runtime import Engine, NotReady, RequestError
from tests.agreement import assert_same_milestone_answer

SAMPLE = get_settings().data_dir


def risk(engine: Engine, *args, **kwargs) -> list[dict]:
    """The engine's answers as the plain values a client reads (what the response models hold)."""
    return [project.model_dump() for project in engine.risk(*args, **kwargs)]


@pytest.fixture(scope="module")
def engine(champions) -> Engine:
    return Engine.from_settings(Settings(work_dir=champions.work_dir, data_dir=champions.data_dir))


def test_refuses_to_start_without_champions(tmp_path):
    with pytest.raises(NotReady, match=r"(?s)no @champion model for defect_risk, delay, churn.*eqsms train --promote"):
        Engine.from_settings(Settings(work_dir=tmp_path, data_dir=SAMPLE))


def test_refuses_to_start_without_data(tmp_path):
    with pytest.raises(NotReady, match="eqsms generate"):
        Engine.from_settings(Settings(work_dir=tmp_path, data_dir=tmp_path / "nowhere"))


def test_serving_equals_training_exactly(engine):
    """For the training rows at their own as_of, the engine's features and predictions are the pipeline's."""
    ctx = Context.build(engine.tables, engine.settings)
    for target in ("defect_risk", "delay"):
        frame = build_dataset(target, ctx).frame.tail(40)  # the latest rows: test rows of the time split
        expected = engine.bundles[target].predict(frame)
        for i, row in enumerate(frame.itertuples()):
            answer = risk(engine, [row.project_id], as_of=row.as_of, milestone_ids=[row.milestone_id], top_k=0)[0]
            assert_same_milestone_answer(target, answer["milestones"][0][target], expected, i)
    frame = build_dataset("churn", ctx).frame.tail(20)
    expected = engine.bundles["churn"].predict(frame)["probability"]
    for i, row in enumerate(frame.itertuples()):
        assert risk(engine, [row.project_id], as_of=row.as_of, top_k=0)[0]["churn"]["probability"] == expected[i]


def test_risk_answers_open_milestones_with_drivers(engine):
    project = engine.open_projects()[0]
    answer = risk(engine, [project], top_k=3)[0]
    assert answer["milestones"], "an open project has open milestones"
    open_ids = set(engine.milestones.loc[engine.milestones["project_id"] == project, "milestone_id"])
    for m in answer["milestones"]:
        assert m["milestone_id"] in open_ids
        assert 0 <= m["defect_risk"]["probability"] <= 1 and m["defect_risk"]["level"] in {"low", "medium", "high"}
        low, high = m["delay"]["range_days"]
        assert low <= m["delay"]["expected_slip_days"] <= high
        for drivers in (m["defect_risk"]["drivers"], m["delay"]["drivers"]):
            assert 0 < len(drivers) <= 3
            assert all(d["text"] and d["department"] and d["direction"] in {"up", "down"} for d in drivers)
            sizes = [abs(d["contribution"]) for d in drivers]
            assert sizes == sorted(sizes, reverse=True)
    assert answer["churn"]["drivers"]


def test_batch_equals_one_by_one(engine):
    ids = engine.projects.index[:25].tolist()
    as_of = pd.Timestamp("2022-06-01")
    starts = engine.projects.loc[ids, "planned_start"]
    ids = [p for p in ids if starts[p] <= as_of]
    batch = risk(engine, ids, as_of=as_of, top_k=2)
    for p, answer in zip(ids, batch, strict=True):
        assert answer == risk(engine, [p], as_of=as_of, top_k=2)[0]


def test_bad_requests_name_the_field(engine):
    project = engine.open_projects()[0]
    cases = [
        (lambda: risk(engine, ["NOPE"]), "project_id", 404),
        (lambda: risk(engine, [project], as_of="1990-01-01"), "as_of", 400),
        (lambda: risk(engine, [project], milestone_ids=["NOPE"]), "milestone_ids", 404),
        (lambda: engine.predict("nope", []), "model", 400),
        (lambda: engine.predict("defect_risk", [{"not_a_feature": 1}]), "rows[0].not_a_feature", 400),
        (lambda: engine.predict("defect_risk", [{"defects_open": "many"}]), "rows[0].defects_open", 400),
    ]
    for call, field, status in cases:
        with pytest.raises(RequestError) as err:
            call()
        assert (err.value.field, err.value.status) == (field, status)


def test_predict_flags_unknown_categories_and_far_values(engine):
    rows = [{"defects_open": 3, "project_type": "moon base", "spi_to_date": 40.0}, {}]
    out = engine.predict("defect_risk", rows).model_dump()
    flags = {(f["row"], f["feature"], f["flag"]) for f in out["flags"]}
    assert (0, "project_type", "unknown_category") in flags
    assert (0, "spi_to_date", "outside_training_range") in flags
    assert not any(f["row"] == 1 for f in out["flags"])  # an empty row is scored with every feature missing
    assert len(out["predictions"]) == 2 and all(0 <= p["probability"] <= 1 for p in out["predictions"])


def test_whatif_more_open_defects_do_not_lower_risk(engine):
    project = engine.open_projects()[0]
    milestone = risk(engine, [project], top_k=0)[0]["milestones"][0]["milestone_id"]
    out = engine.whatif(project, milestone, {"defects_open": 50, "inspections_failed_30d": 10}).model_dump()
    assert out["after"]["defect_risk"]["probability"] >= out["before"]["defect_risk"]["probability"]
    assert out["difference"]["defect_risk"]["probability"] >= 0
    closed = engine.whatif(project, milestone, {"defects_open": 0}).model_dump()
    assert closed["after"]["defect_risk"]["probability"] <= closed["before"]["defect_risk"]["probability"]
    with pytest.raises(RequestError, match="changes.bogus"):
        engine.whatif(project, milestone, {"bogus": 1})


def test_models_lists_what_a_reviewer_needs(engine):
    models = {m.name: m.model_dump() for m in engine.models()}
    assert set(models) == {"defect_risk", "delay", "churn"}
    for m in models.values():
        assert m["version"] == "1" and m["alias"] == "champion" and m["trained_at"]
        assert m["features"] and m["test_metrics"] and m["data_window"]["test"]
    assert np.isfinite(models["delay"]["test_metrics"]["mae"])
