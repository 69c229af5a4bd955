"""`mflows train`: flow-matching training from a TOML configuration."""

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

#: The flag of each library argument `train` passes on, so that errors name the flags.
_FLAGS = {"resume": "--resume", "run_dir": "--run-dir", "data": "--data"}


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        config: Annotated[
            Path,
            typer.Option("--config", "-c", help="TOML run configuration (see examples/configs/)."),
        ],
        set_: Annotated[
            list[str] | None,
            typer.Option("--set", help="Override a config value: section.key=value (repeatable)."),
        ] = None,
        resume: Annotated[
            bool,
            typer.Option(
                "--resume", help="Continue the run from the checkpoint in its run directory."
            ),
        ] = False,
        run_dir: Annotated[
            Path | None,
            typer.Option("--run-dir", help="Run directory (default: run_dir of the config)."),
        ] = None,
        data: Annotated[
            Path | None,
            typer.Option("--data", help="Dataset file (overrides \\[data] path)."),
        ] = None,
        epochs: Annotated[
            int | None, typer.Option("--epochs", help="Overrides \\[train] epochs.")
        ] = None,
        seed: Annotated[
            int | None, typer.Option("--seed", help="Overrides \\[train] seed.")
        ] = None,
        progress: Annotated[
            bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")
        ] = True,
        devices: DevicesOption = None,
        distributed: DistributedOption = False,
        coordinator_address: CoordinatorOption = None,
        num_processes: NumProcessesOption = None,
        process_id: ProcessIdOption = None,
    ) -> None:
        """Train a vector field by flow matching (eRSI, eFM, RSI) on a dataset.

        Writes the resolved config.toml, a manifest, run.json, checkpoints and metrics.jsonl
        to the run directory; `manifold_flows.load_run(run_dir)` reads the model back.
        """
        from manifold_flows._train.fit import TrainingDiverged
        from manifold_flows._train.from_config import (
            apply_overrides,
            read_config,
            train_from_config,
        )

        parallel = setup_devices(
            devices, distributed, coordinator_address, num_processes, process_id
        )
        raw = read_config(config)
        assignments = list(set_ or [])
        if epochs is not None:
            assignments.append(f"train.epochs={epochs}")
        if seed is not None:
            assignments.append(f"train.seed={seed}")
        raw = apply_overrides(raw, assignments)
        try:
            with argument_names(_FLAGS):
                result = train_from_config(
                    raw,
                    run_dir=run_dir,
                    data=data,
                    resume=resume,
                    progress=progress,
                    parallel=parallel,
                    config_name=config.stem,
                    command="mflows " + " ".join(sys.argv[1:]) if sys.argv[1:] else "mflows train",
                )
        except TrainingDiverged as exc:
            raise UserError(str(exc)) from exc

        def fmt(v):
            return "n/a" if v is None else f"{v:.5g}"

        from manifold_flows import is_main_process

        if not is_main_process():
            return
        typer.echo(
            f"trained {result.total_steps} steps ({result.steps_per_epoch} per epoch); "
            f"validation loss {fmt(result.initial_val_loss)} (untrained) -> "
            f"{fmt(result.val_loss)} (EMA); run directory: {result.run_dir}"
        )
