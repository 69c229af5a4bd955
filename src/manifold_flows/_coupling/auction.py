"""The assignment problem on the device: the auction algorithm with epsilon scaling.

Bertsekas' auction finds a permutation `perm` minimising `sum_i C[i, perm[i]]` by letting
"persons" (rows) bid for "objects" (columns) at rising prices. Every unassigned row bids, at
once, for its best column at the price that makes it indifferent to its second best plus
`eps`; each column goes to its highest bidder, whose price it takes, and its previous owner
becomes unassigned. When every row holds a column, the assignment is within `n * eps` of the
optimum (eps-complementary slackness). Epsilon scaling runs phases with `eps` shrinking by a
constant factor, keeping the prices between phases, which makes each phase short.

Here it is written with `jax.lax` loops and fixed shapes, so that a batch of problems runs as
one vmapped computation on whatever device holds the data (no host round trip): the pairing
of `SpeciesOTCoupling`, computed next to the training step on a GPU.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

#: Ratio between the epsilons of successive phases.
EPSILON_FACTOR = 8.0


class AuctionResult(NamedTuple):
    """What `auction_assignment` returns."""

    perm: Int[Array, " n"]
    total: Float[Array, ""]
    rounds: Int[Array, ""]


def _num_phases(n: int, tolerance: float) -> int:
    """Phases from `eps = C / 4` down to `tolerance * C / n` (each `EPSILON_FACTOR` smaller)."""
    ratio = 0.25 * n / tolerance
    return max(1, math.ceil(math.log(ratio) / math.log(EPSILON_FACTOR)) + 1)


def _bid_round(benefit, eps, state):
    """One Jacobi round: every unassigned row bids; each column goes to its best bidder."""
    prices, owner, assigned = state
    n = benefit.shape[0]
    rows = jnp.arange(n, dtype=jnp.int32)
    values = benefit - prices[None, :]
    best = jnp.argmax(values, axis=1).astype(jnp.int32)
    first = values[rows, best]
    second = jnp.max(values.at[rows, best].set(-jnp.inf), axis=1)
    # A row with one allowed column (a species of one) has no second best: any price is fine.
    second = jnp.where(jnp.isfinite(second), second, first)
    bid = benefit[rows, best] - second + eps
    bidding = assigned < 0
    offers = jnp.where(bidding[:, None] & (best[:, None] == rows[None, :]), bid[:, None], -jnp.inf)
    top = jnp.max(offers, axis=0)  # per column
    winner = jnp.argmax(offers, axis=0).astype(jnp.int32)
    sold = jnp.isfinite(top)
    # The previous owners of the columns sold this round lose them ...
    lost = jnp.zeros(n, bool).at[jnp.where(sold & (owner >= 0), owner, n)].set(True, mode="drop")
    assigned = jnp.where(lost, -1, assigned)
    # ... and the winners get them (a winner was unassigned, so it held nothing).
    assigned = assigned.at[jnp.where(sold, winner, n)].set(rows, mode="drop")
    owner = jnp.where(sold, winner, owner)
    prices = jnp.where(sold, top, prices)
    return prices, owner, assigned


def _complete(assigned, owner, allowed):
    """Pair the rows still unassigned with the free columns of their species, in index order
    (only reached when a phase hits its round limit: the result is then a valid but not
    necessarily optimal permutation)."""
    n = assigned.shape[0]
    free_row, free_col = assigned < 0, owner < 0
    lower = jnp.tril(jnp.ones((n, n), bool), k=-1)  # lower[i, j]: j < i
    row_rank = jnp.sum(lower & allowed & free_row[None, :], axis=1)  # allowed is symmetric
    col_rank = jnp.sum(lower & allowed & free_col[None, :], axis=1)
    match = (
        free_row[:, None] & free_col[None, :] & allowed & (row_rank[:, None] == col_rank[None, :])
    )
    return jnp.where(free_row, jnp.argmax(match, axis=1).astype(jnp.int32), assigned)


def auction_assignment(
    cost: Float[Array, "n n"],
    species: Int[Array, " n"],
    *,
    tolerance: float = 1e-4,
    max_rounds: int | None = None,
) -> "AuctionResult":
    """A minimum-cost assignment of rows to columns within species, on the device.

    **Arguments:**

    - `cost`: `(n, n)` costs `C[i, j]` of pairing row `i` with column `j` (non-finite entries
      count as more expensive than every finite one).
    - `species`: `(n,)` labels; row `i` may only take a column `j` with the same label.
    - `tolerance`: the total cost is within `tolerance * max|C|` of the optimum (the final
      `eps` is `tolerance * max|C| / n`).
    - `max_rounds`: bidding rounds allowed per phase (default `64 n`); a phase that runs out
      is completed by pairing the remaining rows in index order, so the result is always a
      permutation within species.

    **Returns:**

    An `AuctionResult` `(perm, total, rounds)`: row `i` takes column `perm[i]`;
    `total = sum_i C[i, perm[i]]`; `rounds` the bidding rounds of all phases together.
    """
    cost = jnp.asarray(cost)
    species = jnp.asarray(species)
    n = cost.shape[0]
    allowed = species[:, None] == species[None, :]
    finite = jnp.isfinite(cost) & allowed
    largest = jnp.max(jnp.where(finite, jnp.abs(cost), 0))
    scale = jnp.where(largest > 0, largest, 1)
    # Non-finite costs become finite and worse than any finite one; forbidden pairs -inf.
    clean = jnp.where(jnp.isfinite(cost), cost, 2 * scale + 1)
    benefit = jnp.where(allowed, -clean / scale, -jnp.inf)  # in units of max|C|
    phases = _num_phases(n, tolerance)
    rounds = 64 * n if max_rounds is None else int(max_rounds)

    def phase(k, carry):
        (prices, _, _), used = carry
        eps = (0.25 / EPSILON_FACTOR**k).astype(benefit.dtype)
        eps = jnp.maximum(eps, tolerance / n)
        start = (prices, jnp.full(n, -1, jnp.int32), jnp.full(n, -1, jnp.int32))

        def going(loop):
            count, (_, _, assigned) = loop
            return (count < rounds) & jnp.any(assigned < 0)

        def step(loop):
            count, state = loop
            return count + 1, _bid_round(benefit, eps, state)

        count, state = jax.lax.while_loop(going, step, (jnp.zeros((), jnp.int32), start))
        return state, used + count

    initial = (
        jnp.zeros(n, benefit.dtype),
        jnp.full(n, -1, jnp.int32),
        jnp.full(n, -1, jnp.int32),
    )
    (_, owner, assigned), used = jax.lax.fori_loop(
        0,
        phases,
        lambda k, c: phase(jnp.asarray(k, benefit.dtype), c),
        (initial, jnp.zeros((), jnp.int32)),
    )
    perm = _complete(assigned, owner, allowed).astype(jnp.int32)
    total = jnp.sum(cost[jnp.arange(n), perm])
    return AuctionResult(perm, total, used)
