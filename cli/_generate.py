"""`mflows generate`: equilibrium configurations by Monte Carlo, written as a dataset."""

import sys
import tomllib
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from manifold_flows._arguments import argument_names

from ._errors import UserError, show_warning

#: Options that a --config TOML file may set (keys are the option names, with dashes or
#: underscores); the command line overrides them.
_OPTION_DEFAULTS: dict[str, Any] = {
    "system": None,
    "model": None,
    "num_particles": None,
    "composition": None,
    "density": None,
    "box": None,
    "dim": None,
    "images": "minimum",
    "temperature": None,
    "chains": 100,
    "samples_per_chain": 100,
    "sweeps_between": 100,
    "equilibration": 1000,
    "anneal_from": None,
    "anneal_schedule": "geometric",
    "p_swap": None,
    "target_acceptance": None,
    "step_size": None,
    "samples_per_block": 10,
    "precision": "float64",
    "seed": 0,
    "out": None,
    "extxyz": None,
    "resume": False,
    "force": False,
    "progress": True,
}


#: The flag of each library argument `generate` passes on, so that errors name the flags.
_FLAGS = {
    "num_chains": "--chains",
    "samples_per_chain": "--samples-per-chain",
    "sweeps_between": "--sweeps-between",
    "equilibration_sweeps": "--equilibration",
    "anneal_from": "--anneal-from",
    "anneal_schedule": "--anneal-schedule",
    "p_swap": "--p-swap",
    "target_acceptance": "--target-acceptance",
    "step_size": "--step-size",
    "samples_per_block": "--samples-per-block",
    "temperature": "--temperature",
    "precision": "--precision",
    "images": "--images",
    "extxyz": "--extxyz",
    "force": "--force",
    "resume": "--resume",
}


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"cannot parse {path}: {exc}") from exc
    if "generate" in raw and isinstance(raw["generate"], dict):
        raw = raw["generate"]
    out = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in _OPTION_DEFAULTS:
            raise UserError(
                f"unknown key {key!r} in {path}; valid keys are the option names of "
                f"`mflows generate`: {', '.join(k.replace('_', '-') for k in _OPTION_DEFAULTS)}."
            )
        out[name] = value
    return out


def _parse_composition(text: Any) -> dict[str, int] | list[int]:
    """`20:12:12` (counts in species order) or `A=20,B=12,C=12`; TOML may give a table or
    a list."""
    if isinstance(text, dict):
        return {str(k): int(v) for k, v in text.items()}
    if isinstance(text, list):
        return [int(v) for v in text]
    text = str(text).strip()
    try:
        if "=" in text:
            pairs = [p.split("=") for p in text.replace(";", ",").split(",") if p.strip()]
            return {k.strip(): int(v) for k, v in pairs}
        return [int(v) for v in text.replace(",", ":").split(":")]
    except ValueError:
        raise UserError(
            f"--composition {text!r} is not understood; write counts in species order "
            "(20:12:12) or by label (A=20,B=12,C=12)."
        ) from None


def _parse_target(value: Any) -> float | tuple[float, float] | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        return tuple(float(v) for v in value)
    try:
        parts = [float(v) for v in str(value).replace(",", ":").split(":")]
        if len(parts) not in (1, 2):
            raise ValueError(value)
    except ValueError:
        raise UserError(
            f"--target-acceptance {value!r} is not understood; give one value (0.4) or a band "
            "(0.3:0.5)."
        ) from None
    return parts[0] if len(parts) == 1 else tuple(parts)


def _build_system(opts: dict[str, Any]):
    from manifold_flows import get_system, make_system

    custom = {k: opts[k] for k in ("model", "num_particles", "composition", "density", "box")}
    given = sorted(k.replace("_", "-") for k, v in custom.items() if v is not None)
    if opts["system"] is not None:
        if given or opts["dim"] is not None:
            raise UserError(
                f"--system {opts['system']} is a preset; do not combine it with "
                f"--{', --'.join(given or ['dim'])} (use --model for a custom system)."
            )
        return get_system(opts["system"], temperature=opts["temperature"], images=opts["images"])
    if opts["model"] is None:
        raise UserError(
            "say which system to simulate: --system NAME (a preset; see `mflows generate "
            "--list-systems`) or --model NAME --num-particles N --composition A:B..."
        )
    if opts["num_particles"] is None or opts["composition"] is None:
        raise UserError("a custom system (--model) needs --num-particles and --composition.")
    return make_system(
        opts["model"],
        num_particles=opts["num_particles"],
        composition=_parse_composition(opts["composition"]),
        density=opts["density"],
        box=opts["box"],
        dim=2 if opts["dim"] is None else opts["dim"],
        images=opts["images"],
        temperature=opts["temperature"],
    )


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate(
        system: Annotated[
            str | None,
            typer.Option(
                "--system", help="Preset system (e.g. ka3-n44, ipl-n44); see --list-systems."
            ),
        ] = None,
        model: Annotated[
            str | None,
            typer.Option("--model", help="Custom system: model name (ipl, ka3, ka2, lj)."),
        ] = None,
        num_particles: Annotated[
            int | None,
            typer.Option("--num-particles", help="Custom system: number of particles N."),
        ] = None,
        composition: Annotated[
            str | None,
            typer.Option("--composition", help="Custom system: counts 20:12:12 or A=20,B=12,C=12."),
        ] = None,
        density: Annotated[
            float | None, typer.Option("--density", help="Custom system: N / V.")
        ] = None,
        box: Annotated[float | None, typer.Option("--box", help="Custom system: box side.")] = None,
        dim: Annotated[
            int | None, typer.Option("--dim", help="Custom system: dimension (2).")
        ] = None,
        images: Annotated[
            str | None,
            typer.Option("--images", help="Periodic images: 'minimum' (default) or 'all'."),
        ] = None,
        temperature: Annotated[
            float | None,
            typer.Option("--temperature", "-T", help="Temperature (default: the system's)."),
        ] = None,
        chains: Annotated[
            int | None, typer.Option("--chains", help="Independent chains (100).")
        ] = None,
        samples_per_chain: Annotated[
            int | None,
            typer.Option(
                "--samples-per-chain",
                help="Samples kept from EACH chain (100); total = chains x samples-per-chain.",
            ),
        ] = None,
        sweeps_between: Annotated[
            int | None,
            typer.Option("--sweeps-between", help="Sweeps between samples of a chain (100)."),
        ] = None,
        equilibration: Annotated[
            int | None,
            typer.Option(
                "--equilibration", help="Equilibration sweeps before the first sample (1000)."
            ),
        ] = None,
        anneal_from: Annotated[
            float | None,
            typer.Option(
                "--anneal-from", help="Anneal from this temperature during equilibration."
            ),
        ] = None,
        anneal_schedule: Annotated[
            str | None, typer.Option("--anneal-schedule", help="'geometric' (default) or 'linear'.")
        ] = None,
        p_swap: Annotated[
            float | None,
            typer.Option(
                "--p-swap", help="Swap-move probability (0.2 if the system has swap pairs)."
            ),
        ] = None,
        target_acceptance: Annotated[
            str | None,
            typer.Option(
                "--target-acceptance", help="Displacement acceptance band (0.3:0.5) or value."
            ),
        ] = None,
        step_size: Annotated[
            float | None,
            typer.Option("--step-size", help="Initial displacement width (default: the system's)."),
        ] = None,
        samples_per_block: Annotated[
            int | None,
            typer.Option("--samples-per-block", help="Samples per chain between checkpoints (10)."),
        ] = None,
        precision: Annotated[
            str | None,
            typer.Option(
                "--precision",
                help="Float precision of the chains: float64 (default) or float32 (faster; "
                "the drift check then runs in float32).",
            ),
        ] = None,
        seed: Annotated[int | None, typer.Option("--seed", help="Random seed (0).")] = None,
        out: Annotated[
            Path | None, typer.Option("--out", "-o", help="Output dataset (.npz).")
        ] = None,
        extxyz: Annotated[
            Path | None,
            typer.Option("--extxyz", help="Also write extended XYZ (ASE-readable) here."),
        ] = None,
        resume: Annotated[
            bool | None,
            typer.Option(
                "--resume/--no-resume", help="Continue an interrupted run from its checkpoint."
            ),
        ] = None,
        force: Annotated[
            bool | None,
            typer.Option(
                "--force/--no-force", help="Overwrite an existing output / discard a checkpoint."
            ),
        ] = None,
        progress: Annotated[
            bool | None, typer.Option("--progress/--no-progress", help="Progress bar.")
        ] = None,
        config: Annotated[
            Path | None,
            typer.Option(
                "--config", "-c", help="TOML file; keys are option names; flags override it."
            ),
        ] = None,
        list_systems: Annotated[
            bool, typer.Option("--list-systems", help="List the preset systems and exit.")
        ] = False,
    ) -> None:
        """Generate equilibrium configurations by Monte Carlo (displacements + swaps) and write
        them as a dataset (.npz, optionally extended XYZ) with a manifest."""
        from manifold_flows import list_systems as _list

        if list_systems:
            typer.echo("\n".join(_list()))
            return
        cli_values = dict(locals())
        opts = dict(_OPTION_DEFAULTS)
        if config is not None:
            opts.update(_read_toml(config))
        for name in _OPTION_DEFAULTS:
            if cli_values.get(name) is not None:
                opts[name] = cli_values[name]
        if opts["out"] is None:
            raise UserError("--out PATH is required (the .npz dataset to write).")
        out_path = Path(opts["out"])
        extxyz_path = None if opts["extxyz"] is None else Path(opts["extxyz"])

        import jax

        # x64 is enabled whatever the chains' precision: float64 is the default, the energies
        # stored with the samples must be beyond doubt; --precision float32 runs the chains in
        # float32 (MCConfig.precision).
        jax.config.update("jax_enable_x64", True)
        if opts["precision"] not in ("float64", "float32"):
            raise UserError(
                f"--precision {opts['precision']!r} is not a precision; use float64 (default) "
                "or float32."
            )

        from manifold_flows import generate_dataset, write_manifest

        # warnings are printed once the run is done, one line each: a mistake found up front
        # is then the one line printed
        with warnings.catch_warnings(record=True) as caught, argument_names(_FLAGS):
            warnings.simplefilter("always")
            sys_obj = _build_system(opts)
            result = generate_dataset(
                sys_obj,
                out_path,
                key=int(opts["seed"]),
                extxyz=extxyz_path,
                force=bool(opts["force"]),
                resume=bool(opts["resume"]),
                progress=bool(opts["progress"]),
                temperature=opts["temperature"],
                num_chains=opts["chains"],
                samples_per_chain=opts["samples_per_chain"],
                sweeps_between=opts["sweeps_between"],
                equilibration_sweeps=opts["equilibration"],
                anneal_from=opts["anneal_from"],
                anneal_schedule=opts["anneal_schedule"],
                p_swap=opts["p_swap"],
                step_size=opts["step_size"],
                samples_per_block=opts["samples_per_block"],
                precision=opts["precision"],
                **(
                    {}
                    if opts["target_acceptance"] is None
                    else {"target_acceptance": _parse_target(opts["target_acceptance"])}
                ),
            )

        for message in caught:
            show_warning(message.message, message.category, message.filename, message.lineno)
        data_files = [out_path] + ([extxyz_path] if extxyz_path is not None else [])
        diag = result.diagnostics
        manifest_config = {k: (str(v) if isinstance(v, Path) else v) for k, v in opts.items()}
        manifest = write_manifest(
            out_path.parent,
            command="mflows " + " ".join(sys.argv[1:]) if sys.argv[1:] else "mflows generate",
            config={
                "options": manifest_config,
                "mc": result.config.as_dict(),
                "system": sys_obj.parameters,
            },
            seeds={"seed": int(opts["seed"])},
            data_files=data_files,
            precision=opts["precision"],
            extra={"diagnostics": diag},
            name=f"{out_path.stem}.manifest.json",
        )
        energy = diag["energy_per_particle"]
        tau = diag["autocorrelation"]["tau_sweeps"]
        rates = ", ".join(f"{k} {v:.3f}" for k, v in result.acceptance.items() if v is not None)
        typer.echo(
            f"wrote {out_path} ({result.dataset.num_samples} samples = {result.config.num_chains} "
            f"chains x {result.config.samples_per_chain}; energies with images="
            f"{sys_obj.images}); u = U/N = {energy['mean']:.5f} +- "
            f"{energy['error']:.5f}; energy autocorrelation time {tau:.3g} sweeps (samples "
            f"{result.config.sweeps_between} sweeps apart); acceptance: {rates}; manifest "
            f"{manifest}"
        )
