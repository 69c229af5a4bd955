"""Throughput of the vector fields: the library's TorusEGNN side by side with a naive reference.

Run from the project root:

    python benchmarks/bench_fields.py            # paper size: N=44, d=2, width 32, 3 layers
    python benchmarks/bench_fields.py --quick    # fewer repeats

What is measured (float32, batch 256, `jax.jit` + `jax.vmap`, `block_until_ready`, best of
several repeats after a warm-up call):

- forward: time per configuration of one batched evaluation of the field;
- train step: one flow-matching step on random inputs: MSE between `v(t, x_t)` and a random
  target, its gradient, and an optax Adam update with gradient-norm clipping at 5.

Three ways, in one run, with the ratios: `chunked` is the library path
(`manifold_flows.evaluate_batch`: TorusEGNN vmapped in cache-sized chunks under
`jax.checkpoint`), `vmap` is TorusEGNN under one plain `jax.vmap`, and `naive` is
`naive_egnn.naive_torus_egnn` under one `jax.vmap` (same weights, same mathematics,
unfactorised concatenated edge input). They are first checked to return the same velocities.
The machine load (`os.getloadavg`) and the process CPU time are printed with the numbers: on a
shared machine, compare ratios, not times.
This is not a test: nothing here asserts a time.
"""

import argparse
import os
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from naive_egnn import naive_torus_egnn

from manifold_flows import (
    DEFAULT_CHUNK_SIZE,
    EuclideanEGNN,
    FlatTorus,
    TorusEGNN,
    build_field,
    count_parameters,
    evaluate_batch,
)

#: Budgets of issue #4 for the paper's size on this 2-core machine class.
FORWARD_BUDGET_MS = 1.3
TRAIN_BUDGET_S = 1.5


def _best_of(fn, repeats: int) -> tuple[float, float]:
    """Best wall time and best process CPU time of `fn()` over `repeats` calls (after warm-up)."""
    jax.block_until_ready(fn())
    wall, cpu = np.inf, np.inf
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn())
        wall = min(wall, time.perf_counter() - w0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load avg {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def _make_train_step(apply, optimiser):
    @eqx.filter_jit
    def step(field, opt_state, t, x, target):
        def loss(field):
            return jnp.mean((apply(field, t, x) - target) ** 2)

        value, grads = eqx.filter_value_and_grad(loss)(field)
        updates, opt_state = optimiser.update(grads, opt_state, eqx.filter(field, eqx.is_array))
        return eqx.apply_updates(field, updates), opt_state, value

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-particles", type=int, default=44)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=7, help="forward repeats (best of)")
    parser.add_argument("--train-repeats", type=int, default=5, help="train-step repeats")
    parser.add_argument("--quick", action="store_true", help="3 repeats of everything")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive reference")
    parser.add_argument(
        "--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, help="evaluate_batch chunk size"
    )
    opts = parser.parse_args()
    if opts.quick:
        opts.repeats = opts.train_repeats = 3

    n, batch, dtype = opts.num_particles, opts.batch, jnp.float32
    box = float(np.sqrt(n / 0.5))  # the IPL density 0.5 of the paper (speed does not depend on it)
    torus = FlatTorus(box, dim=2)
    species = jnp.arange(n, dtype=jnp.int32) % 2
    key = jax.random.key(0)
    k_field, k_x, k_t, k_u = jax.random.split(key, 4)
    field = TorusEGNN(torus, 2, width=opts.width, depth=opts.depth, dtype=dtype, key=k_field)
    x = box * jax.random.uniform(k_x, (batch, n, 2), dtype=dtype)
    t = jax.random.uniform(k_t, (batch,), dtype=dtype)
    target = jax.random.normal(k_u, (batch, n, 2), dtype=dtype)

    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; {_load()}")
    print(
        f"N={n}, d=2, width={opts.width}, depth={opts.depth}, batch={batch}, float32; "
        f"TorusEGNN parameters: {count_parameters(field)}"
    )

    def vmap_apply(f, t, x):
        return jax.vmap(f, in_axes=(0, 0, None))(t, x, species)

    def chunked_apply(f, t, x):
        return evaluate_batch(f, t, x, species, chunk_size=opts.chunk_size)

    def naive_apply(f, t, x):
        return jax.vmap(lambda tt, xx: naive_torus_egnn(f, tt, xx, species))(t, x)

    impls = [("chunked", chunked_apply), ("vmap", vmap_apply)]
    impls += [] if opts.no_naive else [("naive", naive_apply)]
    forward = {name: eqx.filter_jit(apply) for name, apply in impls}

    a = forward["chunked"](field, t, x)
    for name in [name for name in forward if name != "chunked"]:
        b = forward[name](field, t, x)
        # The naive version recovers v from wrapped float32 positions: ~eps * L absolute error.
        print(f"max |chunked - {name}| = {float(jnp.max(jnp.abs(a - b))):.2e} (same weights)")

    results = {}
    for name, _ in impls:
        wall, cpu = _best_of(lambda name=name: forward[name](field, t, x), opts.repeats)
        results[name, "forward"] = wall
        print(
            f"forward   {name:8s} {1e3 * wall / batch:7.3f} ms/config "
            f"(batch {1e3 * wall:7.1f} ms, CPU {1e3 * cpu / batch:.3f} ms/config)"
        )

    optimiser = optax.chain(optax.clip_by_global_norm(5.0), optax.adam(1e-3))
    opt_state = optimiser.init(eqx.filter(field, eqx.is_array))
    for name, apply in impls:
        step = _make_train_step(apply, optimiser)
        run = lambda step=step: step(field, opt_state, t, x, target)
        wall, cpu = _best_of(run, opts.train_repeats)
        results[name, "train"] = wall
        print(f"train     {name:8s} {wall:7.3f} s/step      (CPU {cpu:.3f} s)")

    # The baselines' forward cost, for reference (no naive counterpart).
    others = {
        "euclidean_egnn": EuclideanEGNN(
            2, 2, width=opts.width, depth=opts.depth, dtype=dtype, key=k_field
        ),
        "mlp": build_field(
            "mlp",
            torus_or_dim=torus,
            num_particles=n,
            num_species=2,
            width=256,
            depth=opts.depth,
            dtype=dtype,
            key=k_field,
        ),
    }
    for name, other in others.items():
        fn = eqx.filter_jit(chunked_apply)
        wall, _ = _best_of(lambda other=other, fn=fn: fn(other, t, x), opts.repeats)
        print(f"forward   {name:14s} {1e3 * wall / batch:7.3f} ms/config (chunked)")

    fwd = 1e3 * results["chunked", "forward"] / batch
    trn = results["chunked", "train"]
    print(
        f"budget: forward {fwd:.3f} <= {FORWARD_BUDGET_MS} ms/config: "
        f"{'yes' if fwd <= FORWARD_BUDGET_MS else 'NO'}; train {trn:.3f} <= {TRAIN_BUDGET_S} s: "
        f"{'yes' if trn <= TRAIN_BUDGET_S else 'NO'}"
    )
    for name in [name for name, _ in impls if name != "chunked"]:
        fwd_ratio = results[name, "forward"] / results["chunked", "forward"]
        trn_ratio = results[name, "train"] / results["chunked", "train"]
        print(f"{name} / chunked: forward x{fwd_ratio:.2f}, train x{trn_ratio:.2f}")
    print(_load())


if __name__ == "__main__":
    main()
