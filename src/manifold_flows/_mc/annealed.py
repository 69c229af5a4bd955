"""Annealed importance sampling (AIS) from an augmented flow to the Boltzmann distribution.

A flow sample's importance weight `exp(-U/T) / q~` is exact but, for a flow that is off by
many nats, carried by a few samples. AIS (Neal, 2001) moves each flow sample through a ladder
of intermediate densities between the flow and the target with Markov moves, and accumulates
the weight stage by stage; the weights stay exact (`E[w] = Z`) for any flow, any ladder and any
step sizes that do not depend on the run itself, and their spread shrinks as the ladder gets
finer.

The chain state is the flow's joint variable `(x, a)` (positions and auxiliaries), and the
ladder runs between the flow's normalised joint density and the augmented target,

    log g_0(x, a) = log q(x, a),
    log g_1(x, a) = -U(x) / T + log p_aux(a | x)            (normaliser Z, the x-marginal's),
    log g_b = (1 - b) log g_0 + b log g_1,    0 = b_0 < b_1 < ... < b_S = 1.

A sample starts at `(x, a) ~ q` with `log w = 0`; at stage `s` it gains
`(b_s - b_{s-1}) (log g_1 - log g_0)` at its current state, then takes `steps_per_stage`
Metropolis-adjusted Langevin (MALA) steps that leave `g_{b_s}` invariant (the last stage's moves
are skipped: they would not change the weight). Then `E[exp(log w)] = Z` and the final `x`
weighted by `w` gives Boltzmann averages, as a flow sample's weight does: pass
`AnnealedSamples.log_q` (`-U/T - log w`) to `reweight` wherever a flow's `log q~` goes.

Exactness needs the step sizes fixed before the run: `tune_step_sizes` picks them per stage
from a separate pilot run (its own key), after which they are frozen.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from .._flow.augmented import AbstractAugmentedLikelihood
from .._flow.base import AbstractLikelihood


@dataclass(frozen=True)
class AnnealedSamples:
    """Samples of `annealed_importance_sample`.

    - `positions`: `(R, n, d)` final positions, wrapped into the box.
    - `energy`: `(R,)` their total energies `U`.
    - `log_w`: `(R,)` AIS log weights, `E[exp(log_w)] = Z` (`-inf` for a sample that met a
      non-finite energy or density, which then has weight 0).
    - `log_w_flow`: `(R,)` the flow's own log weights `-U/T - log q~` of the starting samples
      (what the same samples would weigh without annealing).
    - `acceptance`: `(S - 1,)` mean MALA acceptance at each stage that moves.
    - `betas`, `step_sizes`: the ladder and the step size of each stage.
    - `temperature`: `T`.
    - `evaluations`: density-and-gradient evaluations per sample (the cost, in flow passes).
    """

    positions: np.ndarray
    energy: np.ndarray
    log_w: np.ndarray
    log_w_flow: np.ndarray
    acceptance: np.ndarray
    betas: np.ndarray
    step_sizes: np.ndarray
    temperature: float
    evaluations: int

    @property
    def log_q(self) -> np.ndarray:
        """`-U/T - log w`: the "log q" that makes `reweight(energy, log_q, T)` use the AIS
        weights (an effective density: normalised in the sense that `E[w] = Z`)."""
        return -self.energy / self.temperature - self.log_w


def annealing_ladder(num_stages: int, *, power: float = 2.0) -> np.ndarray:
    """`b_s = (s / S)^power`, `s = 0..S`: denser near the flow (`b = 0`) for `power > 1`,
    where the first increments multiply the flow's whole log-weight spread."""
    if isinstance(num_stages, bool) or int(num_stages) != num_stages or num_stages < 1:
        raise ValueError(f"num_stages must be a positive integer; got {num_stages!r}.")
    if not (math.isfinite(power) and power > 0):
        raise ValueError(f"power must be positive; got {power!r}.")
    return (np.arange(num_stages + 1) / num_stages) ** float(power)


def _check_ladder(betas: Sequence[float] | ArrayLike) -> np.ndarray:
    betas = np.asarray(betas, dtype=np.float64)
    if (
        betas.ndim != 1
        or betas.size < 2
        or betas[0] != 0
        or betas[-1] != 1
        or np.any(np.diff(betas) <= 0)
    ):
        raise ValueError(
            "betas must increase strictly from 0 to 1 (at least two entries); got "
            f"{np.array2string(betas, precision=3, threshold=8)}. Use annealing_ladder(S)."
        )
    return betas


def _shaped(box: Array, value: Array) -> Array:
    """The `(d,)` box lengths shaped to broadcast against `value` (`(..., d)`)."""
    return box.reshape((1,) * (value.ndim - 1) + box.shape)


def _min_image(delta: Array, box: Array) -> Array:
    box = _shaped(box, delta)
    return delta - box * jnp.round(delta / box)


def _wrap(value: Array, box: Array) -> Array:
    return jnp.mod(value, _shaped(box, value))


class _Densities(eqx.Module):
    """`log g_0`, `log g_1` and their gradients in `(x, a)` at one state."""

    flow: AbstractAugmentedLikelihood
    energy: object
    species: Int[Array, " n"]
    temperature: float

    def terms(self, x: Array, a: Array) -> tuple[Array, Array, Array]:
        """`(log g_0, log g_1, U)`."""
        log_q = self.flow.log_prob_joint(x, a, self.species)
        u = self.energy(x, self.species)
        target = -u / self.temperature + self.flow.aux_log_prob(a, x, self.species)
        return log_q, target, u

    def state(self, x: Array, a: Array) -> "_State":
        """Both log-densities and their gradients: one forward pass, two backward passes."""
        (g0, g1, _), pullback = jax.vjp(lambda s: self.terms(*s), (x, a))
        one, zero = jnp.ones_like(g0), jnp.zeros_like(g0)
        (d0,) = pullback((one, zero, zero))
        (d1,) = pullback((zero, one, zero))
        return _State(x, a, g0, g1, d0, d1)


class _State(eqx.Module):
    x: Array
    a: Array
    g0: Array
    g1: Array
    d0: tuple[Array, Array]  # gradient of log g_0 in (x, a)
    d1: tuple[Array, Array]

    def value(self, beta: Array) -> Array:
        # b * g1 with b = 0 must not turn an infinite energy into NaN
        return (1 - beta) * self.g0 + jnp.where(beta > 0, beta * self.g1, 0)

    def gradient(self, beta: Array) -> tuple[Array, Array]:
        return tuple(
            (1 - beta) * g0 + jnp.where(beta > 0, beta * g1, 0)
            for g0, g1 in zip(self.d0, self.d1, strict=True)
        )


def _metropolis(key: PRNGKeyArray, log_ratio: Array) -> Array:
    """Accept with probability `min(1, exp(log_ratio))`."""
    return jnp.log(jax.random.uniform(key, dtype=log_ratio.dtype)) < log_ratio


def _mala_step(dens: _Densities, key, state: _State, beta, step, box) -> tuple[_State, Array]:
    """One MALA step on `(x, a)` for `log g_beta` (proposal `y = s + step grad + sqrt(2 step)
    xi`, wrapped onto the torus; the proposal density uses the minimum image, exact up to
    images `L / 2` away, `exp(-L^2 / (16 step))` relative). Non-finite proposals are refused."""
    kx, ka, ku = jax.random.split(key, 3)
    x, a = state.x, state.a
    gx, ga = state.gradient(beta)
    noise = jnp.sqrt(2 * step)
    y_x = _wrap(x + step * gx + noise * jax.random.normal(kx, x.shape, x.dtype), box)
    y_a = _wrap(a + step * ga + noise * jax.random.normal(ka, a.shape, a.dtype), box)
    new = dens.state(y_x, y_a)
    hx, ha = new.gradient(beta)

    def log_kernel(to_x, to_a, from_x, from_a, grad_x, grad_a):
        dx = _min_image(to_x - from_x - step * grad_x, box)
        da = _min_image(to_a - from_a - step * grad_a, box)
        return -(jnp.sum(dx * dx) + jnp.sum(da * da)) / (4 * step)

    value, new_value = state.value(beta), new.value(beta)
    log_ratio = (
        new_value - value + log_kernel(x, a, y_x, y_a, hx, ha) - log_kernel(y_x, y_a, x, a, gx, ga)
    )
    finite = jnp.isfinite(log_ratio) & jnp.all(jnp.isfinite(hx)) & jnp.all(jnp.isfinite(ha))
    # a current state of density 0 (or a broken one) accepts any finite proposal
    log_ratio = jnp.where(jnp.isfinite(value), log_ratio, jnp.inf)
    accept = finite & _metropolis(ku, log_ratio)
    moved = jax.tree.map(lambda n, o: jnp.where(accept, n, o), new, state)
    return moved, accept


@eqx.filter_jit
def _anneal_chunk(
    flow, energy, species, keys, betas, step_sizes, temperature: float, steps_per_stage: int
):
    """AIS for one chunk of keys: `(x, U, log_w, log_w_flow, accepted per stage)`."""
    dens = _Densities(flow, energy, species, temperature)

    def gain(state: _State, beta, next_beta):
        value = (next_beta - beta) * (state.g1 - state.g0)
        return jnp.where(jnp.isfinite(value), value, -jnp.inf)

    def one(key):
        start_key, move_key = jax.random.split(key)
        x, a, log_q = flow.sample_joint(start_key, species)
        box = jnp.asarray(flow.space.manifold.lengths, dtype=x.dtype)
        # log g_0 from the inverse pass (the density the moves use), equal to log_q
        state = dens.state(x, a)
        log_w_flow = state.g1 - log_q

        def stage(carry, inputs):
            state, log_w = carry
            beta, next_beta, step, stage_key = inputs

            def move(state, step_key):
                return _mala_step(dens, step_key, state, beta, step, box)

            keys = jax.random.split(stage_key, steps_per_stage)
            state, accepted = jax.lax.scan(move, state, keys)
            log_w = log_w + gain(state, beta, next_beta)
            return (state, log_w), jnp.mean(accepted.astype(x.dtype))

        num_moving = betas.shape[0] - 2
        inputs = (betas[1:-1], betas[2:], step_sizes, jax.random.split(move_key, num_moving))
        log_w = gain(state, betas[0], betas[1])
        (state, log_w), accepted = jax.lax.scan(stage, (state, log_w), inputs)
        u = energy(state.x, species)
        return _wrap(state.x, box), u, log_w, log_w_flow, accepted

    return jax.vmap(one)(keys)


def _check_inputs(flow, betas, step_sizes, steps_per_stage, temperature):
    if not isinstance(flow, AbstractAugmentedLikelihood):
        raise TypeError(
            "annealed importance sampling needs an augmented flow with a one-pass joint "
            "density (AugmentedCouplingFlow or MultiAuxFlow); got "
            f"{type(flow).__name__}."
        )
    betas = _check_ladder(betas)
    if (
        isinstance(steps_per_stage, bool)
        or int(steps_per_stage) != steps_per_stage
        or (steps_per_stage < 1)
    ):
        raise ValueError(f"steps_per_stage must be a positive integer; got {steps_per_stage!r}.")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be positive; got {temperature!r}.")
    num_moving = betas.size - 2
    steps = np.broadcast_to(np.asarray(step_sizes, dtype=np.float64), (num_moving,)).copy()
    if not np.all(np.isfinite(steps) & (steps > 0)):
        raise ValueError(
            "step_sizes must be positive (one number, or one per intermediate stage: "
            f"{num_moving}); use tune_step_sizes to choose them."
        )
    return betas, steps


def annealed_importance_sample(
    flow: AbstractLikelihood,
    energy,
    species: Int[ArrayLike, " n"],
    key: PRNGKeyArray,
    num_samples: int,
    *,
    temperature: float,
    betas: Sequence[float] | Float[ArrayLike, " rungs"],
    step_sizes: float | Sequence[float] | Float[ArrayLike, " moves"],
    steps_per_stage: int = 1,
    chunk_size: int = 256,
) -> AnnealedSamples:
    """Draw `num_samples` flow samples and anneal each to the Boltzmann distribution at
    `temperature` (module docstring), returning positions with exact AIS weights.

    **Arguments:**

    - `flow`: an `AbstractAugmentedLikelihood` (e.g. `AugmentedCouplingFlow`, `MultiAuxFlow`).
    - `energy`: `energy(x, species) -> U`, differentiable (e.g. `system.energy`).
    - `species`: `(n,)` species labels.
    - `key`: PRNG key; sample `i` uses `fold_in(key, i)`, so the result does not depend on
      `chunk_size`.
    - `num_samples`: R.
    - `temperature`: T of the target.
    - `betas`: the ladder `0 = b_0 < ... < b_S = 1` (`annealing_ladder`).
    - `step_sizes`: MALA step size, one number or one per intermediate stage (`S - 1`),
      fixed in advance (`tune_step_sizes`).
    - `steps_per_stage`: MALA steps at each intermediate stage.
    - `chunk_size`: samples annealed at once (memory).

    **Returns:**

    `AnnealedSamples`.
    """
    betas, steps = _check_inputs(flow, betas, step_sizes, steps_per_stage, temperature)
    if isinstance(num_samples, bool) or int(num_samples) != num_samples or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer; got {num_samples!r}.")
    species = jnp.asarray(species, dtype=jnp.int32)
    dtype = jax.tree.leaves(eqx.filter(flow, eqx.is_inexact_array))[0].dtype
    chunk_size = max(1, min(int(chunk_size), int(num_samples)))
    xs, us, log_ws, flows, accepted = [], [], [], [], []
    for start in range(0, num_samples, chunk_size):
        index = np.arange(start, start + chunk_size)
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.asarray(index, jnp.uint32))
        x, u, log_w, log_w_flow, acc = _anneal_chunk(
            flow,
            energy,
            species,
            keys,
            jnp.asarray(betas, dtype),
            jnp.asarray(steps, dtype),
            float(temperature),
            int(steps_per_stage),
        )
        count = min(chunk_size, num_samples - start)
        xs.append(np.asarray(x, np.float64)[:count])
        us.append(np.asarray(u, np.float64)[:count])
        log_ws.append(np.asarray(log_w, np.float64)[:count])
        flows.append(np.asarray(log_w_flow, np.float64)[:count])
        accepted.append(np.asarray(acc, np.float64)[:count])
    num_moving = betas.size - 2
    return AnnealedSamples(
        positions=np.concatenate(xs),
        energy=np.concatenate(us),
        log_w=np.concatenate(log_ws),
        log_w_flow=np.concatenate(flows),
        acceptance=np.concatenate(accepted).mean(axis=0) if num_moving else np.zeros(0),
        betas=betas,
        step_sizes=steps,
        temperature=float(temperature),
        evaluations=2 + num_moving * int(steps_per_stage),
    )


def tune_step_sizes(
    flow: AbstractLikelihood,
    energy,
    species: Int[ArrayLike, " n"],
    key: PRNGKeyArray,
    *,
    temperature: float,
    betas: Sequence[float] | Float[ArrayLike, " rungs"],
    steps_per_stage: int = 1,
    num_chains: int = 128,
    target_acceptance: float = 0.6,
    initial: float = 1e-3,
    rounds: int = 4,
) -> np.ndarray:
    """MALA step sizes, one per intermediate stage, that give about `target_acceptance`, from
    pilot AIS runs of `num_chains` samples (use a key the production run does not use: the
    sizes must not depend on the samples they weigh).

    Each round runs the ladder with the current sizes and scales stage `s`'s size by
    `exp(2 (acceptance_s - target))` clipped to [1/4, 4]; after `rounds` rounds the sizes are
    returned (not a guarantee of the acceptance: the result reports it).
    """
    betas, steps = _check_inputs(flow, betas, initial, steps_per_stage, temperature)
    if not 0 < target_acceptance < 1:
        raise ValueError(f"target_acceptance must lie in (0, 1); got {target_acceptance!r}.")
    for round_ in range(int(rounds)):
        pilot = annealed_importance_sample(
            flow,
            energy,
            species,
            jax.random.fold_in(key, round_),
            num_chains,
            temperature=temperature,
            betas=betas,
            step_sizes=steps,
            steps_per_stage=steps_per_stage,
            chunk_size=num_chains,
        )
        factor = np.clip(np.exp(2 * (pilot.acceptance - target_acceptance)), 0.25, 4.0)
        steps = steps * factor
    return steps
