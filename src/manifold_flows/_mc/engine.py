"""The Monte Carlo driver: equilibration (annealing, step-size tuning), production in
checkpointed blocks, diagnostics, and the resulting `Dataset`."""

import dataclasses
import json
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._energy import AbstractPairEnergy, ParticleSystem
from .._io import Dataset
from .acceptance import AbstractAcceptance, Metropolis
from .advance import KernelSettings, advance
from .checkpoint import CheckpointStore, fingerprint_differences
from .config import MCConfig
from .diagnostics import (
    AutocorrelationTime,
    AutocorrelationWarning,
    chain_agreement,
    integrated_autocorrelation_time,
    mean_with_error,
    warn_disagreement,
    warn_spacing,
)
from .extra_moves import AbstractExtraMoves
from .initial import random_configurations
from .progress import ProgressReporter
from .schedule import temperature_schedule
from .state import ChainState, SamplerState


class EnergyDriftError(RuntimeError):
    """The running energy of a chain (accumulated from the energy changes of accepted moves)
    disagrees with a full recomputation by far more than round-off: the incremental energy
    change and the total energy are inconsistent (a bug in an energy or in the sampler)."""


@dataclasses.dataclass(frozen=True)
class BlockInfo:
    """What `on_block` callbacks receive after each finished (and checkpointed) block.

    **Fields:** `index` (0-based over the whole run), `phase` (`"equilibration"` or
    `"production"`), `num_blocks` (total), `sweeps_done` (per chain, both phases),
    `samples_done` (per chain), `step_size`, `energy_per_particle` (mean over chains, now).
    """

    index: int
    phase: str
    num_blocks: int
    sweeps_done: int
    samples_done: int
    step_size: float
    energy_per_particle: float


@dataclasses.dataclass(frozen=True)
class MCResult:
    """The outcome of `run_monte_carlo`.

    **Fields:**

    - `dataset`: the samples as a canonical `Dataset` (chain-major order; `extra["chain"]` and
      `extra["sweep"]` say where each sample comes from; all numbers of the run in `metadata`).
    - `config`: the resolved `MCConfig`.
    - `sample_energies`: `(chains, samples)` total energy U of every sample.
    - `energy_trace`: `(chains, points)` U every `config.trace_every` production sweeps.
    - `equilibration_energies`: `(calls, chains)` U at the end of each equilibration call
      (every `sweeps_between` sweeps).
    - `step_sizes`: the step size after every call (equilibration calls, then production).
    - `acceptance`: production acceptance rate per move type (`"displacement"`,
      `"swap A<->C"`, ...).
    - `diagnostics`: the diagnostics also stored in `dataset.metadata["diagnostics"]`.
    - `final_state`: the `SamplerState` at the end (to continue sampling).
    """

    dataset: Dataset
    config: MCConfig
    sample_energies: np.ndarray
    energy_trace: np.ndarray
    equilibration_energies: np.ndarray
    step_sizes: np.ndarray
    acceptance: dict[str, float | None]
    diagnostics: dict[str, Any]
    final_state: SamplerState


# ------------------------------------------------------------------------------- helpers
@eqx.filter_jit
def total_energies(
    energy: AbstractPairEnergy, positions: Float[Array, "c n d"], species: Int[Array, "c n"]
) -> Float[Array, " c"]:
    """Total energy U of each of a batch of configurations (one compilation per shape)."""
    return jax.vmap(energy)(positions, species)


def kernel_settings(cfg: MCConfig, system: ParticleSystem, dtype) -> KernelSettings:
    """The traced kernel parameters of a resolved config (`cfg.resolve(system)`), in `dtype`."""
    pairs = np.asarray(system.swap_pairs or ((0, 0),), dtype=np.int32).reshape(-1, 2)
    box_min = float(np.min(system.box))
    return KernelSettings(
        p_swap=jnp.asarray(cfg.p_swap, dtype),
        swap_pairs=jnp.asarray(pairs),
        target_low=jnp.asarray(cfg.target_acceptance[0], dtype),
        target_high=jnp.asarray(cfg.target_acceptance[1], dtype),
        tune_every=jnp.asarray(cfg.tune_every, jnp.int32),
        min_step=jnp.asarray(1e-6 * box_min, dtype),
        max_step=jnp.asarray(0.5 * box_min, dtype),
        gain=jnp.asarray(2.0, dtype),
    )


def resolve_dtype(precision: str | None):
    """The float dtype of a run: `precision` (`"float32"` / `"float64"`) or, for `None`, JAX's
    default float (float64 when 64-bit mode is on)."""
    if precision is None:
        return jnp.result_type(float)
    if precision == "float64" and not jax.config.jax_enable_x64:
        raise ValueError(
            "precision='float64' needs JAX's 64-bit mode; call "
            "jax.config.update('jax_enable_x64', True) before creating arrays, or pass "
            "precision='float32'."
        )
    return jnp.dtype(precision)


def _as_key(key) -> tuple[jax.Array, int | None]:
    """A typed PRNG key and, when given as an integer, the seed."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.key(int(key)), int(key)
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"`key` must be a single PRNG key; got shape {key.shape}.")
        return key, None
    if key.dtype == jnp.uint32 and key.ndim == 1:
        return jax.random.wrap_key_data(key), None
    raise TypeError(
        f"`key` must be a PRNG key (jax.random.key(seed)) or an integer seed; got {key!r}."
    )


def _jsonable(value: Any) -> Any:
    """Convert NumPy scalars/arrays and tuples into plain JSON types (recursively)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _move_names(system: ParticleSystem) -> list[str]:
    names = system.species_names
    return ["displacement"] + [f"swap {names[a]}<->{names[b]}" for a, b in system.swap_pairs]


def _rates(accepted: np.ndarray, attempted: np.ndarray, names: list[str]) -> dict[str, Any]:
    acc = accepted.sum(axis=0)
    att = attempted.sum(axis=0)
    return {
        name: {
            "rate": (float(acc[k] / att[k]) if att[k] else None),
            "accepted": int(acc[k]),
            "attempted": int(att[k]),
        }
        for k, name in enumerate(names)
    }


def _initial_chains(
    system: ParticleSystem,
    num_chains: int,
    key,
    init_key,
    dtype,
    initial_positions,
    initial_species,
) -> ChainState:
    n, d = system.num_particles, system.dim
    energy = system.energy
    if initial_species is None:
        species = np.broadcast_to(system.species, (num_chains, n))
    else:
        species = np.asarray(initial_species)
        if species.shape == (n,):
            species = np.broadcast_to(species, (num_chains, n))
        if species.shape != (num_chains, n) or not np.issubdtype(species.dtype, np.integer):
            raise ValueError(
                f"initial_species must be integer labels of shape ({n},) or ({num_chains}, {n}); "
                f"got shape {species.shape}, dtype {species.dtype}."
            )
        bad = [
            c for c in range(num_chains) if not np.array_equal(np.sort(species[c]), system.species)
        ]
        if bad:
            raise ValueError(
                f"initial_species of chain {bad[0]} does not have the system's composition "
                f"{system.composition}; give each chain a permutation of system.species."
            )
    if initial_positions is None:
        positions = random_configurations(energy, system.species, num_chains, key=init_key)
        # random_configurations orders particles like system.species; follow any custom labels
        if initial_species is not None:
            rank = np.argsort(np.argsort(species, axis=1, kind="stable"), axis=1)
            positions = np.take_along_axis(positions, rank[..., None], axis=1)
    else:
        positions = np.asarray(initial_positions, dtype=np.float64)
        if positions.shape == (n, d):
            positions = np.broadcast_to(positions, (num_chains, n, d))
        if positions.shape != (num_chains, n, d):
            raise ValueError(
                f"initial_positions must have shape ({n}, {d}) or ({num_chains}, {n}, {d}); got "
                f"{positions.shape}."
            )
        if not np.all(np.isfinite(positions)):
            raise ValueError("initial_positions contain NaN or infinite coordinates.")
        box = system.box
        positions = np.mod(positions, box)
        positions = np.where(positions >= box, positions - box, positions)
    x = jnp.asarray(positions, dtype=dtype)
    # rounding to a narrower dtype can turn a coordinate just below L into L: fold it to 0
    box_d = jnp.asarray(system.box, dtype=dtype)[None, None, :]
    x = jnp.where(x >= box_d, x - box_d, x)
    s = jnp.asarray(species, dtype=jnp.int32)
    u = np.asarray(total_energies(energy, x, s))
    bad = np.nonzero(~np.isfinite(u))[0]
    if bad.size:
        raise ValueError(
            f"the initial configuration of chain {int(bad[0])} has infinite (or NaN) energy: "
            f"particles overlap ({bad.size} of {num_chains} chains); pass a start without "
            "overlapping particles, or let the sampler draw one (initial_positions=None)."
        )
    keys = jax.random.split(key, num_chains)
    return ChainState(positions=x, species=s, energy=jnp.asarray(u, dtype=dtype), key=keys)


def _fingerprint(cfg, system, key_data, acceptance, extra_moves, dtype, initial_positions) -> dict:
    """What a checkpointed run must share with the run that resumes it (JSON-clean)."""
    fp_config = {k: v for k, v in cfg.as_dict().items() if k != "samples_per_chain"}
    fingerprint = _jsonable(
        {
            "config": fp_config,
            "system": system.name,
            "parameters": system.parameters,
            "num_particles": system.num_particles,
            "key_data": key_data,
            "acceptance": type(acceptance).__name__,
            "extra_moves": None if extra_moves is None else extra_moves.fingerprint(),
            "dtype": str(np.dtype(dtype)),
            "initial_positions": None
            if initial_positions is None
            else float(np.sum(np.asarray(initial_positions, dtype=np.float64) ** 2)),
        }
    )
    return json.loads(json.dumps(fingerprint))


def _open_checkpoints(
    checkpoint_dir, resume: bool, fingerprint: dict
) -> tuple[CheckpointStore | None, list[tuple[dict, dict]]]:
    """The run's checkpoint store (`None` without a folder) and the blocks a resumed run
    starts from; refuses a folder of another run, or of a run not resumed."""
    if checkpoint_dir is None:
        return None, []
    store = CheckpointStore(checkpoint_dir)
    loaded: list[tuple[dict, dict]] = []
    saved = store.read_run() if resume else None
    if resume and saved is not None:
        diffs = fingerprint_differences(saved, fingerprint)
        if diffs:
            raise ValueError(
                f"cannot resume: the checkpoint in {store.directory} was made with different "
                f"settings ({', '.join(diffs)} differ); use the same settings and seed, or "
                "start over without resume (after deleting the folder)."
            )
        loaded = store.read_blocks()
    elif resume and store.block_indices():
        raise ValueError(
            f"cannot resume: {store.directory} has blocks but no run.json; delete the folder "
            "to start over."
        )
    elif not resume and store.exists():
        raise FileExistsError(
            f"checkpoint folder {store.directory} already holds a run; resume it "
            "(resume=True / --resume) or delete it to start over."
        )
    if saved is None:
        store.write_run(fingerprint)
    return store, loaded


# ------------------------------------------------------------------------------- the run
def run_monte_carlo(
    system: ParticleSystem,
    *,
    key: Any,
    config: MCConfig | None = None,
    initial_positions: np.ndarray | None = None,
    initial_species: np.ndarray | None = None,
    acceptance: AbstractAcceptance | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    on_block: Callable[[BlockInfo], None] | None = None,
    extra_moves: AbstractExtraMoves | None = None,
    **options: Any,
) -> MCResult:
    """Sample the Boltzmann distribution `p(x) ∝ exp(-U(x) / T)` of `system` with many
    independent Monte Carlo chains.

    Each move is, with probability `p_swap`, a swap of the species of two particles of a swap
    pair of the system, else a Gaussian displacement of one particle (wrapped onto the torus);
    it is accepted by the Metropolis rule (or `acceptance`). One sweep is N attempted moves.
    All chains run together (vmapped) inside one jitted `lax.scan` over sweeps; the energy
    change of a move costs O(N).

    Phases:

    1. **Equilibration** (`equilibration_sweeps`): from random non-overlapping starts (or
       `initial_positions`), optionally annealed from `anneal_from` down to `temperature`;
       the displacement step size is tuned towards `target_acceptance` (shared by all chains).
    2. **Production**: step size frozen; one sample per chain every `sweeps_between` sweeps,
       in blocks of `samples_per_block` samples, each block checkpointed when `checkpoint_dir`
       is given.

    Every `sweeps_between` sweeps the running energy of each chain is compared with a full
    recomputation (the largest drift is recorded; the running energy is reset to the exact
    value; `EnergyDriftError` if the drift is absurd). At the end the energy autocorrelation
    time is measured (Sokal windowing on the production trace), and warnings are raised when
    samples are spaced by fewer than `min_spacing_tau` autocorrelation times
    (`SampleSpacingWarning`) or when the chains disagree on the mean energy
    (`ChainDisagreementWarning`). Every number goes into `dataset.metadata`.

    **Arguments:**

    - `system`: a `ParticleSystem` (`get_system(...)` or `make_system(...)`).
    - `key`: a PRNG key or an integer seed (recorded in the metadata).
    - `config`: an `MCConfig`; keyword `**options` (any `MCConfig` field, e.g.
      `temperature=1.0, num_chains=100, samples_per_chain=100, sweeps_between=1000,
      equilibration_sweeps=10000, anneal_from=2.0, p_swap=0.2`) override its fields.
    - `initial_positions`: `(n, d)` or `(chains, n, d)` starting configurations (wrapped into
      the box); `ValueError` if one has infinite energy (overlapping particles).
    - `initial_species`: `(n,)` or `(chains, n)` labels matching `initial_positions`
      (default: `system.species`).
    - `acceptance`: the acceptance rule (default `Metropolis()`).
    - `checkpoint_dir`: folder for block checkpoints (see `CheckpointStore`). Without
      `resume`, it must not hold a previous run (`FileExistsError`).
    - `resume`: continue from the last block in `checkpoint_dir`; the settings, system and
      key must match the checkpoint (`ValueError` otherwise). A resumed run gives exactly the
      samples of an uninterrupted one.
    - `progress`: show a progress bar (rich, on stderr).
    - `on_block`: called with a `BlockInfo` after each block is finished and checkpointed.
    - `extra_moves`: moves interleaved with the local sweeps (e.g. `FlowMoves`); their
      acceptance appears as extra move types, their state is checkpointed with every block.

    **Returns:**

    An `MCResult`.
    """
    if not isinstance(system, ParticleSystem):
        raise TypeError(
            f"`system` must be a ParticleSystem (get_system(name) or make_system(...)); got "
            f"{type(system).__name__}."
        )
    unknown = sorted(set(options) - set(MCConfig.field_names()))
    if unknown:
        raise TypeError(
            f"unknown option(s) {unknown} for run_monte_carlo; valid options are the MCConfig "
            f"fields: {', '.join(MCConfig.field_names())}."
        )
    config = MCConfig(**options) if config is None else dataclasses.replace(config, **options)
    cfg = config.resolve(system)
    acceptance = Metropolis() if acceptance is None else acceptance
    if not isinstance(acceptance, AbstractAcceptance):
        raise TypeError(f"`acceptance` must be an AbstractAcceptance; got {type(acceptance)}.")
    key, seed = _as_key(key)
    key_data = np.asarray(jax.random.key_data(key)).reshape(-1).tolist()
    dtype = resolve_dtype(cfg.precision)
    energy = system.energy

    C, N, S, B = cfg.num_chains, system.num_particles, cfg.sweeps_between, cfg.samples_per_block
    K, E, T = cfg.samples_per_chain, cfg.equilibration_sweeps, float(cfg.temperature)
    n_eq_calls = math.ceil(E / S)
    eq_temps = np.full(n_eq_calls * S, T)
    eq_temps[:E] = temperature_schedule(
        T,
        E,
        anneal_from=cfg.anneal_from,
        fraction=cfg.anneal_fraction,
        schedule=cfg.anneal_schedule,
    )
    eq_active = np.arange(n_eq_calls * S) < E
    n_eq_blocks = math.ceil(n_eq_calls / B)
    n_prod_blocks = math.ceil(K / B)
    num_blocks = n_eq_blocks + n_prod_blocks
    move_names = _move_names(system)
    num_local_types = len(move_names)
    if extra_moves is not None:
        if not isinstance(extra_moves, AbstractExtraMoves):
            raise TypeError(f"`extra_moves` must be an AbstractExtraMoves; got {extra_moves!r}.")
        move_names += list(extra_moves.names)
    step = advance if extra_moves is None else extra_moves.advance
    num_types = len(move_names)
    drift_tol = cfg.drift_tolerance
    if drift_tol is None:
        drift_tol = 1e-6 if dtype == jnp.float64 else 1e-2
    settings = kernel_settings(cfg, system, dtype)

    fingerprint = _fingerprint(
        cfg, system, key_data, acceptance, extra_moves, dtype, initial_positions
    )
    store, loaded = _open_checkpoints(checkpoint_dir, resume, fingerprint)

    # ------------------------------------------------------------------ state
    if loaded:
        tally = _Tally.from_blocks(loaded)
        sampler = _restore_sampler(loaded[-1][1], dtype, extra_moves)
        start_block = len(loaded)
    else:
        tally = _Tally.new(C, num_types)
        chain_key, init_key = jax.random.split(key)
        chains = _initial_chains(
            system, C, chain_key, init_key, dtype, initial_positions, initial_species
        )
        zero = jnp.zeros((), jnp.int32)
        sampler = SamplerState(chains, jnp.asarray(cfg.step_size, dtype), zero, zero, zero)
        start_block = 0

    # ------------------------------------------------------------------ loop
    total_sweeps = E + K * S

    def acceptance_text(acc, att):
        rates = [acc[:, k].sum() / max(att[:, k].sum(), 1) for k in range(num_types)]
        text = f"d={rates[0]:.2f}"
        if num_local_types > 1:
            swaps = acc[:, 1:num_local_types].sum() / max(att[:, 1:num_local_types].sum(), 1)
            text += f" s={swaps:.3f}"
        for k in range(num_local_types, num_types):
            text += f" {move_names[k][0]}={rates[k]:.3f}"
        return text

    with ProgressReporter(total_sweeps, enabled=progress) as bar:
        for block in range(start_block, num_blocks):
            phase = "equilibration" if block < n_eq_blocks else "production"
            block_eq_energies: list[np.ndarray] = []
            block_steps: list[float] = []
            block_x, block_s, block_u, block_trace = [], [], [], []
            if phase == "equilibration":
                calls = range(block * B, min((block + 1) * B, n_eq_calls))
            else:
                p = block - n_eq_blocks
                calls = range(p * B, min((p + 1) * B, K))
            for call in calls:
                if phase == "equilibration":
                    sl = slice(call * S, (call + 1) * S)
                    temps, active, tune = eq_temps[sl], eq_active[sl], True
                else:
                    temps, active, tune = np.full(S, T), np.ones(S, bool), False
                t0 = time.perf_counter()
                sampler, out = step(
                    energy,
                    acceptance,
                    sampler,
                    jnp.asarray(temps, dtype),
                    jnp.asarray(active),
                    jnp.asarray(tune),
                    settings,
                )
                out = jax.device_get(out)
                elapsed = time.perf_counter() - t0
                rel = np.asarray(out.relative_drift)
                worst = int(np.argmax(np.where(np.isfinite(rel), rel, np.inf)))
                if not np.all(np.isfinite(rel)) or rel[worst] > drift_tol:
                    raise EnergyDriftError(
                        f"chain {worst}: the running energy drifted from the exact energy by "
                        f"{float(out.drift[worst]):.3g} (relative {float(rel[worst]):.3g} > "
                        f"tolerance {drift_tol:.3g}) within {S} sweeps ({phase}); the incremental "
                        "energy changes disagree with the total energy."
                    )
                tally.max_drift = max(tally.max_drift, float(np.max(out.drift)))
                tally.max_rel_drift = max(tally.max_rel_drift, float(np.max(rel)))
                acc = np.asarray(out.accepted, np.int64)[:, :num_types]
                att = np.asarray(out.attempted, np.int64)[:, :num_types]
                energies_now = np.asarray(sampler.chains.energy)
                block_steps.append(float(sampler.step_size))
                if phase == "equilibration":
                    tally.eq_acc, tally.eq_att = tally.eq_acc + acc, tally.eq_att + att
                    block_eq_energies.append(energies_now)
                    done = min((call + 1) * S, E)
                    shown = acceptance_text(tally.eq_acc, tally.eq_att)
                    temp_now = float(temps[np.nonzero(active)[0][-1]])
                else:
                    if call > 0 or K == 1:  # the first call compiles; keep it out of timing
                        tally.prod_seconds += elapsed
                        tally.prod_timed_sweeps += S
                    tally.prod_acc, tally.prod_att = tally.prod_acc + acc, tally.prod_att + att
                    block_x.append(np.asarray(sampler.chains.positions))
                    block_s.append(np.asarray(sampler.chains.species))
                    block_u.append(energies_now)
                    sweep_index = call * S + np.arange(1, S + 1)
                    keep = sweep_index % cfg.trace_every == 0
                    block_trace.extend(np.asarray(out.trace)[keep])
                    done = E + (call + 1) * S
                    shown = acceptance_text(tally.prod_acc, tally.prod_att)
                    temp_now = T
                bar.update(
                    done,
                    phase=phase,
                    temperature=temp_now,
                    energy_per_particle=float(np.mean(energies_now)) / N,
                    acceptance=shown,
                )
            tally.eq_energies.extend(block_eq_energies)
            tally.step_sizes.extend(block_steps)
            tally.samples_x.extend(block_x)
            tally.samples_s.extend(block_s)
            tally.samples_u.extend(block_u)
            tally.trace_pts.extend(block_trace)
            if store is not None:
                arrays = _block_arrays(
                    sampler,
                    C,
                    N,
                    system.dim,
                    dtype,
                    block_eq_energies,
                    block_steps,
                    block_x,
                    block_s,
                    block_u,
                    block_trace,
                    tally.eq_acc,
                    tally.eq_att,
                    tally.prod_acc,
                    tally.prod_att,
                )
                if extra_moves is not None:
                    arrays.update({f"extra.{k}": v for k, v in extra_moves.state_arrays().items()})
                header = {
                    "index": block,
                    "phase": phase,
                    "max_drift": tally.max_drift,
                    "max_relative_drift": tally.max_rel_drift,
                    "prod_seconds": tally.prod_seconds,
                    "prod_timed_sweeps": tally.prod_timed_sweeps,
                }
                store.write_block(block, header, arrays)
            if on_block is not None:
                on_block(
                    BlockInfo(
                        index=block,
                        phase=phase,
                        num_blocks=num_blocks,
                        sweeps_done=min(E, len(tally.eq_energies) * S) + len(tally.samples_u) * S,
                        samples_done=len(tally.samples_u),
                        step_size=float(sampler.step_size),
                        energy_per_particle=float(np.mean(sampler.chains.energy)) / N,
                    )
                )

    # ------------------------------------------------------------------ results
    return _result(
        system,
        cfg,
        tally,
        sampler,
        acceptance=acceptance,
        seed=seed,
        key_data=key_data,
        move_names=move_names,
        dtype=dtype,
        extra_moves=extra_moves,
    )


def _result(
    system: ParticleSystem,
    cfg: MCConfig,
    tally: "_Tally",
    sampler: SamplerState,
    *,
    acceptance: AbstractAcceptance,
    seed: int | None,
    key_data: list,
    move_names: list[str],
    dtype,
    extra_moves: AbstractExtraMoves | None,
) -> MCResult:
    """The run's samples as a `Dataset` with every setting and diagnostic in its metadata,
    and the `MCResult` around it."""
    C, N, S = cfg.num_chains, system.num_particles, cfg.sweeps_between
    K, E, T = cfg.samples_per_chain, cfg.equilibration_sweeps, float(cfg.temperature)
    samples_x_arr = np.stack(tally.samples_x[:K], axis=1)  # (C, K, n, d)
    samples_s_arr = np.stack(tally.samples_s[:K], axis=1)  # (C, K, n)
    samples_u_arr = np.stack(tally.samples_u[:K], axis=1)  # (C, K)
    keep_trace = (K * S) // cfg.trace_every
    trace = np.asarray(tally.trace_pts[:keep_trace]).reshape(-1, C).T  # (C, points)
    eq_u = np.asarray(tally.eq_energies).reshape(-1, C)

    diagnostics = _diagnostics(cfg, system, samples_u_arr, trace)
    rates_eq = _rates(tally.eq_acc, tally.eq_att, move_names)
    rates_prod = _rates(tally.prod_acc, tally.prod_att, move_names)
    step_arr = np.asarray(tally.step_sizes, dtype=np.float64)
    from .. import __version__

    mc_meta = {
        "config": cfg.as_dict(),
        "acceptance_rule": type(acceptance).__name__,
        "seed": seed,
        "key_data": key_data,
        "num_chains": C,
        "samples_per_chain": K,
        "sweeps_between_samples": S,
        "sweep_definition": "one sweep = N attempted moves (displacement or swap)",
        "move_kinds": (
            "each move is a swap with probability p_swap; the kinds of the N moves of a sweep "
            "are drawn once for all chains, independently of their states"
        ),
        "equilibration_sweeps": E,
        "anneal": None
        if cfg.anneal_from is None or E == 0
        else {
            "from": cfg.anneal_from,
            "to": T,
            "schedule": cfg.anneal_schedule,
            "sweeps": max(1, math.ceil(cfg.anneal_fraction * E)),
        },
        "p_swap": cfg.p_swap,
        "swap_pairs": move_names[1:],
        "step_size_initial": cfg.step_size,
        "step_size_final": float(sampler.step_size),
        "step_size_tuned_during": "equilibration only (frozen in production)",
        "target_acceptance": list(cfg.target_acceptance),
        "acceptance_equilibration": rates_eq,
        "acceptance_production": rates_prod,
        "energy_drift_max": tally.max_drift,
        "energy_drift_max_relative": tally.max_rel_drift,
        "energy_drift_check_every_sweeps": S,
        "production_seconds": tally.prod_seconds,
        "sweeps_per_second": (
            tally.prod_timed_sweeps / tally.prod_seconds if tally.prod_seconds > 0 else None
        ),
        "precision": str(np.dtype(dtype)),
    }
    if extra_moves is not None:
        mc_meta["extra_moves"] = extra_moves.metadata()
    metadata = _jsonable(
        {
            "generator": {"name": "manifold_flows.run_monte_carlo", "version": __version__},
            "temperature": T,
            "system": {
                "name": system.name,
                "num_particles": N,
                "composition": system.composition,
                "density": system.density,
                "box": system.box,
                "images": system.energy.images,
                "parameters": system.parameters,
            },
            "energy_convention": "total potential energy U (sum over pairs i<j); u = U/N",
            "mc": mc_meta,
            "diagnostics": diagnostics,
        }
    )
    positions = samples_x_arr.reshape(C * K, N, system.dim)
    frame_species = samples_s_arr.reshape(C * K, N)
    dataset = Dataset.from_frames(
        positions,
        frame_species,
        system.species_names,
        system.box,
        temperature=T,
        system=system.name,
        energy=samples_u_arr.reshape(-1),
        extra={
            "chain": np.repeat(np.arange(C), K),
            "sweep": np.tile(E + S * np.arange(1, K + 1), C),
        },
        metadata=metadata,
    )
    return MCResult(
        dataset=dataset,
        config=cfg,
        sample_energies=samples_u_arr,
        energy_trace=trace,
        equilibration_energies=eq_u,
        step_sizes=step_arr,
        acceptance={k: v["rate"] for k, v in rates_prod.items()},
        diagnostics=diagnostics,
        final_state=sampler,
    )


@dataclasses.dataclass
class _Tally:
    """What a run accumulates over its blocks: acceptance counts (equilibration, production),
    the largest energy drifts, the per-call energies and step sizes, the samples, the energy
    trace and the production timing. A resumed run restores it from its checkpoints."""

    eq_acc: np.ndarray
    eq_att: np.ndarray
    prod_acc: np.ndarray
    prod_att: np.ndarray
    max_drift: float = 0.0
    max_rel_drift: float = 0.0
    eq_energies: list = dataclasses.field(default_factory=list)
    step_sizes: list = dataclasses.field(default_factory=list)
    samples_x: list = dataclasses.field(default_factory=list)
    samples_s: list = dataclasses.field(default_factory=list)
    samples_u: list = dataclasses.field(default_factory=list)
    trace_pts: list = dataclasses.field(default_factory=list)
    prod_seconds: float = 0.0
    prod_timed_sweeps: int = 0

    @classmethod
    def new(cls, num_chains: int, num_types: int) -> "_Tally":
        def zeros():
            return np.zeros((num_chains, num_types), np.int64)

        return cls(zeros(), zeros(), zeros(), zeros())

    @classmethod
    def from_blocks(cls, loaded: list[tuple[dict, dict]]) -> "_Tally":
        header, a = loaded[-1]
        tally = cls(
            a["eq_accepted"],
            a["eq_attempted"],
            a["prod_accepted"],
            a["prod_attempted"],
            max_drift=header["max_drift"],
            max_rel_drift=header["max_relative_drift"],
            prod_seconds=header["prod_seconds"],
            prod_timed_sweeps=header["prod_timed_sweeps"],
        )
        for _, arrays in loaded:
            tally.eq_energies.extend(arrays["eq_energies"])
            tally.step_sizes.extend(arrays["step_sizes"].tolist())
            tally.samples_x.extend(arrays["samples_positions"])
            tally.samples_s.extend(arrays["samples_species"])
            tally.samples_u.extend(arrays["samples_energy"])
            tally.trace_pts.extend(arrays["trace"])
        return tally


def _restore_sampler(a: dict, dtype, extra_moves) -> SamplerState:
    """The sampler state saved with a block (and the extra moves' state, loaded in place)."""
    chains = ChainState(
        positions=jnp.asarray(a["positions"], dtype),
        species=jnp.asarray(a["species"], jnp.int32),
        energy=jnp.asarray(a["energy"], dtype),
        key=jax.random.wrap_key_data(jnp.asarray(a["key_data"])),
    )
    if extra_moves is not None:
        extra_moves.load_state({k[6:]: v for k, v in a.items() if k.startswith("extra.")})
    return SamplerState(
        chains,
        jnp.asarray(a["step_size"], dtype),
        jnp.asarray(a["window_accepted"], jnp.int32),
        jnp.asarray(a["window_attempted"], jnp.int32),
        jnp.asarray(a["window_sweeps"], jnp.int32),
    )


def _block_arrays(
    sampler, C, N, d, dtype, eq_e, steps, xs, ss, us, trace, eq_acc, eq_att, prod_acc, prod_att
) -> dict[str, np.ndarray]:
    chains = sampler.chains
    return {
        "positions": np.asarray(chains.positions),
        "species": np.asarray(chains.species),
        "energy": np.asarray(chains.energy),
        "key_data": np.asarray(jax.random.key_data(chains.key)),
        "step_size": np.asarray(sampler.step_size),
        "window_accepted": np.asarray(sampler.window_accepted),
        "window_attempted": np.asarray(sampler.window_attempted),
        "window_sweeps": np.asarray(sampler.window_sweeps),
        "eq_accepted": eq_acc,
        "eq_attempted": eq_att,
        "prod_accepted": prod_acc,
        "prod_attempted": prod_att,
        "eq_energies": np.asarray(eq_e, np.float64).reshape(-1, C),
        "step_sizes": np.asarray(steps, np.float64),
        "samples_positions": np.asarray(xs, np.float64).reshape(-1, C, N, d),
        "samples_species": np.asarray(ss, np.int32).reshape(-1, C, N),
        "samples_energy": np.asarray(us, np.float64).reshape(-1, C),
        "trace": np.asarray(trace, np.float64).reshape(-1, C),
    }


def _diagnostics(
    cfg: MCConfig, system: ParticleSystem, sample_u: np.ndarray, trace: np.ndarray
) -> dict[str, Any]:
    """Autocorrelation, spacing, chain agreement and the mean energy per particle."""
    N = system.num_particles
    S = cfg.sweeps_between
    out: dict[str, Any] = {"warnings": []}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if trace.shape[1] >= 2:
            tau = integrated_autocorrelation_time(trace)
        else:
            tau = AutocorrelationTime(math.nan, math.nan, 0, trace.size, False)
        tau_sweeps = tau.tau * cfg.trace_every
        out["autocorrelation"] = {
            **tau.as_dict(),
            "units": f"trace points ({cfg.trace_every} sweeps apart)",
            "tau_sweeps": tau_sweeps,
            "tau_sweeps_error": tau.error * cfg.trace_every,
            "trace_every_sweeps": cfg.trace_every,
            "note": "integrated autocorrelation time of U, Sokal windowing (c = 5), chains pooled",
        }
        if not tau.reliable:
            warnings.warn(
                "the energy autocorrelation time could not be estimated reliably (production "
                f"trace of {trace.shape[1]} points per chain is too short compared with it, or the "
                "energy is constant); run more samples or raise sweeps_between.",
                AutocorrelationWarning,
                stacklevel=2,
            )
        spacing = S / tau_sweeps if math.isfinite(tau_sweeps) and tau_sweeps > 0 else None
        out["sample_spacing_in_tau"] = spacing
        # an unreliable tau is usually an underestimate: still warn about the spacing
        warn_spacing(S, tau_sweeps, minimum=cfg.min_spacing_tau)
        if sample_u.shape[1] >= 2:
            tau_s = integrated_autocorrelation_time(sample_u)
            out["autocorrelation_samples"] = {**tau_s.as_dict(), "units": "samples"}
        if trace.shape[1] >= 2:
            agree = chain_agreement(trace, tau.tau)
            out["chain_agreement"] = {**agree.as_dict(), "series": "production energy trace"}
            warn_disagreement(agree, threshold=cfg.disagreement_p_value)
        mean, err = mean_with_error(sample_u.mean(axis=1) / N)
        out["energy_per_particle"] = {
            "mean": mean,
            "error": err,
            "method": "mean of the samples; error = std of the chain means / sqrt(chains)",
        }
        if trace.shape[1] >= 1:
            m2, e2 = mean_with_error(trace.mean(axis=1) / N)
            out["energy_per_particle_trace"] = {"mean": m2, "error": e2}
    for w in caught:
        out["warnings"].append(f"{w.category.__name__}: {w.message}")
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return out
