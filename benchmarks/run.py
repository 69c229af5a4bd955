"""The benchmark suite: every hot path, the library side by side with a naive JAX reference.

Run from the project root with the project's Python:

    python benchmarks/run.py                      # paper sizes, every path (long)
    python benchmarks/run.py --quick              # IPL N = 44, width 32 x 3, fewer repeats
    python benchmarks/run.py --only forward,divergence --json results.json
    python benchmarks/run.py --only scaling       # exact divergence at N = 64, 256, 1024

Paths (`--only`): `forward` (the field on a batch of 256), `train` (one flow-matching step
on fixed pairs: loss, gradient, Adam), `train_step` (the library's full step, with the OT
coupling and the EMA; library only: one call, and loops of 4 steps as `fit` runs them,
`sequential` and `pipelined` with the next step's host assignment overlapping the current
update, and `auction` with the assignment solved on the device), `divergence` (velocity +
exact divergence at one configuration), `sample` (one sample with exact log q, Dopri5 at
1e-5, and its NFE), `kernel` (the kernel field: velocity and velocity + closed-form
divergence on a batch of 256, one sample with exact log q; its rows have no naive
reference), `coupling` (the local augmented coupling flow: one sample with its log q, one
exact joint log q, one sample with a cell list; `--systems n1024` for a large box), `mc`
(Monte Carlo sweeps, from `benchmarks/bench_mc.py`), `scaling` (not in the default set: the
exact divergence at large N, for memory), `sample_batch` (not in the default set either:
samples per second of `mf.sample` as a function of its chunk size, `--sample-chunks`, with
`--sample-count` samples per call in `--sample-dtype`; `chunk=auto` is the backend's
default). Sizes: IPL N = 10 and 44 (2 species), ternary KA N = 44 (3 species), fields 32 x 3
and 64 x 4; float32 throughout, except the Monte Carlo (float64, its production dtype).

How it measures. Every (case, implementation) runs in its own subprocess, so that memory
figures are its own and a crash or an out-of-memory of a naive reference stops nothing
else. In the subprocess the function is `jax.jit`-ed with the parameters as arguments, then
lowered and compiled explicitly (reported as `compile s`), called once more as a warm-up
(excluded), then timed over `repeats` calls: the table shows the **median** wall time per
item and the median process CPU time (all threads; on a shared machine the steadier of the
two). Memory, two figures: `XLA MB` is the temporary buffer space of the compiled program
(`compiled.memory_analysis().temp_size_in_bytes`: what the computation itself allocates
beyond its inputs and outputs, exact and independent of the load), and `RSS MB` is the
growth of the subprocess's peak resident memory (`resource.getrusage` max RSS) from after
the inputs are built to the end, which includes the compiler's own memory. Ratios are naive
(or vmap) over library, of the median wall times and of the median CPU times. Every row
records the JAX backend and device it ran on (`backend`, `device`); the suite runs unchanged
on a GPU. The machine
load is recorded before and after every case. Nothing here asserts a time.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULT_MARK = "BENCH_RESULT "

SYSTEMS = ("ipl-n10", "ipl-n44", "ka3-n44")
SIZES = ((32, 3), (64, 4))
PATHS = ("forward", "train", "train_step", "divergence", "sample", "kernel", "coupling", "mc")
SCALING_SIZES = (64, 256, 1024)
IMPLS = {
    "forward": ("library", "naive"),
    "train": ("library", "naive"),
    "train_step": ("library", "sequential", "pipelined", "auction"),
    "divergence": ("library", "naive"),
    "sample": ("library", "naive"),
    "scaling": ("library",),
    "sample_batch": (),  # one implementation per chunk size, from --sample-chunks
    "kernel": ("velocity", "divergence", "sample"),
    "coupling": ("sample", "log_prob", "sample_cells", "train"),
}
#: Timed calls after the warm-up (full run, --quick).
REPEATS = {
    "forward": (7, 3),
    "train": (5, 3),
    "train_step": (5, 3),
    "divergence": (7, 3),
    "sample": (3, 2),
    "scaling": (3, 1),
    "sample_batch": (3, 2),
    "kernel": (7, 3),
    "coupling": (7, 3),
}
#: Budgets at N = 44, width 32 x 3, float32, 2 cores (in the unit of the table).
BUDGETS = {"forward": 1.3e-3, "train": 1.5, "train_step": 1.5, "divergence": 0.1, "sample": 2.0}


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


# ---------------------------------------------------------------------------- worker side
def _time_calls(fn, args, repeats: int) -> tuple[list[float], list[float]]:
    import jax

    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(*args))
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return walls, cpus


def _run_job(spec: dict[str, Any]) -> dict[str, Any]:
    import jax
    import numpy as np
    from hot_paths import build

    job = build(spec)
    jax.block_until_ready(job.args)
    rss_setup = _max_rss_mb()
    t0 = time.perf_counter()
    if hasattr(job.fn, "lower"):
        lowered = job.fn.lower(*job.args)
        t1 = time.perf_counter()
        compiled = lowered.compile()
        t2 = time.perf_counter()
        memory = compiled.memory_analysis()
        out = jax.block_until_ready(compiled(*job.args))  # warm-up, not timed
        walls, cpus = _time_calls(compiled, job.args, spec["repeats"])
    else:
        # A function that compiles internally and runs host code between its compiled parts
        # (the whole training step): the first call traces and compiles; its excess over the
        # median call is reported as the compile time. No single program: no XLA figure.
        out = jax.block_until_ready(job.fn(*job.args))
        first = time.perf_counter() - t0
        memory = None
        walls, cpus = _time_calls(job.fn, job.args, spec["repeats"])
        t1 = t2 = t0 + max(first - statistics.median(walls), 0.0)
    result = {
        "unit": job.unit,
        "per_call": job.per_call,
        "trace_seconds": t1 - t0,
        "compile_seconds": t2 - t0,
        "wall_seconds": walls,
        "cpu_seconds": cpus,
        "median_wall_per_item": statistics.median(walls) / job.per_call,
        "median_cpu_per_item": statistics.median(cpus) / job.per_call,
        "xla_temp_mb": None if memory is None else memory.temp_size_in_bytes / 2**20,
        "xla_argument_mb": None if memory is None else memory.argument_size_in_bytes / 2**20,
        "rss_setup_mb": rss_setup,
        "rss_peak_mb": _max_rss_mb(),
        "rss_delta_mb": _max_rss_mb() - rss_setup,
        **job.info,
        **job.summarise(out),
    }
    if spec.get("save"):
        first = np.asarray(jax.tree.leaves(out)[0])
        np.save(spec["save"], first)
    return result


def _run_mc(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Library and naive rows from `bench_mc.bench_mc` (it times both in one process)."""
    rss_setup = _max_rss_mb()
    from bench_mc import bench_mc

    res = bench_mc(
        spec["system"],
        chains=spec["chains"],
        sweeps=spec["sweeps"],
        dtype=spec["dtype"],
        repeats=spec["repeats"],
        naive_sweeps=spec["naive_sweeps"],
    )
    common = {
        "unit": "chain-sweep",
        "per_call": 1,
        "rss_setup_mb": rss_setup,
        "rss_peak_mb": _max_rss_mb(),
        "rss_delta_mb": _max_rss_mb() - rss_setup,
        "xla_temp_mb": None,
        "num_particles": res.get("num_particles"),
        "chains": res.get("chains"),
        "dtype": res.get("dtype"),
        "bench_mc": res,
    }
    rows = [
        {
            **common,
            "impl": "library",
            "compile_seconds": res["compile_seconds"],
            "median_wall_per_item": 1 / res["chain_sweeps_per_second"],
            "median_cpu_per_item": 1 / res["chain_sweeps_per_second_cpu"],
        }
    ]
    if "naive_chain_sweeps_per_second" in res:
        rows.append(
            {
                **common,
                "impl": "naive",
                "compile_seconds": res["naive_compile_seconds"],
                "median_wall_per_item": 1 / res["naive_chain_sweeps_per_second"],
                "median_cpu_per_item": 1 / res["naive_chain_sweeps_per_second_cpu"],
                "check_max_energy_difference": res.get("naive_max_energy_difference"),
            }
        )
    return rows


def worker(spec: dict[str, Any]) -> None:
    sys.path.insert(0, str(HERE))
    load_before = _load()
    if spec["path"] == "mc":
        rows = _run_mc(spec)
    else:
        rows = [{"impl": spec["impl"], **_run_job(spec)}]
    import jax

    device = jax.devices()[0]
    for row in rows:
        row.update(load_before=load_before, load_after=_load())
        row.update(backend=jax.default_backend(), device=device.device_kind)
    print(RESULT_MARK + json.dumps(rows), flush=True)


# ---------------------------------------------------------------------------- parent side
def _cases(opts) -> list[dict[str, Any]]:
    quick = 1 if opts.quick else 0
    paths = opts.only.split(",") if opts.only else list(PATHS)
    unknown = sorted(set(paths) - set(PATHS) - {"scaling", "sample_batch"})
    if unknown:
        raise SystemExit(
            f"run.py: unknown path(s) {', '.join(unknown)} in --only; choose from "
            f"{', '.join((*PATHS, 'scaling', 'sample_batch'))}."
        )
    systems = opts.systems.split(",") if opts.systems else SYSTEMS
    sizes = SIZES
    if opts.sizes:
        sizes = [tuple(int(v) for v in s.split("x")) for s in opts.sizes.split(",")]
    if opts.quick:
        systems = opts.systems.split(",") if opts.systems else ("ipl-n44",)
        sizes = sizes if opts.sizes else ((32, 3),)
    cases = []
    for path in paths:
        if path == "mc":
            cases.append(
                {
                    "path": "mc",
                    "system": "ka3-n44",
                    "width": None,
                    "depth": None,
                    "impl": "library+naive",
                    "chains": 100,
                    "sweeps": 20 if opts.quick else 50,
                    "naive_sweeps": 1,
                    "dtype": "float64",
                    "repeats": 3 if opts.quick else 5,
                }
            )
            continue
        if path == "sample_batch":
            for system in systems:
                for width, depth in sizes:
                    for chunk in opts.sample_chunks.split(","):
                        cases.append(
                            dict(
                                path=path,
                                system=system,
                                width=width,
                                depth=depth,
                                impl=f"chunk={chunk}",
                                count=opts.sample_count,
                                dtype=opts.sample_dtype,
                                repeats=REPEATS[path][quick],
                            )
                        )
            continue
        if path == "scaling":
            chunks = opts.scaling_impls.split(",")
            for n in opts.scaling_n:
                for impl in chunks:
                    case = dict(path=path, system=f"n{n}", width=32, depth=3, impl=impl)
                    case["repeats"] = REPEATS[path][quick]
                    if 2 * n > 512:  # too long to time whole: a part, per basis vector
                        case["basis"] = opts.scaling_basis
                    cases.append(case)
            continue
        impls = list(IMPLS[path])
        if opts.vmap and path in ("forward", "train"):
            impls.append("vmap")
        if opts.no_naive:
            impls = [i for i in impls if i != "naive"]
        if opts.run and path in ("divergence", "sample"):
            # the trained run fixes the system and the field: one case per implementation
            for impl in impls:
                case = dict(path=path, system="run", width=None, depth=None, impl=impl)
                case.update(repeats=REPEATS[path][quick], run=opts.run)
                cases.append(case)
            continue
        for system in systems:
            # The kernel field and the coupling flow have their own fixed sizes: one case.
            for width, depth in sizes[:1] if path in ("kernel", "coupling") else sizes:
                for impl in impls:
                    case = dict(path=path, system=system, width=width, depth=depth, impl=impl)
                    case["repeats"] = REPEATS[path][quick]
                    cases.append(case)
    return cases


def _run_case(case: dict[str, Any], tmp: Path, timeout: float) -> list[dict[str, Any]]:
    spec = dict(case)
    if case["path"] in ("forward", "divergence", "scaling"):
        spec["save"] = str(tmp / f"{_key(case)}.npy".replace("/", "_"))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [{"impl": case["impl"], "error": f"timed out after {timeout:.0f} s"}]
    elapsed = time.perf_counter() - start
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            rows = json.loads(line[len(RESULT_MARK) :])
            for row in rows:
                row["process_seconds"] = elapsed
                if "save" in spec:
                    row["saved_output"] = spec["save"]
            return rows
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return [{"impl": case["impl"], "error": f"exit {proc.returncode}: {tail}"}]


def _key(case: dict[str, Any]) -> str:
    size = "" if case.get("width") is None else f"{case['width']}x{case['depth']}"
    return f"{case['path']}/{case['system']}/{size}/{case['impl']}"


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e6:.2f} us"


def _fmt(value, spec: str) -> str:
    if value is None:  # "-" in the width the spec would have given
        width = "".join(c for c in spec.split(".")[0] if c.isdigit())
        return "-".rjust(int(width) if width else 1)
    return format(value, spec)


def _compare(rows: list[dict[str, Any]]) -> None:
    """Ratios to the library row of the same case, and the agreement of outputs."""
    import numpy as np

    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["path"], row["system"], row.get("size")), []).append(row)
    for group in groups.values():
        base = next((r for r in group if r["impl"] == "library" and "error" not in r), None)
        if base is None:
            continue
        for row in group:
            if "error" in row or row is base:
                continue
            row["ratio_wall"] = row["median_wall_per_item"] / base["median_wall_per_item"]
            row["ratio_cpu"] = row["median_cpu_per_item"] / base["median_cpu_per_item"]
            if row.get("saved_output") and base.get("saved_output"):
                a, b = np.load(row["saved_output"]), np.load(base["saved_output"])
                row["max_abs_diff_vs_library"] = float(np.max(np.abs(a - b)))
            for name in ("loss", "div", "log_q", "nfe"):
                if name in row and name in base:
                    row[f"{name}_library"] = base[name]


def _budget(row: dict[str, Any]) -> str:
    budget = BUDGETS.get(row["path"])
    paper = row.get("num_particles") == 44 and row.get("size") == "32x3"
    if budget is None or row["impl"] != "library" or not paper or "error" in row:
        return ""
    ok = row["median_wall_per_item"] <= budget
    return f"{'ok' if ok else 'OVER'} (<= {_fmt_time(budget)})"


def _print_row(row: dict[str, Any]) -> None:
    if "error" in row:
        print(f"{row['key']:<44} ERROR {row['error']}", flush=True)
        return
    ratio = (
        f"x{row['ratio_wall']:6.2f} (CPU x{row['ratio_cpu']:5.2f})" if "ratio_wall" in row else ""
    )
    extra = []
    if "nfe" in row:
        extra.append(f"NFE {row['nfe']}")
    if "max_abs_diff_vs_library" in row:
        extra.append(f"|d| {row['max_abs_diff_vs_library']:.1e}")
    if "div" in row and "div_library" in row:
        extra.append(f"div {row['div']:.4g} vs {row['div_library']:.4g}")
    if row.get("check_max_energy_difference") is not None:
        extra.append(f"|dU| {row['check_max_energy_difference']:.1e}")
    print(
        f"{row['key']:<44} {_fmt_time(row['median_wall_per_item']):>11}/{row['unit']:<11} "
        f"CPU {_fmt_time(row['median_cpu_per_item']):>11} "
        f"compile {_fmt(row.get('compile_seconds'), '6.1f')} s "
        f"XLA {_fmt(row.get('xla_temp_mb'), '8.1f')} MB "
        f"RSS +{_fmt(row.get('rss_delta_mb'), '7.1f')} MB "
        f"load {row['load_before'][0]:5.2f} {ratio:<28} {_budget(row)} {'; '.join(extra)}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="IPL N=44, 32x3, fewer repeats")
    parser.add_argument(
        "--only", default=None, help=f"paths: {','.join((*PATHS, 'scaling', 'sample_batch'))}"
    )
    parser.add_argument("--json", default=None, help="write every measurement to this file")
    parser.add_argument("--systems", default=None, help=f"default {','.join(SYSTEMS)}")
    parser.add_argument("--sizes", default=None, help="widths x depths, default 32x3,64x4")
    parser.add_argument("--run", default=None, help="trained run: its field for div./sample")
    parser.add_argument("--vmap", action="store_true", help="also time a plain-vmap field")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive references")
    parser.add_argument(
        "--scaling-n", default=",".join(map(str, SCALING_SIZES)), help="N for --only scaling"
    )
    parser.add_argument(
        "--scaling-impls", default="library", help="e.g. library,chunk=4 for --only scaling"
    )
    parser.add_argument(
        "--scaling-basis",
        type=int,
        default=32,
        help="basis vectors timed by --only scaling when N d > 512 (reported per vector)",
    )
    parser.add_argument(
        "--sample-chunks",
        default="1,8,auto",
        help="chunk sizes for --only sample_batch (e.g. 1,16,64,256,1024,auto on a GPU)",
    )
    parser.add_argument(
        "--sample-count", type=int, default=8, help="samples per call for --only sample_batch"
    )
    parser.add_argument(
        "--sample-dtype", default="float32", help="float32 or float64 for --only sample_batch"
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per case")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.worker is not None:
        worker(json.loads(opts.worker))
        return
    opts.scaling_n = [int(v) for v in opts.scaling_n.split(",")]

    cases = _cases(opts)
    started = datetime.datetime.now(datetime.UTC)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
        ).stdout.strip()
    except OSError:
        commit = None
    meta = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "started_utc": started.isoformat(timespec="seconds"),
        "git_commit": commit,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_before": _load(),
        "float": "float32 (Monte Carlo: float64)",
        "statistic": "median over repeats after one warm-up call; compile timed separately",
        "memory": "xla_temp_mb: compiled.memory_analysis().temp_size_in_bytes; rss_delta_mb: "
        "growth of getrusage max RSS in the case's subprocess after its inputs were built",
    }
    print(f"{len(cases)} cases, {os.cpu_count()} cores, load {meta['load_before']}", flush=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mflows_bench_") as tmp:
        for case in cases:
            for row in _run_case(case, Path(tmp), opts.timeout):
                size = None if case.get("width") is None else f"{case['width']}x{case['depth']}"
                row = {**row, "path": case["path"], "system": case["system"], "size": size}
                row["key"] = f"{case['path']} {case['system']} {size or ''} {row['impl']}"
                rows.append(row)
                if "device" in row and "device" not in meta:
                    meta.update(backend=row["backend"], device=row["device"])
                    print(f"device: {row['device']} (JAX backend {row['backend']})", flush=True)
                _compare(rows)
                _print_row(row)
        _compare(rows)
        for row in rows:
            row.pop("saved_output", None)
    meta["load_after"] = _load()
    meta["seconds"] = (datetime.datetime.now(datetime.UTC) - started).total_seconds()
    print("\nSummary (naive or vmap over library, median wall time; CPU time in brackets):")
    for row in rows:
        if "ratio_wall" in row:
            print(
                f"  {row['key']:<44} x{row['ratio_wall']:.2f} (x{row['ratio_cpu']:.2f})",
                flush=True,
            )
    print(f"load after: {meta['load_after']}; {meta['seconds']:.0f} s in all")
    if opts.json:
        from manifold_flows import atomic_write_text

        atomic_write_text(opts.json, json.dumps({"meta": meta, "results": rows}, indent=1))
        print(f"wrote {opts.json}")


if __name__ == "__main__":
    main()
