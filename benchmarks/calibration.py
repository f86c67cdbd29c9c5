"""Benchmark: calibrators on the same raw test scores (issue 10 §4: calibration must not cost ranking).

For each seed, generates a world (default 10,000 projects), builds the defect_risk and churn datasets, splits them
by time as training does, fits the booster on the train rows (the target's strategy, ``training.kinds``) and scores the
calibration and test rows with it. Then fits each calibrator on the same raw calibration scores and compares them
on the same raw test scores:

- ``uncalibrated``: the booster's probability;
- ``isotonic``: the calibrator before issue 10 §4 (on 1,000 calibration rows or more; sigmoid below);
- ``sigmoid``: Platt scaling on the logit, as before below 1,000 rows;
- ``centred_isotonic``: isotonic made strictly increasing by joining its blocks' centres on the logit scale (the
  obvious fix, not chosen);
- ``logit_spline``: what training fits now (``training.calibration``).

Reports ROC-AUC, PR-AUC, ECE, Brier and log loss (``training.metrics.classification``, as the model is reported),
the number of distinct test probabilities and the fit time, and the ECE the new calibrator's probabilities would
show if they were exactly right (its noise floor on so many test rows); checks the new calibrator against the
issue's targets (ECE <= 0.03, ROC-AUC and PR-AUC within 0.001 of the uncalibrated booster). A second table refits
the calibrators on the first n calibration rows (n = 250 .. 5,000) to show which does best on a small calibration
slice. Writes benchmarks/results/calibration.json.

    .venv/bin/python -m benchmarks.calibration [--projects 10000] [--seeds 11 12 13]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from eqsms.settings import Settings
from features.validate import load
from training import metrics
from training.bundle import Calibrator
from training.calibration import fit_calibrator
from training.kinds import strategy
from training.pipeline import datasets_from_data
from training.splits import time_split
from world import generate_world

RESULTS = Path(__file__).parent / "results" / "calibration.json"
TARGETS = {"ece": 0.03, "roc_auc_loss": 0.001, "pr_auc_loss": 0.001}
CLASSIFIERS = ["defect_risk", "churn"]
KEYS = ["roc_auc", "pr_auc", "ece", "brier", "log_loss"]
SMALL = (250, 500, 1000, 2000, 5000)


def isotonic(raw: np.ndarray, y: np.ndarray) -> Calibrator:
    """The calibrator of a large slice before issue 10 §4."""
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
    return Calibrator("isotonic", x=iso.X_thresholds_.tolist(), y=iso.y_thresholds_.tolist())


def sigmoid(raw: np.ndarray, y: np.ndarray) -> Calibrator:
    """The calibrator of a small slice before issue 10 §4."""
    platt = LogisticRegression(C=1e6).fit(Calibrator.logit(raw).reshape(-1, 1), y)
    return Calibrator("sigmoid", a=float(platt.coef_[0, 0]), b=float(platt.intercept_[0]))


def centred_isotonic(raw: np.ndarray, y: np.ndarray) -> Calibrator:
    """Isotonic regression's blocks joined at their centres (mean raw logit, block rate) on the logit scale, with
    a 0.01 slope beyond the end centres: strictly increasing, as calibrated as isotonic, no smoother."""
    order = np.argsort(raw, kind="stable")
    z, fitted = Calibrator.logit(raw[order]), IsotonicRegression().fit_transform(raw[order], y[order])
    starts = np.flatnonzero(np.r_[True, np.diff(fitted) != 0])
    centres = np.add.reduceat(z, starts) / np.diff(np.r_[starts, len(z)])
    rates = np.clip(fitted[starts], 0.5 / len(z), 1 - 0.5 / len(z))  # half a case of the whole slice off 0 and 1
    values = Calibrator.logit(rates).tolist()
    return Calibrator("logit_spline", x=centres.tolist(), y=values, slope_below=0.01, slope_above=0.01)


CALIBRATORS: dict[str, Callable[[np.ndarray, np.ndarray], Calibrator]] = {
    "isotonic": isotonic,
    "sigmoid": sigmoid,
    "centred_isotonic": centred_isotonic,
    "logit_spline": fit_calibrator,
}


def raw_scores(world: Path, settings: Settings) -> dict[str, dict[str, np.ndarray]]:
    """Each classifier's raw booster scores and labels on its calibration and test rows."""
    out = {}
    for name, ds in datasets_from_data(load(world), settings, CLASSIFIERS).items():
        split = time_split(ds.frame["as_of"], settings.train_share, settings.calibration_share)
        X, y = ds.frame[ds.feature_columns], ds.frame[ds.spec.label].to_numpy().astype(int)
        tr, cal, te = split.train, split.calibration, split.test
        bundle = strategy(ds.spec.kind).fit(ds.spec, ds, split, settings)  # the booster learns from train only
        raw = {part: bundle.booster.predict(bundle.frame(X.iloc[idx])) for part, idx in (("cal", cal), ("test", te))}
        out[name] = {"raw_cal": raw["cal"], "y_cal": y[cal], "raw_test": raw["test"], "y_test": y[te]}
        out[name]["rows"] = {"train": len(tr), "calibration": len(cal), "test": len(te)}
    return out


def compare(s: dict) -> dict[str, dict]:
    """Every calibrator fitted on the calibration rows, scored on the test rows."""
    raw, y = s["raw_test"], s["y_test"]
    table = {"uncalibrated": metrics.classification(y, raw) | {"distinct": len(np.unique(raw)), "seconds": 0.0}}
    for name, fit in CALIBRATORS.items():
        start = time.perf_counter()
        cal = fit(s["raw_cal"], s["y_cal"])
        seconds = time.perf_counter() - start
        p = cal(raw)
        table[name] = metrics.classification(y, p) | {"distinct": len(np.unique(p)), "seconds": round(seconds, 3)}
        if name == "logit_spline":
            table[name]["pieces"] = len(cal.x) - 1
            table[name]["ece_if_exact"] = ece_if_exact(p)
    return table


def ece_if_exact(p: np.ndarray, draws: int = 200) -> dict[str, float]:
    """The ECE these probabilities would show on labels drawn from themselves (perfect calibration): the noise
    floor of an ECE on this many test rows."""
    rng = np.random.default_rng(0)
    eces = [metrics.expected_calibration_error(rng.random(len(p)) < p, p) for _ in range(draws)]
    return {"mean": float(np.mean(eces)), "p95": float(np.quantile(eces, 0.95))}


def small_slices(s: dict) -> dict[int, dict]:
    """Test log loss and ECE of each calibrator fitted on the first n calibration rows (in time order)."""
    out = {}
    for n in SMALL:
        if n > len(s["y_cal"]) or len(np.unique(s["y_cal"][:n])) < 2:
            continue
        out[n] = {}
        for name, fit in CALIBRATORS.items():
            p = fit(s["raw_cal"][:n], s["y_cal"][:n])(s["raw_test"])
            m = metrics.classification(s["y_test"], p)
            out[n][name] = {"log_loss": m["log_loss"], "ece": m["ece"]}
    return out


def checks_of(table: dict) -> dict:
    new, raw = table["logit_spline"], table["uncalibrated"]
    values = {
        "ece": new["ece"],
        "roc_auc_loss": raw["roc_auc"] - new["roc_auc"],
        "pr_auc_loss": raw["pr_auc"] - new["pr_auc"],
    }
    return {k: {"value": v, "target": TARGETS[k], "met": bool(v <= TARGETS[k])} for k, v in values.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    args = parser.parse_args()

    runs = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory(prefix="eqsms-calibration-bench-") as tmp:
            world = Path(tmp) / "world"
            generate_world(n_projects=args.projects, seed=seed, out_dir=world, fmt="parquet", dirty=0.0)
            scores = raw_scores(world, Settings(work_dir=Path(tmp) / "work"))
        for name, s in scores.items():
            table = compare(s)
            runs.append(
                {
                    "seed": seed,
                    "target": name,
                    "rows": s["rows"],
                    "positives": {"calibration": int(s["y_cal"].sum()), "test": int(s["y_test"].sum())},
                    "test": table,
                    "checks": checks_of(table),
                    "small_slices": small_slices(s),
                }
            )
            print_run(runs[-1])

    report = {
        "benchmark": "calibrators fitted on the same raw calibration scores, compared on the same raw test scores",
        "projects": args.projects,
        "seeds": args.seeds,
        "targets": TARGETS,
        "runs": runs,
        "all_met": all(c["met"] for run in runs for c in run["checks"].values()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print_means(runs)
    print(f"\nwritten to {RESULTS}")


def print_run(run: dict) -> None:
    rows, pos = run["rows"], run["positives"]
    print(
        f"\n{run['target']} seed {run['seed']}: calibration {rows['calibration']:,} rows ({pos['calibration']:,} "
        f"positive), test {rows['test']:,} ({pos['test']:,} positive)"
    )
    print(f"{'':<18}" + "".join(f"{k:>10}" for k in [*KEYS, "distinct", "fit s"]))
    for who, m in run["test"].items():
        cells = "".join(f"{m[k]:>10.4f}" for k in KEYS)
        print(f"{who:<18}{cells}{m['distinct']:>10,}{m['seconds']:>10.2f}")
    new = run["test"]["logit_spline"]
    floor = new["ece_if_exact"]
    print(
        f"logit_spline: {new['pieces']} piece(s); ECE if these probabilities were exact (labels drawn from them): "
        f"mean {floor['mean']:.4f}, 95th percentile {floor['p95']:.4f}"
    )
    for key, c in run["checks"].items():
        print(f"  {key:<14} {c['value']:+.6f}  target <= {c['target']}  {'met' if c['met'] else 'NOT met'}")
    if run["small_slices"]:
        names = list(CALIBRATORS)
        print("first n calibration rows: test log loss / ECE")
        print(f"{'n':>8}" + "".join(f"{k:>22}" for k in names))
        for n, by in run["small_slices"].items():
            print(f"{n:>8}" + "".join(f"{by[k]['log_loss']:>14.4f} / {by[k]['ece']:.4f}" for k in names))


def print_means(runs: list[dict]) -> None:
    print("\nmeans over the seeds (test rows)")
    for name in CLASSIFIERS:
        tables = [r["test"] for r in runs if r["target"] == name]
        if not tables:
            continue
        print(f"{name:<18}" + "".join(f"{k:>10}" for k in KEYS))
        for who in tables[0]:
            print(f"  {who:<16}" + "".join(f"{np.mean([t[who][k] for t in tables]):>10.4f}" for k in KEYS))


if __name__ == "__main__":
    main()
