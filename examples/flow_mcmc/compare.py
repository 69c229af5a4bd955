"""Flow-augmented Monte Carlo against plain swap Monte Carlo, side by side.

Default: IPL N = 10, T = 0.1 with the run and the samples of `mflows quickstart --out QS` (the
flow the quickstart trains, and its 500 samples with exact log q as proposals, each used once).
Any system with a trained run works the same way (`--system ipl-n44 -T 0.07 --run RUN`, with
`--samples FILE` from `mflows sample` or proposals drawn here). Prints u and c_v with
error bars (chains as independent units: standard error of the chain means for u, jackknife
over chains for c_v), the flow-move acceptance, the energy autocorrelation time in sweeps, the
CPU seconds of each run and the effective samples per CPU second, and writes them as JSON.

    python examples/flow_mcmc/compare.py --quickstart QS [--out results.json]
    python examples/flow_mcmc/compare.py --system ipl-n44 --temperature 0.07 --run RUN \
        --plain-between 200 --plain-equilibration 20000 --flow-between 200 --flow-every 50

CPU accounting of the flow-augmented run: the process CPU time of the chains (local sweeps,
flow moves, log q of chain states by reverse solves) plus, for proposals read from a sample file,
each proposal used charged the measured CPU cost of one reverse solve (a forward solve with
the exact divergence costs the same number of field evaluations); proposals drawn here are
in the process CPU time already.
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


def moments(u: np.ndarray, N: int, T: float) -> dict:
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


def plain(system, args):
    tic = time.process_time()
    result = mf.run_monte_carlo(
        system,
        key=args.seed + 1,
        progress=False,
        temperature=args.temperature,
        num_chains=args.plain_chains,
        samples_per_chain=args.plain_samples,
        sweeps_between=args.plain_between,
        equilibration_sweeps=args.plain_equilibration,
        trace_every=1,
    )
    cpu = time.process_time() - tic
    return result, cpu


def flow_augmented(system, run_dir: Path, samples: Path | None, args):
    run = mf.load_run(run_dir)
    flow = mf.flow_for_run(run)
    proposals = None
    if samples is not None:
        proposals = mf.proposals_from_samples(samples, system=system, temperature=args.temperature)
    moves = mf.FlowMoves(
        flow,
        system.species,
        proposals=proposals,
        every=args.flow_every,
        moves=args.flow_moves,
        seed=args.seed + 2,
    )
    tic = time.process_time()
    result = mf.run_monte_carlo(
        system,
        key=args.seed,
        progress=False,
        extra_moves=moves,
        temperature=args.temperature,
        num_chains=args.flow_chains,
        samples_per_chain=args.flow_samples,
        sweeps_between=args.flow_between,
        equilibration_sweeps=args.flow_equilibration,
        trace_every=1,
    )
    cpu = time.process_time() - tic
    per_solve = moves.eval_seconds / max(moves.evaluations, 1)
    charged = per_solve * moves.cursor if samples is not None else 0.0
    return result, cpu, cpu + charged, moves, per_solve


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quickstart", type=Path, default=None, help="quickstart folder")
    parser.add_argument("--run", type=Path, default=None, help="run (default: QS/run)")
    parser.add_argument("--samples", type=Path, default=None, help="default: QS/samples/...")
    parser.add_argument("--system", default="ipl-n10")
    parser.add_argument("--temperature", "-T", type=float, default=0.1)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--plain-chains", type=int, default=100)
    parser.add_argument("--plain-samples", type=int, default=100)
    parser.add_argument("--plain-between", type=int, default=20)
    parser.add_argument("--plain-equilibration", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--flow-chains", type=int, default=8)
    parser.add_argument("--flow-samples", type=int, default=12)
    parser.add_argument("--flow-between", type=int, default=20)
    parser.add_argument("--flow-equilibration", type=int, default=100)
    parser.add_argument("--flow-every", type=int, default=20)
    parser.add_argument("--flow-moves", type=int, default=2)
    args = parser.parse_args()
    run_dir, samples = args.run, args.samples
    if args.quickstart is not None:
        run_dir = run_dir or args.quickstart / "run"
        samples = samples or args.quickstart / "samples" / "samples.npz"
    if run_dir is None:
        parser.error("give --quickstart QS or --run RUN")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        system = mf.get_system(args.system, temperature=args.temperature)
    N, T = system.num_particles, args.temperature

    res_f, cpu_chains, cpu_f, moves, per_solve = flow_augmented(system, run_dir, samples, args)
    prod_f = args.flow_samples * args.flow_between
    flow_stats = {
        **moments(res_f.sample_energies, N, T),
        **efficiency(res_f, cpu_f, prod_f),
        "flow_acceptance": res_f.acceptance["flow"],
        "acceptance": res_f.acceptance,
        "proposals_used": moves.cursor,
        "log_q_evaluations": moves.evaluations,
        "cpu_seconds_chains": cpu_chains,
        "cpu_seconds_per_solve": per_solve,
    }
    res_p, cpu_p = plain(system, args)
    prod_p = args.plain_samples * args.plain_between
    plain_stats = {**moments(res_p.sample_energies, N, T), **efficiency(res_p, cpu_p, prod_p)}
    du = (flow_stats["u"] - plain_stats["u"]) / np.hypot(flow_stats["u_err"], plain_stats["u_err"])
    dcv = (flow_stats["cv"] - plain_stats["cv"]) / np.hypot(
        flow_stats["cv_err"], plain_stats["cv_err"]
    )
    report = {
        "system": args.system,
        "temperature": T,
        "flow_augmented": flow_stats,
        "plain_swap_mc": plain_stats,
        "difference_in_errors": {"u": float(du), "cv": float(dcv)},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
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
