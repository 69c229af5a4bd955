"""The energy interface: total potential energy U of one configuration."""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


class AbstractEnergy(eqx.Module):
    """A potential energy of a particle configuration.

    Convention (used everywhere in the package): `__call__` returns the **total** potential
    energy U = sum over pairs i < j (not per particle); per-particle values are U / N. The
    Boltzmann target is p(x) ∝ exp(-U(x) / T) in reduced units (k_B = 1).

    One configuration in: `x` of shape `(n, d)`, `species` of shape `(n,)`; batch with
    `jax.vmap`.
    """

    @abc.abstractmethod
    def __call__(self, x: Float[Array, "n d"], species: Int[Array, " n"]) -> Float[Array, ""]:
        """Total potential energy U(x)."""

    @abc.abstractmethod
    def per_particle(self, x: Float[Array, "n d"], species: Int[Array, " n"]) -> Float[Array, " n"]:
        """Energy of each particle: half the sum of its pair energies, so that the entries sum
        to the total U."""

    # concrete helper, derived from `__call__` (never overridden)
    def forces(self, x: Float[Array, "n d"], species: Int[Array, " n"]) -> Float[Array, "n d"]:
        """Forces F = -dU/dx by automatic differentiation."""
        return -jax.grad(lambda y: self(y, species))(jnp.asarray(x))
