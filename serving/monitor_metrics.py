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
        watched = summary.get("watched") or {}
        if "model" in watched:
            model = watched["model"]
            DRIFTED.labels(model=model).set(float(watched.get("features_drifted") or 0))
            for gauge, key in ((PREDICTION_PSI, "prediction_psi"), (ESTIMATED_AUC, "estimated_auc")):
                if isinstance(watched.get(key), int | float):
                    gauge.labels(model=model).set(float(watched[key]))
