"""The prediction log's store (issue 13, §1): rows in = rows written, nothing lost across a restart or beside a second
process, the caller never blocked by the database, a bounded queue, versioned schema, checked feedback."""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from eqsms import predlog
from eqsms.predlog import (
    MIGRATIONS,
    SCHEMA_VERSION,
    LogDisabled,
    NullLog,
    PredictionLog,
    PredictionRecord,
    SchemaError,
    Served,
    features_hash,
    from_settings,
    make_engine,
    migrate,
    prediction_key,
)
from eqsms.settings import Settings
from serving.schemas import Driver, ProbabilityRisk, SlipRisk

REPO = Path(__file__).resolve().parent.parent
FAST = {"flush_seconds": 0.05, "busy_timeout_seconds": 2.0, "close_timeout_seconds": 5.0}


def url_of(path) -> str:
    return f"sqlite:///{path}"


def rec(i: int, project: str = "P1", **extra) -> PredictionRecord:
    fields = {
        "model": "defect_risk",
        "model_version": "3",
        "project_id": project,
        "milestone_id": f"M{i}",
        "client_id": "C1",
        "as_of": "2023-06-01",
        "data_fingerprint": "fp1",
        "probability": 0.2,
        "level": "medium",
        "features_hash": f"h{i}",
    }
    return PredictionRecord(**(fields | extra))


SERVED_ROWS = "served JOIN answer_predictions USING (answer_key)"  # a row per prediction of each answer


def count(url: str, table: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        n = conn.scalar(sa.text(f"SELECT count(*) FROM {table}"))
    engine.dispose()
    return n


@pytest.fixture
def log(tmp_path):
    opened = PredictionLog(url_of(tmp_path / "p.db"), **FAST)
    yield opened
    opened.close()


# ----------------------------------------------------------------------------------------------- pure functions
def test_features_hash_is_canonical_stable_and_the_same_for_a_frame():
    row = {"b": 3, "a": 0.25, "kind": "mep", "gone": None, "flag": True}
    same = {"kind": "mep", "a": np.float32(0.25), "b": 3.0, "gone": float("nan"), "flag": 1}
    assert features_hash(row) == features_hash(same) == features_hash({**same, "gone": pd.NA})
    assert features_hash({"x": -0.0}) == features_hash({"x": 0})
    assert features_hash({"x": "3"}) != features_hash({"x": 3})
    assert features_hash(row) != features_hash({**row, "b": 4})
    assert features_hash({"a": 1}) != features_hash({"b": 1})
    # the same in every process and release: the encoding is fixed (a changed value here breaks old logs' keys)
    assert features_hash({"a": 1, "b": "x", "c": None}) == "852c67d02755a1c3c3cb3938a4b16a80"

    frame = pd.DataFrame(
        {
            "b": [3, 0, 7],
            "a": [0.25, -0.0, np.nan],
            "kind": pd.Categorical(["mep", None, "civil"]),
            "gone": [None, "x", None],
            "flag": pd.array([True, None, False], dtype="boolean"),
        }
    )
    by_row = [features_hash(dict(zip(frame.columns, values, strict=True))) for values in frame.astype(object).values]
    assert predlog.features_hashes(frame) == by_row
    assert predlog.features_hashes({name: frame[name].to_numpy() for name in frame.columns}) == by_row  # the engine's
    assert predlog.features_hashes(frame.iloc[:0]) == []
    assert by_row[0] == features_hash(row)


def test_prediction_key_reads_one_time_in_every_form():
    base = {
        "model": "delay",
        "model_version": "2",
        "data_fingerprint": "fp",
        "project_id": "P1",
        "milestone_id": "M1",
        "client_id": None,
        "features_hash": "h",
    }
    keys = {
        prediction_key(**base, as_of=as_of)
        for as_of in (
            "2023-06-01",
            date(2023, 6, 1),
            pd.Timestamp("2023-06-01", tz="UTC"),
            datetime(2023, 6, 1, 2, tzinfo=timezone(timedelta(hours=2))),
        )
    }
    assert len(keys) == 1 and len(next(iter(keys))) == 32
    assert prediction_key(**(base | {"features_hash": "other"}), as_of="2023-06-01") not in keys  # a what-if row
    assert prediction_key(**(base | {"milestone_id": None}), as_of="2023-06-01") not in keys


def test_records_from_the_service_answers():
    driver = Driver(
        feature="defects_open", value=7.0, text="7 open defects", department="quality", direction="up",
        contribution=0.4, unit="log-odds",
    )  # fmt: skip
    risk = PredictionRecord.from_answer(
        "defect_risk", ProbabilityRisk(probability=0.3, level="high", drivers=[driver]), model_version="4"
    )
    assert (risk.probability, risk.level, risk.slip_days) == (0.3, "high", None)
    slip = SlipRisk(
        expected_slip_days=12.0, range_days=[3.0, 30.0], range_coverage=0.8, late_probability=0.7,
        late_tolerance_days=7.0, drivers=[],
    )  # fmt: skip
    delay = PredictionRecord.from_answer("delay", slip, model_version="4", level="high", project_id="P1")
    assert (delay.slip_days, delay.slip_low, delay.slip_high, delay.probability) == (12.0, 3.0, 30.0, 0.7)
    assert (delay.level, delay.project_id) == ("high", "P1")
    row = predlog.prediction_row(risk, datetime(2023, 6, 1))
    assert row["drivers"] == ('[{"feature":"defects_open","value":7.0,"contribution":0.4,"text":"7 open defects"}]')
    with pytest.raises(ValueError, match="endpoint"):
        Served("nowhere")


# ------------------------------------------------------------------------------------------------------ writing
def test_rows_in_equal_rows_written_from_several_threads(tmp_path):
    url = url_of(tmp_path / "p.db")
    log = PredictionLog(url, batch_rows=64, **FAST)
    n_threads, calls, per_call = 4, 50, 5

    def serve(t: int) -> None:
        for c in range(calls):
            batch = [rec(c * per_call + i, project=f"P{t}") for i in range(per_call)]
            assert log.record(batch, Served("risk", request_id=f"{t}-{c}"))

    threads = [threading.Thread(target=serve, args=(t,)) for t in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert log.flush(10)
    total = n_threads * calls * per_call
    assert log.stats() | {"write_seconds": 0} == {
        "queued": 0, "written": total, "dropped": 0, "failed": 0, "errors": 0, "write_seconds": 0,
    }  # fmt: skip
    assert count(url, SERVED_ROWS) == count(url, "predictions") == total
    assert log.served()["request_id"].nunique() == n_threads * calls
    log.close()


def test_a_prediction_served_again_is_one_prediction_and_more_served_rows(log):
    log.record([rec(1), rec(1), rec(2)], Served("risk", "r1"))  # twice in one answer, and again below
    assert log.flush(5)
    log.record([rec(1)], Served("batch", "r2"))
    log.record([rec(1)])  # the board's snapshot: the prediction alone
    assert log.flush(5)
    predictions, served = log.predictions(), log.served()
    assert len(predictions) == 2 and len(served) == 4
    assert served["endpoint"].tolist() == ["risk", "risk", "risk", "batch"]
    one = predictions.set_index("milestone_id").loc["M1", "key"]
    assert (served["prediction_key"] == one).sum() == 3
    assert log.stats()["written"] == 5


def test_an_answer_served_again_is_one_served_row_and_its_set_kept_once(tmp_path):
    """The day's snapshot answers the same records all day: each answer adds one row, its set is written once, and
    the records are not made into prediction rows again."""
    url = url_of(tmp_path / "p.db")
    log = PredictionLog(url, **FAST)
    answer = [rec(1), rec(2), rec(3, model="churn", milestone_id=None)]
    for i in range(50):
        log.record(answer, Served("risk", f"r{i}"))
    log.record(answer[:2], Served("worklist", "w"))  # another set of the same predictions
    assert log.flush(5)
    log.close()
    assert count(url, "served") == 51 and count(url, "predictions") == 3
    assert count(url, "answer_predictions") == 3 + 2
    assert count(url, SERVED_ROWS) == 50 * 3 + 2
    assert all(r.stored and r.key for r in answer)


def test_nothing_lost_across_a_restart(tmp_path):
    url = url_of(tmp_path / "p.db")
    driver = Driver(
        feature="defects_open", value=7.0, text="7 open defects", department="quality", direction="up",
        contribution=0.41, unit="log-odds",
    )  # fmt: skip
    records = [
        rec(1, drivers=[driver], data_latest_fact=pd.Timestamp("2023-05-31 16:05")),
        rec(
            2,
            model="delay",
            probability=0.83,
            slip_days=38.2,
            slip_low=12.5,
            slip_high=71.0,
            level=None,
            drivers=[{"feature": "time_to_plan", "value": None, "contribution": -2.5}],
            features_hash=None,
            features={"time_to_plan": -3, "kind": "mep"},
        ),  # fmt: skip
        rec(3, model="churn", milestone_id=None, probability=float("nan"), level="low", as_of="2023-06-01T10:00Z"),
    ]
    log = PredictionLog(url, **FAST)
    assert log.record(records, Served("risk", "req-1", at=datetime(2023, 6, 1, 9)))
    log.close()  # no flush: close writes what waits

    again = PredictionLog(url, **FAST)
    got = again.predictions().set_index("model")
    served = again.served()
    again.close()
    assert len(got) == 3 and served["request_id"].tolist() == ["req-1"] * 3
    assert (served["served_at"] == pd.Timestamp("2023-06-01 09:00")).all()
    risk, delay, churn = got.loc["defect_risk"], got.loc["delay"], got.loc["churn"]
    assert risk["drivers"] == [
        {"feature": "defects_open", "value": 7.0, "contribution": 0.41, "text": "7 open defects"}
    ]
    assert risk["data_latest_fact"] == pd.Timestamp("2023-05-31 16:05") and risk["level"] == "medium"
    assert risk["key"] == predlog.prediction_row(records[0], datetime(2023, 6, 1))["key"]
    assert (delay["slip_days"], delay["slip_low"], delay["slip_high"], delay["probability"]) == (38.2, 12.5, 71.0, 0.83)
    assert pd.isna(delay["level"]) and pd.isna(delay["data_latest_fact"])
    assert delay["drivers"] == [{"feature": "time_to_plan", "value": None, "contribution": -2.5}]
    assert delay["features_hash"] == features_hash({"kind": "mep", "time_to_plan": -3.0})
    assert pd.isna(churn["milestone_id"]) and pd.isna(churn["probability"]) and churn["client_id"] == "C1"
    assert churn["as_of"] == pd.Timestamp("2023-06-01 10:00") and churn["drivers"] == []
    assert (got["first_served_at"] == pd.Timestamp("2023-06-01 09:00")).all()


def test_a_normal_exit_writes_what_waits(tmp_path):
    """SIGTERM turned into an interpreter exit (as the server does): atexit closes the log; nothing is lost."""
    url = url_of(tmp_path / "p.db")
    script = f"""
import os, signal, sys, time
from eqsms.predlog import PredictionLog, PredictionRecord, Served
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
log = PredictionLog({url!r}, flush_seconds=60, batch_rows=10_000)  # nothing is due before the exit
for c in range(50):
    log.record([PredictionRecord(model="delay", model_version="1", milestone_id=f"M{{c}}-{{i}}") for i in range(10)],
               Served("batch", str(c)))
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(30)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, cwd=REPO, timeout=60, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert count(url, SERVED_ROWS) == count(url, "predictions") == 500


def test_a_record_the_database_cannot_take_is_counted_and_the_rest_written(log):
    assert log.record([rec(1), rec(2, level="severe"), rec(3)], Served("risk", "r"))
    assert log.flush(5)
    assert (log.stats()["written"], log.stats()["failed"]) == (2, 1)
    assert sorted(log.predictions()["milestone_id"]) == ["M1", "M3"] and len(log.served()) == 2


def _write_from_another_process(url: str, project: str, calls: int, per_call: int, barrier) -> None:
    log = PredictionLog(url, batch_rows=50, flush_seconds=0.02, busy_timeout_seconds=10.0)
    barrier.wait()
    for c in range(calls):
        log.record([rec(c * per_call + i, project=project) for i in range(per_call)], Served("batch", f"{project}{c}"))
    log.close()
    stats = log.stats()
    sys.exit(0 if stats["written"] == calls * per_call and not stats["failed"] + stats["dropped"] else 1)


def test_two_processes_writing_one_file_lose_nothing(tmp_path):
    url = url_of(tmp_path / "shared.db")  # new: both processes make the schema at once, too
    spawn = multiprocessing.get_context("spawn")  # no thread or engine carried over a fork
    barrier = spawn.Barrier(2)
    calls, per_call = 200, 10
    workers = [
        spawn.Process(target=_write_from_another_process, args=(url, f"P{w}", calls, per_call, barrier))
        for w in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0]
    assert count(url, SERVED_ROWS) == count(url, "predictions") == 2 * calls * per_call
    assert count(url, "schema_version") == 1


def test_a_locked_database_never_blocks_the_caller_and_nothing_is_lost(tmp_path):
    url = url_of(tmp_path / "p.db")
    log = PredictionLog(url, flush_seconds=0.05, busy_timeout_seconds=0.5)
    holder = sqlite3.connect(tmp_path / "p.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another connection holds the write lock
    took = []
    for c in range(100):
        started = time.perf_counter()
        assert log.record([rec(c * 3 + i) for i in range(3)], Served("risk", str(c)))
        took.append(time.perf_counter() - started)
    assert max(took) < 0.25  # a call that waited on the database would take the busy timeout (0.5 s)
    deadline = time.monotonic() + 10
    while log.stats()["errors"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = log.stats()
    assert stats["errors"] >= 1 and stats["written"] == 0 and stats["queued"] == 300 and stats["failed"] == 0
    holder.execute("ROLLBACK")
    holder.close()
    assert log.flush(10)
    assert log.stats()["written"] == 300 and log.stats()["failed"] == 0
    assert count(url, SERVED_ROWS) == 300
    log.close()


def test_an_unreachable_database_is_counted_never_raised(tmp_path):
    (tmp_path / "a_file").write_text("")
    url = url_of(tmp_path / "a_file" / "below" / "p.db")  # its folder cannot be made
    started = time.perf_counter()
    log = PredictionLog(url, flush_seconds=0.05)  # opens without raising; the writer keeps trying
    assert log.record([rec(1), rec(2)], Served("risk", "r"))
    assert time.perf_counter() - started < 2
    assert not log.flush(0.3)
    assert log.stats()["queued"] == 2 and log.stats()["written"] == 0 and log.stats()["errors"] >= 1
    log.close(timeout=0.3)
    assert log.stats()["failed"] == 2 and log.stats()["queued"] == 0
    log.close()  # idempotent
    assert not log.record([rec(3)]) and log.stats()["dropped"] == 1  # closed: dropped, counted


def test_a_full_queue_drops_and_counts(tmp_path):
    (tmp_path / "a_file").write_text("")
    log = PredictionLog(url_of(tmp_path / "a_file" / "p.db"), max_queue_rows=10, flush_seconds=0.05)
    assert log.record([rec(i) for i in range(4)]) and log.record([rec(i) for i in range(4, 8)])
    assert not log.record([rec(i) for i in range(8, 12)])  # 12 > 10: the whole answer is dropped
    assert log.record([rec(12), rec(13)])  # 10 fits
    stats = log.stats()
    assert (stats["queued"], stats["dropped"]) == (10, 4)
    log.close(timeout=0.1)


# --------------------------------------------------------------------------------------------------- the schema
def _schema(path) -> tuple[list, list]:
    with sqlite3.connect(path) as conn:
        ddl = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        versions = conn.execute("SELECT version, applied_at FROM schema_version").fetchall()
    return ddl, versions


def test_an_empty_file_gets_the_current_schema_and_reopening_changes_nothing(tmp_path):
    path = tmp_path / "p.db"
    PredictionLog(url_of(path), **FAST).close()
    ddl, versions = _schema(path)
    assert [v for v, _ in versions] == list(range(1, SCHEMA_VERSION + 1))
    engine = sa.create_engine(url_of(path))
    inspector = sa.inspect(engine)
    for table in (
        predlog.PREDICTIONS,
        predlog.SERVED,
        predlog.ANSWER_PREDICTIONS,
        predlog.FEEDBACK,
        predlog.SCHEMA_VERSIONS,
    ):
        assert [c["name"] for c in inspector.get_columns(table.name)] == [c.name for c in table.columns]
    assert inspector.get_pk_constraint("predictions")["constrained_columns"] == ["key"]
    engine.dispose()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    PredictionLog(url_of(path), **FAST).close()
    assert _schema(path) == (ddl, versions)


def test_an_older_database_is_migrated_step_by_step(tmp_path):
    path = tmp_path / "p.db"
    engine = make_engine(url_of(path))
    assert migrate(engine) == 0
    steps = []

    def to_next(conn) -> None:
        steps.append(1)
        conn.execute(sa.text("CREATE INDEX ix_served_endpoint ON served (endpoint)"))

    assert migrate(engine, (*MIGRATIONS, to_next)) == SCHEMA_VERSION
    assert migrate(engine, (*MIGRATIONS, to_next)) == SCHEMA_VERSION + 1
    assert steps == [1]
    _, versions = _schema(path)
    assert [v for v, _ in versions] == list(range(1, SCHEMA_VERSION + 2))
    engine.dispose()


def test_a_database_from_newer_code_is_refused(tmp_path):
    path = tmp_path / "p.db"
    PredictionLog(url_of(path), **FAST).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (99, '2030-01-01 00:00:00')")
    with pytest.raises(SchemaError, match=rf"schema version 99; this code knows versions up to {SCHEMA_VERSION}"):
        PredictionLog(url_of(path), **FAST)


# ------------------------------------------------------------------------------------------------------ feedback
def test_feedback_is_checked_and_kept_beside_the_prediction(log):
    log.record([rec(1)], Served("risk", "r1"))
    key = prediction_key(
        model="defect_risk", model_version="3", data_fingerprint="fp1", as_of="2023-06-01", project_id="P1",
        milestone_id="M1", client_id="C1", features_hash="h1",
    )  # fmt: skip
    # not yet written when asked: add_feedback waits for the writer rather than refusing a key just served
    first = log.add_feedback("we disagree, the subcontractor was replaced", prediction_key=key, corrected_level="low")
    second = log.add_feedback(
        "slipped", project_id="P1", milestone_id="M9", model="delay", outcome_label=12.5, author="planner 7"
    )
    third = log.add_feedback(prediction_key=key, outcome_label=1)
    assert second == first + 1 and third == second + 1
    kept = log.feedback().set_index("id")
    assert kept.loc[first, ["milestone_id", "model", "kind", "corrected_level"]].tolist() == [
        "M1", "defect_risk", "override", "low",
    ]  # fmt: skip
    assert kept.loc[second, "kind"] == "override" and kept.loc[second, "outcome_label"] == 12.5
    assert pd.isna(kept.loc[second, "prediction_key"]) and kept.loc[third, "outcome_label"] == 1.0
    assert log.add_feedback("just a note", prediction_key=key) and log.feedback()["kind"].iloc[-1] == "note"
    assert len(log.feedback(model="delay")) == 1

    wrong = {
        "no key": ({"note": "hm", "prediction_key": "0" * 32}, "no prediction with key '0000"),
        "long note": ({"note": "x" * 2001, "prediction_key": key}, "at most 2,000"),
        "a level": ({"prediction_key": key, "corrected_level": "severe"}, "corrected_level 'severe'"),
        "nothing said": ({"prediction_key": key}, "needs a note"),
        "no target": ({"note": "hm", "project_id": "P1"}, "prediction_key, or a model and a project_id"),
        "no milestone": ({"note": "hm", "project_id": "P1", "model": "delay"}, "milestone_id"),
        "a model": ({"note": "hm", "project_id": "P1", "model": "nope"}, "model 'nope'"),
        "an outcome": ({"prediction_key": key, "outcome_label": 0.5}, "1 .it happened. or 0"),
        "other ids": ({"note": "hm", "prediction_key": key, "milestone_id": "M2"}, "milestone_id 'M2' is not"),
    }
    for name, (kwargs, message) in wrong.items():
        with pytest.raises(ValueError, match=message):
            log.add_feedback(**kwargs)
            pytest.fail(name)
    assert len(log.feedback()) == 4


def test_readers_filter_by_time_and_model(log):
    log.record([rec(1)], Served("risk", "a", at=datetime(2023, 6, 1)))
    log.record([rec(2, model="delay")], Served("worklist", "b", at=datetime(2023, 6, 2)))
    assert log.flush(5)
    assert log.predictions(since="2023-06-02")["milestone_id"].tolist() == ["M2"]
    assert log.predictions(until=datetime(2023, 6, 2, tzinfo=UTC))["milestone_id"].tolist() == ["M1"]
    assert log.predictions(model="delay")["model"].tolist() == ["delay"]
    assert log.served(endpoint="worklist")["request_id"].tolist() == ["b"]
    empty = log.predictions(since="2030-01-01")
    assert empty.empty and list(empty.columns) == [c.name for c in predlog.PREDICTIONS.columns]
    assert empty["probability"].dtype == float and empty["as_of"].dtype.kind == "M"


# ------------------------------------------------------------------------------------------------------ settings
def test_from_settings_honours_off_and_the_default_path(tmp_path, monkeypatch):
    monkeypatch.setenv("EQSMS_PREDICTION_LOG_URL", "OFF")
    off = from_settings(Settings(work_dir=tmp_path))
    assert isinstance(off, NullLog) and not off.enabled
    assert off.record([rec(1)], Served("risk")) is False and off.flush() and off.stats()["written"] == 0
    assert off.predictions().empty and off.served().empty and off.feedback().empty
    with pytest.raises(LogDisabled):
        off.add_feedback("hm", prediction_key="k")
    off.close()

    monkeypatch.delenv("EQSMS_PREDICTION_LOG_URL")
    monkeypatch.setenv("EQSMS_PREDICTION_LOG_MAX_QUEUE", "5")
    log = from_settings(Settings(work_dir=tmp_path / "work"))
    assert log.enabled and log.url == f"sqlite:///{tmp_path / 'work' / 'predictions.db'}"
    assert (tmp_path / "work" / "predictions.db").exists()
    assert not log.record([rec(i) for i in range(6)])  # the queue's bound came from the environment
    log.close()


def test_a_password_is_never_shown():
    shown = predlog.safe_url("postgresql+psycopg://eqsms:s3cret@db.example:5432/risk")
    assert "s3cret" not in shown and "***" in shown and "db.example" in shown
    assert "s3cret" not in predlog.safe_url("not a url with s3cret")


def test_the_schema_and_the_insert_are_postgresql_too():
    """A team's log is PostgreSQL (no server here: the statements are compiled, not run)."""
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()
    ddl = "\n".join(
        str(sa.schema.CreateTable(table).compile(dialect=dialect))
        for table in (predlog.PREDICTIONS, predlog.SERVED, predlog.ANSWER_PREDICTIONS, predlog.FEEDBACK)
    )
    assert "id BIGSERIAL" in ddl and "REFERENCES predictions (key)" in ddl
    assert str(predlog._insert_ignore("postgresql").compile(dialect=dialect)).endswith("ON CONFLICT (key) DO NOTHING")
