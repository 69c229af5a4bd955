"""Public testing kit: law checkers, equivariance assertions and Hypothesis strategies, so users
test their own manifolds, group actions and vector fields by the same laws as ours.

The checkers and assertions need only the runtime dependencies; the Hypothesis strategies
(`manifold_flows.testing.strategies`, `group_elements`) need `hypothesis`, a test dependency
(`pip install manifold_flows[test]`).
"""

import importlib as _importlib

from . import _law_result
from ._doctor import *  # noqa: F403
from ._equivariance import *  # noqa: F403
from ._manifold_laws import *  # noqa: F403
from ._registry import manifold_registry as manifold_registry
from ._sampling import *  # noqa: F403
from ._tolerances import tolerance as tolerance

try:
    from ._group_laws import *  # noqa: F403
except ModuleNotFoundError as _exc:  # pragma: no cover - only without the test extras
    # The group-law module also holds Hypothesis strategies; without hypothesis its checkers
    # are unavailable, and `mflows doctor` says so.
    if _exc.name != "hypothesis":
        raise

# One LawResult for every checker (the group-law module defines an identical one).
LawResult = _law_result.LawResult

__all__ = sorted(name for name in dir() if not name.startswith("_"))


def __getattr__(name: str):
    # `manifold_flows.testing.strategies` is imported on first use, so that importing the
    # checkers does not need hypothesis.
    if name == "strategies":
        return _importlib.import_module(f"{__name__}.strategies")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
