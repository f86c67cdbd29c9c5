"""The service's sets and reloads in process (serving/state.py), with a stand-in engine: a folder that changes while
it is read is not taken, a reload that fails keeps the old set, and what starts a reload."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from eqsms.settings import get_settings
from serving import state
from serving.runtime import NotReady


class StandIn:
    """What the holder asks of an engine: its model versions and newest fact."""

    def __init__(self, versions: dict[str, str]) -> None:
        self._versions = versions
        self.latest_fact = pd.Timestamp("2023-11-22 21:24")

    def versions(self) -> dict[str, str]:
        return self._versions


@pytest.fixture
def data(tmp_path) -> Path:
    folder = tmp_path / "data"
    shutil.copytree(get_settings().data_dir, folder)
    return folder


@pytest.fixture
def env(data, tmp_path, monkeypatch):
    monkeypatch.setenv("EQSMS_DATA_DIR", str(data))
    monkeypatch.setenv("EQSMS_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setattr(state, "Snapshots", lambda engine, fingerprint: None)  # the snapshot is the engine's business


def test_the_fingerprint_follows_the_files(data):
    before = state.folder_fingerprint(data)
    assert state.folder_fingerprint(data) == before
    (data / "complaints.csv").write_text((data / "complaints.csv").read_text() + "\n")
    assert state.folder_fingerprint(data) != before
    with pytest.raises(NotReady, match="cannot be read"):
        state.folder_fingerprint(data / "nowhere")


def test_a_folder_written_while_it_is_read_is_not_taken(env, data):
    def build(settings):  # an export being written while the engine reads it
        (data / "inspections.csv").write_text("inspection_id\n")
        return StandIn({"defect_risk": "1"})

    with pytest.raises(NotReady, match="changed while it was read"):
        state.load(get_settings(), build)


def test_a_reload_that_fails_keeps_the_old_set_and_says_why(env):
    versions = iter([{"defect_risk": "1"}, {"defect_risk": "2"}])
    fail = {"now": False}

    def build(settings):
        if fail["now"]:
            raise NotReady("the data folder cannot be used: projects: the table is missing")
        return StandIn(next(versions))

    holder = state.Holder.start(get_settings(), build)
    first = holder.current
    fail["now"] = True
    outcome = holder.reload("test")
    assert outcome["ok"] is False and "projects" in outcome["error"]
    assert holder.current is first and holder.last_reload == outcome
    fail["now"] = False
    outcome = holder.reload("test")
    assert outcome["ok"] and outcome["changed"] == ["defect_risk v1 -> v2"]
    assert holder.current is not first and holder.current.engine.versions() == {"defect_risk": "2"}


def test_what_starts_a_reload(env, data):
    holder = state.Holder.start(get_settings(), lambda settings: StandIn({"defect_risk": "1"}))
    settings = get_settings()
    assert holder.what_changed(settings, models=False) is None
    other = state.Holder.start(settings, lambda s: StandIn({"defect_risk": "1"}))
    other.ask_every_worker(settings)  # another worker was asked
    assert holder.what_changed(settings, models=False) == "asked for"
    assert holder.what_changed(settings, models=False) is None  # once
    (data / "surveys.csv").write_text((data / "surveys.csv").read_text() + "\n")
    assert holder.what_changed(settings, models=False) == "new data"
    shutil.rmtree(data)
    assert holder.what_changed(settings, models=False) is None  # a missing folder is no new export
