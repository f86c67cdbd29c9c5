"""Benchmark: does registering a model refit on every labelled row pay, against the model fitted on the earliest 60%?

Holds out the latest 20% of a dataset's rows by split time ("tomorrow", never seen by either model). On the earlier
80%, ``train_target`` fits the evaluated model (the earliest 60% of those rows, calibrated on the next 20%: what
``eqsms train`` registered before issue 10), then ``refit_on_all_rows`` refits it on all of them with the calibrator
and the range's margins cross-fitted out of fold (what it registers now). Both score the held-out rows. Runs every
target on a generated world and, when ../shared/real is beside the checkout, the Irish field forms (defect risk) and
the NYC phases (delay) as the backtests import them. Prints the table and writes benchmarks/results/refit.json.

    .venv/bin/python -m benchmarks.refit [--projects 10000] [--no-real]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

from eqsms.settings import Settings
from features.datasets import Dataset
from features.validate import load
from training.evaluate import refit_on_all_rows, score_rows, train_target
from training.pipeline import datasets_from_data
from training.splits import split_time_of, time_split
from world import generate_world

RESULTS = Path(__file__).parent / "results" / "refit.json"
METRICS = {"classifier": ("roc_auc", "pr_auc", "ece", "brier"), "slip": ("mae", "coverage", "mean_width", "late_ece")}


def compare(ds: Dataset, settings: Settings) -> dict:
    """The evaluated model and the refit one on the latest 20% of ``ds``'s rows, both learned from the rest."""
    outer = time_split(split_time_of(ds), 0.6, 0.2)
    earlier = sorted([*outer.train, *outer.calibration])
    learn = replace(ds, frame=ds.frame.iloc[earlier].reset_index(drop=True))
    result = refit_on_all_rows(learn, train_target(learn, settings), settings)
    tomorrow = ds.frame.iloc[outer.test].reset_index(drop=True)
    keys = METRICS[ds.spec.kind]
    scored = {
        name: score_rows(ds.spec, tomorrow, bundle.predict(tomorrow))
        for name, bundle in (("fit_on_60_percent", result.evaluated), ("refit_on_all", result.bundle))
    }
    return {
        "rows": {"learned_from": len(learn.frame), "held_out": len(tomorrow)},
        **{name: {k: values.get(k) for k in keys} for name, values in scored.items()},
    }


def real_datasets(settings: Settings, root: Path) -> dict[str, Dataset]:
    """The real exports' datasets as ``eqsms backtest`` builds them (without the plan features)."""
    from benchmarks.backtest_real import REAL_MODELS, imported_folders
    from features.registry import plan_features
    from training.backtest import build_dataset

    return {
        f"{name}/{REAL_MODELS[name]}": build_dataset(
            load(folder, settings).tables, REAL_MODELS[name], settings, plan_features(settings)
        )
        for name, folder in imported_folders(root).items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--no-real", action="store_true", help="skip the real exports")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="eqsms-refit-bench-") as tmp:
        world = Path(tmp) / "world"
        generate_world(n_projects=args.projects, seed=args.seed, out_dir=world, fmt="parquet", dirty=0.0)
        settings = Settings(work_dir=Path(tmp) / "work")
        built = datasets_from_data(load(world, settings), settings, ["defect_risk", "delay", "churn"])
        datasets = {f"world_{args.projects}/{name}": ds for name, ds in built.items()}
        report = {name: compare(ds, settings) for name, ds in datasets.items()}
        if not args.no_real:  # judged by MAE, as `eqsms backtest` judges them: the median slip
            real = settings.model_copy(update={"delay_objective": settings.backtest_delay_objective})
            report.update({name: compare(ds, real) for name, ds in real_datasets(real, Path(tmp)).items()})

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"benchmark": __doc__.splitlines()[0], "results": report}, indent=2))
    for name, found in report.items():
        keys = [k for k in next(v for k, v in found.items() if k != "rows")]
        rows = found["rows"]
        print(f"\n{name} (learned from {rows['learned_from']:,} rows, {rows['held_out']:,} held out)".ljust(52))
        print(" " * 22 + "".join(f"{k:>12}" for k in keys))
        for who in ("fit_on_60_percent", "refit_on_all"):
            print(f"{who:<22}" + "".join(f"{found[who][k]:>12.4f}" for k in keys))
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
