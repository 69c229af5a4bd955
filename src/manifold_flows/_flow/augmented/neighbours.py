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
    `N`; the cost is O(N) at fixed density. With `max_neighbours`, the candidates are narrowed
    to those closer than the cutoff (minimum image) and the row shortened to `max_neighbours`,
    so that a consumer evaluates about as many pairs as there are real neighbours.

    A cell holding more than `capacity` particles, or a particle with more than
    `max_neighbours` neighbours, would drop candidates: that is an error (`eqx.error_if`, also
    under `jit`); raise the bound.

    **Arguments:**

    - `capacity`: the most particles one cell may hold (static).
    - `max_neighbours`: the most neighbours within the cutoff one particle may have (static;
      `None`: keep every candidate of the adjacent cells).
    """

    capacity: int = eqx.field(static=True)
    max_neighbours: int | None = eqx.field(static=True)

    def __init__(self, capacity: int, max_neighbours: int | None = None):
        for name, value in (("capacity", capacity), ("max_neighbours", max_neighbours)):
            if value is None and name == "max_neighbours":
                continue
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(
                    f"CellNeighbourList({name}=...) must be a positive integer; got {value!r}."
                )
        self.capacity = int(capacity)
        self.max_neighbours = None if max_neighbours is None else int(max_neighbours)

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
        candidates = eqx.error_if(
            candidates,
            jnp.any(counts > self.capacity),
            f"CellNeighbourList: a cell holds more than capacity={self.capacity} particles, so "
            "neighbours would be dropped; raise `capacity`.",
        )
        if self.max_neighbours is None:
            return candidates
        return _within_cutoff(candidates, positions, lengths, cutoff, self.max_neighbours)


def _within_cutoff(
    candidates: Int[Array, "n k"],
    positions: Float[Array, "n d"],
    lengths: tuple[float, ...],
    cutoff: float,
    size: int,
) -> Int[Array, "n m"]:
    """The candidates closer than `cutoff` (minimum image), first in each row, the row cut to
    `size` (an error if a particle has more such neighbours)."""
    n = positions.shape[0]
    real = candidates < n
    box = jnp.asarray(lengths, positions.dtype)[None, None, :]
    delta = positions[jnp.where(real, candidates, 0)] - positions[:, None, :]
    delta = delta - box * jnp.round(delta / box)
    close = real & (jnp.sum(delta * delta, axis=-1) < cutoff**2)
    # Compaction by a scatter, cheaper than a sort: the k-th close candidate of a row goes to
    # column k; the rest, and any beyond `size`, to a spare column that is dropped.
    slot = jnp.cumsum(close, axis=1, dtype=jnp.int32) - 1
    slot = jnp.where(close & (slot < size), slot, size)
    rows = jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32)[:, None], slot.shape)
    kept = jnp.full((n, size + 1), n, jnp.int32).at[rows, slot].set(candidates)[:, :size]
    return eqx.error_if(
        kept,
        jnp.any(jnp.sum(close, axis=1) > size),
        f"CellNeighbourList: a particle has more than max_neighbours={size} neighbours within "
        "the cutoff, so some would be dropped; raise `max_neighbours`.",
    )
