"""Free-energy difference between two temperatures: thermodynamic integration of Monte Carlo
energies, and (given flow samples) the same difference by reweighting.

    beta_2 F_2 - beta_1 F_1 = integral_{beta_1}^{beta_2} <U> d beta = -(log Z_2 - log Z_1)

Thermodynamic integration (TI): independent Monte Carlo runs (`run_monte_carlo`) at a path of
temperatures from T1 to T2, each giving u = <U>/N with the standard error over its chains (the
chains are the independent units), integrated over beta = 1/T by `thermodynamic_integration`
(Simpson, with the trapezoid rule for the discretisation error). The path is uniform in T,
which in beta puts the points densest near T2 = 0.2 (small beta), where <U>(beta) changes
fastest (d<U>/d beta = -var(U) grows with T).

Reweighting, when sample files from `mflows sample` (.npz with U and a normalised log q) are
given: `--samples FILE` reweights one set to both temperatures (`free_energy_difference`,
shared bootstrap indices); `--samples-t1 FILE --samples-t2 FILE` takes two independent sets
(`free_energy_difference_independent`, errors in quadrature). Either is compared with TI in
units of the combined error.

    python examples/free_energy/ti_vs_reweighting.py [--points 10] [--chains 64]
    python examples/free_energy/ti_vs_reweighting.py --samples samples_T0.15.npz
    python examples/free_energy/ti_vs_reweighting.py --samples-t1 s_T0.1.npz --samples-t2 s_T0.2.npz

Defaults (system ipl-n10, T1 = 0.1, T2 = 0.2, 10 temperatures, 64 chains) take about two
minutes on one CPU core.
"""

import argparse
import json
import time
import warnings

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import manifold_flows as mf  # noqa: E402


def monte_carlo_u(system_name: str, temperature: float, seed: int, args) -> dict:
    """u = <U>/N at `temperature` from an independent run, its error over the chains."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        system = mf.get_system(system_name, temperature=temperature)
        result = mf.run_monte_carlo(
            system,
            key=seed,
            progress=False,
            num_chains=args.chains,
            equilibration_sweeps=args.equilibration,
            anneal_from=max(0.3, temperature),
            samples_per_chain=args.samples_per_chain,
            sweeps_between=args.between,
        )
    ds = result.dataset
    u = mf.energy_per_particle(ds.energy, ds.num_particles, chains=ds.extra["chain"])
    return {
        "temperature": temperature,
        "u": u.raw,
        "u_err": u.raw_err,
        "num_chains": u.num_chains,
        "num_samples": ds.num_samples,
        "tau_sweeps": result.diagnostics["autocorrelation"]["tau_sweeps"],
        "num_particles": ds.num_particles,
        "warnings": sorted({type(w.message).__name__ for w in caught}),
    }


def integrate(points: list[dict]) -> mf.ThermodynamicIntegration:
    betas = [1.0 / p["temperature"] for p in points]
    return mf.thermodynamic_integration(
        betas, [p["u"] for p in points], [p["u_err"] for p in points]
    )


def add_monte_carlo_options(
    parser: argparse.ArgumentParser, *, between: int, equilibration: int
) -> None:
    """The options of the independent Monte Carlo runs that `monte_carlo_u` reads."""
    parser.add_argument("--chains", type=int, default=64)
    parser.add_argument("--samples-per-chain", type=int, default=40)
    parser.add_argument("--between", type=int, default=between, help="sweeps between samples")
    parser.add_argument("--equilibration", type=int, default=equilibration)


def load_samples(path: str) -> mf.Dataset:
    """A sample file of `mflows sample`: energies and a normalised log q, or one line on exit."""
    ds = mf.load_configurations(path)
    if ds.energy is None or "log_q" not in ds.extra:
        raise SystemExit(f"{path}: no energies or log q; pass a file written by `mflows sample`.")
    if not (ds.metadata or {}).get("base_normalized", False):
        raise SystemExit(
            f"{path}: log q is not a normalised density: free energies are not identified."
        )
    return ds


def reweighted(args, num_particles: int) -> mf.FreeEnergyDifference | None:
    options = dict(num_particles=num_particles, num_bootstrap=args.bootstrap)
    if args.samples:
        ds = load_samples(args.samples)
        return mf.free_energy_difference(ds.energy, ds.extra["log_q"], args.t1, args.t2, **options)
    if args.samples_t1 and args.samples_t2:
        first, second = (
            mf.free_energy(ds.energy, ds.extra["log_q"], t, **options)
            for ds, t in ((load_samples(args.samples_t1), args.t1),
                          (load_samples(args.samples_t2), args.t2))
        )  # fmt: skip
        return mf.free_energy_difference_independent(first, second)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--system", default="ipl-n10")
    parser.add_argument("--t1", type=float, default=0.1)
    parser.add_argument("--t2", type=float, default=0.2)
    parser.add_argument("--points", type=int, default=10, help="temperatures on the path")
    add_monte_carlo_options(parser, between=150, equilibration=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", help="one sample file, reweighted to T1 and T2")
    parser.add_argument("--samples-t1", help="a sample file at T1 (with --samples-t2)")
    parser.add_argument("--samples-t2", help="an independent sample file at T2")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--out", help="write the numbers as JSON here")
    args = parser.parse_args()
    if bool(args.samples_t1) != bool(args.samples_t2):
        parser.error("--samples-t1 and --samples-t2 go together")

    t0 = time.perf_counter()
    temperatures = np.linspace(args.t1, args.t2, args.points)
    points = []
    for k, t in enumerate(temperatures):
        # an independent run (its own key) per temperature: TI's errors add in quadrature
        points.append(monte_carlo_u(args.system, float(t), args.seed + 1000 * k, args))
        p = points[-1]
        print(
            f"T = {t:.4f}  beta = {1 / t:7.3f}  u = {p['u']:.5f} ± {p['u_err']:.5f}  "
            f"({p['num_chains']} chains, tau = {p['tau_sweeps']:.0f} sweeps) {p['warnings'] or ''}",
            flush=True,
        )
    n = points[0]["num_particles"]
    ti = integrate(points)
    print(
        f"\nTI: (beta2 F2 - beta1 F1) / N = {ti.value:.5f} ± {ti.error:.5f} ({ti.method}); "
        f"trapezoid {ti.trapezoid:.5f} ± {ti.trapezoid_err:.5f}; discretisation error "
        f"~{ti.discretisation_error:.1e}; total beta2 F2 - beta1 F1 = {n * ti.value:.4f} "
        f"± {n * ti.error:.4f}  [{time.perf_counter() - t0:.0f} s]"
    )
    out = {"system": args.system, "points": points, "ti": ti.as_dict()}

    fep = reweighted(args, n)
    if fep is not None:
        combined = float(np.hypot(fep.delta_beta_f_per_particle_err, ti.error))
        z = (fep.delta_beta_f_per_particle - ti.value) / combined
        verdict = "agree" if abs(z) <= 2 else "DISAGREE"
        if not fep.reliable:
            verdict = "not compared: k-hat says the weights are unreliable"
        print(
            f"reweighting ({fep.route}): (beta2 F2 - beta1 F1) / N = "
            f"{fep.delta_beta_f_per_particle:.5f} ± {fep.delta_beta_f_per_particle_err:.5f}; "
            f"ESS {fep.first.ess:.0f} at T1, {fep.second.ess:.0f} at T2; "
            f"{abs(z):.2f} combined errors from TI ({verdict})"
        )
        if fep.note:
            print(f"  note: {fep.note}")
        out["reweighting"] = {**fep.as_dict(), "z_against_ti": z}
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=1, default=float)


if __name__ == "__main__":
    main()
