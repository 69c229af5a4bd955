"""Annealed importance sampling (AIS) from an augmented flow to the Boltzmann distribution.

A flow sample's importance weight `exp(-U/T) / q~` is exact but, for a flow that is off by
many nats, carried by a few samples. AIS (Neal, 2001) moves each flow sample through a ladder
of intermediate densities between the flow and the target with Markov moves, and accumulates
the weight stage by stage; the weights stay exact (`E[w] = Z`) for any flow, any ladder and any
step sizes that do not depend on the run itself, and their spread shrinks as the ladder gets
finer.

The ladder runs, in the flow's joint variable `(x, a)` (positions and auxiliaries), between
the flow's normalised joint density and the augmented target,

    log g_0(x, a) = log q(x, a),
    log g_1(x, a) = -U(x) / T + log p_aux(a | x)            (normaliser Z, the x-marginal's),
    log g_b = (1 - b) log g_0 + b log g_1,    0 = b_0 < b_1 < ... < b_S = 1.

A sample starts at `(x, a) ~ q` with `log w = 0`; at stage `s` it gains
`(b_s - b_{s-1}) (log g_1 - log g_0)` at its current state, then takes `steps_per_stage`
Metropolis-adjusted Langevin (MALA) steps that leave `g_{b_s}` invariant (the last stage's moves
are skipped: they would not change the weight). Then `E[exp(log w)] = Z` and the final `x`
weighted by `w` gives Boltzmann averages, as a flow sample's weight does: pass
`AnnealedSamples.log_q` (`-U/T - log w`) to `reweight` wherever a flow's `log q~` goes.

The moves act on `(x, a)` or, for a flow with a base map, on its base variables (the same
ladder pulled back through the flow: `_Densities`); the weights are the same either way. A
state's step is the stage's step shrunk by the state's gradient (`_local_step`), and the
proposal density is the normal step wrapped onto the torus (`_wrapped_log_kernel`).

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
from .._flow.augmented.spline import wrap
from .._flow.augmented.wrapped_normal import wrapped_normal_exponents
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
    - `coordinates`: `"latent"` or `"direct"`, where the moves acted.
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
    coordinates: str

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


def _wrap(value: Array, box: Array) -> Array:
    return wrap(value, _shaped(box, value))


class _Densities(eqx.Module):
    """The two ends of the ladder as functions of the chain's coordinates `c = (c_x, c_a)`:
    the flow's `(x, a)` themselves (`latent=False`), or its base variables `(z_x, z_a)` with
    `(x, a) = f(z)` (`latent=True`), where both ends are pulled back by the flow:
    `h_0(z) = log base(z)` and `h_1(z) = log g_1(f(z)) + log |det f'(z)|`. The difference
    `h_1 - h_0 = log g_1(x, a) - log q(x, a)` is the same in both, so are the weights; the
    pulled-back ladder starts at the smooth base and is as well conditioned as the flow is good,
    where `log q(x, a)` of a trained flow has steep directions that force tiny steps."""

    flow: AbstractAugmentedLikelihood
    energy: object
    species: Int[Array, " n"]
    temperature: float
    latent: bool = eqx.field(static=True)

    def start(self, key: PRNGKeyArray) -> tuple[tuple[Array, Array], Array]:
        """A flow sample's coordinates and its `log g_1 - log q` (from the sampling pass)."""
        if self.latent:
            x_key, a_key = jax.random.split(key)
            z_x = self.flow.space.random_uniform(x_key, dtype=self.flow.dtype)
            z_a = self.flow.sample_base_aux(a_key, z_x, self.species)
            x, a, log_det = self.flow.forward(z_x, z_a, self.species)
            log_q = self.flow.base_log_prob(z_x, z_a, self.species) - log_det
            coords = (z_x, z_a)
        else:
            x, a, log_q = self.flow.sample_joint(key, self.species)
            coords = (x, a)
        return coords, self._target(x, a)[0] - log_q

    def _target(self, x: Array, a: Array) -> tuple[Array, Array]:
        u = self.energy(x, self.species)
        return -u / self.temperature + self.flow.aux_log_prob(a, x, self.species), u

    def positions(self, coords: tuple[Array, Array]) -> Array:
        if self.latent:
            return self.flow.forward(*coords, self.species)[0]
        return coords[0]

    def terms(self, coords: tuple[Array, Array]) -> tuple[Array, Array, Array]:
        """`(h_0, h_1, U)` at `coords`."""
        if self.latent:
            z_x, z_a = coords
            x, a, log_det = self.flow.forward(z_x, z_a, self.species)
            target, u = self._target(x, a)
            return self.flow.base_log_prob(z_x, z_a, self.species), target + log_det, u
        x, a = coords
        target, u = self._target(x, a)
        return self.flow.log_prob_joint(x, a, self.species), target, u

    def state(self, coords: tuple[Array, Array]) -> "_State":
        """Both log-densities and their gradients: one forward pass, two backward passes."""
        (h0, h1, _), pullback = jax.vjp(self.terms, coords)
        one, zero = jnp.ones_like(h0), jnp.zeros_like(h0)
        (d0,) = pullback((one, zero, zero))
        (d1,) = pullback((zero, one, zero))
        return _State(coords, h0, h1, d0, d1)


class _State(eqx.Module):
    coords: tuple[Array, Array]
    h0: Array
    h1: Array
    d0: tuple[Array, Array]  # gradient of h_0 in the coordinates
    d1: tuple[Array, Array]

    def value(self, beta: Array) -> Array:
        # b * h1 with b = 0 must not turn an infinite energy into NaN
        return (1 - beta) * self.h0 + jnp.where(beta > 0, beta * self.h1, 0)

    def gradient(self, beta: Array) -> tuple[Array, Array]:
        return tuple(
            (1 - beta) * g0 + jnp.where(beta > 0, beta * g1, 0)
            for g0, g1 in zip(self.d0, self.d1, strict=True)
        )


def _metropolis(key: PRNGKeyArray, log_ratio: Array) -> Array:
    """Accept with probability `min(1, exp(log_ratio))`."""
    return jnp.log(jax.random.uniform(key, dtype=log_ratio.dtype)) < log_ratio


# Images -2..2 of the wrapped normal: the first one left out is at least 2.5 L away where the
# nearest is at most L / 2, so it is smaller by exp(-1.5 L^2 / h) < 1e-17 for h <= L^2 / 26.
_IMAGES = 2


def _largest_step(flow) -> float:
    """`L^2 / 26`, `L` the shortest box side: the largest step `_IMAGES` images keep exact."""
    return min(flow.space.manifold.lengths) ** 2 / 26


def _wrapped_log_kernel(delta: Array, h: Array, box: Array) -> Array:
    """`sum log sum_m exp(-(delta + m L)^2 / (4 h))` over the coordinates: the log-density of a
    normal step of variance `2 h` wrapped onto the torus, up to `-D/2 log(4 pi h)`."""
    return wrapped_normal_exponents(delta, 2 * h, _shaped(box, delta), _IMAGES)


def _local_step(step: Array, grad: tuple[Array, Array]) -> Array:
    """The step size at a state: `h / (1 + h |grad|^2 / D)`, `D` the number of coordinates.
    Where the drift `h grad` would outrun the noise (`|h grad|^2 > 2 h D`: a stiff state, e.g.
    two particles nearly on top of each other) the step shrinks; at typical states it is `h`.
    A deterministic function of the state, so the Metropolis test below stays exact."""
    squared = sum(jnp.sum(g * g) for g in grad)
    size = sum(g.size for g in grad)
    return step / (1 + step * squared / size)


def _mala_step(dens: _Densities, key, state: _State, beta, step, box) -> tuple[_State, Array]:
    """One MALA step on the coordinates for `h_beta` (proposal `y = c + h(c) grad +
    sqrt(2 h(c)) xi` with the state's own step `h(c)` (`_local_step`), wrapped onto the torus;
    the proposal density is the wrapped normal, `_wrapped_log_kernel`). Non-finite proposals
    are refused."""
    keys = jax.random.split(key, 3)
    coords, grad = state.coords, state.gradient(beta)
    h = _local_step(step, grad)
    proposal = tuple(
        _wrap(c + h * g + jnp.sqrt(2 * h) * jax.random.normal(k, c.shape, c.dtype), box)
        for c, g, k in zip(coords, grad, keys[:2], strict=True)
    )
    new = dens.state(proposal)
    new_grad = new.gradient(beta)
    new_h = _local_step(step, new_grad)
    size = sum(c.size for c in coords)

    def log_kernel(to, start, grad_start, h_start):
        total = -0.5 * size * jnp.log(h_start)
        for t, s0, g in zip(to, start, grad_start, strict=True):
            total = total + _wrapped_log_kernel(t - s0 - h_start * g, h_start, box)
        return total

    value, new_value = state.value(beta), new.value(beta)
    log_ratio = (
        new_value
        - value
        + log_kernel(coords, proposal, new_grad, new_h)
        - log_kernel(proposal, coords, grad, h)
    )
    finite = jnp.isfinite(log_ratio) & jnp.all(
        jnp.asarray([jnp.all(jnp.isfinite(g)) for g in new_grad])
    )
    # a current state of density 0 (or a broken one) accepts any finite proposal
    log_ratio = jnp.where(jnp.isfinite(value), log_ratio, jnp.inf)
    accept = finite & _metropolis(keys[2], log_ratio)
    moved = jax.tree.map(lambda n, o: jnp.where(accept, n, o), new, state)
    return moved, accept


@eqx.filter_jit
def _anneal_chunk(dens: _Densities, keys, betas, step_sizes, steps_per_stage: int):
    """AIS for one chunk of keys: `(x, U, log_w, log_w_flow, accepted per stage)`."""

    def gain(state: _State, beta, next_beta):
        value = (next_beta - beta) * (state.h1 - state.h0)
        return jnp.where(jnp.isfinite(value), value, -jnp.inf)

    def one(key):
        start_key, move_key = jax.random.split(key)
        coords, log_w_flow = dens.start(start_key)
        box = jnp.asarray(dens.flow.space.manifold.lengths, dtype=coords[0].dtype)
        # h_0 recomputed by the pass the moves use (equal to the sampling pass's log q)
        state = dens.state(coords)

        def stage(carry, inputs):
            state, log_w = carry
            beta, next_beta, step, stage_key = inputs

            def move(state, step_key):
                return _mala_step(dens, step_key, state, beta, step, box)

            keys = jax.random.split(stage_key, steps_per_stage)
            state, accepted = jax.lax.scan(move, state, keys)
            log_w = log_w + gain(state, beta, next_beta)
            return (state, log_w), jnp.mean(accepted.astype(log_w.dtype))

        num_moving = betas.shape[0] - 2
        inputs = (betas[1:-1], betas[2:], step_sizes, jax.random.split(move_key, num_moving))
        log_w = gain(state, betas[0], betas[1])
        (state, log_w), accepted = jax.lax.scan(stage, (state, log_w), inputs)
        x = dens.positions(state.coords)
        u = dens.energy(x, dens.species)
        return _wrap(x, box), u, log_w, log_w_flow, accepted

    return jax.vmap(one)(keys)


def _has_latent(flow) -> bool:
    return callable(getattr(flow, "forward", None)) and callable(
        getattr(flow, "base_log_prob", None)
    )


def _check_inputs(flow, betas, step_sizes, steps_per_stage, temperature, coordinates):
    if not isinstance(flow, AbstractAugmentedLikelihood):
        raise TypeError(
            "annealed importance sampling needs an augmented flow with a one-pass joint "
            "density (AugmentedCouplingFlow or MultiAuxFlow); got "
            f"{type(flow).__name__}."
        )
    if coordinates not in ("auto", "latent", "direct"):
        raise ValueError(f"coordinates must be 'auto', 'latent' or 'direct'; got {coordinates!r}.")
    latent = _has_latent(flow) if coordinates == "auto" else coordinates == "latent"
    if latent and not _has_latent(flow):
        raise ValueError(
            f"coordinates='latent' needs a flow with a base map (forward and base_log_prob, "
            f"e.g. AugmentedCouplingFlow); {type(flow).__name__} has none: use 'direct'."
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
    largest = _largest_step(flow)
    if np.any(steps > largest):
        raise ValueError(
            f"step_sizes must be at most L^2 / 26 = {largest:.4g} (the wrapped proposal keeps "
            f"five images); got {steps.max():.4g}: use smaller steps or tune_step_sizes."
        )
    return betas, steps, latent


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
    coordinates: str = "auto",
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
    - `coordinates`: where the moves act: `"latent"` on the flow's base variables (the ladder
      pulled back by the flow: well conditioned when the flow is good; needs `forward` and
      `base_log_prob`, as `AugmentedCouplingFlow` has), `"direct"` on `(x, a)`, or `"auto"`
      (latent where the flow allows). The weights are exact either way.
    - `chunk_size`: samples annealed at once (memory).

    **Returns:**

    `AnnealedSamples`.
    """
    betas, steps, latent = _check_inputs(
        flow, betas, step_sizes, steps_per_stage, temperature, coordinates
    )
    if isinstance(num_samples, bool) or int(num_samples) != num_samples or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer; got {num_samples!r}.")
    species = jnp.asarray(species, dtype=jnp.int32)
    dtype = jax.tree.leaves(eqx.filter(flow, eqx.is_inexact_array))[0].dtype
    dens = _Densities(flow, energy, species, float(temperature), latent)
    chunk_size = max(1, min(int(chunk_size), int(num_samples)))
    xs, us, log_ws, flows, accepted = [], [], [], [], []
    for start in range(0, num_samples, chunk_size):
        index = np.arange(start, start + chunk_size)
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.asarray(index, jnp.uint32))
        x, u, log_w, log_w_flow, acc = _anneal_chunk(
            dens, keys, jnp.asarray(betas, dtype), jnp.asarray(steps, dtype), int(steps_per_stage)
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
        coordinates="latent" if latent else "direct",
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
    coordinates: str = "auto",
) -> np.ndarray:
    """MALA step sizes, one per intermediate stage, that give about `target_acceptance`, from
    pilot AIS runs of `num_chains` samples (use a key the production run does not use: the
    sizes must not depend on the samples they weigh).

    Each round runs the ladder with the current sizes and scales stage `s`'s size by
    `exp(2 (acceptance_s - target))` clipped to [1/4, 4] (and the size to at most `L^2 / 26`);
    after `rounds` rounds the sizes are returned (not a guarantee of the acceptance: the
    result reports it).
    """
    betas, steps, _ = _check_inputs(flow, betas, initial, steps_per_stage, temperature, coordinates)
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
            coordinates=coordinates,
            chunk_size=num_chains,
        )
        factor = np.clip(np.exp(2 * (pilot.acceptance - target_acceptance)), 0.25, 4.0)
        steps = np.minimum(steps * factor, _largest_step(flow))
    return steps
