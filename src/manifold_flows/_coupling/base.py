"""The coupling interface: how base draws are paired with data points for flow matching."""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from .._manifold import AbstractManifold, ParticleSpace


class AbstractCoupling(eqx.Module):
    """A coupling of one base draw `x0` with one data point `x1`.

    One pair in (configurations of shape `(n, d)` with a species vector `(n,)`); batch with
    `jax.vmap` (the species vector is usually shared: `in_axes=(0, 0, None)`).

    Contract: the returned pair `(x0', x1')` has `x0' = x0`, and `x1'` is the image of `x1`
    under a symmetry of the data distribution (a permutation of particles within species,
    optionally a box point-group element), so the coupled pairs still have the right
    marginals when both marginals are invariant under those symmetries. Paired particles have
    equal species.
    """

    @abc.abstractmethod
    def __call__(
        self,
        x0: Float[Array, " n *d"],
        x1: Float[Array, " n *d"],
        species: Int[Array, " n"] | None,
    ) -> tuple[Float[Array, " n *d"], Float[Array, " n *d"]]:
        """Pair `x0` with (a symmetric image of) `x1`.

        **Arguments:**

        - `x0`: a draw of the base distribution.
        - `x1`: a data point, same shape.
        - `species`: integer species labels `(n,)` (ignored by couplings that do not look at
          particles; may then be `None`).

        **Returns:**

        `(x0, x1')`: `x1'` is `x1` re-ordered within species (and possibly transformed by a
        symmetry) so that particle `i` of `x0` travels to particle `i` of `x1'`.
        """


def transport_cost(
    manifold: AbstractManifold, x0: Float[Array, " n *d"], x1: Float[Array, " n *d"]
) -> Float[Array, ""]:
    """The transport cost of the pairing `i -> i`: `sum_i dist(x0_i, x1_i)^2` on `manifold`
    (a single-particle manifold, or the `ParticleSpace` it lives in)."""
    if isinstance(manifold, ParticleSpace):
        manifold = manifold.manifold
    return jnp.sum(jax.vmap(manifold.sq_dist)(x0, x1))
