"""The Lennard-Jones cluster with a weak harmonic confinement (the LJ13 system)."""

import math

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .cluster_base import AbstractClusterEnergy


class LennardJonesCluster(AbstractClusterEnergy):
    """`n` Lennard-Jones particles in `R^d` held together by a harmonic spring to their
    centre of mass:

        U(x) = sum_{i<j} eps [(rm / r_ij)^12 - 2 (rm / r_ij)^6] + (k / 2) sum_i |x_i - x_com|^2.

    The Lennard-Jones term has its minimum `-eps` at `r = rm` (the `sigma` form has
    `sigma = rm / 2^(1/6)`). The harmonic term keeps the cluster bound at any temperature (an
    unconfined cluster evaporates in open space and its Boltzmann density is not
    normalisable); it is a pair term too, `(k / 2) sum_i |x_i - x_com|^2 = (k / (2 n))
    sum_{i<j} r_ij^2`, so `U` stays translation invariant and lives on `ZeroCenterOfMass`.
    The defaults `eps = rm = k = 1` with `n = 13`, `d = 3` at temperature 1 are the LJ13
    system of Köhler, Klein and Noé ("Equivariant Flows", 2020), whose energy adds this
    harmonic term ("oscillator") to the Lennard-Jones sum.

    **Arguments:**

    - `num_particles`: `n >= 2` (the spring's pair weight is `k / (2 n)`).
    - `dim`: the spatial dimension (3 for LJ13).
    - `epsilon`, `rm`: well depth and position of the minimum (positive).
    - `spring`: `k >= 0`, the stiffness of the harmonic term (0 turns it off).
    """

    num_particles: int = eqx.field(static=True)
    dim: int = eqx.field(static=True)
    epsilon: float = eqx.field(static=True)
    rm: float = eqx.field(static=True)
    spring: float = eqx.field(static=True)

    def __init__(
        self,
        num_particles: int = 13,
        dim: int = 3,
        *,
        epsilon: float = 1.0,
        rm: float = 1.0,
        spring: float = 1.0,
    ):
        for name, value in (("num_particles", num_particles), ("dim", dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"LennardJonesCluster: `{name}` must be a positive integer; got {value!r}."
                )
        if num_particles < 2:
            raise ValueError(
                f"LennardJonesCluster needs num_particles >= 2; got {num_particles!r}."
            )
        for name, value in (("epsilon", epsilon), ("rm", rm)):
            if isinstance(value, bool) or not (math.isfinite(value) and value > 0):
                raise ValueError(
                    f"LennardJonesCluster: `{name}` must be positive and finite; got {value!r}."
                )
        if isinstance(spring, bool) or not (math.isfinite(spring) and spring >= 0):
            raise ValueError(
                f"LennardJonesCluster: `spring` must be >= 0 and finite; got {spring!r}."
            )
        self.num_particles, self.dim = num_particles, dim
        self.epsilon, self.rm, self.spring = float(epsilon), float(rm), float(spring)

    def pair_energy(self, r: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        r = jnp.asarray(r)
        q = (self.rm / r) ** 6
        # eps q (q - 2): r == 0 gives +inf, not inf - inf.
        lj = self.epsilon * q * (q - 2.0)
        return lj + (0.5 * self.spring / self.num_particles) * r * r
