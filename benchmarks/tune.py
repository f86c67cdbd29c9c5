"""Benchmark: what `eqsms train --tune` gains on the test rows, on a generated world and the real exports.

For each dataset: the model trained with the default parameters and scored on its test rows (the latest 20% by
split time, as `eqsms train`); then the search (``training.tune``), judged on the rolling-origin folds before those
rows only, for ``--budget-minutes`` or ``--trials``, whichever ends first; then, if it chose other parameters, the
model trained with them and scored on the same test rows. Runs every target on a generated world and, when
../shared/real is beside the checkout, the Irish field forms (defect risk) and the NYC phases (delay) as `eqsms
import` writes them and `eqsms train` builds their datasets. Prints the table and writes benchmarks/results/tune.json.

    .venv/bin/python -m benchmarks.tune [--projects 3000] [--budget-minutes 3] [--trials 100] [--no-real]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from eqsms.settings import Settings
from features.datasets import Dataset
from features.validate import load
from training.evaluate import train_target
from training.pipeline import datasets_from_data
from training.tune import tune, tuned_settings
from world import generate_world

RESULTS = Path(__file__).parent / "results" / "tune.json"
METRICS = {"classifier": ("roc_auc", "pr_auc", "brier", "ece"), "slip": ("mae", "coverage", "mean_width", "late_auc")}


def compare(ds: Dataset, settings: Settings, budget_minutes: float, trials: int) -> dict:
    """Test-row metrics with the default parameters and with the ones the search chose; the search's figures."""
    keys = METRICS[ds.spec.kind]
    started = time.perf_counter()
    untuned = train_target(ds, settings).metrics["model"]
    train_seconds = time.perf_counter() - started
    found = tune(ds, settings, budget_minutes, trials)
    tuned = train_target(ds, tuned_settings(settings, found)).metrics["model"] if found.improved else untuned
    return {
        "rows": len(ds.frame),
        "metric": found.metric,
        "train_seconds": round(train_seconds, 1),
        "search": {
            "trials": found.trials,
            "minutes": round(found.seconds / 60, 2),
            "fold_test_rows": [len(f.test) for f in found.folds],
            "default_fold_score": found.default_score,
            "chosen_fold_score": found.chosen_score,
            "fold_gain": found.gain,
            "chosen": found.chosen,
            "improved": found.improved,
        },
        "test": {
            "untuned": {k: untuned.get(k) for k in keys},
            "tuned": {k: tuned.get(k) for k in keys},
        },
    }


def real_datasets(settings: Settings, root: Path) -> dict[str, Dataset]:
    """The real exports as `eqsms import` writes them and `eqsms train` builds their datasets."""
    from benchmarks.backtest_real import REAL_MODELS, imported_folders

    out = {}
    for name, folder in imported_folders(root).items():
        model = REAL_MODELS[name]
        built = datasets_from_data(load(folder, settings), settings, [model])[model]
        if isinstance(built, Dataset):
            out[f"{name}/{model}"] = built
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--budget-minutes", type=float, default=3.0, help="search time a dataset")
    parser.add_argument("--trials", type=int, default=100, help="at most this many trials a dataset")
    parser.add_argument("--no-real", action="store_true", help="skip the real exports")
    parser.add_argument("--only", default="", help="comma-separated dataset names to run (default: all)")
    args = parser.parse_args()

    report = {}
    with tempfile.TemporaryDirectory(prefix="eqsms-tune-bench-") as tmp:
        world = Path(tmp) / "world"
        generate_world(n_projects=args.projects, seed=args.seed, out_dir=world, fmt="parquet", dirty=0.0)
        settings = Settings(work_dir=Path(tmp) / "work")
        built = datasets_from_data(load(world, settings), settings, ["defect_risk", "delay", "churn"])
        datasets = {f"world_{args.projects}/{name}": ds for name, ds in built.items() if isinstance(ds, Dataset)}
        if not args.no_real:
            datasets.update(real_datasets(settings, Path(tmp)))
        only = {name.strip() for name in args.only.split(",") if name.strip()}
        for name, ds in datasets.items():
            if only and name not in only:
                continue
            report[name] = compare(ds, settings, args.budget_minutes, args.trials)
            print(f"{name}: done", flush=True)

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    setup = {"budget_minutes": args.budget_minutes, "trials": args.trials, "projects": args.projects}
    RESULTS.write_text(json.dumps({"benchmark": __doc__.splitlines()[0], **setup, "results": report}, indent=2))
    for name, found in report.items():
        s, test = found["search"], found["test"]
        print(f"\n{name} ({found['rows']:,} rows): {s['trials']} trials in {s['minutes']:.1f} min")
        print(
            f"  folds {found['metric']}: defaults {s['default_fold_score']:.4f}, chosen {s['chosen_fold_score']:.4f}"
            + ("" if s["improved"] else " (defaults kept)")
        )
        print(" " * 10 + "".join(f"{k:>12}" for k in test["untuned"]))
        for who in ("untuned", "tuned"):
            print(f"  {who:<8}" + "".join(f"{test[who][k]:>12.4f}" for k in test[who]))
        if s["improved"]:
            print("  chosen: " + ", ".join(f"{k}={v}" for k, v in s["chosen"].items()))
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
