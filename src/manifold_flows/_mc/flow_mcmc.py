"""Flow-augmented Monte Carlo to files: `generate_dataset` with flow moves, and proposals read
from a sample file."""

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._energy import ParticleSystem
from .._flow import AbstractLikelihood
from .._io import Dataset
from .config import MCConfig
from .engine import MCResult
from .flow_moves import FlowMoves, check_label_invariance
from .generate import generate_dataset
from .proposals import AbstractProposals, ArrayProposals


def proposals_from_samples(
    path: str | os.PathLike, *, system: ParticleSystem, temperature: float
) -> ArrayProposals:
    """Read the samples of a sample file (`mflows sample`, `sample_to_file`: positions and
    `extra["log_q"]`) as flow-move proposals for `system` at `temperature`.

    The samples must have been drawn for this system (name, box, composition) and their weights
    computed at this temperature; anything else is refused (`ValueError`), since a file made
    for another state point is almost always a mistake. (The proposals themselves do not
    depend on the temperature: only the flow and the system matter.)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sample file not found: {path}")
    data = Dataset.load(path)
    if "log_q" not in data.extra:
        raise ValueError(
            f"{path} holds no log q (extra 'log_q'); pass a sample file written by `mflows sample`."
        )
    if data.system and data.system != system.name:
        raise ValueError(
            f"the samples in {path} were drawn for system {data.system!r}, not {system.name!r}; "
            "draw samples for this system or pass the matching --system."
        )
    box_ok = data.box.shape == system.box.shape and np.allclose(data.box, system.box, rtol=1e-6)
    if not box_ok or not np.array_equal(data.species, system.species):
        raise ValueError(
            f"the samples in {path} have box {data.box.tolist()} and species counts "
            f"{np.bincount(data.species).tolist()}, the system {system.name!r} has "
            f"{system.box.tolist()} and {np.bincount(system.species).tolist()}; draw samples "
            "for this system."
        )
    if data.temperature is None or not math.isclose(
        float(data.temperature), float(temperature), rel_tol=1e-6
    ):
        raise ValueError(
            f"the samples in {path} were drawn for T = {data.temperature}, not T = "
            f"{temperature}; pass --temperature {data.temperature} or draw samples at "
            f"T = {temperature} (`mflows sample --temperature {temperature}`)."
        )
    timing = data.metadata.get("timing", {}) if isinstance(data.metadata, dict) else {}
    return ArrayProposals(
        data.positions,
        data.extra["log_q"],
        data.species,
        seconds_per_proposal=timing.get("seconds_per_sample"),
        source=str(path),
    )


def _proposals_needed(cfg: MCConfig, moves: FlowMoves) -> int:
    """Proposals a run of the resolved config `cfg` consumes (equilibration calls are padded
    to whole calls of `sweeps_between` sweeps; only full segments of `every` sweeps with an
    active sweep end in a flow block)."""
    S, E, k = cfg.sweeps_between, cfg.equilibration_sweeps, moves.every
    blocks = cfg.samples_per_chain * (S // k)
    for call in range(math.ceil(E / S)):
        blocks += sum(1 for s in range(0, S - k + 1, k) if call * S + s < E)
    return blocks * cfg.num_chains * moves.moves


def flow_mcmc_dataset(
    system: ParticleSystem,
    out: str | os.PathLike,
    *,
    likelihood: AbstractLikelihood,
    key: Any,
    proposals: AbstractProposals | None = None,
    flow_every: int = 10,
    flow_moves: int = 1,
    proposal_seed: int = 0,
    proposal_batch: int = 64,
    chunk_size: int | None = 1,
    eval_batch: int = 16,
    check_invariance: bool = True,
    **options: Any,
) -> MCResult:
    """Flow-augmented Monte Carlo written as a dataset: `generate_dataset` (same files,
    checkpoints, `resume`, diagnostics) with `FlowMoves` interleaved with the local sweeps.

    Every `flow_every` sweeps each chain tries `flow_moves` independent Metropolis-Hastings
    moves to proposals of `likelihood` (or of `proposals`, e.g. `proposals_from_samples`),
    accepted with probability `min(1, w(x') / w(x))`, `log w = -U/T - log q`. The chains
    sample the Boltzmann law exactly whatever the model; the model sets the acceptance.

    **Arguments:**

    - `system`: the `ParticleSystem`; the model must sample its sorted species vector.
    - `out`: the `.npz` dataset (see `generate_dataset` for `extxyz`, `force`, `resume`,
      `keep_checkpoint`, `progress`, passed in `**options`).
    - `likelihood`: the model q; it evaluates log q of chain states changed by local moves.
    - `key`: PRNG key or integer seed of the chains.
    - `proposals`: a proposal stream; default: drawn from `likelihood` in batches of
      `proposal_batch` with `proposal_seed` (`chunk_size` samples vmapped together).
    - `flow_every`, `flow_moves`, `eval_batch`: see `FlowMoves`.
    - `check_invariance`: first check on one proposal that q is invariant under permutations
      within a species (`check_label_invariance`, two `log_prob` calls), which the species
      handling of flow moves needs.
    - `**options`: `generate_dataset` / `run_monte_carlo` options (`temperature`,
      `num_chains`, `samples_per_chain`, `sweeps_between`, `equilibration_sweeps`, ...).

    **Returns:**

    The `MCResult`; the flow moves' acceptance is `result.acceptance["flow"]`, their
    settings and costs are in `dataset.metadata["mc"]["extra_moves"]`.

    **Raises:**

    `ValueError` (before any sampling) when a finite proposal stream holds fewer proposals
    than the run needs or q is not invariant under permutations within a species, besides
    the errors of `generate_dataset`.
    """
    moves = FlowMoves(
        likelihood,
        system.species,
        proposals=proposals,
        every=flow_every,
        moves=flow_moves,
        eval_batch=eval_batch,
        chunk_size=chunk_size,
        seed=proposal_seed,
        proposal_batch=proposal_batch,
    )
    if isinstance(moves.proposals, ArrayProposals):
        config = options.get("config")
        fields = {k: v for k, v in options.items() if k in MCConfig.field_names()}
        cfg = (MCConfig(**fields) if config is None else config).resolve(system)
        needed = _proposals_needed(cfg, moves)
        have = moves.proposals.available
        if needed > have:
            raise ValueError(
                f"this run needs {needed} proposals (each used once) but "
                f"{moves.proposals.source} holds {have}; draw more samples, or make flow moves "
                "rarer (--flow-every) or fewer (--chains, --samples-per-chain)."
            )
    if check_invariance:
        first, _ = moves.proposals.take(0, 1)
        check_label_invariance(likelihood, first[0], system.species)
    return generate_dataset(system, out, key=key, extra_moves=moves, **options)


def flow_mcmc_summary(result: MCResult) -> dict[str, Any]:
    """The figures of a flow-augmented run a person asks for first: flow acceptance, energy
    autocorrelation time in sweeps and in seconds of production, u with its error, the costs
    of the flow parts."""
    meta = result.dataset.metadata["mc"]
    diag = result.diagnostics
    tau = diag["autocorrelation"]["tau_sweeps"]
    rate = meta.get("sweeps_per_second")
    extra = meta.get("extra_moves", {})
    cpu, sweeps = extra.get("production_cpu_seconds"), extra.get("production_sweeps")
    from_file = extra.get("proposals", {}).get("source") != "likelihood"
    per = extra.get("proposal_cpu_seconds_per_proposal")
    if cpu is not None and from_file and per is not None:
        cpu += per * extra.get("production_proposals", 0)  # what the file's samples cost
    per_sweep = cpu / sweeps if cpu is not None and sweeps else None
    return {
        "flow_acceptance": result.acceptance.get("flow"),
        "tau_sweeps": tau,
        "tau_seconds": (tau / rate) if rate and math.isfinite(tau) else None,
        "tau_seconds_note": "wall-clock seconds of production per sweep (all chains together)",
        "tau_cpu_seconds": tau * per_sweep if per_sweep and math.isfinite(tau) else None,
        "tau_cpu_seconds_note": (
            "CPU seconds of production per sweep (all chains together), with the proposals "
            "of a sample file charged at the sampling cost it records (wall seconds per sample)"
        ),
        "energy_per_particle": diag["energy_per_particle"],
        "proposals_used": extra.get("proposals_used"),
        "log_q_evaluations": extra.get("log_q_evaluations"),
        "log_q_evaluation_cpu_seconds": extra.get("log_q_evaluation_cpu_seconds"),
        "proposal_cpu_seconds": extra.get("proposal_cpu_seconds"),
        "proposal_cost_charged_cpu_seconds": extra.get("proposal_cost_charged_cpu_seconds"),
    }
