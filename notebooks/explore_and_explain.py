# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Explore your data and explain the models
#
# This notebook walks through what `eqsms validate`, `eqsms features build` and `eqsms train` do, one step at a
# time, on **your** data folder: how much of it passes the data contract, what the three targets look like, how the
# trained models compare with simple baselines, and why a model scores a milestone the way it does.
#
# It only calls the project's own functions (`features/`, `training/`, `serving/`), so what you see here is what
# the pipeline and the service do. Nothing in the pipeline depends on this notebook.
#
# Everything comes from the settings object (`eqsms/settings.py`): set `EQSMS_DATA_DIR` to your folder of
# exports and `EQSMS_WORK_DIR` to where models and outputs should go before starting Jupyter. Without them the
# notebook reads the generated sample world in `data_samples/world` (300 projects) and writes to `eqsms_work/`.

# %%
import os
import sys
from importlib.metadata import version

import matplotlib.pyplot as plt  # before training.report, so that Jupyter keeps its inline plots
import mlflow
import pandas as pd
from IPython.display import Image, display

from eqsms.settings import REPO_ROOT, Settings
from features.contract import latest_fact
from features.datasets import project_milestone_features
from features.families import Context
from features.registry import feature_specs
from features.targets import TARGETS
from features.validate import load
from serving.drivers import top_drivers
from training import report, tracking
from training.evaluate import read_oracle
from training.pipeline import datasets_from_data, run_target

print(f"Python {sys.version.split()[0]} in {sys.prefix}")
print(", ".join(f"{package} {version(package)}" for package in ("pandas", "lightgbm", "mlflow", "shap")))

# %% [markdown]
# ## 1. Settings and data
#
# Relative folders are taken from the repository root, as when `eqsms` runs there, so the notebook uses the same
# data and MLflow store wherever Jupyter was started.

# %%
os.chdir(REPO_ROOT)  # settings resolve relative folders from the working directory, once, when they are made
settings = Settings()
print("data folder:   ", settings.data_dir)
print("work folder:   ", settings.work_dir)
print("MLflow store:  ", settings.tracking_uri)
if settings.horizon_days is None:
    print(
        f"milestones are scored once in each horizon band they went through: more than {settings.near_days} days "
        f"ahead of the plan, 0 to {settings.near_days} days ahead, overdue"
    )
else:
    print(f"milestones are scored {settings.horizon_days} days before their planned date")

# %% [markdown]
# Each table is read and checked against the data contract (`eqsms validate`). A row that breaks it is not
# dropped silently: it is quarantined with the reason. Rows in = accepted + quarantined.

# %%
data = load(settings.data_dir)
validation = pd.DataFrame(
    [
        {
            "table": name,
            "rows in": rep.rows_in,
            "accepted": rep.rows_accepted,
            "quarantined": rep.rows_quarantined,
            "top reasons": ", ".join(f"{code} ({n})" for code, n in rep.top_reasons(3)),
        }
        for name, rep in data.reports.items()
    ]
).set_index("table")
display(validation)
print("tables without a file:", data.missing_tables or "none")
print("contract columns absent:", data.missing_columns or "none")

# %% [markdown]
# The first quarantined rows of each table, if any: the file, the row in it, the column and the reason.

# %%
for name, rejected in data.quarantine.items():
    if len(rejected):
        print(name)
        display(rejected.head(5))
if not any(len(rejected) for rejected in data.quarantine.values()):
    print("no row was quarantined")

# %% [markdown]
# ## 2. Point-in-time datasets
#
# Up to three rows per milestone for `defect_risk` and `delay` (one in each horizon band it went through before it
# was reached: more than 30 days ahead of its plan, 0 to 30 days ahead, overdue), one row per client at a project's
# handover for `churn`.
#
# **The point-in-time rule.** Every row has an `as_of` time: for a milestone, a day drawn from a weekly grid in
# each band; for churn, the handover. A feature of that row may only use facts known *before* `as_of`: an
# inspection done before it, a defect closed before it, a resource week already over. A defect closed later still
# counts as open.
# So the model learns from exactly what a planner could have known when the score was asked for (the tests prove
# it by changing later facts and checking that no feature moves).

# %%
datasets = datasets_from_data(data, settings, list(TARGETS))
ready = {name: ds for name, ds in datasets.items() if not isinstance(ds, str)}
for name, ds in datasets.items():
    print(f"{name}: {ds if isinstance(ds, str) else ds.describe()}")

# %% [markdown]
# **Defect risk**: how often a milestone fails its first-pass acceptance, by kind of milestone.

# %%
milestones = ready["delay"].frame
if "defect_risk" in ready:
    failures = ready["defect_risk"].frame.groupby("milestone_kind", observed=True)["first_pass_failed"]
    display(failures.agg(milestones="size", failure_rate="mean").round(3))

# %% [markdown]
# **Delay**: the slip (actual minus planned date, in days) of each reached milestone. The dashed line is the
# tolerance: beyond it a milestone counts as late.

# %%
slip = milestones["slip_days"]
late = milestones["late"].mean()
print(f"median slip {slip.median():.0f} days; late (more than {settings.late_tolerance_days:g} days): {late:.1%}")
fig, ax = plt.subplots(figsize=(6, 3))
ax.hist(slip.clip(slip.quantile(0.01), slip.quantile(0.99)), bins=40)
ax.axvline(settings.late_tolerance_days, color="k", linestyle="--")
ax.set_xlabel("slip, days (1st to 99th percentile)")
ax.set_ylabel("milestones")
plt.show()

# %% [markdown]
# **Churn**: the share of handovers after which the client awarded no new project within the window.

# %%
if "churn" in ready:
    handovers = ready["churn"].frame
    print(f"{len(handovers)} labelled handovers, churn rate {handovers['churned'].mean():.1%}")
    display(handovers.groupby("project_type", observed=True)["churned"].agg(handovers="size", rate="mean").round(3))

# %% [markdown]
# ## 3. Train and compare
#
# The same call `eqsms train` makes for each model: fit on the earliest rows, calibrate on the next, test on the
# latest; score the named baselines on the same test rows; log everything to MLflow and register the model as
# `@challenger`. Nothing is promoted here: `eqsms promote` moves `@champion` through the gate.

# %%
client = tracking.configure(settings)
oracle = read_oracle(settings.data_dir)
outcomes = {
    name: run_target(ds, settings, oracle, str(settings.data_dir), False, client, force=True)
    for name, ds in ready.items()
}
for name, outcome in outcomes.items():
    print(f"{name}: run {outcome.registered.run_id}, registered version {outcome.registered.version} @challenger")

# %% [markdown]
# The comparison is read back from the MLflow store, as you would for runs made by anyone: the latest run of each
# model, its test metrics next to the baselines. `reference_class` is the historical rate (or median slip) per
# milestone kind and project type; `linear` is a logistic (or, for the slip, ridge) regression on the same
# features; `oracle` is the generator's truth, present only for the generated sample.

# %% tags=["comparison"]
METRICS = {
    "defect_risk": ["roc_auc", "pr_auc", "brier", "ece"],
    "churn": ["roc_auc", "pr_auc", "brier", "ece"],
    "delay": ["mae", "rmse", "coverage", "late_auc"],
}
runs = mlflow.search_runs(
    experiment_names=[f"eqsms-{name}" for name in outcomes], order_by=["attributes.start_time DESC"]
)
latest = runs.drop_duplicates("tags.target")
comparison = pd.DataFrame(
    [
        {
            "model": run["tags.target"],
            "metric": metric,
            "this model": run.get(f"metrics.model.{metric}"),
            "reference class": run.get(f"metrics.reference_class.{metric}"),
            "linear": run.get(
                f"metrics.{'linear_regression' if run['tags.target'] == 'delay' else 'logistic_regression'}.{metric}"
            ),
            "oracle": run.get(f"metrics.oracle.{metric}"),
        }
        for _, run in latest.iterrows()
        for metric in METRICS[run["tags.target"]]
    ]
).set_index(["model", "metric"])
display(comparison.round(3))

# %% [markdown]
# Every run in the store, newest first, with the registry's aliases: retrain after changing the data or the
# settings and the runs line up here. MLflow's UI, opened on the same store, shows the same runs.

# %%
history = runs[["tags.target", "start_time", "metrics.model.roc_auc", "metrics.model.mae", "tags.dataset.rows"]]
display(history.rename(columns=lambda c: c.split(".", 1)[-1]).head(15))
for name in outcomes:
    aliases = {alias: tracking.alias_version(client, name, alias) for alias in ("challenger", "champion")}
    print(name, aliases)

# %% [markdown]
# ## 4. Explain a model
#
# Load a registered model the way serving does (`@challenger` here; use `@champion` for the one in service) and
# its test rows from its run. Change `explain` to look at another model.

# %%
explain = "defect_risk"
bundle = tracking.load_bundle(f"models:/{explain}@challenger")
run_id = client.get_model_version_by_alias(explain, "challenger").run_id
test_rows = pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="test_rows.parquet"))
plots = settings.work_dir / "notebooks"  # the plots below are written here too
print(f"{explain}: {len(test_rows)} test rows, {len(bundle.features)} features, {bundle.booster.num_trees()} trees")

# %% [markdown]
# **SHAP summary.** Each dot is a test row; its position is how much one feature pushed that row's score up or down
# (exact TreeSHAP from LightGBM), its colour the feature's value (red high, blue low). Features are sorted by their
# total effect. For the classifiers the scale is the raw model's log-odds, before calibration.

# %%
X = bundle.frame(test_rows)
shap_png = report.shap_summary_plot(bundle.contributions(X), X, plots / "shap.png", f"{explain}: drivers on test rows")
display(Image(filename=shap_png))

# %% [markdown]
# **Calibration.** Predicted probability against the observed rate, in bins of the test rows: on the diagonal, a
# "30%" means 30 failures in 100 such milestones. For delay this is the probability of being late.

# %%
predicted = bundle.predict(test_rows)
if bundle.kind == "classifier":
    observed, probability = test_rows[TARGETS[explain].label], predicted["probability"]
else:
    observed, probability = test_rows["late"], predicted["late_probability"]
calibration_png = report.reliability_plot(
    observed.to_numpy(), probability, plots / "calibration.png", f"{explain}: reliability on the test rows"
)
display(Image(filename=calibration_png))

# %% [markdown]
# ## 5. Drivers for an upcoming milestone, in a planner's words
#
# The milestones still ahead of their planned date in projects not yet handed over, scored as of the latest fact
# in the data (for a live export, about today) with the same feature code serving uses. The one with the highest
# first-pass failure risk is explained: each driver is a feature's contribution told with its value and the
# department that owns it, as the service answers `/v1/risk`.

# %%
as_of = latest_fact(data.tables)
projects = data.tables["projects"]
open_projects = projects.loc[projects["actual_end"].isna(), "project_id"].tolist()
in_progress = project_milestone_features(Context.build(data.tables, settings), data.tables, open_projects, as_of)
upcoming = in_progress[in_progress["days_to_milestone"] >= 0].reset_index(drop=True)
models = {name: tracking.load_bundle(f"models:/{name}@challenger") for name in ("defect_risk", "delay")}
upcoming["defect risk"] = models["defect_risk"].predict(upcoming)["probability"]
upcoming["expected slip days"] = models["delay"].predict(upcoming)["expected_slip_days"]
print(f"as of {as_of.date()}: {len(upcoming)} upcoming milestones in {len(open_projects)} open projects")
shown = ["project_id", "milestone_id", "milestone_kind", "days_to_milestone", "defect risk", "expected slip days"]
display(upcoming.sort_values("defect risk", ascending=False)[shown].head(10).round(2))

# %% tags=["drivers"]
row = upcoming.loc[[upcoming["defect risk"].idxmax()]]
print(f"{row['milestone_id'].iloc[0]} ({row['milestone_kind'].iloc[0]}) of project {row['project_id'].iloc[0]}")
for name, model in models.items():
    X_row = model.frame(row)
    columns = {feature: X_row[feature].to_numpy() for feature in model.features}
    contributions = model.contributions(X_row)
    (drivers,) = top_drivers(contributions, model.features, columns, TARGETS[name], 5, feature_specs(settings))
    print(f"\n{name} ({drivers[0]['unit'] if drivers else ''}):")
    for driver in drivers:
        print(f"  {driver['contribution']:+.2f}  {driver['text']}")

# %% [markdown]
# ## Next
#
# - Promote the challengers when they are no worse than the champions: `eqsms promote` (or `eqsms train --promote`).
# - Serve the champions and ask for the same drivers over HTTP: `eqsms serve`, then `POST /v1/risk` (README).
# - The plots and the model card of every run are in its MLflow artifacts.
