"""Neighbour lists for local conditioners: which particles `j` each particle `i` may see."""

import abc
import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int


class AbstractNeighbourList(eqx.Module):
    """A strategy that lists candidate neighbours of every particle.

    Contract: `__call__(positions, lengths, cutoff)` returns an integer array `(N, M)` whose row `i`
    holds indices `j != i`, padded with the value `N` (no particle). The list must contain
    every `j` whose minimum-image distance to `i` is below `cutoff`; it may contain more
    (consumers mask pairs beyond the cutoff with an envelope that vanishes there, so extra
    candidates change no result). `M` must be static, so that the list can be built under
    `jit`. A dense list (`DenseNeighbourList`, every pair) is exact and costs O(N^2); a cell
    list that bins positions into cells of side >= cutoff gives O(N) at fixed density.
    """

    @abc.abstractmethod
    def __call__(
        self, positions: Float[Array, "n d"], lengths: tuple[float, ...], cutoff: float
    ) -> Int[Array, "n m"]:
        """Candidate neighbours of each particle.

        **Arguments:**

        - `positions`: one configuration on the torus, wrapped into the box.
        - `lengths`: the box lengths (static).
        - `cutoff`: the interaction range the consumer needs (static).

        **Returns:**

        Indices `(N, M)`, padded with `N`.
        """


class DenseNeighbourList(AbstractNeighbourList):
    """Every other particle is a candidate: row `i` is `[0, ..., i-1, i+1, ..., N-1]`
    (`M = N - 1`). Exact and cheapest for small systems (tens of particles), where a cell
    list would hold every particle anyway."""

    def __call__(
        self, positions: Float[Array, "n d"], lengths: tuple[float, ...], cutoff: float
    ) -> Int[Array, "n m"]:
        n = positions.shape[0]
        rows = jnp.arange(n)[:, None]
        cols = jnp.arange(n - 1)[None, :]
        # Skip the diagonal: column c of row i is c for c < i and c + 1 otherwise.
        return jnp.where(cols < rows, cols, cols + 1).astype(jnp.int32)


class CellNeighbourList(AbstractNeighbourList):
    """Candidates from a cell list: the box is cut into `c_k = floor(L_k / cutoff)` cells per
    axis (each at least `cutoff` wide), and particle `i` sees the members of its own cell and
    of the adjacent ones (`3^d` cells, periodic), so a neighbour within the cutoff is always
    listed. An axis with fewer than 3 such cells is not cut (one cell spans it), so that no
    cell is listed twice. Row length `M = 3^d * capacity` (fewer on uncut axes), padded with
    `N`; the cost is O(N) at fixed density.

    A cell holding more than `capacity` particles would drop candidates: that is an error
    (`eqx.error_if`, also under `jit`); raise `capacity`.

    **Arguments:**

    - `capacity`: the most particles one cell may hold (static).
    """

    capacity: int = eqx.field(static=True)

    def __init__(self, capacity: int):
        if isinstance(capacity, bool) or int(capacity) != capacity or capacity < 1:
            raise ValueError(
                f"CellNeighbourList(capacity=...) must be a positive integer; got {capacity!r}."
            )
        self.capacity = int(capacity)

    def __call__(
        self, positions: Float[Array, "n d"], lengths: tuple[float, ...], cutoff: float
    ) -> Int[Array, "n m"]:
        n = positions.shape[0]
        cells = tuple(c if c >= 3 else 1 for c in (math.floor(side / cutoff) for side in lengths))
        num_cells = math.prod(cells)
        shape = jnp.asarray(cells, jnp.int32)
        sides = [length / c for length, c in zip(lengths, cells, strict=True)]
        side = jnp.asarray(sides, positions.dtype)
        index = jnp.floor(positions / side[None, :]).astype(jnp.int32)
        index = jnp.clip(index, 0, shape[None, :] - 1)  # a point rounded onto L
        strides = np.cumprod((1, *cells[:-1])).astype(np.int32)
        flat = jnp.sum(index * jnp.asarray(strides)[None, :], axis=1)

        # Cell table (num_cells, capacity): members sorted by cell, padded with n.
        order = jnp.argsort(flat).astype(jnp.int32)
        counts = jax.ops.segment_sum(jnp.ones((n,), jnp.int32), flat, num_segments=num_cells)
        starts = jnp.cumsum(counts) - counts
        slot = jnp.arange(self.capacity, dtype=jnp.int32)[None, :]
        position = jnp.minimum(starts[:, None] + slot, n - 1)
        table = jnp.where(slot < counts[:, None], order[position], n).astype(jnp.int32)

        # The adjacent cells of every particle (periodic), flattened.
        offsets = np.asarray(
            list(itertools.product(*[(-1, 0, 1) if c >= 3 else (0,) for c in cells])),
            dtype=np.int32,
        )  # (k, d)
        adjacent = jnp.mod(
            index[:, None, :] + jnp.asarray(offsets)[None, :, :], shape[None, None, :]
        )
        adjacent = jnp.sum(adjacent * jnp.asarray(strides)[None, None, :], axis=-1)  # (n, k)
        candidates = table[adjacent].reshape(n, -1)
        own = jnp.arange(n, dtype=jnp.int32)[:, None]
        candidates = jnp.where(candidates == own, n, candidates)
        return eqx.error_if(
            candidates,
            jnp.any(counts > self.capacity),
            f"CellNeighbourList: a cell holds more than capacity={self.capacity} particles, so "
            "neighbours would be dropped; raise `capacity`.",
        )
