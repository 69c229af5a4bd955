"""`mflows evaluate`: a JSON report, a markdown summary and PNG plots comparing sample files
of several runs with Monte Carlo reference data (and, on request, the likelihood audit)."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from manifold_flows._arguments import argument_names

from ._errors import UserError

#: The flag of each library argument `evaluate` passes on, so that errors name the flags.
_FLAGS = {
    "force": "--force",
    "temperature": "--temperature",
    "out_dir": "--out",
    "reference": "--reference",
    "samples": "--samples",
    "num_bootstrap": "--bootstrap",
}


def _parse_samples(items: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for item in items:
        if "=" in item:
            label, _, path = item.partition("=")
            label = label.strip()
        else:
            label, path = Path(item).stem, item
        if not label:
            raise UserError(f"--samples {item!r}: the label before '=' is empty; use LABEL=FILE.")
        if label in out:
            raise UserError(
                f"--samples: the label {label!r} is given twice; label each file (LABEL=FILE)."
            )
        out[label] = Path(path)
    return out


def _parse_audits(items: list[str], samples: dict[str, Path]) -> dict[str, Path]:
    """`LABEL=RUN_DIR` or `RUN_DIR`; a bare directory takes the label of the samples drawn
    from it (read from their metadata) or else its folder name."""
    from manifold_flows import load_configurations

    origin: dict[str, str] = {}
    for label, path in samples.items():
        try:
            run_dir = load_configurations(path).metadata.get("run", {}).get("dir")
        except (ValueError, FileNotFoundError, AttributeError):
            run_dir = None
        if run_dir:
            origin[str(Path(run_dir).resolve())] = label
    out: dict[str, Path] = {}
    for item in items:
        if "=" in item:
            label, _, path = item.partition("=")
        else:
            path = item
            label = origin.get(str(Path(item).resolve()), Path(item).resolve().name)
        if label in out:
            raise UserError(f"--audit: the label {label!r} is given twice; use LABEL=RUN_DIR.")
        out[label.strip()] = Path(path)
    return out


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate(
        samples: Annotated[
            list[str],
            typer.Option("--samples", "-s", help="LABEL=FILE of a sample file (repeat per run)."),
        ],
        reference: Annotated[
            Path, typer.Option("--reference", "-r", help="Monte Carlo reference data (energies).")
        ],
        out: Annotated[
            Path, typer.Option("--out", "-o", help="Output folder for the report and plots.")
        ],
        temperature: Annotated[
            float | None,
            typer.Option("--temperature", "-T", help="Target T (must match the reference)."),
        ] = None,
        audit: Annotated[
            list[str] | None,
            typer.Option("--audit", help="[LABEL=]RUN_DIR: run the likelihood audit on it."),
        ] = None,
        audit_points: Annotated[
            int, typer.Option("--audit-points", help="Sample points per audit check.")
        ] = 3,
        bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples.")] = 1000,
        seed: Annotated[int, typer.Option("--seed", help="Seed of bootstrap and audit.")] = 0,
        plots: Annotated[
            bool, typer.Option("--plots/--no-plots", help="Draw the PNG plots.")
        ] = True,
        force: Annotated[
            bool, typer.Option("--force", help="Overwrite an existing report.")
        ] = False,
    ) -> None:
        """Report ESS, k-hat, u and c_v (raw and reweighted) against reference data, with plots."""
        import jax

        jax.config.update("jax_enable_x64", True)
        from manifold_flows import evaluate_runs, format_number

        sample_paths = _parse_samples(list(samples))
        audits = _parse_audits(list(audit or []), sample_paths)
        with argument_names(_FLAGS):
            report = evaluate_runs(
                sample_paths,
                reference=reference,
                temperature=temperature,
                out_dir=out,
                audit_runs=audits or None,
                audit_options={"num_points": audit_points},
                num_bootstrap=bootstrap,
                seed=seed,
                plots=plots,
                force=force,
                command="mflows " + " ".join(sys.argv[1:]),
            )
        ref = report["reference"]["u"]
        typer.echo(
            f"reference: u = {ref['value']:.5g} +- {ref['error']:.2g} "
            f"({report['reference']['num_samples']} samples)"
        )
        for label, run in report["runs"].items():
            w, u = run["weights"], run["u"]
            rw = (
                "n/a"
                if u["reweighted"] is None
                else f"{u['reweighted']:.5g} +- {u['reweighted_err']:.2g}"
            )
            typer.echo(
                f"{label}: R = {run['num_samples']}, ESS = {w['ess']:.1f} (ESS/R "
                f"{w['ess_fraction']:.3g}), k-hat {format_number(w['khat'], 3)}"
                f" ({w['khat_status']}); u raw = {u['raw']:.5g} +- {u['raw_err']:.2g}, "
                f"reweighted = {rw}"
            )
        typer.echo(f"wrote {out / 'report.json'}, {out / 'summary.md'} and plots in {out}")
        if report.get("audit_passed") is False:
            failed = {
                label: [c["name"] for c in a["checks"] if c["passed"] is False]
                for label, a in report["audits"].items()
                if not a["passed"]
            }
            text = "; ".join(f"{k}: {', '.join(v)}" for k, v in failed.items())
            raise UserError(
                f"likelihood audit FAILED ({text}); the checks are in {out / 'report.json'}."
            )
