"""The markdown summary of an evaluation report (`summary.md`)."""

import math
from typing import Any


def format_number(value: Any, digits: int = 4) -> str:
    """A number for a report table: `digits` significant digits, scientific notation below
    1e-3 and from 1e5 on; `None` prints as `n/a`, strings pass through, non-finite values as
    Python prints them."""
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def format_value_error(value: Any, error: Any, digits: int = 4) -> str:
    """`value ± error` for a report table (see `format_number`; the error with 2 significant
    digits); just the value when `error` is `None`, `n/a` when `value` is."""
    if value is None:
        return "n/a"
    if error is None:
        return format_number(value, digits)
    return f"{format_number(value, digits)} ± {format_number(error, 2)}"


# short names for the table rows below
_num, _pm = format_number, format_value_error


def _free_energy_lines(runs: dict[str, Any], temperature: float) -> list[str]:
    """The free energy per particle of each run (bootstrap errors), or why there is none."""
    lines = [f"## Free energy per particle at T = {_num(temperature)}", ""]
    for label, run in runs.items():
        fe = run.get("free_energy", {})
        if not fe.get("identified"):
            lines.append(f"- {label}: {fe.get('note', 'not identified')}")
            continue
        f_n = _pm(fe["free_energy_per_particle"], fe["free_energy_per_particle_err"])
        beta_f_n = _pm(fe["beta_free_energy_per_particle"], fe["beta_free_energy_per_particle_err"])
        lines.append(
            f"- {label}: F/N = {f_n}, beta F/N = {beta_f_n} (bootstrap; k-hat "
            f"{_num(fe['khat'], 3)}, {fe['khat_status']})"
        )
        if fe.get("note"):
            lines.append(f"  - note: {fe['note']}")
    return [*lines, ""]


def format_summary(report: dict[str, Any]) -> str:
    """A short markdown document: one table row per run plus the reference, the agreement of
    the reweighted u with the reference, and the audits. `report` is `evaluate_runs`'s."""
    ref = report["reference"]
    t = report["temperature"]
    lines = [
        f"# Evaluation at T = {_num(t)}",
        "",
        f"Reference: `{ref['source']}` ({ref['num_samples']} samples, N = {ref['num_particles']}); "
        f"u = {_pm(ref['u']['value'], ref['u']['error'])} ({ref['u']['error_method']}); "
        f"c_v = {_pm(ref['c_v']['value'], ref['c_v']['error'])}.",
        "",
        "| run | R | ESS | ESS/R | k-hat | non-finite w | u raw | u reweighted | c_v raw "
        "| c_v reweighted | high-E share | log Z |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, run in report["runs"].items():
        w, u, cv = run["weights"], run["u"], run["c_v"]
        log_z = _pm(w.get("log_z"), w.get("log_z_err")) if w.get("log_z") is not None else "n/a"
        lines.append(
            f"| {label} | {run['num_samples']} | {_num(w['ess'])} | {_num(w['ess_fraction'])} "
            f"| {_num(w['khat'], 3)} ({w['khat_status']}) | {w['num_nonfinite']} "
            f"| {_pm(u['raw'], u['raw_err'])} | {_pm(u['reweighted'], u['reweighted_err'])} "
            f"| {_pm(cv['raw'], cv['raw_err'])} | {_pm(cv['reweighted'], cv['reweighted_err'])} "
            f"| {_num(100 * run['high_energy_fraction'], 3)} % | {log_z} |"
        )
    ref_u = _pm(ref["u"]["value"], ref["u"]["error"])
    lines.append(
        f"| reference (MC) | {ref['num_samples']} | | | | | {ref_u} "
        f"| | {_pm(ref['c_v']['value'], ref['c_v']['error'])} | | "
        f"{_num(100 * ref['high_energy_fraction'], 3)} % | |"
    )
    lines += ["", "Errors: one standard error (bootstrap for reweighted values and c_v).", ""]
    lines += _free_energy_lines(report["runs"], t)
    lines.append("## Reweighted u against the reference")
    lines.append("")
    for label, run in report["runs"].items():
        a = run["agreement_u"]
        if "z" not in a:
            lines.append(f"- {label}: {a.get('note', 'not tested')}")
            continue
        verdict = "agrees" if a["agrees"] else "DISAGREES"
        if not a["tested"]:
            lines.append(
                f"- {label}: difference {_num(a['difference'])} ({_num(a['z'], 3)} sigma); "
                f"{a['note']}"
            )
        else:
            lines.append(
                f"- {label}: {verdict} within error bars (difference {_num(a['difference'])}, "
                f"{_num(a['z'], 3)} combined standard errors, ESS {_num(run['weights']['ess'])})"
            )
        for note in run.get("notes", []):
            lines.append(f"  - note: {note}")
    audits = report.get("audits")
    if audits:
        lines += ["", "## Likelihood audit", ""]
        for label, audit in audits.items():
            failed = [c["name"] for c in audit["checks"] if c["passed"] is False]
            status = "passed" if audit["passed"] else f"FAILED ({', '.join(failed)})"
            lines.append(f"- {label} ({audit['run_dir']}): {status}")
            if audit.get("note"):
                lines.append(f"  - note: {audit['note']}")
    if report.get("plots"):
        lines += ["", "Plots: " + ", ".join(f"`{v}`" for v in report["plots"].values())]
    lines.append("")
    return "\n".join(lines)
