"""Speed of exact likelihoods for the paper's model (not a test; run it by hand).

    python benchmarks/bench_likelihood.py [--run RUN_DIR] [--n 44] [--width 32] [--depth 3]

For the torus EGNN at N = 44, width 32, 3 layers, float32 (freshly initialised, or the EMA
weights of a trained run with `--run`), it reports, side by side in one run:

- seconds per forward pass of the field (the unit every other cost is measured in);
- seconds per exact divergence evaluation, `ExactDivergence` (one `jax.linearize`, then
  JVPs over the basis vectors in chunks) for several chunk sizes, against the naive reference
  `trace(jax.jacfwd(field))` (the full N d x N d Jacobian, materialised);
- the number of field evaluations (NFE) of Dopri5 at rtol = atol = 1e-5, and seconds per
  sample with exact log q (one sample at a time, and vmapped batches);
- the ratios, and the machine load (`uptime`) before and after: the machine may be shared,
  and ratios measured in one run are what compare.

Budgets (issue 5): exact divergence <= 0.1 s per configuration; one sample with exact log q
<= 2 s for a fresh network (~25 NFE).
"""

import argparse
import os
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np

import manifold_flows as mf


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return f"load average {os.getloadavg()}"


def best_time(fn, *args, repeat: int = 7) -> float:
    """Best wall time of `repeat` calls after one warm-up (compilation) call."""
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best


def build(args):
    if args.run:
        run = mf.load_run(args.run)
        field, space, species = run.field, run.space, run.species
        torus = run.torus
        what = f"trained run {args.run} (EMA weights, {run.dtype})"
    else:
        box = float(np.sqrt(args.n / 0.5))  # IPL density 0.5
        torus = mf.FlatTorus(box, dim=2)
        space = mf.ParticleSpace(torus, args.n)
        species = jnp.asarray(np.repeat([0, 1], [args.n // 2, args.n - args.n // 2]), jnp.int32)
        field = mf.TorusEGNN(
            torus, 2, width=args.width, depth=args.depth, dtype=jnp.float32, key=jax.random.key(0)
        )
        what = f"fresh TorusEGNN width {args.width}, depth {args.depth}, float32"
    return field, space, torus, species, what


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="trained run directory (optional)")
    parser.add_argument("--n", type=int, default=44)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--chunks", default="4,8,16,32,all", help="divergence chunk sizes")
    parser.add_argument("--samples", type=int, default=4, help="samples for the timing")
    args = parser.parse_args()

    print(f"machine load before: {uptime()}")
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}")
    field, space, torus, species, what = build(args)
    n, d = space.point_shape
    print(f"model: {what}; N = {n}, d = {d}, N d = {n * d} basis vectors")
    dtype = jnp.float32
    x = jax.vmap(torus.random_uniform)(jax.random.split(jax.random.key(1), n)).astype(dtype)
    t = jnp.asarray(0.5, dtype)

    forward = jax.jit(lambda y: field(t, y, species))
    t_forward = best_time(forward, x, repeat=30)
    print(f"\nfield forward pass:              {t_forward * 1e3:8.2f} ms")

    one_jvp = jax.jit(lambda y, e: jax.jvp(lambda z: field(t, z, species), (y,), (e,))[1])
    t_jvp = best_time(one_jvp, x, jnp.ones_like(x), repeat=30)
    print(f"one JVP (single tangent):        {t_jvp * 1e3:8.2f} ms")

    naive = jax.jit(
        lambda y: jnp.trace(jax.jacfwd(lambda z: field(t, z, species))(y).reshape(n * d, n * d))
    )
    t_naive = best_time(naive, x)
    print(f"naive trace(jacfwd) divergence:  {t_naive * 1e3:8.2f} ms  (reference)")

    results = {}
    reference = float(naive(x))
    for chunk in args.chunks.split(","):
        chunk_size = None if chunk == "all" else int(chunk)
        # "all": one batch of every basis vector (chunk_size = N d).
        strategy = mf.ExactDivergence(n * d if chunk_size is None else chunk_size)
        fn = jax.jit(lambda y, s=strategy: s(lambda z: field(t, z, species), y, None, space)[1])
        value = float(fn(x))
        results[chunk] = best_time(fn, x)
        print(
            f"exact divergence, chunk {chunk:>4}:   {results[chunk] * 1e3:8.2f} ms  "
            f"= {results[chunk] / t_forward:6.1f} forward passes, naive/this = "
            f"{t_naive / results[chunk]:5.2f}  (|diff| = {abs(value - reference):.2e})"
        )
    default = mf.ExactDivergence()
    fn = jax.jit(lambda y: default(lambda z: field(t, z, species), y, None, space)[1])
    t_default = best_time(fn, x)
    print(
        f"exact divergence, default chunk ({default.effective_chunk_size(n * d)}): "
        f"{t_default * 1e3:.2f} ms  (budget 100 ms: {'OK' if t_default <= 0.1 else 'OVER'})"
    )

    # --- sampling with exact log q --------------------------------------------------------
    flow = mf.ContinuousFlow(space, field, rtol=1e-5, atol=1e-5, dtype="float32")
    one = jax.jit(lambda k: flow.sample_solution(k, species))
    sol = one(jax.random.key(2))
    jax.block_until_ready(sol)
    keys = jax.random.split(jax.random.key(3), args.samples)
    start = time.perf_counter()
    nfe = []
    for k in keys:
        sol = one(k)
        nfe.append(int(sol.stats.num_fn_evals))
        jax.block_until_ready(sol)
    per_sample = (time.perf_counter() - start) / args.samples
    print(
        f"\nDopri5 at 1e-5: NFE per sample {nfe} (mean {np.mean(nfe):.1f}); "
        f"{per_sample:.3f} s per sample with exact log q, one at a time "
        f"(budget 2 s: {'OK' if per_sample <= 2 else 'OVER'}); "
        f"= {per_sample / max(np.mean(nfe), 1):.3f} s per NFE"
    )
    for chunk in (args.samples,):
        batched = jax.jit(lambda k, c=chunk: mf.sample(flow, k, args.samples, species, chunk_size=c))
        t_batch = best_time(batched, jax.random.key(4), repeat=2)
        print(
            f"vmapped batch of {chunk}: {t_batch / args.samples:.3f} s per sample "
            f"(lock-step: every sample takes the batch's largest number of steps)"
        )
    print(f"\nmachine load after: {uptime()}")


if __name__ == "__main__":
    main()
