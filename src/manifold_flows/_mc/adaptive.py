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
    options.setdefault("equilibration_sweeps", 0)
    moves = FlowMoves(
        model, system.species, every=flow_every, moves=flow_moves, seed=int(key) + 10_000 + rounds
    )
    production = run_monte_carlo(
        system, key=int(key) + rounds, extra_moves=moves, progress=progress, **{**options, **start}
    )
    rates.append(production.acceptance.get("flow"))
    return AdaptiveResult(production, tuple(results), model, tuple(rates))


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
