"""Drivers in a planner's words: each feature's SHAP contribution, told with its value and the department that owns it.

A feature's words and department are declared beside the family that computes it (:mod:`features.registry`) and
resolved with the settings' windows ("failed inspections in the last 30 days"). Departments follow how an EQSMS
divides responsibility (DESIGN.md); a feature the registry does not know is told as "its name: value" (technical).
A feature declared with a ``negative_text`` tells a value below zero with it ("152 days overdue").
:mod:`serving.i18n` tells the same drivers in other languages.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from numbers import Real

import numpy as np

from features.registry import TECHNICAL, FeatureSpec
from features.targets import TargetSpec

_FORMAT = re.compile(r"\{v:[^}]*\}")


def missing(value) -> bool:
    """No value to tell: None or NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def fill_value(template: str, value, negative_template: str | None = None) -> str:
    """``template`` with ``{v...}`` filled by ``value`` (a value below zero by its magnitude in
    ``negative_template``, when there is one); a value its format spec cannot take (text in ``{v:.0%}``) as it is."""
    if negative_template is not None and isinstance(value, Real) and not isinstance(value, bool) and value < 0:
        template, value = negative_template, -value
    try:
        return template.format(v=value)
    except (ValueError, TypeError):
        return _FORMAT.sub("{v}", template).format(v=value)


def describe(feature: str, value, specs: Mapping[str, FeatureSpec]) -> tuple[str, str]:
    """The feature and its value in words, and the department that owns it, as ``specs`` (the registry resolved
    with the settings the features were computed with) declares them."""
    spec = specs.get(feature)
    if spec is None:
        template, negative, department = feature.replace("_", " ") + ": {v}", None, TECHNICAL
    else:
        template, negative, department = spec.text, spec.negative_text, spec.department
    if missing(value):
        return f"{template.split('{')[0].strip() or feature.replace('_', ' ')} unknown (no data yet)", department
    return fill_value(template, value, negative), department


def pushed(text: str, department: str, target: TargetSpec, direction: str) -> str:
    """A described feature as a driver of ``target``: "3 failed inspections in the last 30 days (quality) pushed
    first-pass failure risk up"."""
    return f"{text} ({department}) pushed {target.outcome} {direction}"


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
                    "text": pushed(text, department, target, direction),
                    "department": department,
                    "direction": direction,
                    "contribution": round(size, 4),
                    "unit": target.unit,
                }
            )
        out.append(drivers)
    return out
