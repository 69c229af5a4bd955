"""`mflows mcmc`: flow-augmented Monte Carlo (flow moves interleaved with local sweeps),
written as a dataset like `mflows generate`'s."""

import sys
import warnings
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from manifold_flows._arguments import argument_names

from ._errors import UserError

#: The flag of each library argument `mcmc` passes on, so that errors name the flags.
_FLAGS = {
    "num_chains": "--chains",
    "samples_per_chain": "--samples-per-chain",
    "sweeps_between": "--sweeps-between",
    "equilibration_sweeps": "--equilibration",
    "p_swap": "--p-swap",
    "step_size": "--step-size",
    "samples_per_block": "--samples-per-block",
    "temperature": "--temperature",
    "every": "--flow-every",
    "moves": "--flow-moves",
    "batch_size": "--proposal-batch",
    "chunk_size": "--chunk-size",
    "eval_batch": "--eval-batch",
    "images": "--images",
    "extxyz": "--extxyz",
    "force": "--force",
    "resume": "--resume",
    "aux_draws": "--aux-draws",
}


def _with_aux_draws(flow, trained, run, aux_draws, proposals, sample_meta):
    """The flow with K auxiliary draws averaged in log q (`MultiAuxFlow`), K from
    `--aux-draws`, the proposal file or the run's training (in this order of precedence);
    chain states must use the K of the proposals."""
    from manifold_flows import MultiAuxFlow
    from manifold_flows._pipeline.flow import is_coupling_flow

    drawn = int(sample_meta.get("aux_draws", 1)) if proposals is not None else None
    if aux_draws is not None and drawn is not None and aux_draws != drawn:
        raise UserError(
            f"--aux-draws {aux_draws}, but the proposals in {proposals} were drawn with "
            f"{drawn}; chain states must be weighted like the proposals: drop --aux-draws."
        )
    trained_with = trained.config.aux_draws  # the run's train.aux_draws
    count = drawn if drawn is not None else (trained_with if aux_draws is None else aux_draws)
    if count < 1:
        raise UserError(f"--aux-draws must be a positive integer; got {count}.")
    if count == 1:
        return flow
    if not is_coupling_flow(trained):
        raise UserError(
            f"--aux-draws averages auxiliary draws of a coupling flow; the run in {run} has "
            "none: drop --aux-draws."
        )
    return MultiAuxFlow(flow, count)


def _run_dir_of_samples(path: Path) -> tuple[Path, dict]:
    """The run directory a sample file records, and the solver it used."""
    from manifold_flows import Dataset

    if not path.is_file():
        raise FileNotFoundError(f"sample file not found: {path}")
    meta = Dataset.load(path).metadata
    run = meta.get("run", {}) if isinstance(meta, dict) else {}
    if not run.get("dir"):
        raise UserError(
            f"{path} does not say which run drew it; pass that run with --run (its flow "
            "evaluates log q of the chain states)."
        )
    return Path(run["dir"]), meta


def _check_same_checkpoint(run: Path, meta: dict, path: Path) -> None:
    """Refuse samples drawn with another checkpoint than the run's current one (their log q
    would not be the log q the run's flow evaluates)."""
    from manifold_flows import sha256_file

    recorded = meta.get("run", {}).get("checkpoint_sha256")
    checkpoint = Path(run) / "checkpoint.eqx"
    if recorded and checkpoint.is_file() and sha256_file(checkpoint) != recorded:
        raise UserError(
            f"the samples in {path} were drawn with another checkpoint than the one now in "
            f"{run} (the run was trained further or replaced); draw new samples with `mflows "
            "sample`."
        )


def register(app: typer.Typer) -> None:
    @app.command("mcmc")
    def mcmc(
        out: Annotated[Path, typer.Option("--out", "-o", help="Output dataset (.npz).")],
        run: Annotated[
            Path | None,
            typer.Option(
                "--run",
                help="Run directory of `mflows train`: its flow proposes moves and evaluates "
                "log q of chain states (default with --proposals: the run that drew them).",
            ),
        ] = None,
        proposals: Annotated[
            Path | None,
            typer.Option(
                "--proposals",
                help="Sample file of `mflows sample` to read proposals from (each used once) "
                "instead of drawing them.",
            ),
        ] = None,
        system: Annotated[
            str | None,
            typer.Option("--system", help="Preset system (default: the run's system)."),
        ] = None,
        images: Annotated[
            str, typer.Option("--images", help="Image convention of the energy: minimum or all.")
        ] = "minimum",
        temperature: Annotated[
            float | None,
            typer.Option("--temperature", "-T", help="Temperature (default: the run's)."),
        ] = None,
        chains: Annotated[int, typer.Option("--chains", help="Independent chains.")] = 20,
        samples_per_chain: Annotated[
            int, typer.Option("--samples-per-chain", help="Samples kept from EACH chain.")
        ] = 50,
        sweeps_between: Annotated[
            int, typer.Option("--sweeps-between", help="Sweeps between samples of a chain.")
        ] = 20,
        equilibration: Annotated[
            int, typer.Option("--equilibration", help="Sweeps before the first sample.")
        ] = 200,
        flow_every: Annotated[
            int,
            typer.Option("--flow-every", help="Local sweeps between two flow blocks."),
        ] = 10,
        flow_moves: Annotated[
            int,
            typer.Option(
                "--flow-moves",
                help="Flow moves per chain in a block (log q of the state is evaluated once "
                "per block, so several moves share it).",
            ),
        ] = 1,
        proposal_batch: Annotated[
            int, typer.Option("--proposal-batch", help="Proposals drawn per call.")
        ] = 64,
        chunk_size: Annotated[
            int,
            typer.Option(
                "--chunk-size", help="Solves vmapped together (1 on a CPU; larger on a GPU)."
            ),
        ] = 1,
        eval_batch: Annotated[
            int,
            typer.Option("--eval-batch", help="Chain states whose log q is evaluated per call."),
        ] = 16,
        steps: Annotated[
            int | None,
            typer.Option("--steps", help="Fixed ODE steps instead of adaptive stepping."),
        ] = None,
        p_swap: Annotated[
            float | None, typer.Option("--p-swap", help="Swap-move probability.")
        ] = None,
        step_size: Annotated[
            float | None, typer.Option("--step-size", help="Initial displacement width.")
        ] = None,
        samples_per_block: Annotated[
            int,
            typer.Option("--samples-per-block", help="Samples per chain between checkpoints."),
        ] = 10,
        adapt_rounds: Annotated[
            int,
            typer.Option(
                "--adapt-rounds",
                help="Adaptive burn-in: rounds of chains whose samples fine-tune the flow "
                "(flow matching; maximum likelihood for a coupling flow) before production "
                "(0: none). The flow is frozen in production.",
            ),
        ] = 0,
        adapt_samples: Annotated[
            int,
            typer.Option("--adapt-samples", help="Samples per chain of each adaptation round."),
        ] = 10,
        adapt_epochs: Annotated[
            int, typer.Option("--adapt-epochs", help="Fine-tuning epochs per adaptation round.")
        ] = 1,
        aux_draws: Annotated[
            int | None,
            typer.Option(
                "--aux-draws",
                help="Coupling flows: average K auxiliary draws in log q (proposals and chain "
                "states; exact for every K). Default: what --proposals were drawn with, else the "
                "K the run was trained with (train.aux_draws, 1 unless set).",
            ),
        ] = None,
        seed: Annotated[int, typer.Option("--seed", help="Seed of the chains.")] = 0,
        proposal_seed: Annotated[
            int, typer.Option("--proposal-seed", help="Seed of the drawn proposals.")
        ] = 1,
        extxyz: Annotated[
            Path | None,
            typer.Option("--extxyz", help="Also write extended XYZ (ASE-readable) here."),
        ] = None,
        resume: Annotated[
            bool, typer.Option("--resume", help="Continue an interrupted run.")
        ] = False,
        force: Annotated[
            bool, typer.Option("--force", help="Overwrite the output / discard a checkpoint.")
        ] = False,
        progress: Annotated[
            bool, typer.Option("--progress/--no-progress", help="Progress bar.")
        ] = True,
    ) -> None:
        """Flow-augmented Monte Carlo: local sweeps (displacements, swaps) with independent
        Metropolis-Hastings moves to flow proposals, accepted with min(1, w'/w), log w =
        -U/T - log q. Exact for any flow; a good flow decorrelates the chains faster. Writes a
        dataset like `mflows generate` (for `mflows train` / `mflows evaluate`) and a manifest."""
        if run is None and proposals is None:
            raise UserError("say where proposals come from: --run RUN_DIR and/or --proposals FILE.")
        import jax

        jax.config.update("jax_enable_x64", True)
        from manifold_flows import (
            adapt_flow,
            flow_for_run,
            flow_matching_adapter,
            flow_mcmc_dataset,
            flow_mcmc_summary,
            get_system,
            likelihood_adapter,
            load_run,
            proposals_from_samples,
            resolve_system,
            write_manifest,
        )
        from manifold_flows._pipeline.flow import is_coupling_flow, is_euclidean
        from manifold_flows._pipeline.system import check_system

        solver, sample_meta = {}, {}
        if proposals is not None:
            drawn_by, sample_meta = _run_dir_of_samples(proposals)
            solver = sample_meta.get("solver", {})  # log q of chain states: the same solver
            run = drawn_by if run is None else run
            _check_same_checkpoint(run, sample_meta, proposals)
        trained = load_run(run)
        if is_euclidean(trained):
            raise UserError(
                f"the run in {run} is a Euclidean flow (eFM): its log q is a density of unwrapped "
                "points, not of configurations on the torus, so flow moves would be biased; use "
                "a torus flow (eRSI)."
            )
        T = trained.temperature if temperature is None else temperature
        if T is None:
            raise UserError(f"the run in {run} records no temperature; pass --temperature.")
        with warnings.catch_warnings(), argument_names(_FLAGS):
            warnings.simplefilter("always")
            box = np.asarray(trained.torus.lengths, dtype=np.float64)
            species = np.asarray(trained.species)
            if system is None:
                sys_obj, _ = resolve_system(
                    trained.system, box=box, species=species, images=images, temperature=T
                )
            else:
                sys_obj = get_system(system, temperature=T, images=images)
                check_system(sys_obj, box=box, species=species, what=f"system {system!r}")
            flow = flow_for_run(
                trained,
                num_steps=steps if steps is not None else solver.get("num_steps"),
                rtol=solver.get("rtol", 1e-5),
                atol=solver.get("atol", 1e-5),
            )
            flow = _with_aux_draws(flow, trained, run, aux_draws, proposals, sample_meta)
            source = None
            if proposals is not None:
                source = proposals_from_samples(proposals, system=sys_obj, temperature=T)
            start = {"num_chains": chains, "equilibration_sweeps": equilibration}
            if adapt_rounds < 0:
                raise UserError(f"--adapt-rounds must be >= 0; got {adapt_rounds}.")
            if adapt_rounds > 0:
                if source is not None:
                    raise UserError(
                        "--adapt-rounds needs proposals from the (changing) flow, not --proposals."
                    )
                adapter = likelihood_adapter if is_coupling_flow(trained) else flow_matching_adapter
                burnt = adapt_flow(
                    sys_obj,
                    likelihood=flow,
                    adapt=adapter(trained, epochs=adapt_epochs),
                    key=seed + 1_000_000,
                    rounds=adapt_rounds,
                    burn_in={
                        **start,
                        "temperature": T,
                        "samples_per_chain": adapt_samples,
                        "sweeps_between": sweeps_between,
                        "p_swap": p_swap,
                        "step_size": step_size,
                    },
                    flow_every=flow_every,
                    flow_moves=flow_moves,
                    progress=progress,
                )
                flow = burnt.likelihood  # frozen from here on
                start = {**burnt.start, "equilibration_sweeps": 0}
                step_size = start.pop("step_size")
            result = flow_mcmc_dataset(
                sys_obj,
                out,
                likelihood=flow,
                key=seed,
                proposals=source,
                flow_every=flow_every,
                flow_moves=flow_moves,
                proposal_seed=proposal_seed,
                proposal_batch=proposal_batch,
                chunk_size=chunk_size,
                eval_batch=eval_batch,
                extxyz=extxyz,
                force=force,
                resume=resume,
                progress=progress,
                temperature=T,
                samples_per_chain=samples_per_chain,
                sweeps_between=sweeps_between,
                p_swap=p_swap,
                step_size=step_size,
                samples_per_block=samples_per_block,
                **start,
            )
        summary = flow_mcmc_summary(result)
        if adapt_rounds > 0:
            summary["adaptation"] = {
                "rounds": adapt_rounds,
                "samples_per_chain": adapt_samples,
                "epochs": adapt_epochs,
                "objective": "ml" if is_coupling_flow(trained) else "flow matching",
                "flow_acceptance_by_round": list(burnt.flow_acceptance),
                "note": "the flow was fine-tuned on burn-in samples only, then frozen",
            }
        options = {k: (str(v) if isinstance(v, Path) else v) for k, v in dict(locals()).items()}
        options = {k: options[k] for k in _OPTIONS if k in options}
        manifest = write_manifest(
            Path(out).parent,
            command="mflows " + " ".join(sys.argv[1:]) if sys.argv[1:] else "mflows mcmc",
            config={
                "options": options,
                "mc": result.config.as_dict(),
                "system": sys_obj.parameters,
                "run": str(run),
            },
            seeds={"seed": seed, "proposal_seed": proposal_seed},
            data_files=[Path(out)] + ([Path(extxyz)] if extxyz is not None else []),
            precision="float64",
            extra={"diagnostics": result.diagnostics, "flow_mcmc": summary},
            name=f"{Path(out).stem}.manifest.json",
        )
        energy = summary["energy_per_particle"]
        rates = ", ".join(f"{k} {v:.3f}" for k, v in result.acceptance.items() if v is not None)
        tau_s, tau_cpu = summary["tau_seconds"], summary["tau_cpu_seconds"]
        typer.echo(
            f"wrote {out} ({result.dataset.num_samples} samples = {result.config.num_chains} "
            f"chains x {result.config.samples_per_chain}); u = U/N = {energy['mean']:.5f} +- "
            f"{energy['error']:.5f}; energy autocorrelation time {summary['tau_sweeps']:.3g} "
            f"sweeps"
            + (f" = {tau_s:.3g} s" if tau_s is not None else "")
            + (f" = {tau_cpu:.3g} CPU s" if tau_cpu is not None else "")
            + f"; acceptance: {rates}; proposals used {summary['proposals_used']}, log q "
            f"evaluations {summary['log_q_evaluations']}; manifest {manifest}"
        )


#: Options recorded in the manifest.
_OPTIONS = (
    "out",
    "run",
    "proposals",
    "system",
    "images",
    "temperature",
    "chains",
    "samples_per_chain",
    "sweeps_between",
    "equilibration",
    "flow_every",
    "flow_moves",
    "proposal_batch",
    "chunk_size",
    "eval_batch",
    "steps",
    "p_swap",
    "step_size",
    "samples_per_block",
    "adapt_rounds",
    "adapt_samples",
    "adapt_epochs",
    "seed",
    "proposal_seed",
    "extxyz",
    "resume",
    "force",
)
