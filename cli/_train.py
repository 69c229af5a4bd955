"""`mflows train`: flow-matching training from a TOML configuration."""

import sys
from pathlib import Path

import typer

from ._errors import UserError


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        config: Path = typer.Option(
            ..., "--config", "-c", help="TOML run configuration (see examples/configs/)."
        ),
        set_: list[str] = typer.Option(
            None, "--set", help="Override a config value: section.key=value (repeatable)."
        ),
        resume: bool = typer.Option(
            False, "--resume", help="Continue the run from the checkpoint in its run directory."
        ),
        run_dir: Path | None = typer.Option(
            None, "--run-dir", help="Run directory (default: run_dir of the config)."
        ),
        data: Path | None = typer.Option(None, "--data", help="Dataset file (overrides \\[data] path)."),
        epochs: int | None = typer.Option(None, "--epochs", help="Overrides \\[train] epochs."),
        seed: int | None = typer.Option(None, "--seed", help="Overrides \\[train] seed."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar."),
    ) -> None:
        """Train a vector field by flow matching (eRSI, eFM, RSI) on a dataset."""
        from manifold_flows._train.fit import TrainingDiverged
        from manifold_flows._train.from_config import (
            apply_overrides,
            read_config,
            train_from_config,
        )

        raw = read_config(config)
        assignments = list(set_ or [])
        if epochs is not None:
            assignments.append(f"train.epochs={epochs}")
        if seed is not None:
            assignments.append(f"train.seed={seed}")
        raw = apply_overrides(raw, assignments)
        try:
            result = train_from_config(
                raw,
                run_dir=run_dir,
                data=data,
                resume=resume,
                progress=progress,
                config_name=config.stem,
                command="mflows " + " ".join(sys.argv[1:]) if sys.argv[1:] else "mflows train",
            )
        except TrainingDiverged as exc:
            raise UserError(str(exc)) from exc

        def fmt(v):
            return "n/a" if v is None else f"{v:.5g}"

        typer.echo(
            f"trained {result.total_steps} steps ({result.steps_per_epoch} per epoch); "
            f"validation loss {fmt(result.initial_val_loss)} (untrained) -> "
            f"{fmt(result.val_loss)} (EMA); run directory: {result.run_dir}"
        )
