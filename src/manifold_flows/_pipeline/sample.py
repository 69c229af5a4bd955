"""`sample_to_file`: draw samples of a trained run with exact log q, in resumable chunks
(the drawing in `draw.py`, the files of a run in progress in `chunks.py`).

Layout while sampling to `samples.npz`:

- `samples.npz.parts/state.json`: the settings of the sampling run (a resumed run must match);
- `samples.npz.parts/chunk_00000.npz`, ...: one file per finished chunk (positions, log q,
  energy, solver statistics), each written atomically;
- when every chunk is done: `samples.npz` (binary `Dataset`), `samples.extxyz` and
  `samples.manifest.json`, each written atomically, then the `.parts` folder is removed.

Sample `r` is drawn with the key `fold_in(key(seed), r)`, so it does not depend on how the
run was cut into chunks or interrupted: a resumed run gives the samples of an uninterrupted one.
"""

import math
import os
import time
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._arguments import argument
from .._backend import batching_defaults
from .._energy import ParticleSystem
from .._flow.augmented import AbstractAugmentedLikelihood, MultiAuxFlow
from .._io import (
    Dataset,
    sha256_file,
    write_extxyz,
    write_manifest,
)
from .._io.files import check_fits_in_memory, check_writable
from .._parallel import AbstractParallelism, SingleDevice, is_main_process
from .._train import TrainedRun, load_run
from .._train.run import CHECKPOINT
from .chunks import (
    _chunk_path,
    _chunk_ranges,
    _prepare_parts,
    _read_chunk,
    _remove_parts,
    _timing_over_chunks,
    _write_chunk,
    sample_paths,
)
from .draw import BATCHING, _draw, _draw_on, _error_summary, _solve_problem, system_energies
from .flow import (
    DTYPES,
    describe_density,
    flow_for_run,
    is_coupling_flow,
    is_euclidean,
    transferred_flow,
)
from .progress import SampleProgress
from .system import check_system, resolve_system

ENERGY_CONVENTION = "total potential energy U (sum over pairs i<j); u = U/N"


class SamplingError(RuntimeError):
    """The ODE solve of a chunk failed (step budget exhausted, non-finite field). Every chunk
    finished before it is kept; `chunk` is the index of the failed one."""

    def __init__(self, message: str, *, chunk: int):
        super().__init__(message)
        self.chunk = chunk


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{argument(name)} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def resolve_batching(chunk_size: int | None, batching: str | None) -> tuple[int, str]:
    """The sampler's chunk size and batching, `None` taking the backend's defaults
    (`batching_defaults().file_chunk` / `.file_batching`); validated."""
    defaults = batching_defaults()
    chunk_size = defaults.file_chunk if chunk_size is None else chunk_size
    batching = defaults.file_batching if batching is None else batching
    if batching not in BATCHING:
        raise ValueError(
            f"{argument('batching')} must be one of {', '.join(BATCHING)}; got {batching!r}."
        )
    return _check_int("chunk_size", chunk_size, 1), batching


def _check_outputs(paths, *, resume: bool, force: bool, extxyz: bool) -> None:
    """Before the model is loaded: the outputs can be written, and the extended XYZ copy
    overwrites no file of a former run (a resumed run may have written it itself)."""
    check_writable(paths["npz"], what="the samples")
    copy = paths["extxyz"]
    if extxyz and copy.exists() and not force and not (resume and paths["parts"].is_dir()):
        raise FileExistsError(
            f"{copy} already exists (the extended XYZ copy of the samples goes there); pass "
            f"{argument('force', True)} to overwrite it, or choose another output name."
        )


# ---------------------------------------------------------------------------- entry point
def _failure_message(
    chunk: int, start: int, stop: int, problem: str, finished: int, parts: Path
) -> str:
    """What failed, and the fix: resume when chunks were kept, else rerun with other settings."""
    if finished:
        fix = (
            f"The {finished} finished chunk(s) are kept in {parts}: rerun with "
            f"{argument('resume', True)} and a larger {argument('max_steps')}, or start over "
            f"with {argument('force', True)} and looser tolerances or fixed steps."
        )
    else:
        fix = (
            f"No chunk had finished, so nothing was kept: rerun with a larger "
            f"{argument('max_steps')}, looser tolerances or fixed steps."
        )
    return f"sampling chunk {chunk} (samples {start}..{stop - 1}) failed: {problem} {fix}"


def sample_to_file(
    run: TrainedRun | str | os.PathLike,
    *,
    num_samples: int,
    out: str | os.PathLike,
    seed: int = 0,
    chunk_size: int | None = None,
    batching: str | None = None,
    solver: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    num_steps: int | None = None,
    max_steps: int = 4096,
    dtype: str = "float64",
    temperature: float | None = None,
    system: ParticleSystem | None = None,
    images: str = "minimum",
    aux_draws: int | None = None,
    resume: bool = False,
    force: bool = False,
    extxyz: bool = True,
    progress: bool = True,
    command: str | None = None,
    parallel: AbstractParallelism | None = None,
) -> Dataset | None:
    """Draw samples of a trained run with their exact log q, energy U and log weight, and
    write them to disk in resumable chunks.

    Each sample is pushed through the run's flow (EMA weights) with the exact divergence:
    `x ~ q`, `log q(x)`. Then `U(x)` (total potential energy of the run's system, with the
    image convention `images`) and `log w = -U / T - log q`. Samples of a Euclidean flow
    (eFM) are wrapped onto the torus at the end; their log q is the Euclidean density of the
    unwrapped point (it ignores periodic images; the metadata says so).

    Every finished chunk is written atomically to `<out>.parts/`; an interrupted call keeps
    them and `resume=True` continues where it stopped. Sample `r` uses the key
    `fold_in(key(seed), r)`, so the result does not depend on interruptions (nor, up to
    rounding, on `chunk_size`). When all chunks are done, the binary `Dataset` (`out`, with
    `extra["log_q"]`, `extra["log_w"]` and the settings in `metadata`), the extended XYZ copy
    and a manifest are written (each atomically) and the parts folder is removed.

    **Arguments:**

    - `run`: a `TrainedRun` or its run directory.
    - `num_samples`: `R >= 1`.
    - `out`: the `.npz` output; the extended XYZ copy goes to the same name with `.extxyz`,
      the manifest to `<stem>.manifest.json`.
    - `seed`: seed of the sample stream.
    - `chunk_size`: samples drawn in one compiled call and saved per chunk file (the unit
      of resumption: an interrupted run keeps every finished chunk). Default: the backend's
      `batching_defaults().file_chunk` (16 on a CPU, 64 on an accelerator).
    - `batching`: how the samples of a chunk are solved: `"sequential"` (one adaptive solve
      after another) or `"vmap"` (all together in lock-step, each taking the steps of the
      stiffest one). The samples agree to solver round-off either way; which is faster depends
      on the system size and the machine. Default: the backend's
      `batching_defaults().file_batching` (`"sequential"` on a CPU, `"vmap"` on an
      accelerator).
    - `solver`, `rtol`, `atol`, `num_steps`, `max_steps`: the ODE solver (`ContinuousFlow`).
    - `dtype`: `"float64"` (default, for importance weights) or `"float32"`.
    - `temperature`: the target temperature of the weights (default: the run's).
    - `system`: the `ParticleSystem` whose energy is U (default: resolved from the run's
      system name, box and composition; see `resolve_system`). For a coupling-flow run, a
      system with another number of particles at the same density and composition samples
      that size with the trained flow unchanged (size transfer, `transferred_flow`; recorded
      as `size_transfer` in the metadata).
    - `images`: image convention when the system is resolved by name.
    - `aux_draws`: for an augmented flow (coupling-flow runs), the number K of auxiliary
      draws averaged in each sample's log q (`MultiAuxFlow`; exact for every K, K - 1 more
      inverse passes per sample, recorded as `aux_draws`). Default: the K the run was trained
      with (`TrainConfig.aux_draws`, 1 unless set).
    - `resume`: continue an unfinished run in `<out>.parts/`.
    - `force`: overwrite an existing `out` and discard unfinished parts.
    - `extxyz`: also write the extended XYZ copy.
    - `progress`: show a progress bar (samples done, s/sample, mean NFE).
    - `command`: the command line to record in the manifest.
    - `parallel`: spread each chunk over devices (`make_parallelism("all")`); default one
      device. `chunk_size` must then be a multiple of the number of devices. The samples do
      not depend on it (up to floating-point round-off), so a run may be resumed with other
      devices. In a multi-process run every process calls this function and process 0 alone
      reads and writes files.

    **Returns:**

    The samples as a `Dataset` (positions wrapped, `energy` = U, `extra` log q and log w);
    `None` on the processes other than 0 of a multi-process run.

    **Raises:**

    `ValueError`/`TypeError` for bad options (before any compute), `FileNotFoundError` for a
    run directory without a checkpoint, `FileExistsError` when `out` exists (without `force`)
    or unfinished parts exist (without `resume` or `force`), `SamplingError` when a solve
    fails (finished chunks are kept).
    """
    num_samples = _check_int("num_samples", num_samples, 1)
    if aux_draws is not None:
        aux_draws = _check_int("aux_draws", aux_draws, 1)
    chunk_size, batching = resolve_batching(chunk_size, batching)
    par = SingleDevice() if parallel is None else parallel
    if not isinstance(par, AbstractParallelism):
        raise TypeError(
            f"`parallel` must be an AbstractParallelism (e.g. make_parallelism('all')); got "
            f"{parallel!r}."
        )
    par.check_batch(chunk_size, "chunk_size")
    seed = _check_int("seed", seed, 0)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}.")
    if dtype == "float64" and not jax.config.jax_enable_x64:
        raise ValueError(
            "dtype='float64' needs 64-bit JAX: call jax.config.update('jax_enable_x64', True) "
            "at start-up, or pass dtype='float32'."
        )
    paths = sample_paths(out)
    _check_outputs(paths, resume=resume, force=force, extxyz=extxyz)
    if not isinstance(run, TrainedRun):
        run = load_run(run)
    if aux_draws is None:
        aux_draws = run.config.aux_draws
    species = np.asarray(run.species)
    box = np.asarray(run.torus.lengths, dtype=np.float64)
    transfer = None
    if (
        system is not None
        and isinstance(system, ParticleSystem)
        and is_coupling_flow(run)
        and system.species.size != species.size
    ):  # size transfer of a local flow: sample the given system's size
        species = np.sort(np.asarray(system.species))
        box = np.asarray(system.box, dtype=np.float64)
    per_sample = 3 * (len(species) * run.torus.dim + 8) * 8  # kept, gathered, saved
    check_fits_in_memory(
        num_samples * per_sample,
        what=f"{num_samples} samples of {len(species)} particles",
        fix=f"lower {argument('num_samples')}, or draw several sample files with different seeds",
    )
    check_fits_in_memory(  # a chunk is padded to its full size
        chunk_size * per_sample,
        what=f"a chunk of {chunk_size} samples",
        fix=f"lower {argument('chunk_size')}",
    )
    flow = flow_for_run(
        run,
        solver=solver,
        rtol=rtol,
        atol=atol,
        num_steps=num_steps,
        max_steps=max_steps,
        dtype=dtype,
    )
    if species.size != len(run.species):
        flow, transfer = transferred_flow(run, flow, box, species)
    if aux_draws != 1:
        if not isinstance(flow, AbstractAugmentedLikelihood):
            raise ValueError(
                f"{argument('aux_draws')} averages auxiliary draws of an augmented flow (a "
                f"coupling-flow run); the run in {run.run_dir} has none: leave it at 1."
            )
        flow = MultiAuxFlow(flow, aux_draws)
    if temperature is None:
        if run.temperature is None:
            raise ValueError(
                f"the run in {run.run_dir} records no temperature; pass temperature=T "
                "(--temperature) for the log weights."
            )
        temperature = float(run.temperature)
    temperature = float(temperature)
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be positive; got {temperature}.")
    image_note = ""
    if system is None:
        system, image_note = resolve_system(
            run.system, box=box, species=species, images=images, temperature=temperature
        )
    else:
        check_system(system, box=box, species=species, what=f"the system {system.name!r}")
    checkpoint = Path(run.run_dir) / CHECKPOINT
    settings = {
        "run_dir": str(Path(run.run_dir).resolve()),
        "run_step": int(run.step),
        "checkpoint_sha256": sha256_file(checkpoint) if checkpoint.is_file() else None,
        "seed": seed,
        "chunk_size": chunk_size,
        "batching": batching,
        "solver": solver if isinstance(solver, str) else type(solver).__name__,
        "rtol": float(rtol),
        "atol": float(atol),
        "num_steps": num_steps,
        "max_steps": int(max_steps),
        "dtype": dtype,
        "temperature": temperature,
        "system": system.name,
        "images": system.images,
    }
    if transfer is not None:
        settings["num_particles"] = int(species.size)
    if aux_draws != 1:  # (absent when 1: the records of earlier runs stay resumable)
        settings["aux_draws"] = aux_draws
    # In a multi-process run, process 0 alone reads and writes files; the others compute their
    # share of every chunk process 0 asks for and return None.
    writer = is_main_process()
    resumed = _prepare_parts(paths, settings, resume=resume, force=force) if writer else False

    parts = paths["parts"]
    ranges = _chunk_ranges(num_samples, chunk_size)
    chunks: dict[int, dict[str, np.ndarray]] = {}
    if resumed:
        for i, (start, stop) in enumerate(ranges):
            path = _chunk_path(parts, i)
            if path.is_file():
                data = _read_chunk(path)
                if data is not None and (int(data["start"]), int(data["stop"])) == (start, stop):
                    chunks[i] = data
    skip = set(chunks)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        todo = np.asarray([i not in chunks for i in range(len(ranges))])
        todo = np.asarray(multihost_utils.broadcast_one_to_all(todo))
        skip = {i for i in range(len(ranges)) if not todo[i]}
    root = jax.random.key(seed)
    spec = jnp.asarray(species, dtype=jnp.int32)
    done = sum(int(c["stop"] - c["start"]) for c in chunks.values())
    computed_seconds = 0.0
    timings: list[tuple[float, int]] = []
    shared = par.replicate((flow, root, spec))  # one copy per device, made once
    try:
        with SampleProgress(num_samples, done, progress and writer) as bar:
            for i, (start, stop) in enumerate(ranges):
                if i in skip:
                    continue
                tic = time.perf_counter()
                indices = np.arange(start, start + chunk_size)  # padded to one shape
                try:
                    if parallel is None:
                        drawn = _draw(
                            flow, root, jnp.asarray(indices, dtype=jnp.int32), spec, batching
                        )
                    else:
                        shard = par.shard_batch(np.asarray(indices, dtype=np.int32))
                        flow_r, root_r, spec_r = shared
                        drawn = _draw_on(par, flow_r, root_r, shard, spec_r, batching)
                    x1, log_q, nfe, steps, rejected, status = (par.to_host(a) for a in drawn)
                    x1 = np.asarray(x1, dtype=np.float64)[: stop - start]
                    problem = _solve_problem(status[: stop - start], max_steps)
                except (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError) as exc:
                    problem = _error_summary(exc)
                if problem is not None:
                    raise SamplingError(
                        _failure_message(i, start, stop, problem, len(chunks), parts), chunk=i
                    )
                wrapped = np.mod(x1, box)
                wrapped = np.where(wrapped >= box, wrapped - box, wrapped)
                moved = np.any(np.abs(wrapped - x1) > 0, axis=(1, 2))
                energy = system_energies(system, wrapped, species, block=chunk_size)
                seconds = time.perf_counter() - tic  # the chunk's time, as it reports and sums it
                data = {
                    "start": np.asarray(start),
                    "stop": np.asarray(stop),
                    "positions": wrapped,
                    "log_q": np.asarray(log_q, dtype=np.float64)[: stop - start],
                    "energy": energy,
                    "nfe": np.asarray(nfe)[: stop - start].astype(np.int64),
                    "num_steps": np.asarray(steps)[: stop - start].astype(np.int64),
                    "num_rejected": np.asarray(rejected)[: stop - start].astype(np.int64),
                    "wrapped": moved,
                    # timing travels with the chunk, so a resumed run still reports every call's
                    "seconds": np.asarray(seconds, dtype=np.float64),
                    "first_of_call": np.asarray(not timings),
                }
                if writer:
                    _write_chunk(_chunk_path(parts, i), data)
                chunks[i] = data
                done += stop - start
                computed_seconds += seconds
                timings.append((seconds, stop - start))
                # The first chunk of a call includes compilation: leave it out once others exist.
                steady = timings[1:] or timings
                all_nfe = np.concatenate([c["nfe"] for c in chunks.values()])
                bar.update(
                    done,
                    seconds_per_sample=sum(t for t, _ in steady) / sum(c for _, c in steady),
                    mean_nfe=float(np.mean(all_nfe)),
                )
    except BaseException:
        # A fresh run that finished no chunk leaves no parts folder behind (it would only
        # block the next call); finished chunks are kept for --resume.
        if writer and not resumed and not chunks and parts.is_dir():
            _remove_parts(parts)
        raise

    if not writer:
        return None
    ordered = [chunks[i] for i in range(len(ranges))]

    def cat(name):
        return np.concatenate([c[name] for c in ordered], axis=0)

    energy, log_q, nfe = cat("energy"), cat("log_q"), cat("nfe")
    with np.errstate(invalid="ignore", over="ignore"):
        log_w = -energy / temperature - log_q
    density = describe_density(run)
    from .. import __version__

    metadata = {
        "generator": {"name": "manifold_flows.sample_to_file", "version": __version__},
        "run": {
            "dir": settings["run_dir"],
            "step": int(run.step),
            "epoch": int(run.epoch),
            "checkpoint_sha256": settings["checkpoint_sha256"],
            "weights": "EMA",
            "model": run.info.get("model"),
            "field_class": run.info.get("field_class"),
            "interpolant": run.info.get("interpolant"),
            "space": run.info.get("space"),
            "trained_system": run.system,
            "trained_temperature": run.temperature,
        },
        "seed": seed,
        "key_derivation": "sample r uses jax.random.fold_in(jax.random.key(seed), r)",
        "num_samples": num_samples,
        "chunk_size": chunk_size,
        "batching": batching,
        "solver": {
            "name": settings["solver"],
            "rtol": float(rtol),
            "atol": float(atol),
            "num_steps": num_steps,
            "max_steps": int(max_steps),
            "adaptive": num_steps is None,
            "dtype": dtype,
            "divergence": "exact",
        },
        "nfe": {
            "mean": float(np.mean(nfe)),
            "min": int(np.min(nfe)),
            "max": int(np.max(nfe)),
            "total": int(np.sum(nfe)),
            "mean_steps": float(np.mean(cat("num_steps"))),
            "mean_rejected_steps": float(np.mean(cat("num_rejected"))),
        },
        "density": density,
        "size_transfer": transfer,
        "aux_draws": aux_draws,
        "base_normalized": bool(density["base_normalized"]),
        "euclidean_flow": is_euclidean(run),
        "num_samples_wrapped": int(np.count_nonzero(cat("wrapped"))),
        "temperature": temperature,
        "energy": {
            "convention": ENERGY_CONVENTION,
            "system": system.name,
            "images": system.images,
            "image_note": image_note,
            "parameters": system.parameters,
        },
        "log_w": "log w = -U/T - log q",
        "num_nonfinite_log_w": int(np.count_nonzero(~np.isfinite(log_w))),
        "timing": {
            "seconds_this_call": computed_seconds,
            "samples_this_call": sum(c for _, c in timings),
            **_timing_over_chunks(ordered),
            "note": (
                "seconds_per_sample: over the chunks of every call (this one and the resumed "
                "ones), leaving out the first chunk of each call (compilation) when others exist"
            ),
        },
    }
    dataset = Dataset(
        positions=cat("positions"),
        species=species,
        species_names=run.species_names,
        box=box,
        temperature=temperature,
        system=system.name,
        energy=energy,
        extra={"log_q": log_q, "log_w": log_w},
        metadata=metadata,
    )
    written = []
    if extxyz:
        written.append(write_extxyz(paths["extxyz"], dataset))
    written.append(dataset.save(paths["npz"]))
    write_manifest(
        paths["npz"].parent,
        name=paths["manifest"].name,
        command=command or "manifold_flows.sample_to_file",
        config={**settings, "num_samples": num_samples, "extxyz": bool(extxyz)},
        seeds={"seed": seed},
        data_files=written,
        precision=dtype,
        extra={"resumed": resumed, "nfe": metadata["nfe"], "outputs": [str(p) for p in written]},
    )
    _remove_parts(parts)
    return dataset
