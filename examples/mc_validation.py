"""Long validation runs of the Monte Carlo generator (not part of the fast test suite).

Prints:

1. throughput: chain-sweeps per second of ternary KA N = 44 with 100 chains, float64 and
   float32, and the speed-up over the naive O(N^2) reference (one sweep = N attempted moves;
   compilation excluded; timed by `benchmarks/bench_mc.py`);
2. the mean energy per particle u = U/N with its error bar (standard error of the chain means)
   for ternary KA N = 44 at T = 1.0 and IPL N = 44 at T = 0.1, with the sweeps used;
3. a check against the field's reference data: IPL N = 10 at T = 0.1, our u against the mean
   of the 100 reference frames (their header energies), when ../shared/data is present.

Usage: python examples/mc_validation.py [--only throughput,ka3,ipl44,ipl10] [--chains 100]
       [--precision float64|float32]
Each part is sized to run in a few minutes on a 2-core CPU.
"""

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import manifold_flows as mf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_mc import bench_mc  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ipl_bhhp_N10_T0.1.xyz"


def throughput(chains: int, sweeps: int = 100) -> dict:
    """Chain-sweeps per second of the jitted kernel, float64 and float32, next to the naive
    O(N^2) reference: `benchmarks/bench_mc.py` does the timing."""
    return {
        dtype: bench_mc("ka3-n44", chains=chains, sweeps=sweeps, dtype=dtype, repeats=3)
        for dtype in ("float64", "float32")
    }


def mean_energy(name: str, temperature: float, **options) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mf.ImageConventionWarning)
        system = mf.get_system(name, temperature=temperature)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = mf.run_monte_carlo(system, key=2026, progress=True, **options)
    diag = result.diagnostics
    cfg = result.config
    return {
        "system": name,
        "temperature": temperature,
        "u_mean": diag["energy_per_particle"]["mean"],
        "u_error": diag["energy_per_particle"]["error"],
        "u_trace_mean": diag["energy_per_particle_trace"]["mean"],
        "u_trace_error": diag["energy_per_particle_trace"]["error"],
        "chains": cfg.num_chains,
        "equilibration_sweeps": cfg.equilibration_sweeps,
        "anneal_from": cfg.anneal_from,
        "production_sweeps_per_chain": cfg.samples_per_chain * cfg.sweeps_between,
        "samples": result.dataset.num_samples,
        "sweeps_between": cfg.sweeps_between,
        "tau_sweeps": diag["autocorrelation"]["tau_sweeps"],
        "tau_reliable": diag["autocorrelation"]["reliable"],
        "chain_agreement_p": diag.get("chain_agreement", {}).get("p_value"),
        "acceptance": result.acceptance,
        "step_size": float(result.step_sizes[-1]),
        "max_relative_drift": result.dataset.metadata["mc"]["energy_drift_max_relative"],
        "precision": result.dataset.metadata["mc"]["precision"],
        "production_sweeps_per_second": result.dataset.metadata["mc"]["sweeps_per_second"],
        "wall_seconds": time.perf_counter() - t0,
        "warnings": [str(w.message)[:160] for w in caught],
    }


def reference_ipl10(**options) -> dict:
    if not REFERENCE.exists():
        return {"skipped": f"{REFERENCE} not found"}
    ref = mf.load_configurations(REFERENCE)
    u_ref = ref.energy / ref.num_particles
    out = mean_energy("ipl-n10", 0.1, **options)
    out["reference_u_mean"] = float(u_ref.mean())
    # the reference frames are 10^4 sweeps apart: treat them as independent
    out["reference_u_error"] = float(u_ref.std(ddof=1) / np.sqrt(u_ref.size))
    diff = out["u_mean"] - out["reference_u_mean"]
    out["difference_in_sigma"] = diff / float(np.hypot(out["u_error"], out["reference_u_error"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="throughput,ka3,ipl44,ipl10")
    parser.add_argument("--chains", type=int, default=100)
    parser.add_argument(
        "--precision", default="float64", help="float64 or float32 for the sampling runs"
    )
    args = parser.parse_args()
    parts = set(args.only.split(","))
    print(f"devices: {jax.devices()}; machine shared with other jobs: timings are indicative")
    if "throughput" in parts:
        print(json.dumps(throughput(args.chains), indent=1), flush=True)
    common = dict(num_chains=args.chains, samples_per_block=10, precision=args.precision)
    if "ka3" in parts:
        res = mean_energy(
            "ka3-n44",
            1.0,
            equilibration_sweeps=1000,
            anneal_from=2.0,
            samples_per_chain=20,
            sweeps_between=100,
            **common,
        )
        print(json.dumps(res, indent=1), flush=True)
    if "ipl44" in parts:
        res = mean_energy(
            "ipl-n44",
            0.1,
            equilibration_sweeps=4000,
            anneal_from=0.3,
            samples_per_chain=20,
            sweeps_between=300,
            **common,
        )
        print(json.dumps(res, indent=1), flush=True)
    if "ipl10" in parts:
        res = reference_ipl10(
            equilibration_sweeps=10000,
            anneal_from=0.3,
            samples_per_chain=40,
            sweeps_between=300,
            **common,
        )
        print(json.dumps(res, indent=1), flush=True)


if __name__ == "__main__":
    main()
