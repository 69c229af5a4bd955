"""`mflows sample`: samples of a trained run with exact log q, energy and log weight."""

import enum
import sys
from pathlib import Path
from typing import Annotated

import typer

from manifold_flows._arguments import argument_names

from ._devices import (
    CoordinatorOption,
    DevicesOption,
    DistributedOption,
    NumProcessesOption,
    ProcessIdOption,
    setup_devices,
)
from ._errors import UserError

#: The flag of each library argument `sample` passes on, so that errors name the flags.
_FLAGS = {
    "num_samples": "--num-samples",
    "chunk_size": "--chunk-size",
    "seed": "--seed",
    "batching": "--batching",
    "num_steps": "--steps",
    "max_steps": "--max-steps",
    "temperature": "--temperature",
    "images": "--images",
    "aux_draws": "--aux-draws",
    "extxyz": "--extxyz",
    "resume": "--resume",
    "force": "--force",
}


class Precision(enum.StrEnum):
    single = "32"
    double = "64"


class Batching(enum.StrEnum):
    sequential = "sequential"
    vmap = "vmap"


def register(app: typer.Typer) -> None:
    @app.command("sample")
    def sample(
        run: Annotated[
            Path, typer.Option("--run", help="Run directory written by `mflows train`.")
        ],
        num_samples: Annotated[
            int, typer.Option("--num-samples", "-R", help="Number of samples R.")
        ],
        out: Annotated[
            Path,
            typer.Option(
                "--out", "-o", help="Output .npz (an .extxyz copy is written next to it)."
            ),
        ],
        seed: Annotated[int, typer.Option("--seed", help="Seed of the sample stream.")] = 0,
        chunk_size: Annotated[
            int | None,
            typer.Option(
                "--chunk-size",
                help="Samples per chunk (drawn and saved together; the unit of --resume; "
                "default: the backend's, 16 on CPU, 64 else).",
            ),
        ] = None,
        batching: Annotated[
            Batching | None,
            typer.Option(
                "--batching",
                help=(
                    "How a chunk's samples are solved on each device: one after another "
                    "(sequential: each adaptive solve takes its own steps; faster on CPU) or "
                    "together (vmap: one batched solve, every sample takes the steps of the "
                    "hardest; can pay off on a GPU). Default: the backend's, sequential on "
                    "CPU, vmap else."
                ),
            ),
        ] = None,
        resume: Annotated[
            bool,
            typer.Option("--resume", help="Continue an interrupted run from its finished chunks."),
        ] = False,
        force: Annotated[
            bool,
            typer.Option(
                "--force", help="Overwrite an existing output / discard unfinished chunks."
            ),
        ] = False,
        solver: Annotated[
            str, typer.Option("--solver", help="ODE solver (dopri5, tsit5, ...).")
        ] = "dopri5",
        rtol: Annotated[
            float, typer.Option("--rtol", help="Relative tolerance (adaptive solvers).")
        ] = 1e-5,
        atol: Annotated[
            float, typer.Option("--atol", help="Absolute tolerance (adaptive solvers).")
        ] = 1e-5,
        steps: Annotated[
            int | None,
            typer.Option("--steps", help="Fixed number of steps instead of adaptive stepping."),
        ] = None,
        max_steps: Annotated[
            int, typer.Option("--max-steps", help="Step budget of adaptive solves.")
        ] = 4096,
        precision: Annotated[
            Precision, typer.Option("--precision", help="Floating precision of the flow: 32 or 64.")
        ] = Precision.double,
        temperature: Annotated[
            float | None,
            typer.Option(
                "--temperature", "-T", help="Target temperature of the weights (default: run's)."
            ),
        ] = None,
        images: Annotated[
            str, typer.Option("--images", help="Image convention of the energy: minimum or all.")
        ] = "minimum",
        num_particles: Annotated[
            int | None,
            typer.Option(
                "--num-particles",
                help="Size transfer (coupling flows): sample N particles at the run's density "
                "and composition with the trained flow unchanged.",
            ),
        ] = None,
        composition: Annotated[
            str | None,
            typer.Option(
                "--composition",
                help="With --num-particles: counts per species (512:512); default: the run's "
                "scaled to N.",
            ),
        ] = None,
        aux_draws: Annotated[
            int | None,
            typer.Option(
                "--aux-draws",
                help="Coupling flows: average K auxiliary draws in each sample's log q (exact "
                "for every K; K - 1 more inverse passes per sample, no more energies). "
                "Default: the K the run was trained with (train.aux_draws, 1 unless set).",
            ),
        ] = None,
        extxyz: Annotated[
            bool, typer.Option("--extxyz/--no-extxyz", help="Also write .extxyz.")
        ] = True,
        progress: Annotated[
            bool, typer.Option("--progress/--no-progress", help="Progress bar.")
        ] = True,
        devices: DevicesOption = None,
        distributed: DistributedOption = False,
        coordinator_address: CoordinatorOption = None,
        num_processes: NumProcessesOption = None,
        process_id: ProcessIdOption = None,
    ) -> None:
        """Draw R samples of a trained run with exact log q, energy U and log w = -U/T - log q."""
        import jax

        jax.config.update("jax_enable_x64", True)  # energies in float64 at either precision
        parallel = setup_devices(
            devices, distributed, coordinator_address, num_processes, process_id
        )
        import numpy as np

        from manifold_flows import SamplingError, reweight, sample_to_file

        if num_samples <= 0:
            raise UserError(f"--num-samples must be a positive integer (R > 0); got {num_samples}.")
        dtype = "float64" if precision == Precision.double else "float32"
        target = None
        if composition is not None and num_particles is None:
            raise UserError("--composition goes with --num-particles (size transfer).")
        if num_particles is not None:
            run, target = _transfer_target(run, num_particles, composition, images, temperature)
        try:
            with argument_names(_FLAGS):
                dataset = sample_to_file(
                    run,
                    system=target,
                    num_samples=num_samples,
                    out=out,
                    seed=seed,
                    chunk_size=chunk_size,
                    batching=None if batching is None else batching.value,
                    solver=solver,
                    rtol=rtol,
                    atol=atol,
                    num_steps=steps,
                    max_steps=max_steps,
                    dtype=dtype,
                    temperature=temperature,
                    images=images,
                    aux_draws=aux_draws,
                    resume=resume,
                    force=force,
                    extxyz=extxyz,
                    progress=progress,
                    command="mflows " + " ".join(sys.argv[1:]),
                    parallel=parallel,
                )
        except SamplingError as exc:
            raise UserError(str(exc)) from exc
        if dataset is None:  # a process other than 0 of a multi-process run: it wrote nothing
            return
        meta = dataset.metadata
        transfer = meta.get("size_transfer")
        weights = reweight(
            dataset.energy, dataset.extra["log_q"], dataset.temperature, base_normalized=True
        )
        u = dataset.energy / dataset.num_particles
        finite = np.isfinite(u)
        typer.echo(
            f"wrote {dataset.num_samples} samples to {out}"
            + (f" and {out.with_suffix('.extxyz')}" if extxyz else "")
            + f" (energies with images={meta['energy']['images']})"
            + (f"; mean NFE {meta['nfe']['mean']:.1f}" if meta["nfe"]["total"] else "")
            + (f"; size transfer from N = {transfer['trained_num_particles']}" if transfer else "")
            + "; raw u = "
            + (f"{np.mean(u[finite]):.5g}" if finite.any() else "n/a")
            + f"; ESS {weights.ess:.1f} (ESS/R {weights.ess_fraction:.3g}), "
            f"{weights.num_nonfinite} non-finite log w"
        )


def _transfer_target(run: Path, num_particles: int, composition, images: str, temperature):
    """The loaded run and the system of `--num-particles` (size transfer): the run's system
    resized at its density, with the run's composition scaled or `--composition`."""
    import numpy as np

    from manifold_flows import load_run
    from manifold_flows._pipeline.flow import is_coupling_flow
    from manifold_flows._pipeline.system import resized_system, resolve_system

    from ._generate import _parse_composition

    trained = load_run(run)
    if not is_coupling_flow(trained):
        raise UserError(
            f"--num-particles: the run in {run} is a continuous flow; only coupling flows "
            "(local by construction) transfer to another size."
        )
    box = np.asarray(trained.torus.lengths, dtype=np.float64)
    T = temperature if temperature is not None else trained.temperature
    base, _ = resolve_system(
        trained.system, box=box, species=np.asarray(trained.species), images=images, temperature=T
    )
    counts = None
    if composition is not None:
        parsed = _parse_composition(composition)
        if isinstance(parsed, dict):
            unknown = sorted(set(parsed) - set(base.species_names))
            if unknown:
                raise UserError(
                    f"--composition names {', '.join(unknown)}, not species of the run "
                    f"({', '.join(base.species_names)})."
                )
            parsed = [parsed.get(name, 0) for name in base.species_names]
        counts = parsed
    try:
        target = resized_system(base, num_particles, composition=counts)
    except ValueError as exc:
        raise UserError(f"--num-particles: {exc}") from None
    return trained, target
