"""Adaptive flow-augmented Monte Carlo: the flow learns from the chains during burn-in, then is
frozen for production."""

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from .._energy import ParticleSystem
from .._flow import AbstractLikelihood
from .._io import Dataset
from .engine import MCResult, run_monte_carlo
from .flow_moves import FlowMoves


@dataclasses.dataclass(frozen=True)
class AdaptiveResult:
    """The outcome of `adaptive_flow_mcmc`.

    **Fields:**

    - `production`: the `MCResult` of the production phase (frozen model): its samples are the
      ones to use.
    - `burn_in`: the `MCResult` of each adaptation round, in order (their samples fed the
      model; they are not equilibrium samples of a fixed kernel).
    - `likelihood`: the final model, the one production used.
    - `flow_acceptance`: production flow-move acceptance after each round's model (`burn_in`
      rounds' own rates, then production's).
    """

    production: MCResult
    burn_in: tuple[MCResult, ...]
    likelihood: AbstractLikelihood
    flow_acceptance: tuple[float | None, ...]


def adaptive_flow_mcmc(
    system: ParticleSystem,
    *,
    likelihood: AbstractLikelihood,
    adapt: Callable[[AbstractLikelihood, Dataset, int], AbstractLikelihood],
    key: int,
    rounds: int = 2,
    burn_in: dict[str, Any] | None = None,
    flow_every: int = 10,
    flow_moves: int = 1,
    progress: bool = False,
    **options: Any,
) -> AdaptiveResult:
    """Flow-augmented Monte Carlo whose model learns from the chains during burn-in (the
    adaptive scheme of Gabrié, Rotskoff and Vanden-Eijnden), with the model frozen during
    production.

    Round `r = 0 .. rounds - 1` runs the chains with flow moves from the current model (settings
    `burn_in`, passed to `run_monte_carlo`), then replaces the model by
    `adapt(model, samples, r)`, e.g. a few flow-matching steps on the chains' samples. The next
    round starts from the chains' last states. Production then runs from the last states with
    the final model **frozen** (options `**options`, equilibration 0 unless given).

    Why this is unbiased: whatever the model, a flow move with a fixed q leaves the Boltzmann
    law invariant; during production q no longer changes, so the chains are an ordinary
    time-homogeneous Markov chain with the Boltzmann law as its stationary law, started from
    the burn-in's end (a start like any other, and already close to equilibrium). Adapting q
    from the chain's own past *while* producing samples would make the kernel depend on the
    history and needs diminishing adaptation to stay exact; stopping it at the end of burn-in
    avoids the question. The burn-in samples themselves are not used as results.

    **Arguments:**

    - `system`: the `ParticleSystem`.
    - `likelihood`: the initial model q.
    - `adapt`: `(model, burn_in_samples: Dataset, round) -> new model`.
    - `key`: integer seed; round `r` uses `key + r`, production `key + rounds`.
    - `rounds`: adaptation rounds (>= 1).
    - `burn_in`: `run_monte_carlo` options of each round (e.g. `num_chains`,
      `samples_per_chain`, `sweeps_between`, `equilibration_sweeps` of the first round;
      later rounds start from the previous states with no equilibration unless given).
    - `flow_every`, `flow_moves`: see `FlowMoves` (same in every phase).
    - `progress`: progress bars.
    - `**options`: `run_monte_carlo` options of production (`samples_per_chain`, ...).

    **Returns:**

    An `AdaptiveResult`.
    """
    burnt = adapt_flow(
        system,
        likelihood=likelihood,
        adapt=adapt,
        key=key,
        rounds=rounds,
        burn_in=burn_in,
        flow_every=flow_every,
        flow_moves=flow_moves,
        progress=progress,
    )
    options.setdefault("equilibration_sweeps", 0)
    moves = FlowMoves(
        burnt.likelihood,
        system.species,
        every=flow_every,
        moves=flow_moves,
        seed=int(key) + 10_000 + rounds,
    )
    production = run_monte_carlo(
        system,
        key=int(key) + rounds,
        extra_moves=moves,
        progress=progress,
        **{**options, **burnt.start},
    )
    rates = (*burnt.flow_acceptance, production.acceptance.get("flow"))
    return AdaptiveResult(production, burnt.rounds, burnt.likelihood, rates)


@dataclasses.dataclass(frozen=True)
class BurnIn:
    """The outcome of `adapt_flow`.

    **Fields:** `likelihood` (the adapted model), `start` (`run_monte_carlo` options that
    continue from the chains' last states: `initial_positions`, `initial_species`,
    `num_chains`, `step_size`), `rounds` (the `MCResult` of each round), `flow_acceptance`
    (each round's).
    """

    likelihood: AbstractLikelihood
    start: dict[str, Any]
    rounds: tuple[MCResult, ...]
    flow_acceptance: tuple[float | None, ...]


def adapt_flow(
    system: ParticleSystem,
    *,
    likelihood: AbstractLikelihood,
    adapt: Callable[[AbstractLikelihood, Dataset, int], AbstractLikelihood],
    key: int,
    rounds: int = 2,
    burn_in: dict[str, Any] | None = None,
    flow_every: int = 10,
    flow_moves: int = 1,
    progress: bool = False,
) -> BurnIn:
    """The burn-in of `adaptive_flow_mcmc` alone: `rounds` rounds of flow-augmented chains,
    each followed by `adapt(model, samples, round)`. Production is left to the caller (e.g.
    `flow_mcmc_dataset(..., likelihood=burn_in.likelihood, **burn_in.start)`), which must keep
    the returned model frozen. See `adaptive_flow_mcmc` for the arguments."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an integer >= 1; got {rounds!r}.")
    burn_in = dict(burn_in or {})
    model = likelihood
    results: list[MCResult] = []
    start: dict[str, Any] = {}
    rates: list[float | None] = []
    for r in range(rounds):
        settings = dict(burn_in)
        if r > 0:
            settings.setdefault("equilibration_sweeps", 0)
            settings.pop("num_chains", None)
        moves = FlowMoves(
            model, system.species, every=flow_every, moves=flow_moves, seed=int(key) + 10_000 + r
        )
        result = run_monte_carlo(
            system, key=int(key) + r, extra_moves=moves, progress=progress, **{**settings, **start}
        )
        results.append(result)
        rates.append(result.acceptance.get("flow"))
        model = adapt(model, result.dataset, r)
        if not isinstance(model, AbstractLikelihood):
            raise TypeError(f"`adapt` must return an AbstractLikelihood; got {type(model)}.")
        start = _last_states(result)
    return BurnIn(model, start, tuple(results), tuple(rates))


def _last_states(result: MCResult) -> dict[str, Any]:
    """The chains' final states and tuned step size as `run_monte_carlo` starting options."""
    chains = result.final_state.chains
    positions = np.asarray(chains.positions)
    return {
        "initial_positions": positions,
        "initial_species": np.asarray(chains.species),
        "num_chains": positions.shape[0],
        "step_size": float(result.final_state.step_size),
    }


def _fine_tune_settings(run: Any, samples: Dataset, round_: int, **changes: Any):
    """The chains' samples on the run's own box (a run may record it rounded, e.g. 4.472136
    for sqrt(20)) and the run's `TrainConfig` for a short fine-tune of round `round_` on them:
    a batch no larger than half the samples, and a seed of its own per round."""
    box = np.asarray(run.torus.lengths, dtype=np.float64)
    if np.allclose(samples.box, box, rtol=1e-6, atol=0):
        samples = samples.replace(box=box)
    batch = max(1, min(run.config.batch_size, len(samples) // 2))
    if changes.get("lr") is None:
        changes["lr"] = run.config.lr
    config = dataclasses.replace(
        run.config, batch_size=batch, seed=run.config.seed + 1 + round_, **changes
    )
    return samples, config


def flow_matching_adapter(
    run: Any, *, epochs: int = 1, ema_decay: float = 0.9, lr: float | None = None
) -> Callable[[AbstractLikelihood, Dataset, int], AbstractLikelihood]:
    """An `adapt` for `adaptive_flow_mcmc` / `adapt_flow` that fine-tunes the field of a
    continuous flow by flow matching on the chains' samples, with the interpolant, coupling and
    training settings of `run` (a `TrainedRun`), for `epochs` epochs.

    The flow's field is replaced by the fine-tuned EMA field (`ema_decay`, low by default so
    that a few steps move it); everything else about the flow (base, divergence, solver) is
    kept. `lr` defaults to the run's.
    """
    import equinox as eqx

    from .._coupling import build_coupling
    from .._train import fit

    info = run.info.get("coupling", {}) or {}
    coupling = build_coupling(
        info.get("name", "species_ot"), run.torus, point_group=bool(info.get("point_group"))
    )

    def adapt(model: AbstractLikelihood, samples: Dataset, round_: int) -> AbstractLikelihood:
        samples, config = _fine_tune_settings(
            run, samples, round_, epochs=epochs, ema_decay=ema_decay, lr=lr
        )
        trained = fit(
            model.field,
            samples,
            interpolant=run.interpolant,
            coupling=coupling,
            config=config,
            progress=False,
        )
        return eqx.tree_at(lambda flow: flow.field, model, trained.field)

    return adapt


def likelihood_adapter(
    run: Any, *, epochs: int = 1, ema_decay: float = 0.9, lr: float | None = None
) -> Callable[[AbstractLikelihood, Dataset, int], AbstractLikelihood]:
    """An `adapt` for `adaptive_flow_mcmc` / `adapt_flow` that fine-tunes a flow with a
    one-pass likelihood (the augmented coupling flow of `run`, a `TrainedRun`) by maximum
    likelihood on the chains' samples (`fit_likelihood`, objective `"ml"` whatever the run was
    trained with: the chains' states are Boltzmann samples, the data the scheme learns from),
    for `epochs` epochs with the run's other training settings.

    The model becomes the fine-tuned EMA flow (`ema_decay`, low by default so that a few steps
    move it). A `MultiAuxFlow` is fine-tuned through the flow it wraps and keeps its number of
    auxiliary draws. `lr` defaults to the run's.
    """
    from .._flow.augmented import MultiAuxFlow
    from .._train import fit_likelihood

    def adapt(model: AbstractLikelihood, samples: Dataset, round_: int) -> AbstractLikelihood:
        if isinstance(model, MultiAuxFlow):
            return MultiAuxFlow(adapt(model.flow, samples, round_), model.num_aux)
        samples, config = _fine_tune_settings(
            run, samples, round_, epochs=epochs, ema_decay=ema_decay, lr=lr, objective="ml"
        )
        return fit_likelihood(model, samples, config=config, progress=False).field

    return adapt
