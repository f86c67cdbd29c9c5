"""The synthetic world with a known truth, beside ``features`` (it is not part of the bento).

``simulate`` (hidden traits and everything that happens, with a ``shift`` from a date if asked for) -> ``observe``
(the six contract tables and the oracle at the snapshot) -> ``faults`` (a dirty export, optional) -> ``write``
(files). The names below are imported when first used, so that ``world.cli`` (and with it ``eqsms --help``) does
not load numpy, pandas and scikit-learn.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from world.faults import inject_faults
    from world.observe import World, simulate_world
    from world.write import WorldReport, generate_world, write_world

_HOME = {
    "generate_world": "world.write",
    "write_world": "world.write",
    "WorldReport": "world.write",
    "simulate_world": "world.observe",
    "World": "world.observe",
    "inject_faults": "world.faults",
}
__all__ = ["World", "WorldReport", "generate_world", "inject_faults", "simulate_world", "write_world"]


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(import_module(_HOME[name]), name)
    raise AttributeError(f"module 'world' has no attribute {name!r}")
