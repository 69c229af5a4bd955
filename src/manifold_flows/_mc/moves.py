"""Monte Carlo moves of one chain: Gaussian displacements and species swaps, with O(N) energy
changes.

The randomness of a move is passed in (`uniforms`, `noise`) rather than drawn inside, so a whole
sweep draws its random numbers in one call and tests can drive a move exactly.

Performance note: a displacement needs two particle energies and a swap four. Under `vmap` over
chains a data-dependent branch computes both sides, so the engine decides the *kind* of each
move of a sweep once for all chains (a schedule independent of every chain's state and of the
rest of its randomness: each chain still applies, at every step, a kernel that leaves the
Boltzmann law invariant, with probability `p_swap` of being a swap) and branches with a real
`lax.cond`.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._energy import AbstractPairEnergy
from .acceptance import AbstractAcceptance
from .state import ChainState

#: Number of uniform draws one move consumes: move kind, particle, swap pair, first and second
#: swap partner, acceptance.
NUM_UNIFORMS = 6


class Proposal(eqx.Module):
    """A proposed move and its exact energy change.

    **Fields:**

    - `positions`, `species`: the proposed configuration.
    - `delta_energy`: `U(proposed) - U(current)`, computed in O(N) from particle energies.
    - `move_type`: `0` for a displacement, `1 + k` for a swap of the `k`-th swap pair.
    """

    positions: Float[Array, "n d"]
    species: Int[Array, " n"]
    delta_energy: Float[Array, ""]
    move_type: Int[Array, ""]


def _pick(mask: Bool[Array, " n"], u: Float[Array, ""]) -> Int[Array, ""]:
    """Index of a particle chosen uniformly among those where `mask` is true (O(n))."""
    count = jnp.sum(mask, dtype=jnp.int32)
    k = jnp.minimum(jnp.floor(u * count.astype(u.dtype)).astype(jnp.int32), count - 1)
    rank = jnp.cumsum(mask, dtype=jnp.int32)
    return jnp.argmax(mask & (rank == k + 1)).astype(jnp.int32)


def _displacement(
    energy: AbstractPairEnergy,
    positions: Float[Array, "n d"],
    species: Int[Array, " n"],
    uniforms: Float[Array, " 6"],
    noise: Float[Array, " d"],
    step_size: Float[Array, ""],
    swap_pairs: Int[Array, "p 2"],
) -> Proposal:
    n = positions.shape[0]
    i = jnp.minimum(jnp.floor(uniforms[1] * n).astype(jnp.int32), n - 1)
    moved = energy.torus.exp(positions[i], step_size * noise)
    new_positions = positions.at[i].set(moved)
    e = jax.vmap(energy.particle_energy, in_axes=(0, None, None))(
        jnp.stack([positions, new_positions]), species, i
    )
    return Proposal(new_positions, species, e[1] - e[0], jnp.zeros((), jnp.int32))


def _swap(
    energy: AbstractPairEnergy,
    positions: Float[Array, "n d"],
    species: Int[Array, " n"],
    uniforms: Float[Array, " 6"],
    noise: Float[Array, " d"],
    step_size: Float[Array, ""],
    swap_pairs: Int[Array, "p 2"],
) -> Proposal:
    num_pairs = swap_pairs.shape[0]
    k = jnp.minimum(jnp.floor(uniforms[2] * num_pairs).astype(jnp.int32), num_pairs - 1)
    a, b = swap_pairs[k, 0], swap_pairs[k, 1]
    i = _pick(species == a, uniforms[3])
    j = _pick(species == b, uniforms[4])
    new_species = species.at[i].set(b).at[j].set(a)
    e = jax.vmap(energy.particle_energy, in_axes=(None, 0, 0))(
        positions, jnp.stack([species, new_species, species, new_species]), jnp.stack([i, i, j, j])
    )
    return Proposal(
        positions, new_species, (e[1] - e[0]) + (e[3] - e[2]), (1 + k).astype(jnp.int32)
    )


def propose(
    energy: AbstractPairEnergy,
    positions: Float[Array, "n d"],
    species: Int[Array, " n"],
    uniforms: Float[Array, " 6"],
    noise: Float[Array, " d"],
    step_size: Float[Array, ""],
    is_swap: Bool[Array, ""],
    swap_pairs: Int[Array, "p 2"],
) -> Proposal:
    """Propose one move of the given kind and compute its energy change in O(N).

    - `is_swap`: one row `(a, b)` of `swap_pairs` uniformly (`uniforms[2]`), then one particle
      uniformly among those of species `a` (`uniforms[3]`) and one among species `b`
      (`uniforms[4]`), which exchange their labels.
    - otherwise a displacement: one particle uniformly (`uniforms[1]`), moved by
      `step_size * noise` (noise standard normal) and wrapped onto the torus.

    Both proposals are symmetric, so the acceptance rule alone fixes the stationary law. The
    energy change uses `energy.particle_energy` (`e_i`): `e_i(new) - e_i(old)` for a
    displacement of `i`, `(e_i + e_j)(new) - (e_i + e_j)(old)` for a swap of `i` and `j`
    (their mutual term is symmetric in the labels and cancels). The total energy is never
    recomputed.

    **Arguments:**

    - `energy`: the pair energy (box, image convention, potentials).
    - `positions`, `species`: the current configuration `(n, d)` and labels `(n,)`.
    - `uniforms`: `NUM_UNIFORMS` uniform draws in `[0, 1)` (entries 1 to 4 are used here).
    - `noise`: `d` standard normal draws.
    - `step_size`: the displacement width.
    - `is_swap`: the kind of move.
    - `swap_pairs`: `(p, 2)` species pairs that may swap (`p >= 1`; with no swappable pair
      pass any row and never ask for a swap).

    **Returns:**

    A `Proposal`.
    """
    args = (energy, positions, species, uniforms, noise, step_size, swap_pairs)
    return jax.lax.cond(is_swap, _swap, _displacement, *args)


def propose_move(
    energy: AbstractPairEnergy,
    positions: Float[Array, "n d"],
    species: Int[Array, " n"],
    uniforms: Float[Array, " 6"],
    noise: Float[Array, " d"],
    step_size: Float[Array, ""],
    p_swap: Float[Array, ""],
    swap_pairs: Int[Array, "p 2"],
) -> Proposal:
    """`propose` with the kind drawn from `uniforms[0]`: a swap with probability `p_swap`."""
    is_swap = uniforms[0] < p_swap
    return propose(energy, positions, species, uniforms, noise, step_size, is_swap, swap_pairs)


def mc_step(
    energy: AbstractPairEnergy,
    acceptance: AbstractAcceptance,
    state: ChainState,
    uniforms: Float[Array, " 6"],
    noise: Float[Array, " d"],
    step_size: Float[Array, ""],
    temperature: Float[Array, ""],
    is_swap: Bool[Array, ""],
    swap_pairs: Int[Array, "p 2"],
) -> tuple[ChainState, Int[Array, ""], Bool[Array, ""]]:
    """One Metropolis-Hastings step: propose (`propose`), accept with
    `acceptance.log_probability(dU, T)` against `uniforms[5]`, and update the running energy by
    `dU` if accepted.

    **Returns:**

    `(new_state, move_type, accepted)`. The state's key is not used (randomness comes in
    through `uniforms` and `noise`).
    """
    proposal = propose(
        energy, state.positions, state.species, uniforms, noise, step_size, is_swap, swap_pairs
    )
    log_p = acceptance.log_probability(proposal.delta_energy, temperature)
    # v = 1 - u lies in (0, 1]; accept iff log v <= log p (so dU = +inf or NaN is rejected).
    accept = jnp.log1p(-uniforms[5]) <= log_p
    new_state = ChainState(
        positions=jnp.where(accept, proposal.positions, state.positions),
        species=jnp.where(accept, proposal.species, state.species),
        energy=jnp.where(accept, state.energy + proposal.delta_energy, state.energy),
        key=state.key,
    )
    return new_state, proposal.move_type, accept


def draw_sweep(
    key: PRNGKeyArray, num_particles: int, dim: int, dtype
) -> tuple[PRNGKeyArray, Float[Array, "n 6"], Float[Array, "n d"]]:
    """The random numbers of one sweep of one chain in a single PRNG call: `(next_key,
    uniforms (n, NUM_UNIFORMS), noise (n, d))`; the Gaussian noise comes from uniforms through
    the inverse normal CDF."""
    key, sub = jax.random.split(key)
    draws = jax.random.uniform(sub, (num_particles, NUM_UNIFORMS + dim), dtype=dtype)
    tiny = jnp.finfo(dtype).eps
    centred = jnp.clip(2.0 * draws[:, NUM_UNIFORMS:] - 1.0, -1.0 + tiny, 1.0 - tiny)
    noise = jnp.sqrt(jnp.asarray(2.0, dtype)) * jax.lax.erf_inv(centred)
    return key, draws[:, :NUM_UNIFORMS], noise


def chain_sweep(
    energy: AbstractPairEnergy,
    acceptance: AbstractAcceptance,
    state: ChainState,
    uniforms: Float[Array, "n 6"],
    noise: Float[Array, "n d"],
    swap_schedule: Bool[Array, " n"],
    step_size: Float[Array, ""],
    temperature: Float[Array, ""],
    swap_pairs: Int[Array, "p 2"],
) -> tuple[ChainState, Int[Array, " m"], Int[Array, " m"]]:
    """One sweep of one chain: `n` attempted moves (`n` = number of particles), move `t` being
    a swap iff `swap_schedule[t]`.

    **Returns:**

    `(new_state, accepted, attempted)` with per-move-type counts of shape
    `(1 + len(swap_pairs),)` (index 0: displacements; `1 + k`: swaps of pair `k`).
    """
    num_types = 1 + swap_pairs.shape[0]

    def body(carry, inputs):
        st, acc, att = carry
        u, z, is_swap = inputs
        st, kind, accepted = mc_step(
            energy, acceptance, st, u, z, step_size, temperature, is_swap, swap_pairs
        )
        onehot = jax.nn.one_hot(kind, num_types, dtype=jnp.int32)
        return (st, acc + onehot * accepted.astype(jnp.int32), att + onehot), None

    zeros = jnp.zeros((num_types,), dtype=jnp.int32)
    (state, acc, att), _ = jax.lax.scan(
        body, (state, zeros, zeros), (uniforms, noise, swap_schedule)
    )
    return state, acc, att
