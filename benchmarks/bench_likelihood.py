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
from manifold_flows import sample


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return f"load average {os.getloadavg()}"


def best_times(fns: dict, rounds: int = 5) -> dict:
    """Best wall time of each function over `rounds` rounds, after one warm-up (compilation)
    call each. The functions are interleaved within a round, so a change of machine load hits
    all of them alike and the ratios stay meaningful on a shared machine."""
    for fn in fns.values():
        jax.block_until_ready(fn())
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            best[name] = min(best[name], time.perf_counter() - start)
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

    # Time and species are arguments (not compile-time constants), as inside the solver.
    forward = jax.jit(lambda y, s, sp: field(s, y, sp))
    one_jvp = jax.jit(lambda y, e, s, sp: jax.jvp(lambda z: field(s, z, sp), (y,), (e,))[1])
    naive = jax.jit(
        lambda y, s, sp: jnp.trace(jax.jacfwd(lambda z: field(s, z, sp))(y).reshape(n * d, -1))
    )
    fns = {
        "forward": lambda: forward(x, t, species),
        "one JVP": lambda: one_jvp(x, jnp.ones_like(x), t, species),
        "naive jacfwd": lambda: naive(x, t, species),
    }
    values = {}
    for chunk in args.chunks.split(","):
        size = n * d if chunk == "all" else int(chunk)
        strategy = mf.ExactDivergence(size)
        fn = jax.jit(lambda y, s, sp, st=strategy: st(lambda z: field(s, z, sp), y, None, space)[1])
        fns[f"exact chunk {chunk}"] = lambda fn=fn: fn(x, t, species)
        values[f"exact chunk {chunk}"] = float(fn(x, t, species))
    default = mf.ExactDivergence()
    default_chunk = default.effective_chunk_size(n * d)
    reference = float(naive(x, t, species))
    times = best_times(fns)
    t_forward, t_naive = times["forward"], times["naive jacfwd"]
    print(f"\nfield forward pass:              {t_forward * 1e3:8.2f} ms")
    print(f"one JVP (single tangent):        {times['one JVP'] * 1e3:8.2f} ms")
    print(f"naive trace(jacfwd) divergence:  {t_naive * 1e3:8.2f} ms  (reference)")
    for name, value in values.items():
        print(
            f"{name:<22}: {times[name] * 1e3:8.2f} ms = {times[name] / t_forward:6.1f} forward "
            f"passes; naive / this = {t_naive / times[name]:5.2f}  "
            f"(|diff| = {abs(value - reference):.1e})"
        )
    t_default = times.get(f"exact chunk {default_chunk}")
    if t_default is not None:
        verdict = "OK" if t_default <= 0.1 else "OVER"
        print(
            f"default ExactDivergence() (chunk {default_chunk}): {t_default * 1e3:.2f} ms per "
            f"configuration (budget 100 ms: {verdict})"
        )

    # --- sampling with exact log q --------------------------------------------------------
    flow = mf.ContinuousFlow(space, field, rtol=1e-5, atol=1e-5, dtype="float32")
    divergence_only = jax.jit(lambda y, s, sp: flow.velocity_and_divergence(s, y, sp))
    one = jax.jit(lambda k, sp: flow.sample_solution(k, sp))
    keys = jax.random.split(jax.random.key(3), args.samples)
    nfe = [int(one(k, species).stats.num_fn_evals) for k in keys]
    batched = {
        c: jax.jit(lambda k, sp, c=c: sample(flow, k, args.samples, sp, chunk_size=c))
        for c in (1, args.samples)
    }
    fns = {
        "augmented field": lambda: divergence_only(x, t, species),
        "one sample": lambda: one(keys[0], species),
        **{f"batch {c}": (lambda c=c: batched[c](keys[1], species)) for c in batched},
    }
    times = best_times(fns, rounds=2)
    nfe0 = nfe[0]
    per_sample = times["one sample"]
    print(
        f"\nDopri5 at rtol = atol = 1e-5: NFE per sample {nfe} (mean {np.mean(nfe):.1f})\n"
        f"one sample with exact log q ({nfe0} NFE): {per_sample:.3f} s (budget 2 s: "
        f"{'OK' if per_sample <= 2 else 'OVER'}) = {per_sample / nfe0 * 1e3:.1f} ms per NFE; "
        f"one augmented-field evaluation (v, exact div) alone: "
        f"{times['augmented field'] * 1e3:.1f} ms, so the solver adds "
        f"{per_sample / (nfe0 * times['augmented field']) - 1:+.0%}"
    )
    for c in batched:
        how = "sequential (lax.map)" if c == 1 else "vmapped in lock-step"
        print(
            f"sample(..., chunk_size={c}) over {args.samples} samples, {how}: "
            f"{times[f'batch {c}'] / args.samples:.3f} s per sample"
        )
    print(f"\nmachine load after: {uptime()}")


if __name__ == "__main__":
    main()
