"""Absolute free energy of a particle system, log Z at one temperature, without a flow:
thermodynamic integration from a nearly ideal gas, and (given a sample file) the flow's
importance-sampling estimate against it.

    log Z(beta_1) = log Z(beta_0) - integral_{beta_0}^{beta_1} <U>_beta d beta

`Z(beta) = integral exp(-beta U(x)) dx` over the labelled configurations `(T^d)^N` (no 1 / N!:
the normalisation of a flow's log q on the torus). Two parts:

1. `log Z(beta_0)` at a tiny `beta_0` (T = 1000 by default) by plain Monte Carlo over uniform
   configurations: `log Z = N log V + log mean_u exp(-beta_0 U)`. Exact estimator, independent
   draws; at `beta_0 = 1e-3` only pairs closer than about 0.56 sigma cost weight.
2. The integral, with the substitution `beta = s^6` (`--power 6`, the default; 4 for `r^-12`
   in 3-D): a pair potential `r^-12` in 2-D makes `<U>_beta` diverge like `beta^(-5/6)` as
   `beta -> 0` (the chance of a close pair shrinks only like `beta^(1/6)`), so the integrand in
   `s`, `6 s^5 <U>(s^6)`, stays smooth. Gauss-Legendre
   nodes in `s`, an independent `run_monte_carlo` at each (chains as independent units for the
   error). Two orders (`--nodes` and about half of it) run on independent chains; their
   difference bounds the quadrature error of the coarser one.

The forward KL divergence of a flow from the target, per configuration, then needs no flow
estimate of log Z: `KL(p || q) = E_p[log p] - E_p[log q] = -beta <U> - log Z - E_p[log q]`, and
`E_p[-log q~_K]` from `examples/coupling_finetune.py bounds` bounds `-E_p[log q]` from above.

    python examples/free_energy/absolute_ti.py [--system ipl-n10 --temperature 0.1]
    python examples/free_energy/absolute_ti.py --samples samples/coupling.npz --out abs.json

Defaults (ipl-n10, T = 0.1, 20 and 10 nodes, 64 chains) take about 3 CPU minutes on 2 cores.
"""

import argparse
import json
import math
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from ti_vs_reweighting import (  # noqa: E402  (this directory)
    add_monte_carlo_options,
    load_samples,
    monte_carlo_u,
)

import manifold_flows as mf  # noqa: E402


def uniform_log_z(system, beta0: float, num: int, seed: int, batch: int = 65536) -> dict:
    """`log Z(beta0)` from `num` uniform configurations, with the delta-method error of the mean
    weight (the draws are independent)."""
    species = jnp.asarray(system.species)
    energy = jax.jit(jax.vmap(lambda x: system.energy(x, species)))
    box = jnp.asarray(system.box, dtype=jnp.float64)
    key = jax.random.key(seed)
    log_w = []
    for start in range(0, num, batch):
        key, sub = jax.random.split(key)
        size = min(batch, num - start)
        x = jax.random.uniform(sub, (size, system.num_particles, system.dim), jnp.float64) * box
        u = np.asarray(energy(x), dtype=np.float64)
        log_w.append(np.where(np.isfinite(u), -beta0 * u, -np.inf))
    log_w = np.concatenate(log_w)
    top = np.max(log_w)
    w = np.exp(log_w - top)
    mean = w.mean()
    rel_err = w.std(ddof=1) / math.sqrt(num) / mean
    log_volume = system.num_particles * float(np.sum(np.log(np.asarray(system.box))))
    return {
        "beta0": beta0,
        "log_z": log_volume + top + math.log(mean),
        "log_z_err": rel_err,
        "num_uniform": num,
        "ess_fraction": float(mean**2 / np.mean(w**2)),
    }


def monte_carlo_energy(system_name: str, beta: float, seed: int, args) -> dict:
    """<U> (total) at `beta` from an independent run, its error over the chains."""
    point = monte_carlo_u(system_name, 1.0 / beta, seed, args)
    n = point["num_particles"]
    return {
        **point,
        "beta": beta,
        "mean_energy": n * point["u"],
        "mean_energy_err": n * point["u_err"],
    }


def gauss_legendre_integral(system_name, beta0, beta1, nodes, seed, args) -> dict:
    """`integral_{beta0}^{beta1} <U> d beta` with `beta = s^power` (`--power`) and `nodes`
    Gauss-Legendre nodes in `s`; the statistical error from the per-node errors (independent
    runs)."""
    betas, weights = mf.power_law_quadrature(beta0, beta1, nodes, power=args.power)
    points = []
    for k, beta in enumerate(betas):
        p = monte_carlo_energy(system_name, float(beta), seed + 1000 * k, args)
        points.append(p)
        print(
            f"  node {k + 1:2d}/{nodes}: beta = {beta:10.4g}  T = {1 / beta:10.4g}  "
            f"<U> = {p['mean_energy']:12.6g} ± {p['mean_energy_err']:.3g}  "
            f"(tau {p['tau_sweeps']:.0f} sweeps) {p['warnings'] or ''}",
            flush=True,
        )
    u = np.array([p["mean_energy"] for p in points])
    err = np.array([p["mean_energy_err"] for p in points])
    return {
        "nodes": nodes,
        "integral": float(weights @ u),
        "integral_err": float(math.sqrt(np.sum((weights * err) ** 2))),
        "points": points,
    }


def flow_estimate(path: str, temperature: float) -> dict:
    ds = load_samples(path)
    fe = mf.free_energy(ds.energy, ds.extra["log_q"], temperature, num_particles=ds.num_particles)
    return {
        "log_z": fe.log_z,
        "log_z_err": fe.log_z_err,
        "ess": fe.ess,
        "khat": fe.khat,
        "num_samples": fe.num_samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--system", default="ipl-n10")
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--beta0", type=float, default=1e-3, help="the nearly ideal end")
    parser.add_argument("--uniform", type=int, default=2**21, help="uniform draws at beta0")
    parser.add_argument("--nodes", type=int, default=20, help="Gauss-Legendre nodes (fine)")
    parser.add_argument(
        "--power", type=int, default=6, help="n / d of the r^-n core: 6 for r^-12 in 2-D, 4 in 3-D"
    )
    add_monte_carlo_options(parser, between=100, equilibration=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", help="a sample file of a flow at --temperature")
    parser.add_argument("--out", help="write the numbers as JSON here")
    args = parser.parse_args()
    if not 0 < args.beta0 < 1 / args.temperature:
        parser.error("--beta0 must lie between 0 and 1 / --temperature")
    if args.nodes < 4:
        parser.error("--nodes must be at least 4 (the coarse rule uses about half)")

    t_start = time.perf_counter()
    system = mf.get_system(args.system, temperature=args.temperature)
    beta1 = 1.0 / args.temperature
    start = uniform_log_z(system, args.beta0, args.uniform, args.seed)
    print(
        f"log Z(beta0 = {args.beta0:g}) = {start['log_z']:.5f} ± {start['log_z_err']:.5f} "
        f"from {args.uniform} uniform configurations (ESS fraction {start['ess_fraction']:.3f})",
        flush=True,
    )
    rules = []
    for k, nodes in enumerate((args.nodes, args.nodes // 2)):
        print(f"Gauss-Legendre, {nodes} nodes in s = beta^(1/{args.power}):", flush=True)
        rules.append(
            gauss_legendre_integral(
                args.system, args.beta0, beta1, nodes, args.seed + 1 + 100000 * k, args
            )
        )
    fine, coarse = rules
    log_z = start["log_z"] - fine["integral"]
    log_z_err = math.hypot(start["log_z_err"], fine["integral_err"])
    gap = abs(fine["integral"] - coarse["integral"])
    gap_err = math.hypot(fine["integral_err"], coarse["integral_err"])
    n = system.num_particles
    print(
        f"\nlog Z(T = {args.temperature:g}) = {log_z:.4f} ± {log_z_err:.4f} "
        f"(beta F / N = {-log_z / n:.5f} ± {log_z_err / n:.5f}); "
        f"{coarse['nodes']} nodes give the integral {coarse['integral']:.4f} against "
        f"{fine['integral']:.4f}: a difference of {gap:.4f} (± {gap_err:.4f} statistical)"
    )
    report = {
        "system": args.system,
        "temperature": args.temperature,
        "num_particles": n,
        "start": start,
        "fine": fine,
        "coarse": coarse,
        "log_z": log_z,
        "log_z_err": log_z_err,
        "beta_free_energy_per_particle": -log_z / n,
        "quadrature_gap": gap,
        "seconds": time.perf_counter() - t_start,
    }
    if args.samples:
        flow = flow_estimate(args.samples, args.temperature)
        diff = flow["log_z"] - log_z
        combined = math.hypot(flow["log_z_err"], log_z_err)
        print(
            f"flow ({args.samples}): log Z = {flow['log_z']:.4f} ± {flow['log_z_err']:.4f} "
            f"(ESS {flow['ess']:.1f} of {flow['num_samples']}, k-hat {flow['khat']:.2f}); "
            f"minus TI: {diff:+.4f} = {diff / combined:+.1f} combined errors"
        )
        report["flow"] = flow
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
