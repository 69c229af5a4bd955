"""Advance many chains by a number of sweeps in one jitted `lax.scan` (chains vmapped), with
step-size tuning and a drift check of the running energy."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from .._energy import AbstractPairEnergy
from .acceptance import AbstractAcceptance
from .moves import chain_sweep, draw_sweep
from .state import ChainState, SamplerState


class KernelSettings(eqx.Module):
    """The traced parameters of the kernel (arrays, so changing them never recompiles).

    **Fields:**

    - `p_swap`: probability that a move is a swap.
    - `swap_pairs`: `(p, 2)` species pairs that may swap (`p >= 1`; a dummy row when none).
    - `target_low`, `target_high`: the displacement acceptance band the tuner aims for.
    - `tune_every`: sweeps between step-size updates.
    - `min_step`, `max_step`: bounds of the step size.
    - `gain`: the tuner's gain: `log step += gain * (rate - clip(rate, low, high))`.
    """

    p_swap: Float[Array, ""]
    swap_pairs: Int[Array, "p 2"]
    target_low: Float[Array, ""]
    target_high: Float[Array, ""]
    tune_every: Int[Array, ""]
    min_step: Float[Array, ""]
    max_step: Float[Array, ""]
    gain: Float[Array, ""]


class AdvanceOutput(eqx.Module):
    """What `advance` returns besides the new state.

    **Fields:**

    - `trace`: `(sweeps, chains)` running energy after each sweep (unchanged on inactive sweeps).
    - `accepted`, `attempted`: `(chains, 1 + p)` move counts over the call, by move type.
    - `drift`: `(chains,)` absolute difference between the running energy and a full
      recomputation at the end of the call (the running energy is then reset to it).
    - `relative_drift`: `(chains,)` the same divided by `1 + |U|`.
    """

    trace: Float[Array, "s c"]
    accepted: Int[Array, "c m"]
    attempted: Int[Array, "c m"]
    drift: Float[Array, " c"]
    relative_drift: Float[Array, " c"]


def _tune(sampler: SamplerState, settings: KernelSettings, tune: Bool[Array, ""]) -> SamplerState:
    """Update the step size at the end of a tuning window (only when `tune` is true)."""
    # (no displacement tried in the window, e.g. p_swap = 1: nothing to learn from)
    due = tune & (sampler.window_sweeps >= settings.tune_every) & (sampler.window_attempted > 0)
    dtype = sampler.step_size.dtype
    rate = sampler.window_accepted.astype(dtype) / jnp.maximum(sampler.window_attempted, 1).astype(
        dtype
    )
    excess = rate - jnp.clip(rate, settings.target_low, settings.target_high)
    proposed = jnp.clip(
        sampler.step_size * jnp.exp(settings.gain * excess), settings.min_step, settings.max_step
    )
    zero = jnp.zeros((), jnp.int32)
    return SamplerState(
        chains=sampler.chains,
        step_size=jnp.where(due, proposed, sampler.step_size),
        window_accepted=jnp.where(due, zero, sampler.window_accepted),
        window_attempted=jnp.where(due, zero, sampler.window_attempted),
        window_sweeps=jnp.where(due, zero, sampler.window_sweeps),
    )


@eqx.filter_jit
def advance(
    energy: AbstractPairEnergy,
    acceptance: AbstractAcceptance,
    sampler: SamplerState,
    temperatures: Float[Array, " s"],
    active: Bool[Array, " s"],
    tune: Bool[Array, ""],
    settings: KernelSettings,
) -> tuple[SamplerState, AdvanceOutput]:
    """Run `len(temperatures)` sweeps of every chain, then check the running energy.

    Sweep `k` runs at temperature `temperatures[k]` if `active[k]` (inactive sweeps do nothing:
    they pad a call to a fixed length so one compilation serves every call). With `tune`, the
    shared step size is updated every `settings.tune_every` sweeps from the displacement
    acceptance pooled over chains; without it the step size is frozen (production).

    At the end the total energy of every chain is recomputed from scratch; the difference to
    the running energy (the drift) is returned and the running energy is reset to the exact
    value.

    **Returns:**

    `(new_sampler, AdvanceOutput)`.
    """
    num_types = 1 + settings.swap_pairs.shape[0]
    num_chains = sampler.chains.energy.shape[0]

    def one_sweep(carry, inputs):
        smp, acc, att = carry
        temperature, is_active = inputs

        def run(args):
            smp, acc, att = args
            n, d = smp.chains.positions.shape[1:]
            dtype = smp.chains.positions.dtype
            keys, uniforms, noise = jax.vmap(lambda k: draw_sweep(k, n, d, dtype))(smp.chains.key)
            # The kind of each move, shared by all chains (see `moves`): column 0 of chain 0's
            # draws, which no chain uses for anything else.
            swap_schedule = uniforms[0, :, 0] < settings.p_swap
            chains = ChainState(smp.chains.positions, smp.chains.species, smp.chains.energy, keys)

            def sweep_chain(state, u, z):
                return chain_sweep(
                    energy,
                    acceptance,
                    state,
                    u,
                    z,
                    swap_schedule,
                    smp.step_size,
                    temperature,
                    settings.swap_pairs,
                )

            chains, a, t = jax.vmap(sweep_chain)(chains, uniforms, noise)
            smp = SamplerState(
                chains=chains,
                step_size=smp.step_size,
                window_accepted=smp.window_accepted + jnp.sum(a[:, 0], dtype=jnp.int32),
                window_attempted=smp.window_attempted + jnp.sum(t[:, 0], dtype=jnp.int32),
                window_sweeps=smp.window_sweeps + 1,
            )
            return _tune(smp, settings, tune), acc + a, att + t

        carry = jax.lax.cond(is_active, run, lambda args: args, (smp, acc, att))
        return carry, carry[0].chains.energy

    zeros = jnp.zeros((num_chains, num_types), jnp.int32)
    (sampler, acc, att), trace = jax.lax.scan(
        one_sweep, (sampler, zeros, zeros), (temperatures, active)
    )

    chains = sampler.chains
    exact = jax.vmap(energy)(chains.positions, chains.species)
    drift = jnp.abs(chains.energy - exact)
    # an infinite or NaN running energy is a drift too (never silently reset)
    drift = jnp.where(jnp.isfinite(drift), drift, jnp.inf)
    relative = jnp.where(jnp.isfinite(exact), drift / (1.0 + jnp.abs(exact)), jnp.inf)
    chains = ChainState(chains.positions, chains.species, exact, chains.key)
    sampler = SamplerState(
        chains,
        sampler.step_size,
        sampler.window_accepted,
        sampler.window_attempted,
        sampler.window_sweeps,
    )
    return sampler, AdvanceOutput(trace, acc, att, drift, relative)
