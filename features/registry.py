"""The feature registry: every feature declared once, beside the family function that computes it.

A family declares its features with :func:`declares`; a declaration (:class:`Feature`) is a template: its name and
driver text may hold the settings' windows (``{short}``, ``{long}``: ``short_window_days`` and ``long_window_days``;
``{recent}``: ``recent_weeks``). :func:`feature_specs` resolves the declarations with one settings object into
:class:`FeatureSpec`s, the names the families compute with those settings. Everything else that knows about a feature
reads it here: monotone constraints (training), driver texts and departments (serving), categorical and plan flags.

Which targets use a feature follows from the families a target uses (``MILESTONE_FAMILIES`` / ``PROJECT_FAMILIES``
in :mod:`features.families`): pass those families to :func:`feature_specs`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

from eqsms.settings import Settings

# Departments owning a feature, as an EQSMS divides responsibility (DESIGN.md): quality for inspections and defects,
# technical for design and milestone history, safety for safety inspections' findings, cost for resources and earned
# value, customer service for complaints and surveys, and the project office for the plan itself.
QUALITY, TECHNICAL, COST, CUSTOMER, PLANNING = "quality", "technical", "cost", "customer service", "project office"
SAFETY = "safety"
DEPARTMENTS = (QUALITY, TECHNICAL, SAFETY, COST, CUSTOMER, PLANNING)
UNITS = ("count", "share", "ratio", "index", "days", "hours", "money", "score", "ordinal", "category")
WINDOWS = ("short", "long", "recent")

_VALUE = re.compile(r"\{v(?::([^}]*))?\}")


@dataclass(frozen=True)
class Feature:
    """One feature as a family declares it: templates with ``{short}``/``{long}``/``{recent}`` for the windows.

    ``text`` is the driver text, ``{v}`` (with a format spec, ``{v:.0f}``) standing for the value. ``monotone`` maps
    a target to +1 (its prediction may only rise with the feature) or -1 (only fall). ``plan`` marks what only the
    full baseline plan tells (a real export cannot know it in time; the backtest leaves these out).
    ``negative_text``, when given, tells a value below zero instead of ``text``, ``{v}`` standing for its magnitude
    ("152 days overdue" rather than "-152 days to the planned milestone date"): a template cannot branch.
    ``actionable`` marks what the owning department can change within weeks (close defects, answer complaints,
    staff to plan), as against history and the plan: the worklists' what-if acts on these alone.
    """

    name: str
    unit: str
    text: str
    department: str
    monotone: Mapping[str, int] = field(default_factory=dict, hash=False)
    categorical: bool = False
    plan: bool = False
    negative_text: str | None = None
    actionable: bool = False

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"{self.name}: unit {self.unit!r} is not one of {UNITS}")
        if self.department not in DEPARTMENTS:
            raise ValueError(f"{self.name}: department {self.department!r} is not one of {DEPARTMENTS}")
        if not _VALUE.search(self.text):
            raise ValueError(f"{self.name}: the driver text has no {{v}} for the value")
        if self.negative_text is not None and not _VALUE.search(self.negative_text):
            raise ValueError(f"{self.name}: the negative driver text has no {{v}} for the value")
        for target, sign in self.monotone.items():
            if sign not in (-1, 1):
                raise ValueError(f"{self.name}: monotone {target}: {sign} (+1 or -1)")


@dataclass(frozen=True)
class FeatureSpec:
    """A declaration resolved with one settings object: the name the family computes, the text serving shows."""

    name: str
    unit: str
    text: str  # driver text, ``{v...}`` for the value, windows filled in
    department: str
    monotone: Mapping[str, int] = field(hash=False)
    categorical: bool
    plan: bool
    family: str  # the family function's name
    description: str  # the text with x for the value: "x failed inspections in the last 30 days"
    negative_text: str | None = None  # the text of a value below zero, ``{v}`` for its magnitude, windows filled in
    declared_name: str = ""  # the declaration's name template: "inspections_failed_{short}d"
    windows: tuple[int, int, int] = (0, 0, 0)  # (short, long, recent) it was resolved with: see fill_windows
    actionable: bool = False  # the owning department can change it within weeks (Feature.actionable)


def declares(*features: Feature) -> Callable:
    """Decorator of a family function: the features it computes, in the order it computes them."""

    def mark(family: Callable) -> Callable:
        family.features = features
        return family

    return mark


def declared(family: Callable) -> tuple[Feature, ...]:
    """The declarations of a family function (an error for a function that declares none)."""
    try:
        return family.features
    except AttributeError:
        raise TypeError(f"{getattr(family, '__name__', family)!r} declares no features (use @declares)") from None


def windows(settings: Settings) -> tuple[int, int, int]:
    """The settings' windows (short, long, recent): all that resolving a declaration reads."""
    return settings.short_window_days, settings.long_window_days, settings.recent_weeks


def fill_windows(template: str, values: tuple[int, int, int]) -> str:
    """``template`` with its ``{short}``/``{long}``/``{recent}`` filled from ``values`` (:func:`windows`); ``{v...}``
    is left as it is. Any text declared beside a feature (a translation, say) resolves with this."""
    for key, value in zip(WINDOWS, values, strict=True):
        template = template.replace("{" + key + "}", str(value))
    return template


def _description(text: str, negative_text: str | None = None) -> str:
    def x(t: str) -> str:
        return _VALUE.sub(lambda m: "x%" if (m.group(1) or "").endswith("%") else "x", t)

    return x(text) if negative_text is None else f"{x(text)} (below zero: {x(negative_text)})"


@lru_cache(maxsize=256)
def _resolve(family: Callable, values: tuple[int, int, int]) -> tuple[FeatureSpec, ...]:
    specs = []
    for f in declared(family):
        text = fill_windows(f.text, values)
        negative = None if f.negative_text is None else fill_windows(f.negative_text, values)
        specs.append(
            FeatureSpec(
                name=fill_windows(f.name, values),
                unit=f.unit,
                text=text,
                department=f.department,
                monotone=MappingProxyType(dict(f.monotone)),
                categorical=f.categorical,
                plan=f.plan,
                family=family.__name__,
                description=_description(text, negative),
                negative_text=negative,
                declared_name=f.name,
                windows=values,
                actionable=f.actionable,
            )
        )
    names = [s.name for s in specs]
    if len(set(names)) < len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(
            f"{family.__name__}: features {dup} share a name with windows {dict(zip(WINDOWS, values, strict=True))}"
            " (short_window_days and long_window_days must differ)"
        )
    return tuple(specs)


def family_features(family: Callable, settings: Settings) -> tuple[FeatureSpec, ...]:
    """A family's features resolved with ``settings``, in the order the family computes them."""
    return _resolve(family, windows(settings))


def declared_names(family: Callable, settings: Settings) -> tuple[str, ...]:
    """The column names a family computes with ``settings``, in order."""
    return tuple(spec.name for spec in family_features(family, settings))


def _all_families() -> tuple[Callable, ...]:
    from features.families import MILESTONE_FAMILIES  # families import this module: import them when asked

    return MILESTONE_FAMILIES


def feature_specs(settings: Settings, families: Iterable[Callable] | None = None) -> dict[str, FeatureSpec]:
    """Every feature of ``families`` (default: all of them) by name, resolved with ``settings``, in computed order."""
    return {
        spec.name: spec
        for family in (_all_families() if families is None else families)
        for spec in family_features(family, settings)
    }


def plan_features(settings: Settings, families: Iterable[Callable] | None = None) -> tuple[str, ...]:
    """Features only the full baseline plan tells (``milestones_in_plan``, ``milestone_share``)."""
    return tuple(name for name, spec in feature_specs(settings, families).items() if spec.plan)


def categorical_features(settings: Settings, families: Iterable[Callable] | None = None) -> tuple[str, ...]:
    """Features that are categories (pandas ``category`` in the datasets, LightGBM categoricals)."""
    return tuple(name for name, spec in feature_specs(settings, families).items() if spec.categorical)


def monotone_constraints(settings: Settings, target: str, features: Iterable[str]) -> list[int]:
    """LightGBM's ``monotone_constraints`` of ``target`` for ``features``: 0 for a feature not declared."""
    specs = feature_specs(settings)
    return [specs[f].monotone.get(target, 0) if f in specs else 0 for f in features]


def features_markdown(settings: Settings | None = None) -> str:
    """The features table of data_samples/README.md: each family and the features it computes with ``settings``
    (default: the default windows, whatever the environment says)."""
    settings = settings or Settings.model_construct()
    lines = ["| family | features |", "|---|---|"]
    for family in _all_families():
        names = ", ".join(f"`{name}`" for name in declared_names(family, settings))
        lines.append(f"| `{family.__name__}` | {names} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m features.registry: the table to paste into data_samples/README.md
    sys.stdout.write(features_markdown())
