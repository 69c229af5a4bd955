"""The table of the eRSI paper's comparison, written from the outputs of examples/paper/run.sh.

Reads `OUT/report/report.json` (written by `mflows evaluate`), the sample files
`OUT/samples/{ersi,efm,rsi}.npz` (solver statistics and timing in their metadata) and the run
directories `OUT/runs/{ersi,efm,rsi}` (training steps, speed and validation loss), and writes
two markdown tables: the comparison (high-energy share, ESS, u and c_v raw and reweighted
next to the Monte Carlo reference) and the costs (seconds per training step and per sample).
Every number is copied from those files; nothing is typed in by hand except the paper's own
high-energy shares at N = 44, which are labelled as such.

Usage: python examples/paper/make_table.py OUT [--out OUT/table.md]
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

from manifold_flows import (
    format_number as _num,
    format_value_error as _pm,
    load_configurations,
)

METHODS = {"eRSI": "ersi", "eFM": "efm", "RSI": "rsi", "coupling": "coupling"}
#: High-energy shares reported by the eRSI paper for IPL N = 44, T = 0.1 (for comparison only).
PAPER_HIGH_ENERGY_N44 = {"eRSI": "~3 %", "eFM": "~84 %", "RSI": "100 %"}


def training_costs(run_dir: Path) -> dict:
    """Steps, seconds per step (median over logged epochs, the first one left out because it
    includes compilation), total training seconds and the final validation loss of a run."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    timed = [r for r in records if r.get("steps_per_s")]
    seconds, previous = 0.0, 0
    for r in timed:
        seconds += (r["step"] - previous) / r["steps_per_s"]
        previous = r["step"]
    steady = [1.0 / r["steps_per_s"] for r in timed[1:]] or [1.0 / r["steps_per_s"] for r in timed]
    checkpoint = json.loads((run_dir / "checkpoint.json").read_text())
    return {
        "steps": checkpoint["step"],
        "epochs": checkpoint["epoch"],
        "seconds_per_step": statistics.median(steady) if steady else None,
        "train_seconds": seconds,
        "val_loss": checkpoint.get("val_loss"),
    }


def sampling_costs(sample_file: Path) -> dict:
    meta = load_configurations(sample_file).metadata
    return {
        "seconds_per_sample": meta["timing"]["seconds_per_sample"],
        "nfe": meta["nfe"]["mean"],
        "nfe_max": meta["nfe"]["max"],
    }


def make_tables(out: Path) -> str:
    report = json.loads((out / "report" / "report.json").read_text())
    ref = report["reference"]
    lines = [
        f"System `{ref['system']}`, N = {ref['num_particles']}, T = {_num(report['temperature'])};"
        f" Monte Carlo reference: {ref['num_samples']} samples (independent of the training "
        "data); high-energy threshold 2 max U_ref = "
        f"{_num(ref['high_energy_threshold'])} (U/N = "
        f"{_num(ref['high_energy_threshold'] / ref['num_particles'])}).",
        "",
        "| method | R | high-E share | (paper, N = 44) | ESS | ESS/R | k-hat | u raw | "
        "u reweighted | c_v raw | c_v reweighted |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, run in report["runs"].items():
        w, u, cv = run["weights"], run["u"], run["c_v"]
        khat = "n/a" if w["khat"] is None else f"{_num(w['khat'], 3)} ({w['khat_status']})"
        lines.append(
            f"| {label} | {run['num_samples']} | {_num(100 * run['high_energy_fraction'], 3)} % "
            f"| {PAPER_HIGH_ENERGY_N44.get(label, '')} | {_num(w['ess'])} "
            f"| {_num(w['ess_fraction'])} | {khat} | {_pm(u['raw'], u['raw_err'])} "
            f"| {_pm(u['reweighted'], u['reweighted_err'])} | {_pm(cv['raw'], cv['raw_err'])} "
            f"| {_pm(cv['reweighted'], cv['reweighted_err'])} |"
        )
    lines.append(
        f"| Monte Carlo | {ref['num_samples']} | {_num(100 * ref['high_energy_fraction'], 3)} % "
        f"| | | | | {_pm(ref['u']['value'], ref['u']['error'])} | "
        f"| {_pm(ref['c_v']['value'], ref['c_v']['error'])} | |"
    )
    lines += [
        "",
        "Errors: one standard error (generated samples: bootstrap over samples for the "
        f"reweighted values and c_v; Monte Carlo: {ref['u']['error_method']} for u, "
        f"{ref['c_v']['error_method']} for c_v).",
        "",
        "| method | training steps | s / step | training time | final val. loss (EMA) "
        "| mean NFE (max) | s / sample |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, name in METHODS.items():
        if label not in report["runs"]:
            continue
        train = training_costs(out / "runs" / name)
        sample = sampling_costs(out / "samples" / f"{name}.npz")
        lines.append(
            f"| {label} | {train['steps']} ({train['epochs']} epochs) "
            f"| {_num(train['seconds_per_step'], 3)} | {train['train_seconds'] / 60:.1f} min "
            f"| {_num(train['val_loss'])} | {sample['nfe']:.0f} ({sample['nfe_max']}) "
            f"| {_num(sample['seconds_per_sample'], 3)} |"
        )
    lines += [
        "",
        "s / step: median over epochs after the first (compilation left out); s / sample: "
        "`mflows sample` timing without its first chunk (compilation); NFE: evaluations of "
        "the field per sample (adaptive dopri5, rtol = atol = 1e-5, exact divergence); the "
        "coupling flow has none (one pass).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output folder of examples/paper/run.sh")
    parser.add_argument("--out", dest="table", type=Path, help="markdown file to write")
    args = parser.parse_args(argv)
    if not (args.out / "report" / "report.json").is_file():
        print(
            f"make_table.py: {args.out / 'report' / 'report.json'} not found; run "
            "examples/paper/run.sh first (or give its output folder).",
            file=sys.stderr,
        )
        return 2
    text = make_tables(args.out)
    if args.table is not None:
        args.table.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
