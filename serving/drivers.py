"""Drivers in a planner's words: each feature's SHAP contribution, told with its value and the department that owns it.

A feature's words and department are declared beside the family that computes it (:mod:`features.registry`) and
resolved with the settings' windows ("failed inspections in the last 30 days"). Departments follow how an EQSMS
divides responsibility (DESIGN.md); a feature the registry does not know is told as "its name: value" (technical).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from features.registry import TECHNICAL, FeatureSpec
from features.targets import TargetSpec


def describe(feature: str, value, specs: Mapping[str, FeatureSpec]) -> tuple[str, str]:
    """The feature and its value in words, and the department that owns it, as ``specs`` (the registry resolved
    with the settings the features were computed with) declares them."""
    spec = specs.get(feature)
    if spec is None:
        template, department = feature.replace("_", " ") + ": {v}", TECHNICAL
    else:
        template, department = spec.text, spec.department
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{template.split('{')[0].strip() or feature.replace('_', ' ')} unknown (no data yet)", department
    try:
        return template.format(v=value), department
    except (ValueError, TypeError):
        return template.replace(":,.0f", "").replace(":.0%", "").format(v=value), department


def plain(value):
    """A feature value as JSON-friendly Python: numbers as float, text as str, missing as None."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return None if math.isnan(number) else number


def top_drivers(
    contributions: np.ndarray,
    features: list[str],
    columns: Mapping[str, np.ndarray],
    target: TargetSpec,
    top_k: int,
    specs: Mapping[str, FeatureSpec],
    supplied: np.ndarray | None = None,
) -> list[list[dict]]:
    """For each row, its ``top_k`` features by absolute contribution (the last column, the bias, is left out),
    told as pushing the target's outcome up or down (``specs``: ``features.registry.feature_specs(settings)``).

    ``supplied`` (rows x features, bool): where a caller gave the row, the features it left out are no drivers.
    """
    contrib = contributions[:, : len(features)]
    if supplied is not None:
        contrib = np.where(supplied, contrib, 0.0)  # a zero contribution is never told
    order = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :top_k]
    out = []
    for i, cols in enumerate(order):
        drivers = []
        for j in cols:
            size = float(contrib[i, j])
            if size == 0.0:
                continue
            column = columns.get(features[j])
            value = plain(column[i]) if column is not None else None
            text, department = describe(features[j], value, specs)
            direction = "up" if size > 0 else "down"
            drivers.append(
                {
                    "feature": features[j],
                    "value": value,
                    "text": f"{text} ({department}) pushed {target.outcome} {direction}",
                    "department": department,
                    "direction": direction,
                    "contribution": round(size, 4),
                    "unit": target.unit,
                }
            )
        out.append(drivers)
    return out
