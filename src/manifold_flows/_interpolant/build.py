"""Build an interpolant from configuration values (config files and the CLI)."""

from .._manifold import AbstractManifold
from .base import AbstractInterpolant
from .geodesic import GeodesicInterpolant
from .linear import LinearInterpolant
from .stochastic import StochasticInterpolant

#: The names `build_interpolant` accepts.
INTERPOLANT_NAMES: tuple[str, ...] = ("geodesic", "stochastic", "linear")


def build_interpolant(
    name: str,
    manifold: AbstractManifold | None = None,
    *,
    gamma_scale: float = 0.1,
    gamma_schedule: str = "sqrt",
) -> AbstractInterpolant:
    """Build an interpolant by name.

    **Arguments:**

    - `name`: `"geodesic"` (`GeodesicInterpolant`), `"stochastic"` (`StochasticInterpolant`)
      or `"linear"` (`LinearInterpolant`, Euclidean; ignores `manifold`).
    - `manifold`: the single-particle manifold (needed by `"geodesic"` and `"stochastic"`).
    - `gamma_scale`, `gamma_schedule`: the noise term of `"stochastic"`.

    **Returns:**

    The interpolant. Unknown names raise `ValueError` listing the valid ones.
    """
    if name not in INTERPOLANT_NAMES:
        raise ValueError(
            f"unknown interpolant name {name!r}; valid names are: {', '.join(INTERPOLANT_NAMES)}."
        )
    if name == "linear":
        return LinearInterpolant()
    if manifold is None:
        raise ValueError(
            f"interpolant {name!r} needs the manifold (e.g. the FlatTorus of the box)."
        )
    if name == "geodesic":
        return GeodesicInterpolant(manifold)
    return StochasticInterpolant(manifold, scale=gamma_scale, schedule=gamma_schedule)
