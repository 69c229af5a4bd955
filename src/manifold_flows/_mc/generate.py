"""Generate an equilibrium dataset to files: Monte Carlo, checkpoints, atomic outputs."""

import dataclasses
import os
from pathlib import Path
from typing import Any

from .._arguments import argument
from .._energy import ParticleSystem
from .._io.files import check_fits_in_memory, check_writable
from .checkpoint import CheckpointStore
from .config import MCConfig
from .engine import MCResult, run_monte_carlo


def checkpoint_dir_for(out: str | os.PathLike) -> Path:
    """The checkpoint folder `generate_dataset` uses for the output `out`
    (`<out>.checkpoint/`, next to it)."""
    out = Path(out)
    return out.with_name(out.name + ".checkpoint")


def generate_dataset(
    system: ParticleSystem,
    out: str | os.PathLike,
    *,
    key: Any,
    extxyz: str | os.PathLike | None = None,
    force: bool = False,
    resume: bool = False,
    keep_checkpoint: bool = False,
    progress: bool = True,
    **options: Any,
) -> MCResult:
    """Run `run_monte_carlo` and write the samples as a binary dataset (`.npz`, `Dataset.save`)
    and optionally as extended XYZ.

    Production is checkpointed block by block into `<out>.checkpoint/`; an interrupted run
    continues with `resume=True` and loses nothing already written. The output files appear
    only when the run is complete (each written to a temporary name and renamed), so no partial
    file ever looks complete; the checkpoint folder is removed afterwards unless
    `keep_checkpoint`.

    **Arguments:**

    - `system`: the `ParticleSystem`.
    - `out`: path of the `.npz` dataset.
    - `key`: PRNG key or integer seed.
    - `extxyz`: also write extended XYZ (ASE-readable) here.
    - `force`: overwrite an existing output and discard an unfinished run's checkpoint.
    - `resume`: continue the unfinished run whose checkpoint is next to `out`.
    - `keep_checkpoint`: keep the checkpoint folder after success.
    - `progress`: show a progress bar.
    - `**options`: `run_monte_carlo` options (`config`, `temperature`, `num_chains`, ...).

    **Returns:**

    The `MCResult` (its `dataset` is what was written).
    """
    out = Path(out)
    if out.suffix != ".npz":
        raise ValueError(f"the dataset file must end in .npz; got {str(out)!r}.")
    if extxyz is not None:
        extxyz = Path(extxyz)
        if extxyz.suffix.lower() not in (".xyz", ".extxyz", ".exyz"):
            raise ValueError(
                f"the extended XYZ file must end in .xyz, .extxyz or .exyz; got {str(extxyz)!r}."
            )
    store = CheckpointStore(checkpoint_dir_for(out))
    # ---- everything that can be checked is checked before any work or any file is touched
    check_writable(out, what="the dataset")
    if out.exists() and not force:
        raise FileExistsError(
            f"{out} already exists (a finished dataset); pass {argument('force', True)} to "
            "overwrite it, or choose another output path."
        )
    if extxyz is not None:
        check_writable(extxyz, what="the extended XYZ file")
        # a resumed run may have written it just before it was stopped
        if extxyz.exists() and not force and not (resume and store.exists()):
            raise FileExistsError(
                f"{extxyz} already exists; pass {argument('force', True)} to overwrite it, or "
                f"choose another {argument('extxyz')} path."
            )
    if store.exists() and not resume and not force:
        raise FileExistsError(
            f"found the checkpoint of an unfinished run in {store.directory}; pass "
            f"{argument('resume', True)} to continue it or {argument('force', True)} to start "
            "over."
        )
    _check_memory(system, options)
    if store.exists() and not resume:
        store.clear()
    writer = None
    if extxyz is not None:
        from .. import _io

        writer = getattr(_io, "write_extxyz", None)
        if writer is None:
            raise ValueError("extended XYZ output is not available in this installation.")
    fresh = not store.exists()
    try:
        result = run_monte_carlo(
            system,
            key=key,
            checkpoint_dir=store.directory,
            resume=resume,
            progress=progress,
            **options,
        )
    except BaseException:
        if fresh and not store.block_indices():  # failed before any block: nothing to resume
            store.clear()
        raise
    if writer is not None:
        writer(extxyz, result.dataset)
    # the .npz is written last: its presence marks a finished run
    result.dataset.save(out)
    if not keep_checkpoint:
        store.clear()
    return result


def _check_memory(system: ParticleSystem, options: dict[str, Any]) -> None:
    """Refuse, before any work, a run whose samples would not fit in memory."""
    fields = {k: v for k, v in options.items() if k in MCConfig.field_names()}
    config = options.get("config")
    if config is not None and not isinstance(config, MCConfig):
        return  # run_monte_carlo names this mistake
    config = MCConfig(**fields) if config is None else dataclasses.replace(config, **fields)
    check_fits_in_memory(
        config.sample_bytes(system),
        what=(
            f"{config.num_chains} chains x {config.samples_per_chain} samples of "
            f"{system.num_particles} particles"
        ),
        fix=(
            f"lower {argument('num_chains')} or {argument('samples_per_chain')}, or split the "
            "dataset into several runs with different seeds"
        ),
    )
