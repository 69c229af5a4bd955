"""Annealed importance sampling from a trained coupling flow, against the flow's own weights.

Reproduces a row of the table in docs/howto/coupling-flow.md ("Anneal the weights"):

    examples/paper/run.sh examples/paper/configs/ipl-n10.env paper-ipl-n10   # METHODS=coupling
    python examples/anneal_ipl.py paper-ipl-n10 --samples 512 --rungs 16 --steps 2

It tunes one MALA step size per rung on pilot chains (their own key), anneals `--samples`
flow samples, and prints the ESS, k-hat, log Z and reweighted u = U/N of the annealed weights
next to those of the same flow samples' own weights, and the Monte Carlo reference's u.
"""

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import manifold_flows as mf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the OUT folder of examples/paper/run.sh")
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--rungs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2, help="MALA steps per rung")
    parser.add_argument("--coordinates", default="auto", choices=["auto", "latent", "direct"])
    parser.add_argument("--pilot-chains", type=int, default=128)
    parser.add_argument("--pilot-rounds", type=int, default=4)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()

    run = mf.load_run(args.out / "runs" / "coupling")
    flow = mf.flow_for_run(run, dtype=args.dtype)
    system, temperature = mf.get_system(run.system), run.temperature
    species = jnp.asarray(run.species)
    reference = mf.load_configurations(args.out / "data" / "reference.npz")
    ladder = mf.annealing_ladder(args.rungs)

    tic = time.perf_counter()
    steps = mf.tune_step_sizes(
        flow, system.energy, species, jax.random.key(12345), temperature=temperature,
        betas=ladder, steps_per_stage=args.steps, initial=1e-4, num_chains=args.pilot_chains,
        rounds=args.pilot_rounds, coordinates=args.coordinates,
    )  # fmt: skip
    tuned = time.perf_counter()
    samples = mf.annealed_importance_sample(
        flow, system.energy, species, jax.random.key(1), args.samples, temperature=temperature,
        betas=ladder, step_sizes=steps, steps_per_stage=args.steps,
        coordinates=args.coordinates,
    )  # fmt: skip
    done = time.perf_counter()

    n = run.num_particles
    flow_log_q = -samples.energy / temperature - samples.log_w_flow
    report = {"rungs": args.rungs, "steps_per_rung": args.steps, "samples": args.samples}
    report["coordinates"] = samples.coordinates
    report["seconds"] = {"tuning": tuned - tic, "per_sample": (done - tuned) / args.samples}
    report["acceptance"] = [round(float(a), 2) for a in samples.acceptance]
    for name, log_q in (("annealed", samples.log_q), ("flow", flow_log_q)):
        weights = mf.reweight(samples.energy, log_q, temperature)
        u = mf.summarize_observable(samples.energy / n, weights.log_w, num_bootstrap=300)
        report[name] = {
            "ess": weights.ess,
            "khat": weights.khat,
            "log_z": weights.log_z,
            "u": u.reweighted,
            "u_err": u.reweighted_err,
        }
    report["monte_carlo_u"] = float(np.mean(reference.energy) / n)
    print(json.dumps(report, indent=1, default=float))


if __name__ == "__main__":
    main()
