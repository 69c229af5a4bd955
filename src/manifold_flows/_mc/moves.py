"""Monte Carlo moves of one chain: Gaussian displacements and species swaps, with O(N) energy
changes.

The randomness of a move is passed in (`uniforms`, `noise`) rather than drawn inside, so a whole
sweep draws its random numbers in two calls and tests can drive a move exactly.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

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
    """Propose one move and compute its energy change in O(N).

    With probability `p_swap` (`uniforms[0] < p_swap`) a swap: one row `(a, b)` of `swap_pairs`
    uniformly, then one particle uniformly among those of species `a` and one among species
    `b`, which exchange their labels. Otherwise a displacement: one particle uniformly, moved by
    `step_size * noise` (noise standard normal) and wrapped onto the torus. Both proposals are
    symmetric, so the acceptance rule alone fixes the stationary law.

    The energy change uses `energy.particle_energy` (`e_i`): `e_i(new) - e_i(old)` for a
    displacement of `i`, `(e_i + e_j)(new) - (e_i + e_j)(old)` for a swap of `i` and `j` (their
    mutual term is symmetric in the labels and cancels). The total energy is never recomputed.

    **Arguments:**

    - `energy`: the pair energy (box, image convention, potentials).
    - `positions`, `species`: the current configuration `(n, d)` and labels `(n,)`.
    - `uniforms`: `NUM_UNIFORMS` uniform draws in `[0, 1)` (only the first five are used here).
    - `noise`: `d` standard normal draws.
    - `step_size`: the displacement width; `p_swap`: the swap probability.
    - `swap_pairs`: `(p, 2)` species pairs that may swap (`p >= 1`; with no swappable pair pass
      any row and `p_swap = 0`).

    **Returns:**

    A `Proposal`.
    """
    n = positions.shape[0]
    dtype = positions.dtype
    is_swap = uniforms[0] < p_swap

    # displacement of particle i_d
    i_d = jnp.minimum(jnp.floor(uniforms[1] * n).astype(jnp.int32), n - 1)
    moved = energy.torus.exp(positions[i_d], step_size * noise)

    # swap of particles i_s (species a) and j_s (species b)
    num_pairs = swap_pairs.shape[0]
    k = jnp.minimum(jnp.floor(uniforms[2] * num_pairs).astype(jnp.int32), num_pairs - 1)
    a, b = swap_pairs[k, 0], swap_pairs[k, 1]
    i_s = _pick(species == a, uniforms[3])
    j_s = _pick(species == b, uniforms[4])

    i = jnp.where(is_swap, i_s, i_d)
    j = jnp.where(is_swap, j_s, i_d)
    new_positions = positions.at[i].set(jnp.where(is_swap, positions[i], moved))
    swapped = species.at[i_s].set(b).at[j_s].set(a)
    new_species = jnp.where(is_swap, swapped, species)

    xs = jnp.stack([positions, new_positions, positions, new_positions])
    ss = jnp.stack([species, new_species, species, new_species])
    idx = jnp.stack([i, i, j, j])
    e = jax.vmap(energy.particle_energy)(xs, ss, idx)
    delta = (e[1] - e[0]) + jnp.where(is_swap, e[3] - e[2], jnp.zeros((), dtype))
    move_type = jnp.where(is_swap, 1 + k, 0).astype(jnp.int32)
    return Proposal(new_positions, new_species, delta, move_type)


def mc_step(
    energy: AbstractPairEnergy,
    acceptance: AbstractAcceptance,
    state: ChainState,
    uniforms: Float[Array, " 6"],
    noise: Float[Array, " d"],
    step_size: Float[Array, ""],
    temperature: Float[Array, ""],
    p_swap: Float[Array, ""],
    swap_pairs: Int[Array, "p 2"],
) -> tuple[ChainState, Int[Array, ""], Bool[Array, ""]]:
    """One Metropolis-Hastings step: propose (`propose_move`), accept with
    `acceptance.log_probability(dU, T)`, and update the running energy by `dU` if accepted.

    **Returns:**

    `(new_state, move_type, accepted)`. The state's key is not used (randomness comes in
    through `uniforms` and `noise`).
    """
    proposal = propose_move(
        energy, state.positions, state.species, uniforms, noise, step_size, p_swap, swap_pairs
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


def chain_sweep(
    energy: AbstractPairEnergy,
    acceptance: AbstractAcceptance,
    state: ChainState,
    step_size: Float[Array, ""],
    temperature: Float[Array, ""],
    p_swap: Float[Array, ""],
    swap_pairs: Int[Array, "p 2"],
) -> tuple[ChainState, Int[Array, " m"], Int[Array, " m"]]:
    """One sweep of one chain: `n` attempted moves (`n` = number of particles).

    **Returns:**

    `(new_state, accepted, attempted)` with per-move-type counts of shape
    `(1 + len(swap_pairs),)` (index 0: displacements; `1 + k`: swaps of pair `k`).
    """
    n, d = state.positions.shape
    dtype = state.positions.dtype
    num_types = 1 + swap_pairs.shape[0]
    # One draw per sweep (fewer PRNG calls compile much faster): uniforms for the move
    # decisions and, by the inverse normal CDF, the Gaussian displacements.
    key, k_u = jax.random.split(state.key)
    draws = jax.random.uniform(k_u, (n, NUM_UNIFORMS + d), dtype=dtype)
    uniforms = draws[:, :NUM_UNIFORMS]
    tiny = jnp.finfo(dtype).eps
    centred = jnp.clip(2.0 * draws[:, NUM_UNIFORMS:] - 1.0, -1.0 + tiny, 1.0 - tiny)
    noise = jnp.sqrt(jnp.asarray(2.0, dtype)) * jax.lax.erf_inv(centred)

    def body(carry, inputs):
        st, acc, att = carry
        u, z = inputs
        st, kind, accepted = mc_step(
            energy, acceptance, st, u, z, step_size, temperature, p_swap, swap_pairs
        )
        onehot = jax.nn.one_hot(kind, num_types, dtype=jnp.int32)
        return (st, acc + onehot * accepted.astype(jnp.int32), att + onehot), None

    zeros = jnp.zeros((num_types,), dtype=jnp.int32)
    (state, acc, att), _ = jax.lax.scan(body, (state, zeros, zeros), (uniforms, noise))
    return ChainState(state.positions, state.species, state.energy, key), acc, att
