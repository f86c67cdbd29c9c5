"""The synthetic world: deterministic, in the contract, true to its snapshot, with a known and learnable truth."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pathspec import PathSpec
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from eqsms.settings import get_settings
from features.contract import TABLES, Error, Kind
from features.validate import validate_tables
from world import generate_world, simulate_world
from world.shift import DEFAULT_SIZE, KINDS, NEW_REGION_FALL, NEW_REGION_NAME, Shift

DAY = pd.Timedelta(days=1)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def settings():
    return get_settings()


@pytest.fixture(scope="module")
def world(settings):
    return simulate_world(1000, seed=11, settings=settings)


@pytest.fixture(scope="module")
def dirty_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("dirty")
    report = generate_world(n_projects=250, seed=5, out_dir=out, fmt="csv", dirty=0.05)
    return out, report


def _oracle(world, target):
    return world.oracle[world.oracle["target"] == target]


# --- determinism --------------------------------------------------------------------------------------------------


def test_same_seed_same_world_and_different_seed_different_world():
    a, b, c = simulate_world(120, seed=3), simulate_world(120, seed=3), simulate_world(120, seed=4)
    for name in TABLES:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name])
    pd.testing.assert_frame_equal(a.oracle, b.oracle)
    assert not a.tables["milestones"].equals(c.tables["milestones"])
    assert not a.oracle["truth"].equals(c.oracle["truth"])


@pytest.mark.parametrize(("fmt", "dirty"), [("csv", 0.0), ("parquet", 0.0), ("csv", 0.05)])
def test_files_are_byte_identical_per_seed(tmp_path, fmt, dirty):
    for run in ("a", "b"):
        generate_world(n_projects=60, seed=9, out_dir=tmp_path / run, fmt=fmt, dirty=dirty)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert {f"{t}.{fmt}" for t in TABLES} | {f"oracle.{fmt}"} <= set(names)
    assert ("faults.csv" in names) == bool(dirty)
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_dirty_parquet_is_refused(tmp_path):
    with pytest.raises(ValueError, match="CSV"):
        generate_world(n_projects=20, seed=1, out_dir=tmp_path, fmt="parquet", dirty=0.1)


def test_the_cli_writes_the_world_of_its_options(tmp_path):
    from eqsms.cli import app

    result = CliRunner().invoke(app, ["generate", "--projects", "40", "--seed", "2", "--out", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    generate_world(n_projects=40, seed=2, out_dir=tmp_path / "lib")
    names = sorted(p.name for p in (tmp_path / "lib").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "cli").iterdir())
    for name in names:
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "lib" / name).read_bytes(), name


# --- settings -----------------------------------------------------------------------------------------------------


def test_settings_are_read_when_the_world_is_simulated(monkeypatch):
    monkeypatch.setenv("EQSMS_GENERATE_START", "2021-03-01")
    awarded = simulate_world(30, seed=1).tables["projects"]["awarded_on"]
    assert awarded.min() >= pd.Timestamp("2021-03-01")
    monkeypatch.delenv("EQSMS_GENERATE_START")
    assert simulate_world(30, seed=1).tables["projects"]["awarded_on"].min() < pd.Timestamp("2021-03-01")


def test_the_churn_window_and_late_tolerance_come_from_settings(world, settings):
    other = settings.model_copy(update={"churn_window_days": 200, "late_tolerance_days": 20.0})
    changed = simulate_world(1000, seed=11, settings=other)
    rows = _oracle(changed, "churn").set_index("row_id")
    expected = _churn_labels(changed, 200)
    assert set(rows.index) == set(expected.index) and len(rows) > len(_oracle(world, "churn"))
    assert (rows["label"] == expected.loc[rows.index]).all()
    # p_late is the chance of slipping beyond the tolerance simulated with, and the reported late rate uses it.
    delay = _oracle(changed, "delay")
    late = delay["label"] > 20
    assert changed.rates()["late_rate"] == late.mean() < world.rates()["late_rate"]
    assert abs(delay["p_late"].mean() - late.mean()) < 0.03


# --- packaging ----------------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:GitWildMatchPattern:DeprecationWarning")  # the pattern style BentoML reads
def test_the_world_does_not_ship_in_the_bento():
    """The bento carries features, training and serving; none of them imports world, and no include takes it."""
    bentofile = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    include = PathSpec.from_lines("gitwildmatch", bentofile["include"])
    world_files = [str(p.relative_to(ROOT)) for p in (ROOT / "world").glob("*.py")]
    assert world_files and not any(include.match_file(f) for f in world_files)
    assert include.match_file("features/pit.py")
    for package in ("features", "training", "serving"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                assert not any(n == "world" or n.startswith("world.") for n in names), path


# --- the contract -------------------------------------------------------------------------------------------------


def test_tables_have_exactly_the_contract_columns_and_values(world):
    for name, spec in TABLES.items():
        frame = world.tables[name]
        assert list(frame.columns) == [c.name for c in spec.columns], name
        assert not frame.duplicated(list(spec.key)).any(), name
        for col in spec.columns:
            s = frame[col.name]
            if col.required:
                assert s.notna().all(), (name, col.name)
            if col.kind in (Kind.DATE, Kind.TIMESTAMP):
                assert pd.api.types.is_datetime64_any_dtype(s), (name, col.name)
            if col.kind == Kind.DATE:
                assert (s.dropna() == s.dropna().dt.normalize()).all(), (name, col.name)
            if col.min is not None:
                assert (s.dropna() >= col.min).all(), (name, col.name)
            if col.max is not None:
                assert (s.dropna() <= col.max).all(), (name, col.name)
            if col.allowed is not None:
                assert set(s.dropna()) <= set(col.allowed), (name, col.name)
        for earlier, later in spec.ordered:
            both = frame[[earlier, later]].dropna()
            assert (both[later] >= both[earlier]).all(), (name, earlier, later)


def test_csv_formats(tmp_path):
    generate_world(n_projects=40, seed=2, out_dir=tmp_path, fmt="csv")
    raw = {t: pd.read_csv(tmp_path / f"{t}.csv", dtype=str, keep_default_na=False) for t in TABLES}
    for name, spec in TABLES.items():
        assert list(raw[name].columns) == [c.name for c in spec.columns]
        for col in spec.columns:
            values = raw[name][col.name]
            values = values[values != ""]
            pattern = {
                Kind.DATE: r"\d{4}-\d{2}-\d{2}",
                Kind.TIMESTAMP: r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}",
                Kind.BOOL: r"true|false",
            }.get(col.kind)
            if pattern:
                assert values.str.fullmatch(pattern).all(), (name, col.name)


def test_parquet_uses_native_types(tmp_path):
    generate_world(n_projects=30, seed=2, out_dir=tmp_path, fmt="parquet")
    ms = pd.read_parquet(tmp_path / "milestones.parquet")
    ins = pd.read_parquet(tmp_path / "inspections.parquet")
    assert pd.api.types.is_datetime64_any_dtype(ms["planned_date"])
    assert pd.api.types.is_bool_dtype(ms["first_pass_accepted"])
    assert pd.api.types.is_integer_dtype(ins["defects_found"])
    assert pd.api.types.is_datetime64_any_dtype(ins["closed_at"])


# --- the story ----------------------------------------------------------------------------------------------------


def test_label_rates_are_in_their_target_ranges(world):
    rates = world.rates()
    assert 0.08 <= rates["defect_risk_rate"] <= 0.20
    assert 0.40 <= rates["late_rate"] <= 0.60
    assert 0.20 <= rates["churn_rate"] <= 0.40
    assert rates["slip_p90"] > 3 * max(rates["slip_median"], 1)  # a heavy right tail


def test_the_truth_is_informative_but_far_from_perfect(world, settings):
    for target in ("defect_risk", "churn"):
        rows = _oracle(world, target)
        auc = roc_auc_score(rows["label"] > 0.5, rows["truth"])
        assert 0.65 <= auc <= 0.90, (target, auc)
        # The truth is calibrated: it is the probability the label was drawn with.
        assert abs(rows["truth"].mean() - rows["label"].mean()) < 0.03, target
    delay = _oracle(world, "delay")
    late = delay["label"] > settings.late_tolerance_days
    assert abs(delay["truth"].mean() - delay["label"].mean()) < 3.0
    assert abs(delay["p_late"].mean() - late.mean()) < 0.03
    assert 0.6 <= roc_auc_score(late, delay["p_late"]) < 1.0


def test_milestones_run_in_order_and_end_with_the_handover(world):
    ms = world.tables["milestones"]
    g = ms.groupby("project_id", sort=False)
    assert g.size().between(4, 8).all()
    assert (g["sequence"].transform(lambda s: s.to_numpy() == np.arange(1, len(s) + 1)).all()).all()
    assert (g["kind"].last() == "handover").all()
    assert (g["planned_date"].diff().dropna() > pd.Timedelta(0)).all()
    assert (g["actual_date"].diff().dropna() > pd.Timedelta(0)).all()
    projects = world.tables["projects"].set_index("project_id")
    handover = ms[ms["kind"] == "handover"].set_index("project_id")
    assert (handover["planned_date"] == projects.loc[handover.index, "planned_end"]).all()
    ends = projects.loc[handover.index, "actual_end"]
    assert (handover["actual_date"].isna() == ends.isna()).all()
    assert (handover["actual_date"].dropna() == ends.dropna()).all()
    months = (projects["planned_end"] - projects["planned_start"]).dt.days / 30.44
    assert months.between(5.9, 30.1).all()


def test_a_clients_projects_do_not_overlap(world):
    p = world.tables["projects"].sort_values(["client_id", "awarded_on"])
    previous_end = p.groupby("client_id")["actual_end"].shift(1)
    has_previous = p.groupby("client_id").cumcount() > 0
    assert previous_end[has_previous].notna().all()
    assert (p.loc[has_previous, "awarded_on"] > previous_end[has_previous]).all()
    assert (p["planned_start"] > p["awarded_on"]).all()


def test_resources_are_weekly_amounts_and_spi_falls_on_slipping_projects(world):
    r = world.tables["resources"]
    assert (r["week_start"].dt.day_of_week == 0).all()
    assert (r["overtime_hours"] <= r["labour_actual_hours"]).all()
    assert (r["deliveries_late"] <= r["deliveries_planned"]).all()
    p = world.tables["projects"].set_index("project_id")
    done = p[p["actual_end"] + 7 * DAY <= world.snapshot]  # handed over, its last week reported
    # Weekly amounts, not cumulative: a handed-over project has earned its budget, 90% of the contract value.
    ev = r.groupby("project_id")["earned_value"].sum().loc[done.index]
    assert np.allclose(ev / done["contract_value"], 0.9, atol=0.001)
    # SPI over the first half of the plan: below 1 where the project ends late, above where it ends early.
    half = r["project_id"].map(p["planned_start"] + (p["planned_end"] - p["planned_start"]) / 2)
    first = r[r["week_start"] < half].groupby("project_id")[["earned_value", "planned_value"]].sum()
    spi = (first["earned_value"] / first["planned_value"]).loc[done.index]
    slip = (done["actual_end"] - done["planned_end"]).dt.days
    assert spi[slip > 60].mean() < 0.95
    assert spi[slip < 0].mean() > 1.0


def test_inspections_and_complaints_carry_signal(world):
    ms = world.tables["milestones"].dropna(subset=["actual_date"])
    ins = world.tables["inspections"]
    # The share of failed inspections in the 60 days before a milestone tracks its first-pass failure.
    joined = ms[["milestone_id", "project_id", "actual_date", "first_pass_accepted"]].merge(ins, on="project_id")
    window = joined[
        (joined["inspected_at"] < joined["actual_date"]) & (joined["inspected_at"] >= joined["actual_date"] - 60 * DAY)
    ]
    fail_share = window.assign(fail=window["result"] == "fail").groupby("milestone_id")["fail"].mean()
    failed = ~ms.set_index("milestone_id")["first_pass_accepted"].loc[fail_share.index].astype(bool)
    assert roc_auc_score(failed, fail_share) > 0.6
    # Handovers with more complaints churn more.
    churn = _oracle(world, "churn").set_index("row_id")["label"]
    complaints = world.tables["complaints"]["project_id"].value_counts().reindex(churn.index, fill_value=0)
    assert churn[complaints >= 2].mean() > churn[complaints == 0].mean() + 0.1


# --- the snapshot and the oracle ----------------------------------------------------------------------------------


def test_nothing_after_the_snapshot(world):
    snap = world.snapshot
    p = world.tables["projects"]
    assert len(p) == 1000 and p["awarded_on"].max() == snap
    assert p["actual_end"].isna().any(), "some projects still run at the snapshot"
    for name, spec in TABLES.items():
        frame = world.tables[name]
        for col in spec.columns:
            if col.kind == Kind.DATE:
                baseline = col.name in ("planned_start", "planned_end", "planned_date")  # plans may lie ahead
                assert baseline or (frame[col.name].dropna() <= snap).all(), (name, col.name)
            elif col.kind == Kind.TIMESTAMP:
                assert (frame[col.name].dropna() < snap + DAY).all(), (name, col.name)
    assert (world.tables["resources"]["week_start"] + 7 * DAY <= snap + DAY).all()
    ms = world.tables["milestones"]
    assert (ms["actual_date"].isna() == ms["first_pass_accepted"].isna()).all()
    open_projects = set(ms.loc[ms["actual_date"].isna(), "project_id"])
    assert open_projects == set(p.loc[p["actual_end"].isna(), "project_id"])


def test_oracle_covers_exactly_the_labelled_rows_with_their_labels(world, settings):
    ms = world.tables["milestones"].set_index("milestone_id")
    reached = ms.dropna(subset=["actual_date"])
    for target in ("defect_risk", "delay"):
        rows = _oracle(world, target).set_index("row_id")
        assert rows.index.is_unique and set(rows.index) == set(reached.index), target
    defect = _oracle(world, "defect_risk").set_index("row_id")
    assert (defect["label"] == (~reached["first_pass_accepted"].astype(bool)).astype(float).loc[defect.index]).all()
    assert defect["truth"].between(0, 1).all() and defect["p_late"].isna().all()
    delay = _oracle(world, "delay").set_index("row_id")
    slip = (reached["actual_date"] - reached["planned_date"]).dt.days.loc[delay.index]
    assert (delay["label"] == slip).all() and delay["p_late"].between(0, 1).all()

    # Churn: every handover whose window is over, labelled from the award dates in the data.
    rows = _oracle(world, "churn").set_index("row_id")
    expected = _churn_labels(world, settings.churn_window_days)
    assert set(rows.index) == set(expected.index) and len(rows) > 100
    assert (rows["label"] == expected.loc[rows.index]).all()
    assert rows["truth"].between(0, 1).all()


def _churn_labels(world, window_days: int) -> pd.Series:
    """Churn labels from the data alone: no award by the same client within ``window_days`` after a handover,
    for the handovers whose window is over at the snapshot."""
    p = world.tables["projects"].sort_values(["client_id", "awarded_on"])
    next_award = p.groupby("client_id")["awarded_on"].shift(-1)
    window = window_days * DAY
    complete = p["actual_end"] + window <= world.snapshot
    churned = ~((next_award > p["actual_end"]) & (next_award <= p["actual_end"] + window))
    return churned[complete].astype(float).set_axis(p.loc[complete, "project_id"])


# --- a shift from a date (world.shift) ---------------------------------------------------------------------------

SHIFT_FROM = "2021-06-01"
SHIFT_TIMES = {  # each table's own time: a row before the shift's date is a fact from before it
    "projects": "awarded_on",
    "milestones": "actual_date",
    "inspections": "inspected_at",
    "resources": "week_start",
    "complaints": "received_at",
    "surveys": "surveyed_at",
}


@pytest.fixture(scope="module")
def shifted(settings):
    """The module's world (1,000 projects, seed 11) with each kind of shift from SHIFT_FROM, at its default size."""
    return {kind: simulate_world(1000, seed=11, settings=settings, shift=Shift(kind, SHIFT_FROM)) for kind in KINDS}


def _split(frame: pd.DataFrame, column: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    before = frame[column] < pd.Timestamp(SHIFT_FROM)
    return frame[before].reset_index(drop=True), frame[~before & frame[column].notna()].reset_index(drop=True)


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_shift_changes_nothing_before_its_date(world, shifted, kind):
    for name, column in SHIFT_TIMES.items():
        pd.testing.assert_frame_equal(
            _split(shifted[kind].tables[name], column)[0], _split(world.tables[name], column)[0]
        )
    # The plans, the schedule and the clients' side are the control's whole: the same seed, the same world (but the
    # region of the projects a new-region shift builds in the new region, all awarded from the date: tested below).
    for name in ("projects", "complaints", "surveys"):
        same = [c for c in world.tables[name] if not (kind == "new-region" and c == "region")]
        pd.testing.assert_frame_equal(shifted[kind].tables[name][same], world.tables[name][same])
    columns = ["milestone_id", "project_id", "kind", "sequence", "planned_date", "actual_date"]
    pd.testing.assert_frame_equal(shifted[kind].tables["milestones"][columns], world.tables["milestones"][columns])
    assert shifted[kind].snapshot == world.snapshot


def test_worse_workmanship_fails_more_from_its_date_and_the_oracle_says_so(world, shifted):
    shift = shifted["workmanship"]
    rates = {}
    for name, w in (("control", world), ("shifted", shift)):
        before, after = _split(w.tables["milestones"], "actual_date")
        rates[name] = [float((~frame["first_pass_accepted"].astype(bool)).mean()) for frame in (before, after)]
    assert rates["shifted"][0] == rates["control"][0]
    assert rates["shifted"][1] > rates["control"][1] + 0.08, rates  # about 0.13 -> 0.30 at 1 sd

    _, control_after = _split(world.tables["inspections"], "inspected_at")
    _, shifted_after = _split(shift.tables["inspections"], "inspected_at")
    assert len(shifted_after) == len(control_after)  # the same inspections, finding more
    assert shifted_after["defects_found"].mean() > 1.5 * control_after["defects_found"].mean()  # exp(0.6) on average
    assert (shifted_after["result"] == "fail").mean() > (control_after["result"] == "fail").mean() + 0.08

    # The resource weeks from the date take exp(0.08) times the hours for the same earned value (1 sd less
    # workmanship in the effort), with more overtime, at a higher cost.
    (_, control_res), (_, shifted_res) = (_split(w.tables["resources"], "week_start") for w in (world, shift))
    assert (shifted_res["earned_value"] == control_res["earned_value"]).all()
    ratio = shifted_res["labour_actual_hours"].sum() / control_res["labour_actual_hours"].sum()
    assert abs(ratio - np.exp(0.08)) < 0.002, ratio
    assert shifted_res["overtime_hours"].sum() > 1.1 * control_res["overtime_hours"].sum()
    assert shifted_res["actual_cost"].sum() > control_res["actual_cost"].sum()

    # The oracle holds the shifted truth: higher from the date, the same before it, and still what the labels were
    # drawn with; delay and churn are not shifted.
    reached = shift.tables["milestones"].set_index("milestone_id")["actual_date"]
    truth = {name: _oracle(w, "defect_risk").set_index("row_id")["truth"] for name, w in (("c", world), ("s", shift))}
    after = (reached.loc[truth["s"].index] >= pd.Timestamp(SHIFT_FROM)).to_numpy()
    assert (truth["s"][~after] == truth["c"][~after]).all()
    assert truth["s"][after].mean() > truth["c"][after].mean() + 0.08
    labels = _oracle(shift, "defect_risk")["label"][after]
    assert abs(truth["s"][after].mean() - labels.mean()) < 0.03
    for target in ("delay", "churn"):
        pd.testing.assert_frame_equal(_oracle(shift, target), _oracle(world, target))


def test_missing_resource_reports_go_dark_from_their_date_for_a_share_of_projects(world, shifted):
    shift = shifted["missing-resources"]
    (_, control_res), (_, shifted_res) = (_split(w.tables["resources"], "week_start") for w in (world, shift))
    kept = len(shifted_res) / len(control_res)
    assert abs(kept - (1 - DEFAULT_SIZE["missing-resources"])) < 0.06, kept
    # A project that goes dark sends no week from the date; the others send every one.
    sent = shifted_res.groupby("project_id").size()
    expected = control_res.groupby("project_id").size()
    assert (sent == expected.loc[sent.index]).all()
    for name in TABLES:
        if name != "resources":
            pd.testing.assert_frame_equal(shift.tables[name], world.tables[name])
    pd.testing.assert_frame_equal(shift.oracle, world.oracle)  # nothing that happened changed


def test_a_new_region_takes_a_share_of_later_projects_whose_work_is_worse(world, shifted, settings):
    shift = shifted["new-region"]
    before, after = _split(shift.tables["projects"], "awarded_on")
    _, control_after = _split(world.tables["projects"], "awarded_on")
    assert NEW_REGION_NAME not in set(world.tables["projects"]["region"])  # a region the firm never worked in
    moved = (after["region"] == NEW_REGION_NAME).to_numpy()
    assert len(after) > 400 and abs(moved.mean() - DEFAULT_SIZE["new-region"]) < 0.05, moved.mean()
    assert (after["region"][~moved] == control_after["region"][~moved]).all()  # the others keep theirs
    # The contract takes the new value as it is (region is an open set): no project quarantined.
    validated = validate_tables(shift.tables, settings=settings)
    assert len(validated.quarantine["projects"]) == 0
    assert NEW_REGION_NAME in set(validated.tables["projects"]["region"])

    # Its projects' work is worse (NEW_REGION_FALL sd): more defects found, first-pass acceptances likelier to fail,
    # and the oracle holds that truth; every other project, and its inspections, is as in the control.
    in_new = set(after.loc[moved, "project_id"])
    (ins, control_ins), (ms, control_ms) = (
        (shift.tables[name], world.tables[name]) for name in ("inspections", "milestones")
    )
    new_ins = ins["project_id"].isin(in_new).to_numpy()
    pd.testing.assert_frame_equal(ins[~new_ins], control_ins[~new_ins])
    defects = ins.loc[new_ins, "defects_found"].mean() / control_ins.loc[new_ins, "defects_found"].mean()
    assert abs(defects - np.exp(0.6 * NEW_REGION_FALL)) < 0.15, defects
    truth = {name: _oracle(w, "defect_risk").set_index("row_id")["truth"] for name, w in (("c", world), ("s", shift))}
    new_ms = ms.set_index("milestone_id").loc[truth["s"].index, "project_id"].isin(in_new).to_numpy()
    assert new_ms.sum() > 200
    assert (truth["s"][~new_ms] == truth["c"][~new_ms]).all()
    assert truth["s"][new_ms].mean() > truth["c"][new_ms].mean() + 0.04  # about 0.12 -> 0.19
    assert (truth["s"][new_ms] >= truth["c"][new_ms]).all()  # each milestone's chance, from the same uniform
    labels, control_labels = (_oracle(w, "defect_risk")["label"].to_numpy()[new_ms] for w in (shift, world))
    assert (labels >= control_labels).all() and abs(truth["s"][new_ms].mean() - labels.mean()) < 0.04
    for target in ("delay", "churn"):
        pd.testing.assert_frame_equal(_oracle(shift, target), _oracle(world, target))


def test_a_shift_is_checked_and_the_cli_writes_the_shifted_world(tmp_path):
    from eqsms.cli import app

    with pytest.raises(ValueError, match="not one of"):
        Shift("weather", SHIFT_FROM)
    with pytest.raises(ValueError, match="not a date"):
        Shift("workmanship", "2021-13-01")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Shift("missing-resources", SHIFT_FROM, 1.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Shift("new-region", SHIFT_FROM, 1.5)
    runner = CliRunner()
    base = ["generate", "--projects", "40", "--seed", "2", "--out", str(tmp_path / "cli")]
    result = runner.invoke(app, [*base, "--shift", "workmanship", "--shift-from", "2018-06-01", "--shift-size", "2"])
    assert result.exit_code == 0, result.output
    generate_world(n_projects=40, seed=2, out_dir=tmp_path / "lib", shift=Shift("workmanship", "2018-06-01", 2.0))
    for path in sorted((tmp_path / "lib").iterdir()):
        assert (tmp_path / "cli" / path.name).read_bytes() == path.read_bytes(), path.name
    alone = runner.invoke(app, [*base, "--shift", "workmanship"])
    assert alone.exit_code == 2 and "--shift-from" in alone.output
    unknown = runner.invoke(app, [*base, "--shift", "weather", "--shift-from", "2018-06-01"])
    assert unknown.exit_code == 2


# --- a dirty export -----------------------------------------------------------------------------------------------


def _bad(spec_col, value: str, error: str) -> bool:
    """Whether a CSV value shows the fault the manifest names."""
    if error == Error.UNPARSEABLE_DATE:
        return pd.isna(pd.to_datetime(value, errors="coerce", format="ISO8601"))
    number = float(value)
    if error == Error.NEGATIVE_VALUE:
        return number < 0
    return number < spec_col.min or (spec_col.max is not None and number > spec_col.max)


def test_dirty_manifest_names_real_faults_at_about_the_rate(dirty_dir):
    out, report = dirty_dir
    faults = pd.read_csv(out / "faults.csv")
    assert list(faults.columns) == ["table", "row", "column", "error", "cause"]
    assert set(faults["error"]) <= {str(e) for e in Error}
    assert not faults.duplicated(["table", "row"]).any(), "at most one fault a row"
    raw = {t: pd.read_csv(out / f"{t}.csv", dtype=str, keep_default_na=False) for t in TABLES}
    known = set(raw["projects"]["project_id"])
    injected = faults[faults["cause"] == "injected"]
    assert report.faults == len(injected)
    for table, spec in TABLES.items():
        frame = raw[table]
        mine = injected[injected["table"] == table]
        assert mine["row"].between(1, len(frame)).all()
        rate = len(mine) / len(frame)
        expected = 0.05 * (0.2 if table == "projects" else 1.0)
        assert abs(rate - expected) <= 3 * np.sqrt(expected / len(frame)) + 0.005, (table, rate)
        repeated = frame.duplicated(list(spec.key), keep="first").to_numpy()  # the key of an earlier row again
        for row in mine.itertuples():
            record = frame.iloc[row.row - 1]
            if row.error == Error.UNKNOWN_PROJECT:
                assert record["project_id"] not in known
            elif row.error == Error.DUPLICATE_ID:
                assert repeated[row.row - 1], (table, row)
            else:
                assert _bad(spec.column(row.column), record[row.column], row.error), (table, row)


def test_rows_outside_the_manifest_are_clean(dirty_dir):
    out, _ = dirty_dir
    faults = pd.read_csv(out / "faults.csv")
    raw = {t: pd.read_csv(out / f"{t}.csv", dtype=str, keep_default_na=False) for t in TABLES}
    listed = {(t, r) for t, r in zip(faults["table"], faults["row"], strict=True)}
    assert (faults["cause"] == "injected").all()  # a project's fault is in an optional column: no child is rejected
    for table, spec in TABLES.items():
        frame = raw[table]
        clean = frame[[(table, i + 1) not in listed for i in range(len(frame))]]
        assert not clean.duplicated(list(spec.key)).any(), table
        if spec.references_project:
            assert clean["project_id"].isin(raw["projects"]["project_id"]).all(), table
        for col in spec.columns:
            values = clean[col.name][clean[col.name] != ""]
            if col.kind in (Kind.DATE, Kind.TIMESTAMP):
                assert pd.to_datetime(values, format="ISO8601").notna().all(), (table, col.name)
            elif col.kind in (Kind.FLOAT, Kind.INT):
                numbers = values.astype(float)
                assert (numbers >= (col.min or 0)).all(), (table, col.name)
                if col.max is not None:
                    assert (numbers <= col.max).all(), (table, col.name)
