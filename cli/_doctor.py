"""`mflows doctor`: print the JAX set-up and check the geometry and symmetry laws on it."""

import enum
import time
from typing import Annotated

import typer
from rich.markup import escape


class Precision(enum.StrEnum):
    single = "32"
    double = "64"
    both = "both"


_PRECISIONS = {
    Precision.single: ("float32",),
    Precision.double: ("float64",),
    Precision.both: ("float32", "float64"),
}


def _cell(check) -> str:
    law = check.law
    if check.note:
        return f"[red]FAIL[/red] {escape(check.note)}"
    mark = "[green]PASS[/green]" if law.passed else "[red]FAIL[/red]"
    return f"{mark} {law.error:.1e}/{law.tolerance:.0e}"


def _render(report, console) -> None:
    from rich.table import Table

    console.print(f"JAX {report.jax_version}   backend: {report.backend}")
    console.print(f"devices: {', '.join(report.devices) or 'none'}")
    x64 = "enabled" if report.x64_enabled else "disabled"
    console.print(
        f"default precision: {report.default_precision} (64-bit floats {x64}; float32 checks "
        "run with them disabled, float64 checks with them enabled)"
    )
    columns = sorted({(c.precision, c.device) for c in report.checks})
    table = Table(title="laws (error/tolerance)", show_lines=False)
    table.add_column("law")
    for precision, device in columns:
        table.add_column(f"{precision} {device}")
    rows: dict[tuple[str, str], dict] = {}
    for check in report.checks:
        group = f"{check.kind}: {check.subject}"
        rows.setdefault((group, check.law.name), {})[(check.precision, check.device)] = check
    current = None
    for (group, law), cells in rows.items():
        if group != current:
            table.add_section()
            table.add_row(f"[bold]{group}[/bold]", *([""] * len(columns)))
            current = group
        table.add_row(f"  {law}", *(_cell(cells[col]) if col in cells else "-" for col in columns))
    if report.checks:
        console.print(table)
    for note in report.notes:
        console.print(f"note: {escape(note)}", soft_wrap=True)
    failed = [c for c in report.checks if not c.law.passed]
    if not report.checks:
        console.print("[red]FAIL[/red]: no checks ran.")
    elif failed:
        console.print(f"[red]FAIL[/red]: {len(failed)} of {len(report.checks)} checks failed:")
        for c in failed:
            detail = c.note or f"error {c.law.error:.3g} > tolerance {c.law.tolerance:.3g}"
            console.print(
                f"  FAIL {c.kind} {c.subject} {c.law.name} ({c.precision}, {c.device}): "
                f"{escape(detail)}",
                soft_wrap=True,  # one greppable line per failure
            )
    else:
        console.print(f"[green]PASS[/green]: all {len(report.checks)} checks passed.")


def doctor(
    precision: Annotated[
        Precision,
        typer.Option("--precision", help="Floating precision(s) to check: 32, 64 or both."),
    ] = Precision.both,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", help="Fast smoke test: one entry per kind of manifold and a few actions."
        ),
    ] = False,
) -> None:
    """Check the geometry and symmetry laws on this machine's JAX backend and devices.

    Prints the JAX version, backend, devices and default precision, then a PASS/FAIL table
    of every manifold and group-action law; exits 0 if all pass, 1 otherwise.
    """
    from rich.console import Console

    from manifold_flows.testing import run_doctor

    console = Console()
    start = time.perf_counter()
    with console.status("checking the laws (compiling takes most of the time)...") as status:
        report = run_doctor(
            precisions=_PRECISIONS[precision],
            quick=quick,
            on_check=lambda label: status.update(f"checked {label}"),
        )
    _render(report, console)
    console.print(f"done in {time.perf_counter() - start:.1f} s")
    raise typer.Exit(code=0 if report.passed else 1)


def register(app: typer.Typer) -> None:
    """Add the `doctor` command to the `mflows` app."""
    app.command("doctor")(doctor)
