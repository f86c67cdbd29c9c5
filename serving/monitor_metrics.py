"""The monitor's latest figures on /metrics (issue 13 §3): read from the summary `eqsms monitor` writes
(``<work_dir>/monitor/summary.json``) when it changes, so a scraper sees drift and the estimated ROC-AUC beside the
service's own counters, and an alert can fire on them."""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client import Gauge

FLAGGED = Gauge(
    "eqsms_monitor_flagged", "1 when the monitor's last verdict flagged a model", multiprocess_mode="livemax"
)
LIVE = {"multiprocess_mode": "livemax"}  # BentoML runs prometheus_client in multiprocess mode: the workers agree
DRIFTED = Gauge("eqsms_drift_features_drifted", "features drifted in the latest weeks", ["model"], **LIVE)
PREDICTION_PSI = Gauge("eqsms_drift_prediction_psi", "PSI of the latest weeks' predictions", ["model"], **LIVE)
ESTIMATED_AUC = Gauge(
    "eqsms_estimated_roc_auc", "ROC-AUC estimated from the latest probabilities alone", ["model"], **LIVE
)
DRIFT_FLAGGED = Gauge("eqsms_drift_flagged", "1 when the watch flagged the model's drift", ["model"], **LIVE)
ESTIMATED_MAE = Gauge(
    "eqsms_estimated_mae_days", "MAE expected on the latest rows (test MAE by band, their mix)", ["model"], **LIVE
)
ESTIMATED_LATE_AUC = Gauge(
    "eqsms_estimated_late_roc_auc", "P(late) ROC-AUC estimated from the latest probabilities alone", ["model"], **LIVE
)
# a watched model's figures -> its gauge (a figure missing or null leaves its gauge as it was)
FIGURES = (
    (PREDICTION_PSI, "prediction_psi"),
    (ESTIMATED_AUC, "estimated_auc"),
    (ESTIMATED_MAE, "estimated_mae"),
    (ESTIMATED_LATE_AUC, "estimated_late_auc"),
)


class MonitorMetrics:
    """Sets the gauges from ``path`` whenever its modification time changes (a stat per measure: cheap)."""

    def __init__(self, path: Path) -> None:
        self.path, self.seen = path, None

    def __call__(self) -> None:
        try:
            stamp = self.path.stat().st_mtime_ns
        except OSError:
            return
        if stamp == self.seen:
            return
        self.seen = stamp
        try:
            summary = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        FLAGGED.set(1.0 if (summary.get("verdict") or {}).get("flagged") else 0.0)
        for model, watched in by_model(summary.get("watched") or {}).items():
            if "note" in watched:  # not watched: nothing measured
                continue
            DRIFTED.labels(model=model).set(float(watched.get("features_drifted") or 0))
            DRIFT_FLAGGED.labels(model=model).set(1.0 if watched.get("flagged") else 0.0)
            for gauge, key in FIGURES:
                if isinstance(watched.get(key), int | float):
                    gauge.labels(model=model).set(float(watched[key]))


def by_model(watched: dict) -> dict[str, dict]:
    """The summary's ``watched`` by model (a summary written before the watch covered every model held one model's
    dict, its name under ``model``)."""
    if isinstance(watched.get("model"), str):
        return {watched["model"]: watched}
    return {name: entry for name, entry in watched.items() if isinstance(entry, dict)}
