"""Throughput of the Monte Carlo engine, side by side with a naive reference, in one run.

Run from the project root:

    python benchmarks/bench_mc.py                       # ka3-n44, 100 chains, float64 and float32
    python benchmarks/bench_mc.py --dtype float32 --quick

What is measured: `manifold_flows.advance` (the jitted kernel of `run_monte_carlo`: every chain
vmapped, a `lax.scan` over sweeps, O(N) energy change per move, production settings: step size
frozen, p_swap = 0.2 for a system with swap pairs) on random non-overlapping starting
configurations. One sweep is N attempted moves of every chain, so the figure of merit is
**chain-sweeps per second** = chains x sweeps / seconds. The first call (compilation) is timed
separately; the throughput is the median over `repeats` further calls, in wall time and in
process CPU time (on a shared machine the CPU time is the steadier of the two).

The naive reference runs the same chain (same proposals from the same random numbers, same
Metropolis rule) but gets the energy change of every move by recomputing the full O(N^2)
energy of the proposed configuration. It is started from the same state with the same keys,
so after a sweep both must hold the same configurations; the largest energy difference is
reported as a check. The naive chain is slow, so it runs fewer sweeps; only rates are compared.

This is not a test: nothing here asserts a time. The machine load is printed with the numbers.
"""

import argparse
import json
import os
import statistics
import time
import warnings
from typing import Any

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import manifold_flows as mf  # noqa: E402
from manifold_flows._mc.engine import _initial_chains, kernel_settings  # noqa: E402
from manifold_flows._mc.moves import draw_sweep, propose  # noqa: E402

#: Throughput target (issue 7) for ka3-n44 with 100 chains on a 2-core CPU.
TARGET_CHAIN_SWEEPS_PER_SECOND = 20_000


def _load() -> float:
    return os.getloadavg()[0]


def _sampler(system: mf.ParticleSystem, chains: int, dtype) -> tuple[mf.SamplerState, Any]:
    cfg = mf.MCConfig(num_chains=chains).resolve(system)
    state = _initial_chains(system, chains, jax.random.key(0), jax.random.key(1), dtype, None, None)
    zero = jnp.zeros((), jnp.int32)
    sampler = mf.SamplerState(state, jnp.asarray(cfg.step_size, dtype), zero, zero, zero)
    return sampler, kernel_settings(cfg, system, dtype)


@eqx.filter_jit
def naive_advance(
    energy: mf.AbstractPairEnergy,
    sampler: mf.SamplerState,
    temperature: jax.Array,
    settings: mf.KernelSettings,
    sweeps: int,
) -> mf.SamplerState:
    """`sweeps` production sweeps of every chain, with the same random numbers, move kinds and
    proposals as `advance`, but `dU = U(proposed) - U(current)` from two full O(N^2) energies."""
    chains = sampler.chains
    n, d = chains.positions.shape[1:]
    dtype = chains.positions.dtype

    def one_sweep(chains, _):
        keys, uniforms, noise = jax.vmap(lambda k: draw_sweep(k, n, d, dtype))(chains.key)
        schedule = uniforms[0, :, 0] < settings.p_swap

        def chain(x, s, u_all, z_all):
            def move(carry, inputs):
                x, s = carry
                u, z, is_swap = inputs
                p = propose(energy, x, s, u, z, sampler.step_size, is_swap, settings.swap_pairs)
                du = energy(p.positions, p.species) - energy(x, s)
                accept = jnp.log1p(-u[5]) <= jnp.minimum(-du / temperature, 0.0)
                return (jnp.where(accept, p.positions, x), jnp.where(accept, p.species, s)), None

            (x, s), _ = jax.lax.scan(move, (x, s), (u_all, z_all, schedule))
            return x, s

        x, s = jax.vmap(chain)(chains.positions, chains.species, uniforms, noise)
        u = jax.vmap(energy)(x, s)
        return mf.ChainState(x, s, u, keys), None

    chains, _ = jax.lax.scan(one_sweep, chains, None, length=sweeps)
    return mf.SamplerState(
        chains,
        sampler.step_size,
        sampler.window_accepted,
        sampler.window_attempted,
        sampler.window_sweeps,
    )


def _timed(fn, repeats: int) -> tuple[float, list[float], list[float]]:
    """Compile-inclusive first call, then `repeats` wall and CPU times of `fn()`."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn())
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return first, walls, cpus


def bench_mc(
    system: str = "ka3-n44",
    chains: int = 100,
    sweeps: int = 50,
    dtype: str = "float64",
    repeats: int = 5,
    naive_sweeps: int = 5,
) -> dict[str, Any]:
    """Time the Monte Carlo kernel and the naive reference on one preset system.

    **Arguments:**

    - `system`: preset name (`manifold_flows.get_system`).
    - `chains`: number of chains run together.
    - `sweeps`: sweeps per timed call of the library kernel.
    - `dtype`: `"float64"` or `"float32"`.
    - `repeats`: timed calls after the compiling one (the median is reported).
    - `naive_sweeps`: sweeps per call of the naive reference (0 skips it).

    **Returns:**

    A dict of plain numbers: chain-sweeps per second (wall and CPU, median), moves per second,
    compile seconds, the same for the naive reference, the speed-up, the load average, and
    whether the 20,000 chain-sweeps/s target is met (`target_met`: wall time;
    `target_met_cpu`: CPU time).
    """
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}.")
    dt = jnp.dtype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mf.ImageConventionWarning)
        sys_ = mf.get_system(system)
    energy = sys_.energy
    sampler, settings = _sampler(sys_, chains, dt)
    temps = jnp.full((sweeps,), sys_.default_temperature, dt)
    active = jnp.ones((sweeps,), bool)
    frozen = jnp.asarray(False)
    state = {"sampler": sampler}

    def library():
        state["sampler"], out = mf.advance(
            energy, mf.Metropolis(), state["sampler"], temps, active, frozen, settings
        )
        return out

    load_before = _load()
    first, walls, cpus = _timed(library, repeats)
    per_call = chains * sweeps
    out: dict[str, Any] = {
        "system": system,
        "num_particles": sys_.num_particles,
        "chains": chains,
        "dtype": dtype,
        "sweeps_per_call": sweeps,
        "repeats": repeats,
        "compile_seconds": first - statistics.median(walls),
        "chain_sweeps_per_second": per_call / statistics.median(walls),
        "chain_sweeps_per_second_cpu": per_call / statistics.median(cpus),
        "moves_per_second": per_call * sys_.num_particles / statistics.median(walls),
        "cpu_over_wall": statistics.median(cpus) / statistics.median(walls),
    }
    if naive_sweeps > 0:
        temperature = jnp.asarray(sys_.default_temperature, dt)
        start = state["sampler"]

        def naive():
            return naive_advance(energy, start, temperature, settings, naive_sweeps)

        n_first, n_walls, n_cpus = _timed(naive, max(1, min(repeats, 3)))
        n_per_call = chains * naive_sweeps
        out["naive_compile_seconds"] = n_first - statistics.median(n_walls)
        out["naive_chain_sweeps_per_second"] = n_per_call / statistics.median(n_walls)
        out["naive_chain_sweeps_per_second_cpu"] = n_per_call / statistics.median(n_cpus)
        out["speedup_vs_naive"] = (
            out["chain_sweeps_per_second"] / (out["naive_chain_sweeps_per_second"])
        )
        out["speedup_vs_naive_cpu"] = (
            out["chain_sweeps_per_second_cpu"] / (out["naive_chain_sweeps_per_second_cpu"])
        )
        # the same chain: both kernels from `start` with the same keys must agree
        fast_state, _ = mf.advance(
            energy,
            mf.Metropolis(),
            start,
            jnp.full((naive_sweeps,), sys_.default_temperature, dt),
            jnp.ones((naive_sweeps,), bool),
            frozen,
            settings,
        )
        slow_state = naive()
        out["naive_max_energy_difference"] = float(
            jnp.max(jnp.abs(fast_state.chains.energy - slow_state.chains.energy))
        )
        out["naive_same_species"] = bool(
            jnp.all(fast_state.chains.species == slow_state.chains.species)
        )
    out["load_average_before"] = load_before
    out["load_average_after"] = _load()
    out["target_chain_sweeps_per_second"] = TARGET_CHAIN_SWEEPS_PER_SECOND
    out["target_met"] = out["chain_sweeps_per_second"] >= TARGET_CHAIN_SWEEPS_PER_SECOND
    # the kernel runs on one core: on a loaded machine its CPU time is what a free core gives
    out["target_met_cpu"] = out["chain_sweeps_per_second_cpu"] >= TARGET_CHAIN_SWEEPS_PER_SECOND
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--system", default="ka3-n44")
    parser.add_argument("--chains", type=int, default=100)
    parser.add_argument("--sweeps", type=int, default=50)
    parser.add_argument("--dtype", default="float64,float32")
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 5")
    args = parser.parse_args()
    for dtype in args.dtype.split(","):
        res = bench_mc(
            args.system,
            args.chains,
            args.sweeps,
            dtype,
            repeats=3 if args.quick else 5,
        )
        print(json.dumps(res, indent=1), flush=True)
        print(
            f"{args.system} {dtype}: {res['chain_sweeps_per_second']:,.0f} chain-sweeps/s wall, "
            f"{res['chain_sweeps_per_second_cpu']:,.0f} CPU; naive "
            f"{res.get('naive_chain_sweeps_per_second', float('nan')):,.0f}; speed-up "
            f"{res.get('speedup_vs_naive', float('nan')):.0f}x (CPU "
            f"{res.get('speedup_vs_naive_cpu', float('nan')):.0f}x); load "
            f"{res['load_average_before']:.1f} -> {res['load_average_after']:.1f}; target "
            f"{TARGET_CHAIN_SWEEPS_PER_SECOND:,} {'met' if res['target_met'] else 'not met'} "
            f"(wall), {'met' if res['target_met_cpu'] else 'not met'} (CPU time)",
            flush=True,
        )


if __name__ == "__main__":
    main()
