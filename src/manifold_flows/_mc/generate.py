"""Generate an equilibrium dataset to files: Monte Carlo, checkpoints, atomic outputs."""

import os
from pathlib import Path
from typing import Any

from .._energy import ParticleSystem
from .checkpoint import CheckpointStore
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
    if out.exists() and not force:
        raise FileExistsError(
            f"{out} already exists (a finished dataset); pass force=True (--force) to overwrite "
            "it, or choose another output path."
        )
    if store.exists() and not resume:
        if not force:
            raise FileExistsError(
                f"found the checkpoint of an unfinished run in {store.directory}; pass "
                "resume=True (--resume) to continue it or force=True (--force) to start over."
            )
        store.clear()
    writer = None
    if extxyz is not None:
        from .. import _io

        writer = getattr(_io, "write_extxyz", None)
        if writer is None:
            raise ValueError("extended XYZ output is not available in this installation.")
    result = run_monte_carlo(
        system,
        key=key,
        checkpoint_dir=store.directory,
        resume=resume,
        progress=progress,
        **options,
    )
    if writer is not None:
        writer(extxyz, result.dataset)
    # the .npz is written last: its presence marks a finished run
    result.dataset.save(out)
    if not keep_checkpoint:
        store.clear()
    return result
