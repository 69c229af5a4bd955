"""Public testing kit: law checkers, equivariance assertions and Hypothesis strategies, so users
test their own manifolds, group actions and vector fields by the same laws as ours.

Importing this module needs `hypothesis` (a test dependency: `pip install manifold_flows[test]`).
"""

from . import strategies as strategies
from ._equivariance import *  # noqa: F403
from ._group_laws import *  # noqa: F403
from ._manifold_laws import *  # noqa: F403
from ._tolerances import tolerance as tolerance
