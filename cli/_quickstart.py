"""`mflows quickstart`: data, training, samples and report in one command, into one folder."""

import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer

from manifold_flows._arguments import argument_names

from ._errors import show_warning

#: The flag of each library argument `quickstart` passes on, so that errors name the flags.
_FLAGS = {
    "out_dir": "--out",
    "temperature": "--temperature",
    "chains": "--chains",
    "mc_samples": "--mc-samples",
    "sweeps_between": "--sweeps-between",
    "equilibration": "--equilibration",
    "steps": "--steps",
    "num_samples": "--samples",
    "chunk_size": "--chunk-size",
    "batching": "--batching",
    "seed": "--seed",
    "resume": "--resume",
}


def register(app: typer.Typer) -> None:
    @app.command("quickstart")
    def quickstart(
        out: Annotated[
            Path,
            typer.Option("--out", "-o", help="Output folder (data/, run/, samples/, report/)."),
        ] = Path("mflows-quickstart"),
        system: Annotated[
            str,
            typer.Option("--system", help="Preset system (see `mflows generate --list-systems`)."),
        ] = "ipl-n10",
        temperature: Annotated[
            float | None,
            typer.Option("--temperature", "-T", help="Temperature (default: the preset's)."),
        ] = None,
        chains: Annotated[int, typer.Option("--chains", help="Monte Carlo chains.")] = 100,
        mc_samples: Annotated[
            int,
            typer.Option(
                "--mc-samples", help="Monte Carlo samples in all (a multiple of --chains)."
            ),
        ] = 10_000,
        sweeps_between: Annotated[
            int, typer.Option("--sweeps-between", help="Monte Carlo sweeps between samples.")
        ] = 300,
        equilibration: Annotated[
            int, typer.Option("--equilibration", help="Monte Carlo equilibration sweeps.")
        ] = 3000,
        steps: Annotated[
            int, typer.Option("--steps", help="Training steps (rounded up to whole epochs).")
        ] = 2000,
        samples: Annotated[
            int, typer.Option("--samples", "-R", help="Generated samples R (with exact log q).")
        ] = 500,
        chunk_size: Annotated[
            int | None,
            typer.Option(
                "--chunk-size",
                help="Samples per sampling chunk (default: the backend's, 16 on CPU, 64 else).",
            ),
        ] = None,
        batching: Annotated[
            str | None,
            typer.Option(
                "--batching",
                help="Samples of a chunk solved 'sequential' or 'vmap' (lock-step) (default: "
                "the backend's, sequential on CPU, vmap else).",
            ),
        ] = None,
        audit: Annotated[
            bool, typer.Option("--audit/--no-audit", help="Run the likelihood audit.")
        ] = True,
        seed: Annotated[int, typer.Option("--seed", help="Seed of data, training, samples.")] = 0,
        resume: Annotated[
            bool,
            typer.Option("--resume", help="Continue an interrupted quickstart in --out."),
        ] = False,
        progress: Annotated[
            bool, typer.Option("--progress/--no-progress", help="Progress bars.")
        ] = True,
    ) -> None:
        """Run the whole pipeline on a small system: Monte Carlo data, eRSI training, samples
        with exact log q, and a report (ESS, u and c_v raw and reweighted next to Monte Carlo,
        g(r), a picture of a generated configuration)."""
        import jax

        jax.config.update("jax_enable_x64", True)  # energies and log q in float64
        from manifold_flows import SamplingError, TrainingDiverged, quickstart as run_quickstart

        from ._errors import UserError

        with warnings.catch_warnings(), argument_names(_FLAGS):
            warnings.simplefilter("once")
            warnings.showwarning = show_warning
            try:
                result = run_quickstart(
                    out,
                    system=system,
                    temperature=temperature,
                    chains=chains,
                    mc_samples=mc_samples,
                    sweeps_between=sweeps_between,
                    equilibration=equilibration,
                    steps=steps,
                    num_samples=samples,
                    chunk_size=chunk_size,
                    batching=batching,
                    audit=audit,
                    seed=seed,
                    resume=resume,
                    progress=progress,
                    log=typer.echo,
                    command="mflows " + " ".join(sys.argv[1:]),
                )
            except (SamplingError, TrainingDiverged) as exc:
                raise UserError(f"{exc} (then rerun with --resume)") from exc
        for line in result.summary_lines():
            typer.echo(line)
