"""The double-well pair potential of the DW4 system."""

import math

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .cluster_base import AbstractClusterEnergy


def _check_real(name: str, value) -> float:
    if isinstance(value, bool) or not math.isfinite(float(value)):
        raise ValueError(f"DoubleWellPair: `{name}` must be a finite number; got {value!r}.")
    return float(value)


class DoubleWellPair(AbstractClusterEnergy):
    """A cluster with a double-well pair potential in the pair distance:

        W(r) = a (r - d0) + b (r - d0)^2 + c (r - d0)^4,

    summed over unordered pairs. With `b < 0 < c` and `a = 0` each pair has two wells at
    `r = d0 +- sqrt(-b / (2 c))`, of depth `-b^2 / (4 c)`, separated by a barrier at `r = d0`.
    The defaults are the DW4 system of Köhler, Klein and Noé ("Equivariant Flows", 2020):
    `a = 0`, `b = -4`, `c = 0.9`, `d0 = 4` (wells at `r = 2.509` and `5.491`, depth
    `-4.444`, barrier height `4.444` at temperature 1).

    **Arguments:**

    - `dim`: the spatial dimension (2 for DW4).
    - `a`, `b`, `c`: the linear, quadratic and quartic coefficients (`c > 0` so that the
      potential is bounded below).
    - `d0`: the distance of the barrier (positive).
    """

    dim: int = eqx.field(static=True)
    num_particles: int | None = eqx.field(static=True)
    a: float = eqx.field(static=True)
    b: float = eqx.field(static=True)
    c: float = eqx.field(static=True)
    d0: float = eqx.field(static=True)

    def __init__(
        self, dim: int = 2, *, a: float = 0.0, b: float = -4.0, c: float = 0.9, d0: float = 4.0
    ):
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"DoubleWellPair: `dim` must be a positive integer; got {dim!r}.")
        self.dim = dim
        self.num_particles = None  # any number of particles
        self.a, self.b = _check_real("a", a), _check_real("b", b)
        self.c, self.d0 = _check_real("c", c), _check_real("d0", d0)
        if self.c <= 0:
            raise ValueError(
                f"DoubleWellPair: the quartic coefficient `c` must be positive (else the energy "
                f"is unbounded below); got c={c!r}."
            )
        if self.d0 <= 0:
            raise ValueError(f"DoubleWellPair: `d0` must be positive; got d0={d0!r}.")

    def pair_energy(self, r: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        r = jnp.asarray(r)
        u = r - jnp.asarray(self.d0, r.dtype)
        u2 = u * u
        return self.a * u + self.b * u2 + self.c * u2 * u2
