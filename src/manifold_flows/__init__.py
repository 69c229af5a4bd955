"""manifold_flows: equivariant flow matching and stochastic interpolants on manifolds."""

from importlib.metadata import PackageNotFoundError, version as _version

# Each subpackage lists its public names in `__all__`; they are re-exported here.
from ._analysis import *  # noqa: F403
from ._coupling import *  # noqa: F403
from ._energy import *  # noqa: F403
from ._field import *  # noqa: F403
from ._flow import *  # noqa: F403
from ._group import *  # noqa: F403
from ._interpolant import *  # noqa: F403
from ._io import *  # noqa: F403
from ._manifold import *  # noqa: F403
from ._mc import *  # noqa: F403
from ._pipeline import *  # noqa: F403
from ._train import *  # noqa: F403

try:
    __version__ = _version("manifold_flows")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"
