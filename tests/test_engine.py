"""The scoring engine behind the service, in process: real champions from a real MLflow store, real sample data."""

from __future__ import annotations

import copy
import time

import numpy as np
import pandas as pd
import pytest

from eqsms.settings import Settings, get_settings
from features.contract import FACT_COLUMNS
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


def day_after_the_data(engine: Engine) -> pd.Timestamp:
    return engine.latest_fact.ceil("D")


def test_risk_answers_open_milestones_with_drivers(engine):
    day = day_after_the_data(engine)
    project = engine.open_projects(day)[0]
    answer = risk(engine, [project], as_of=day, top_k=3)[0]
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
    day = day_after_the_data(engine)
    project = engine.open_projects(day)[0]
    cases = [
        (lambda: risk(engine, ["NOPE"]), "project_id", 404),
        (lambda: risk(engine, [project], as_of="1990-01-01"), "as_of", 400),
        (lambda: risk(engine, [project], as_of=day, milestone_ids=["NOPE"]), "milestone_ids", 404),
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
    # An empty row is scored with every feature missing, said once; a partial row's drivers are what it supplied.
    (empty,) = [f for f in out["flags"] if f["row"] == 1]
    assert empty["flag"] == "not_supplied" and set(empty["features"]) == set(engine.bundles["defect_risk"].features)
    assert not out["predictions"][1]["drivers"]
    assert {d["feature"] for d in out["predictions"][0]["drivers"]} <= set(rows[0])
    (partial,) = [f for f in out["flags"] if f["row"] == 0 and f["flag"] == "not_supplied"]
    assert partial["value"] == len(engine.bundles["defect_risk"].features) - len(rows[0])
    assert len(out["predictions"]) == 2 and all(0 <= p["probability"] <= 1 for p in out["predictions"])


def test_whatif_more_open_defects_do_not_lower_risk(engine):
    day = day_after_the_data(engine)
    project = engine.open_projects(day)[0]
    milestone = risk(engine, [project], as_of=day, top_k=0)[0]["milestones"][0]["milestone_id"]
    worse = {"defects_open": 50, "inspections_failed_30d": 10}
    out = engine.whatif(project, milestone, worse, as_of=day).model_dump()
    assert out["after"]["defect_risk"]["probability"] >= out["before"]["defect_risk"]["probability"]
    assert out["difference"]["defect_risk"]["probability"] >= 0
    assert out["data_freshness"]["latest_fact"] == engine.latest_fact and not out["data_freshness"]["stale"]
    closed = engine.whatif(project, milestone, {"defects_open": 0}, as_of=day).model_dump()
    assert closed["after"]["defect_risk"]["probability"] <= closed["before"]["defect_risk"]["probability"]
    with pytest.raises(RequestError, match="changes.bogus"):
        engine.whatif(project, milestone, {"bogus": 1}, as_of=day)


def test_models_lists_what_a_reviewer_needs(engine):
    models = {m.name: m.model_dump() for m in engine.models()}
    assert set(models) == {"defect_risk", "delay", "churn"}
    for m in models.values():
        assert m["version"] == "1" and m["alias"] == "champion" and m["trained_at"]
        assert m["features"] and m["test_metrics"] and m["data_window"]["test"]
    assert np.isfinite(models["delay"]["test_metrics"]["mae"])


# ------------------------------------------------------------------------------------- how fresh, and when
def test_an_as_of_long_after_the_data_is_refused_naming_the_field(engine):
    project = engine.open_projects()[0]
    limit = pd.Timedelta(days=engine.settings.max_days_after_data)
    for as_of in (engine.latest_fact + limit + pd.Timedelta(days=1), "2099-01-01", "9999-12-31", None):
        with pytest.raises(RequestError) as err:
            engine.risk([project], as_of=as_of)
        assert err.value.field == "as_of" and "max_days_after_data" in err.value.message, as_of
    assert risk(engine, [project], as_of=engine.latest_fact + limit, top_k=0)  # at the limit it still answers


def test_freshness_is_the_newest_fact_known_at_as_of_and_flags_stale_data(engine):
    facts = pd.concat(
        [engine.tables[t][c].dropna() for t, cols in FACT_COLUMNS.items() for c in cols if t in engine.tables]
    )
    for as_of in (pd.Timestamp("2021-03-15"), pd.Timestamp("2023-06-01 12:30")):
        fresh = engine.freshness(as_of)
        assert fresh.latest_fact == facts[facts < as_of].max()  # nothing later than as_of, however much there is
        assert 0 <= fresh.days_since_latest_fact < engine.settings.stale_after_days and not fresh.stale
    month_later = engine.freshness(engine.latest_fact + pd.Timedelta(days=30))
    assert month_later.latest_fact == engine.latest_fact and month_later.stale
    assert month_later.days_since_latest_fact == pytest.approx(30)
    before_everything = engine.freshness(pd.Timestamp("1990-01-01"))
    assert before_everything.latest_fact is None and before_everything.stale


def test_leaving_as_of_out_means_today_a_date(engine):
    """Two identical requests on one day get the same answer (with a limit that lets the sample answer today)."""
    lenient = copy.copy(engine)
    lenient.settings = engine.settings.model_copy(update={"max_days_after_data": 1e6})
    project = engine.open_projects()[0]
    today = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize()
    first = risk(lenient, [project], top_k=3)[0]
    assert first["as_of"] == today
    time.sleep(1.1)
    assert risk(lenient, [project], top_k=3)[0] == first


def test_a_milestones_feature_row_scored_by_predict_gives_the_risk_answer(engine):
    """/v1/features hands out the row the models see; /v1/predict on it answers what /v1/risk does."""
    day = day_after_the_data(engine)
    project = engine.open_projects(day)[0]
    answer = risk(engine, [project], as_of=day, top_k=0)[0]
    milestone = answer["milestones"][0]
    row = engine.features(project, milestone["milestone_id"], as_of=day).model_dump()["features"]
    for name in ("defect_risk", "churn"):
        own = {k: row[k] for k in engine.bundles[name].features}  # churn takes the project's features only
        predicted = engine.predict(name, [own], top_k=0).model_dump()["predictions"][0]["probability"]
        expected = milestone[name]["probability"] if name == "defect_risk" else answer[name]["probability"]
        assert predicted == pytest.approx(expected, abs=1e-12), name
    flags = engine.predict("delay", [row], top_k=3).model_dump()["flags"]
    assert "not_supplied" not in {f["flag"] for f in flags}


def test_an_overdue_milestone_slips_at_least_the_delay_already_incurred(engine):
    """Issue 10: asked long after its plan, a milestone not yet reached has already slipped that long: the expected
    slip and the whole range are at least that delay, and past the tolerance it is late for certain."""
    ms = engine.tables["milestones"]
    late = ms[(ms["actual_date"] - ms["planned_date"]).dt.days > 150].iloc[0]
    for days in (20, 150):  # overdue, past the tolerance; and 150 days past the plan
        as_of = late["planned_date"] + pd.Timedelta(days=days)
        answer = risk(engine, [late["project_id"]], as_of=as_of, milestone_ids=[late["milestone_id"]], top_k=0)
        delay = answer[0]["milestones"][0]["delay"]
        assert delay["expected_slip_days"] >= days and delay["range_days"][0] >= days
        assert delay["late_probability"] == 1.0 and delay["delay_incurred_days"] == days
    # Ahead of the plan, nothing is certain yet.
    ahead = late["planned_date"] - pd.Timedelta(days=30)
    answer = risk(engine, [late["project_id"]], as_of=ahead, milestone_ids=[late["milestone_id"]], top_k=0)
    assert 0 < answer[0]["milestones"][0]["delay"]["late_probability"] < 1
