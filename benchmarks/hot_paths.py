"""The computations the suite times: each hot path, built the library's way and a naive way.

`build(spec)` turns one case of `benchmarks/run.py` (a dict: path, system, width, depth,
implementation, ...) into a `Job`: a `jax.jit`-ed function, its arguments, the number of items
one call processes, and the outputs to compare across implementations. Parameters are passed
as arguments (never baked into the program as constants), as in training and sampling.

Implementations (`impl`):

- `library`: the public entry points: `evaluate_batch` (forward), `flow_matching_loss` +
  optax (train), `ExactDivergence` (divergence), `ContinuousFlow.sample_solution` (sample),
  `train_step` (the full training step, with the species-wise OT coupling and the EMA).
- `vmap`: the library field under one plain `jax.vmap` (forward and train only): what the
  chunked evaluation of `evaluate_batch` gains.
- `naive`: `naive_egnn.naive_torus_egnn` (materialised edge inputs, edge MLPs vmapped over the
  edges) under one `jax.vmap`; the divergence is `trace(jax.jacfwd(.))`, the sample is the
  same ODE solve with the naive field and the naive divergence.
- `chunk=K` (divergence and scaling only): `ExactDivergence(K)`, to compare chunk sizes;
  for `sample_batch`: `mf.sample(..., chunk_size=K)` (`chunk=auto`: the backend's default).
"""

import dataclasses
import math
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from naive_egnn import JacfwdTraceDivergence, NaiveTorusEGNN, naive_torus_egnn

import manifold_flows as mf

#: Time and inputs are random but fixed (the same in every worker), so the implementations of
#: one case see identical inputs and their outputs can be compared.
SEED = 0
FORWARD_BATCH = 256
#: Steps per call of the `sequential` and `pipelined` training loops.
LOOP_STEPS = 4


@dataclasses.dataclass
class Job:
    fn: Callable  # a jax.jit-ed function (or one that compiles internally: train_step)
    args: tuple
    per_call: int  # items per call (configurations, steps, samples)
    unit: str  # what one item is
    info: dict[str, Any]
    summarise: Callable[[Any], dict[str, Any]] = lambda out: {}  # numbers read from an output


@dataclasses.dataclass
class Problem:
    name: str
    torus: mf.FlatTorus
    species: jax.Array
    field: mf.TorusEGNN
    num_species: int

    @property
    def n(self) -> int:
        return int(self.species.shape[0])

    @property
    def space(self) -> mf.ParticleSpace:
        return mf.ParticleSpace(self.torus, self.n)


def problem(spec: dict[str, Any]) -> Problem:
    """The system (preset, synthetic `nN`, or a trained run) and a float32 TorusEGNN."""
    dtype = jnp.float32
    if spec.get("run"):
        run = mf.load_run(spec["run"])
        field = jax.tree.map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, run.field)
        species = jnp.asarray(run.species, jnp.int32)
        return Problem(f"run:{spec['run']}", run.torus, species, field, len(run.species_names))
    name = spec["system"]
    if name.startswith("n") and name[1:].isdigit():
        # A synthetic two-species system of N particles at the IPL density (N / L^2 = 1/2).
        n = int(name[1:])
        torus = mf.FlatTorus(math.sqrt(2.0 * n), dim=2)
        species = np.repeat([0, 1], [n // 2, n - n // 2])
        num_species = 2
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            system = mf.get_system(name)
        torus, species = system.torus, system.species
        num_species = len(system.species_names)
    field = mf.TorusEGNN(
        torus,
        num_species,
        width=spec["width"],
        depth=spec["depth"],
        dtype=dtype,
        key=jax.random.key(SEED),
    )
    return Problem(name, torus, jnp.asarray(species, jnp.int32), field, num_species)


def _points(p: Problem, key, count: int) -> jax.Array:
    box = jnp.asarray(p.torus.lengths, jnp.float32)
    return jax.random.uniform(key, (count, p.n, 2), dtype=jnp.float32) * box


# ---------------------------------------------------------------------------- forward
def forward(spec, p: Problem) -> Job:
    k_x, k_t = jax.random.split(jax.random.key(SEED + 1))
    batch = spec.get("batch", FORWARD_BATCH)
    x, t = _points(p, k_x, batch), jax.random.uniform(k_t, (batch,), dtype=jnp.float32)
    params, static = eqx.partition(p.field, eqx.is_array)
    species = p.species
    impl = spec["impl"]

    def fn(params, t, x):
        field = eqx.combine(params, static)
        if impl == "library":
            return mf.evaluate_batch(field, t, x, species)
        if impl == "vmap":
            return jax.vmap(field, in_axes=(0, 0, None))(t, x, species)
        if impl == "naive":
            return jax.vmap(lambda ti, xi: naive_torus_egnn(field, ti, xi, species))(t, x)
        raise ValueError(f"forward has no implementation {impl!r} (library, vmap, naive).")

    return Job(jax.jit(fn), (params, t, x), batch, "config", {"batch": batch})


# ---------------------------------------------------------------------------- train
def _optimizer():
    return optax.chain(optax.clip_by_global_norm(5.0), optax.adam(1e-3))


def train(spec, p: Problem) -> Job:
    """One flow-matching step on fixed random pairs: geodesic interpolant, MSE, gradient,
    Adam with clipping. The pairs are drawn outside (no coupling): this isolates the field."""
    batch = spec.get("batch", FORWARD_BATCH)
    k0, k1, kt = jax.random.split(jax.random.key(SEED + 2), 3)
    x0, x1 = _points(p, k0, batch), _points(p, k1, batch)
    t = jax.random.uniform(kt, (batch,), dtype=jnp.float32)
    interpolant = mf.GeodesicInterpolant(p.torus)
    params, static = eqx.partition(p.field, eqx.is_array)
    optimizer = _optimizer()
    opt_state = optimizer.init(params)
    species = p.species
    impl = spec["impl"]
    if impl not in ("library", "vmap", "naive"):
        raise ValueError(f"train has no implementation {impl!r} (library, vmap, naive).")

    def fn(params, opt_state, x0, x1, t):
        def loss(params):
            field = eqx.combine(params, static)
            if impl == "library":
                velocity = field  # an AbstractVectorField: evaluated through evaluate_batch
            elif impl == "vmap":
                velocity = lambda tt, xx, s: field(tt, xx, s)  # a plain callable: one vmap
            else:
                velocity = lambda tt, xx, s: naive_torus_egnn(field, tt, xx, s)
            return mf.flow_matching_loss(velocity, interpolant, x0, x1, t, species)

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    return Job(
        jax.jit(fn),
        (params, opt_state, x0, x1, t),
        1,
        "step",
        {"batch": batch},
        summarise=lambda out: {"loss": float(out[2])},
    )


def train_step(spec, p: Problem) -> Job:
    """The library's complete `train_step`: pair drawing, species-wise OT coupling (Hungarian,
    on the host), loss, gradient, Adam, EMA. Library only (the naive reference of the field
    is the `train` path). `sequential` and `pipelined` run `LOOP_STEPS` steps as `fit` does
    (the loss read back after every step), the second with the host stage of each next step
    dispatched before the current update and solved while the device computes it. `auction`
    is one step with the assignment solved on the device (`AuctionOTCoupling`, no host
    stage)."""
    impl = spec["impl"]
    if impl not in ("library", "sequential", "pipelined", "auction"):
        raise ValueError(
            "train_step has the implementations library, sequential, pipelined, auction."
        )
    from manifold_flows._train.state import init_train_state

    batch = spec.get("batch", FORWARD_BATCH)
    x1 = _points(p, jax.random.key(SEED + 3), batch)
    optimizer = _optimizer()
    state = init_train_state(p.field, optimizer, key=jax.random.key(SEED), dtype="float32")
    dynamic, static = eqx.partition(state, eqx.is_array)
    coupling = mf.AuctionOTCoupling if impl == "auction" else mf.SpeciesOTCoupling
    strategies = dict(
        interpolant=mf.GeodesicInterpolant(p.torus),
        coupling=coupling(p.torus),
        base=p.space,
    )
    species = p.species

    step_options = dict(optimizer=optimizer, ema_decay=0.999, **strategies)

    def fn(dynamic, x1):
        new, out = mf.train_step(eqx.combine(dynamic, static), x1, species, **step_options)
        return eqx.filter(new, eqx.is_array), out["loss"]

    def loop(dynamic, x1):
        state, coupled, losses = eqx.combine(dynamic, static), None, []
        coupling = strategies["coupling"]
        for k in range(LOOP_STEPS):
            ahead = None
            if impl == "pipelined":
                if coupled is None:
                    posed = mf.pose_host_coupling(state, x1, species, **strategies)
                    coupled = mf.solve_host_coupling(posed, coupling)
                if k + 1 < LOOP_STEPS:
                    ahead = mf.pose_host_coupling(state, x1, species, ahead=1, **strategies)
            state, out = mf.train_step(state, x1, species, coupled=coupled, **step_options)
            coupled = None if ahead is None else mf.solve_host_coupling(ahead, coupling)
            losses.append(float(out["loss"]))
        return eqx.filter(state, eqx.is_array), losses[-1]

    # Not wrapped in jax.jit: train_step is two compiled functions with the coupling's host
    # stage (Hungarian assignment) between them, which a trace cannot hold.
    one = impl in ("library", "auction")
    return Job(
        fn if one else loop,
        (dynamic, x1),
        1 if one else LOOP_STEPS,
        "step",
        {"batch": batch},
        summarise=lambda out: {"loss": float(out[1])},
    )


# ---------------------------------------------------------------------------- divergence
def divergence(spec, p: Problem) -> Job:
    """Velocity and exact divergence at one configuration (t = 0.5), float32."""
    x = _points(p, jax.random.key(SEED + 4), 1)[0]
    t = jnp.asarray(0.5, jnp.float32)
    params, static = eqx.partition(p.field, eqx.is_array)
    space, species, impl = p.space, p.species, spec["impl"]
    if impl == "library":
        strategy = mf.ExactDivergence()
    elif impl.startswith("chunk="):
        strategy = mf.ExactDivergence(int(impl.split("=")[1]))
    elif impl == "naive":
        strategy = JacfwdTraceDivergence()
    else:
        raise ValueError(f"divergence has no implementation {impl!r} (library, chunk=K, naive).")
    naive = impl == "naive"
    # `basis=K` (large N): only the first K basis vectors (K/2 particles), through the whole
    # field: the divergence of z -> f(x with its first K/2 particles set to z)[:K/2], whose
    # every JVP costs what one of the full divergence costs. Reported per basis vector.
    moved = spec.get("basis", x.size) // 2
    sub_space = mf.ParticleSpace(p.torus, moved)

    def fn(params, t, x):
        field = eqx.combine(params, static)
        velocity = naive_torus_egnn if naive else lambda f, t, z, s: f(t, z, s)
        if moved == p.n:
            return strategy(lambda z: velocity(field, t, z, species), x, None, space)

        def part(z):
            return velocity(field, t, x.at[:moved].set(z), species)[:moved]

        return strategy(part, x[:moved], None, sub_space)

    info = {"basis_vectors": 2 * moved, "full_basis_vectors": int(x.size)}
    if moved != p.n:  # the memory of the whole divergence: compiled, never run

        def whole(params, t, x):
            field = eqx.combine(params, static)
            return strategy(lambda z: field(t, z, species), x, None, space)

        memory = jax.jit(whole).lower(params, t, x).compile().memory_analysis()
        info["full_divergence_xla_temp_mb"] = memory.temp_size_in_bytes / 2**20
    if isinstance(strategy, mf.ExactDivergence):
        info["chunk"] = strategy.effective_chunk_size(2 * moved)
    per = 1 if moved == p.n else 2 * moved
    return Job(
        jax.jit(fn),
        (params, t, x),
        per,
        "config" if per == 1 else "basis vector",
        info,
        summarise=lambda out: {"div": float(out[1])},
    )


# ---------------------------------------------------------------------------- sample
def sample(spec, p: Problem) -> Job:
    """One sample with exact log q: Dopri5 at rtol = atol = 1e-5, float32, from t = 0 to 1."""
    impl = spec["impl"]
    if impl == "library":
        flow = mf.ContinuousFlow(p.space, p.field, rtol=1e-5, atol=1e-5, dtype="float32")
    elif impl == "naive":
        flow = mf.ContinuousFlow(
            p.space,
            NaiveTorusEGNN(p.field),
            divergence=JacfwdTraceDivergence(),
            rtol=1e-5,
            atol=1e-5,
            dtype="float32",
        )
    else:
        raise ValueError(f"sample has no implementation {impl!r} (library, naive).")
    dynamic, static = eqx.partition(flow, eqx.is_array)
    species = p.species

    def fn(dynamic, key):
        solution = eqx.combine(dynamic, static).sample_solution(key, species)
        return solution.x1, solution.log_q, solution.stats.num_fn_evals

    return Job(
        jax.jit(fn),
        (dynamic, jax.random.key(SEED + 5)),
        1,
        "sample",
        {"solver": "dopri5", "rtol": 1e-5, "atol": 1e-5},
        summarise=lambda out: {"nfe": int(out[2]), "log_q": float(out[1])},
    )


# ---------------------------------------------------------------------------- kernel field
def kernel(spec, p: Problem) -> Job:
    """The kernel field (`KernelField`, 32 radial kernels, time network of width 32, cutoff
    L/2), float32: `velocity` and `divergence` (velocity + closed-form divergence) on a batch
    of 256 configurations, per configuration; `sample`: one sample with exact log q through
    `ContinuousFlow` (Dopri5 at 1e-5), like the `sample` path of the EGNN."""
    field = mf.KernelField(p.torus, p.num_species, key=jax.random.key(SEED), dtype=jnp.float32)
    species, impl = p.species, spec["impl"]
    info = {"field": "KernelField", "kernel_parameters": mf.count_parameters(field)}
    if impl == "sample":
        flow = mf.ContinuousFlow(p.space, field, rtol=1e-5, atol=1e-5, dtype="float32")
        dynamic, static = eqx.partition(flow, eqx.is_array)

        def draw(dynamic, key):
            solution = eqx.combine(dynamic, static).sample_solution(key, species)
            return solution.x1, solution.log_q, solution.stats.num_fn_evals

        return Job(
            jax.jit(draw),
            (dynamic, jax.random.key(SEED + 5)),
            1,
            "sample",
            info,
            summarise=lambda out: {"nfe": int(out[2]), "log_q": float(out[1])},
        )
    k_x, k_t = jax.random.split(jax.random.key(SEED + 1))
    x = _points(p, k_x, FORWARD_BATCH)
    t = jax.random.uniform(k_t, (FORWARD_BATCH,), dtype=jnp.float32)
    params, static = eqx.partition(field, eqx.is_array)
    if impl not in ("velocity", "divergence"):
        raise ValueError(f"kernel has no implementation {impl!r} (velocity, divergence, sample).")

    def fn(params, t, x):
        f = eqx.combine(params, static)
        if impl == "velocity":
            return jax.vmap(f, in_axes=(0, 0, None))(t, x, species)
        return jax.vmap(f.velocity_and_divergence, in_axes=(0, 0, None))(t, x, species)

    return Job(jax.jit(fn), (params, t, x), FORWARD_BATCH, "config", info)


def sample_batch(spec, p: Problem) -> Job:
    """`spec["count"]` samples with exact log q through `mf.sample(..., chunk_size=C)`, the
    implementation `chunk=C` (`chunk=auto`: the backend's default), Dopri5 at 1e-5, in
    `spec["dtype"]`: throughput as a function of how many samples are solved together."""
    impl = spec["impl"]
    if not impl.startswith("chunk="):
        raise ValueError(f"sample_batch has no implementation {impl!r} (chunk=C, chunk=auto).")
    chunk = impl.split("=", 1)[1]
    chunk = chunk if chunk == "auto" else int(chunk)
    dtype = spec.get("dtype", "float32")
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)  # this worker only: one case per process
    flow = mf.ContinuousFlow(p.space, p.field, rtol=1e-5, atol=1e-5, dtype=dtype)
    dynamic, static = eqx.partition(flow, eqx.is_array)
    species, count = p.species, int(spec["count"])

    def fn(dynamic, key):
        flow = eqx.combine(dynamic, static)
        x, log_q, stats = mf.sample(flow, key, count, species, chunk_size=chunk, return_stats=True)
        return x, log_q, stats.num_fn_evals

    return Job(
        jax.jit(fn),
        (dynamic, jax.random.key(SEED + 7)),
        count,
        "sample",
        {"solver": "dopri5", "rtol": 1e-5, "atol": 1e-5, "dtype": dtype, "chunk": chunk},
        summarise=lambda out: {"nfe": float(np.mean(out[2])), "log_q": float(out[1][0])},
    )


# ---------------------------------------------------------------------------- coupling flow
def coupling(spec, p: Problem) -> Job:
    """The local augmented coupling flow (`AugmentedCouplingFlow`, its defaults: 4 coupling
    pairs, conditioners of width 32, 8 spline bins), float32. `sample`: one sample with its
    aux-corrected log q (one forward pass), cutoff L/2, dense neighbour list; `log_prob`: the
    exact joint log q(x, a) of one given configuration (one inverse pass), same flow;
    `sample_cells`: `sample` with a cutoff of 2.5 (about 2.5 particle spacings at the IPL
    density) and a `CellNeighbourList` (16 per cell, 32 neighbours at most): the local,
    O(N) configuration, for large N. `train`: one maximum-likelihood step as `mflows train`
    takes it (`ml_loss` on a batch of 128 configurations with one auxiliary draw each, its
    gradient, Adam), with the IPL N = 10 config's 12 coupling pairs and `aux_scale`."""
    if spec["impl"] == "train":
        return _coupling_train(p)
    if spec["impl"] == "sample_cells":
        neighbours = mf.CellNeighbourList(capacity=16, max_neighbours=32)
        flow = mf.AugmentedCouplingFlow(
            p.space,
            p.num_species,
            cutoff=min(2.5, 0.5 * min(p.torus.lengths)),  # at most half the box (N = 10)
            neighbour_list=neighbours,
            key=jax.random.key(SEED),
            dtype=jnp.float32,
        )
    else:
        flow = mf.AugmentedCouplingFlow(
            p.space, p.num_species, key=jax.random.key(SEED), dtype=jnp.float32
        )
    dynamic, static = eqx.partition(flow, eqx.is_array)
    species, impl = p.species, spec["impl"]
    info = {"flow": "AugmentedCouplingFlow", "coupling_parameters": mf.count_parameters(flow)}
    if impl in ("sample", "sample_cells"):

        def draw(dynamic, key):
            return eqx.combine(dynamic, static).sample_and_log_prob(key, species)

        return Job(
            jax.jit(draw),
            (dynamic, jax.random.key(SEED + 5)),
            1,
            "sample",
            info,
            summarise=lambda out: {"log_q": float(out[1])},
        )
    if impl != "log_prob":
        raise ValueError(
            f"coupling has no implementation {impl!r} (sample, log_prob, sample_cells, train)."
        )
    x, a, _ = flow.sample_joint(jax.random.key(SEED + 6), species)

    def joint(dynamic, x, a):
        return eqx.combine(dynamic, static).log_prob_joint(x, a, species)

    return Job(jax.jit(joint), (dynamic, x, a), 1, "config", info)


COUPLING_TRAIN_BATCH = 128


def _coupling_train(p: Problem) -> Job:
    from manifold_flows._train.likelihood import ml_loss

    flow = mf.AugmentedCouplingFlow(
        p.space,
        p.num_species,
        num_layers=12,
        aux_scale=0.35,
        key=jax.random.key(SEED),
        dtype=jnp.float32,
    )
    dynamic, static = eqx.partition(flow, eqx.is_array)
    optimizer = optax.adam(1e-3)
    opt_state = optimizer.init(dynamic)
    keys = jax.random.split(jax.random.key(SEED + 7), COUPLING_TRAIN_BATCH)
    x = jax.vmap(lambda k: p.space.random_uniform(k, dtype=jnp.float32))(keys)

    def step(dynamic, opt_state, x, key):
        def loss(dynamic):
            return ml_loss(eqx.combine(dynamic, static), x, p.species, key)

        value, grads = jax.value_and_grad(loss)(dynamic)
        updates, opt_state = optimizer.update(grads, opt_state, dynamic)
        return optax.apply_updates(dynamic, updates), opt_state, value

    info = {"flow": "AugmentedCouplingFlow", "coupling_parameters": mf.count_parameters(flow)}
    info["batch"] = COUPLING_TRAIN_BATCH
    return Job(
        jax.jit(step),
        (dynamic, opt_state, x, jax.random.key(SEED + 8)),
        1,
        "step",
        info,
        summarise=lambda out: {"loss": float(out[2])},
    )


PATHS: dict[str, Callable[[dict, Problem], Job]] = {
    "forward": forward,
    "train": train,
    "train_step": train_step,
    "divergence": divergence,
    "scaling": divergence,  # the divergence at large N (memory study)
    "sample": sample,
    "sample_batch": sample_batch,
    "kernel": kernel,
    "coupling": coupling,
}


def build(spec: dict[str, Any]) -> Job:
    p = problem(spec)
    job = PATHS[spec["path"]](spec, p)
    job.info.update(
        num_particles=p.n,
        num_species=p.num_species,
        parameters=mf.count_parameters(p.field),
    )
    return job
