"""Flow-augmented Monte Carlo against plain swap Monte Carlo on IPL N = 10, T = 0.1.

Uses the run and the samples of `mflows quickstart --out QS` (the flow the quickstart trains,
and its 500 samples with exact log q as proposals, each used once). Prints u and c_v with
error bars (chains as independent units: standard error of the chain means for u, jackknife
over chains for c_v), the flow-move acceptance, the energy autocorrelation time in sweeps, the
CPU seconds of each run and the effective samples per CPU second, and writes them as JSON.

    python examples/flow_mcmc/compare_ipl_n10.py --quickstart QS [--out results.json]

CPU accounting of the flow-augmented run: the process CPU time of the chains (local sweeps,
flow moves, log q of chain states by reverse solves) plus the proposals it used, each charged
the measured CPU cost of one reverse solve (a forward solve with the exact divergence costs
the same number of field evaluations), since the proposals were drawn beforehand by the
quickstart.
"""

import argparse
import json
import time
import warnings
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import manifold_flows as mf  # noqa: E402

N, T = 10, 0.1


def moments(u: np.ndarray) -> dict:
    """u = <U>/N and c_v = var(U)/(N T^2) with errors; `u` is (chains, samples) of U."""
    chains = u.shape[0]
    means = u.mean(axis=1) / N
    cv_all = u.var() / (N * T**2)
    jack = np.array([np.delete(u, c, axis=0).var() / (N * T**2) for c in range(chains)])
    cv_err = np.sqrt((chains - 1) / chains * np.sum((jack - jack.mean()) ** 2))
    return {
        "u": float(means.mean()),
        "u_err": float(means.std(ddof=1) / np.sqrt(chains)),
        "cv": float(cv_all),
        "cv_err": float(cv_err),
    }


def efficiency(result: mf.MCResult, cpu: float, production_sweeps: int) -> dict:
    tau = result.diagnostics["autocorrelation"]["tau_sweeps"]
    chains = result.config.num_chains
    n_eff = chains * production_sweeps / tau
    return {
        "tau_sweeps": tau,
        "cpu_seconds": cpu,
        "effective_samples": n_eff,
        "effective_samples_per_cpu_second": n_eff / cpu,
        "tau_cpu_seconds": tau * cpu / production_sweeps,
    }


def plain(system, seed: int, chains: int, samples: int, between: int, equilibration: int):
    tic = time.process_time()
    result = mf.run_monte_carlo(
        system,
        key=seed,
        progress=False,
        temperature=T,
        num_chains=chains,
        samples_per_chain=samples,
        sweeps_between=between,
        equilibration_sweeps=equilibration,
        trace_every=1,
    )
    cpu = time.process_time() - tic
    return result, cpu


def flow_augmented(system, run_dir: Path, samples: Path, args):
    run = mf.load_run(run_dir)
    flow = mf.flow_for_run(run)
    proposals = mf.proposals_from_samples(samples, system=system, temperature=T)
    moves = mf.FlowMoves(
        flow, system.species, proposals=proposals, every=args.flow_every, moves=args.flow_moves
    )
    tic = time.process_time()
    result = mf.run_monte_carlo(
        system,
        key=args.seed,
        progress=False,
        extra_moves=moves,
        temperature=T,
        num_chains=args.flow_chains,
        samples_per_chain=args.flow_samples,
        sweeps_between=args.flow_between,
        equilibration_sweeps=args.flow_equilibration,
        trace_every=1,
    )
    cpu = time.process_time() - tic
    per_solve = moves.eval_seconds / max(moves.evaluations, 1)
    return result, cpu, cpu + per_solve * moves.cursor, moves, per_solve


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quickstart", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--flow-chains", type=int, default=8)
    parser.add_argument("--flow-samples", type=int, default=12)
    parser.add_argument("--flow-between", type=int, default=20)
    parser.add_argument("--flow-equilibration", type=int, default=100)
    parser.add_argument("--flow-every", type=int, default=20)
    parser.add_argument("--flow-moves", type=int, default=2)
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        system = mf.get_system("ipl-n10", temperature=T)

    res_f, cpu_chains, cpu_f, moves, per_solve = flow_augmented(
        system, args.quickstart / "run", args.quickstart / "samples" / "samples.npz", args
    )
    prod_f = args.flow_samples * args.flow_between
    flow_stats = {
        **moments(res_f.sample_energies),
        **efficiency(res_f, cpu_f, prod_f),
        "flow_acceptance": res_f.acceptance["flow"],
        "acceptance": res_f.acceptance,
        "proposals_used": moves.cursor,
        "log_q_evaluations": moves.evaluations,
        "cpu_seconds_chains": cpu_chains,
        "cpu_seconds_per_solve": per_solve,
    }
    # Plain swap Monte Carlo: many chains, far less CPU than the flow run (equal CPU or less).
    res_p, cpu_p = plain(system, args.seed + 1, 100, 100, 20, 500)
    plain_stats = {**moments(res_p.sample_energies), **efficiency(res_p, cpu_p, 100 * 20)}
    du = (flow_stats["u"] - plain_stats["u"]) / np.hypot(flow_stats["u_err"], plain_stats["u_err"])
    dcv = (flow_stats["cv"] - plain_stats["cv"]) / np.hypot(
        flow_stats["cv_err"], plain_stats["cv_err"]
    )
    report = {
        "system": "ipl-n10",
        "temperature": T,
        "flow_augmented": flow_stats,
        "plain_swap_mc": plain_stats,
        "difference_in_errors": {"u": float(du), "cv": float(dcv)},
        "settings": vars(args) | {"quickstart": str(args.quickstart), "out": str(args.out)},
    }
    for name, s in (("flow-augmented", flow_stats), ("plain swap MC", plain_stats)):
        print(
            f"{name:15s} u = {s['u']:.5f} +- {s['u_err']:.5f}  c_v = {s['cv']:.3f} +- "
            f"{s['cv_err']:.3f}  tau = {s['tau_sweeps']:.3g} sweeps  CPU {s['cpu_seconds']:.1f} s"
            f"  n_eff/CPU-s = {s['effective_samples_per_cpu_second']:.4g}"
        )
    print(
        f"flow acceptance {flow_stats['flow_acceptance']:.4f}; proposals used "
        f"{moves.cursor}; log q evaluations {moves.evaluations} "
        f"({per_solve:.3f} CPU s each); difference u {du:.2f} sigma, c_v {dcv:.2f} sigma"
    )
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
