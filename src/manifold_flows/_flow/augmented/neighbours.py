"""Neighbour lists for local conditioners: which particles `j` each particle `i` may see."""

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


class AbstractNeighbourList(eqx.Module):
    """A strategy that lists candidate neighbours of every particle.

    Contract: `__call__(positions, cutoff)` returns an integer array `(N, M)` whose row `i`
    holds indices `j != i`, padded with the value `N` (no particle). The list must contain
    every `j` whose minimum-image distance to `i` is below `cutoff`; it may contain more
    (consumers mask pairs beyond the cutoff with an envelope that vanishes there, so extra
    candidates change no result). `M` must be static, so that the list can be built under
    `jit`. A dense list (`DenseNeighbourList`, every pair) is exact and costs O(N^2); a cell
    list that bins positions into cells of side >= cutoff gives O(N) at fixed density.
    """

    @abc.abstractmethod
    def __call__(self, positions: Float[Array, "n d"], cutoff: float) -> Int[Array, "n m"]:
        """Candidate neighbours of each particle.

        **Arguments:**

        - `positions`: one configuration on the torus.
        - `cutoff`: the interaction range the consumer needs.

        **Returns:**

        Indices `(N, M)`, padded with `N`.
        """


class DenseNeighbourList(AbstractNeighbourList):
    """Every other particle is a candidate: row `i` is `[0, ..., i-1, i+1, ..., N-1]`
    (`M = N - 1`). Exact and cheapest for small systems (tens of particles), where a cell
    list would hold every particle anyway."""

    def __call__(self, positions: Float[Array, "n d"], cutoff: float) -> Int[Array, "n m"]:
        n = positions.shape[0]
        rows = jnp.arange(n)[:, None]
        cols = jnp.arange(n - 1)[None, :]
        # Skip the diagonal: column c of row i is c for c < i and c + 1 otherwise.
        return jnp.where(cols < rows, cols, cols + 1).astype(jnp.int32)
