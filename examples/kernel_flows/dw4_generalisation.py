"""DW4 generalisation experiment: train on ONE metastable state, count the states generated.

Three flows are trained by flow matching (linear interpolant, independent pairs of base and
data points) on Monte Carlo configurations of DW4 (4 particles in 2D, double-well pair
potential, T = 1) that all lie in one state, then sampled with exact log-densities:

- the kernel flow (`KernelField`, Euclidean; closed-form divergence on ZeroCenterOfMass),
- the Euclidean EGNN (`EuclideanEGNN`),
- a non-equivariant baseline: an MLP on the flattened coordinates (mean velocity removed),

each with the library's training step (`train_step`, base points from `CenteredGaussianBase`).

Order parameter. Every DW4 pair distance sits in one of the two wells of the pair potential,
short (r ~ 2.5) or long (r ~ 5.5); the barrier between them is at r = d0 = 4, so `r < d0`
says which well a pair is in, and the set of short pairs (a graph on the 4 particles) is the
state of a configuration. Monte Carlo at T = 1 spends most of its time in two shapes:

- "triangle + 1": four short pairs, three of them a triangle and the fourth attaching the
  remaining particle to one corner (12 labelled patterns: which particle is left out of the
  triangle, and which corner it binds to);
- "V": two short pairs sharing a particle, the fourth particle far from all three (12
  labelled patterns: the middle particle and its two neighbours).

The labelled patterns of one shape are the same state with the particle labels permuted; the
two shapes are different metastable states (the other must cross pair barriers). The training
set keeps only ONE labelled pattern of "triangle + 1" (short pairs 02, 12, 13, 23). A flow whose
density is invariant under permutations must give the 11 other patterns of the shape the
probability of the trained one; reaching the "V" shape needs more than symmetry.

Usage:
    python examples/kernel_flows/dw4_generalisation.py --quick      # minutes: a smoke run
    python examples/kernel_flows/dw4_generalisation.py              # the numbers in docs/
"""

import argparse
import json
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import manifold_flows as mf  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STATES = ("trained pattern", "permuted copies", "V shape", "other")
PAIRS = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
#: the trained pattern: short pairs 02, 12, 13, 23 (triangle 1-2-3, particle 0 bound to 2)
TRAINED = frozenset({(0, 2), (1, 2), (1, 3), (2, 3)})


# ------------------------------------------------------------------------ order parameter
def pair_distances(x: np.ndarray) -> np.ndarray:
    """`(R, 6)` pair distances of `(R, 4, 2)` configurations, in the order of PAIRS."""
    return np.stack([np.linalg.norm(x[:, i] - x[:, j], axis=-1) for i, j in PAIRS], axis=1)


def shape_of(short: frozenset) -> str:
    """ "triangle + 1", "V" or "other" for a set of short pairs (see the module docstring)."""
    if len(short) == 2:
        (a, b), (c, d) = sorted(short)
        return "V" if len({a, b} & {c, d}) == 1 else "other"
    if len(short) == 4:
        triangles = [
            t
            for t in ((0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3))
            if {(t[0], t[1]), (t[0], t[2]), (t[1], t[2])} <= short
        ]
        return "triangle + 1" if len(triangles) == 1 else "other"
    return "other"


def state_labels(x: np.ndarray, d0: float = 4.0) -> np.ndarray:
    """The state of each configuration, an index into STATES (see the module docstring)."""
    short = pair_distances(x) < d0
    labels = np.empty(len(x), dtype=int)
    for k, row in enumerate(short):
        pattern = frozenset(p for p, s in zip(PAIRS, row, strict=True) if s)
        shape = shape_of(pattern)
        if pattern == TRAINED:
            labels[k] = 0
        elif shape == "triangle + 1":
            labels[k] = 1
        elif shape == "V":
            labels[k] = 2
        else:
            labels[k] = 3
    return labels


def state_fractions(labels: np.ndarray) -> dict[str, float]:
    counts = np.bincount(labels, minlength=len(STATES))
    return {s: float(c) / len(labels) for s, c in zip(STATES, counts, strict=True)}


# --------------------------------------------------------------------------- the fields
class FlatMLP(mf.AbstractVectorField):
    """The non-equivariant baseline: an MLP of `(x flattened, t)`, its output reshaped to
    `(n, d)` with the mean over particles removed (a tangent vector of ZeroCenterOfMass)."""

    net: eqx.nn.MLP

    def __init__(self, num_particles: int, dim: int, *, width: int, depth: int, key):
        size = num_particles * dim
        self.net = eqx.nn.MLP(size + 1, size, width, depth, activation=jax.nn.silu, key=key)

    def __call__(self, t, x, args):
        inputs = jnp.concatenate([x.reshape(-1), jnp.reshape(t, (1,)).astype(x.dtype)])
        v = self.net(inputs).reshape(x.shape)
        return v - jnp.mean(v, axis=0, keepdims=True)


def build_fields(key) -> dict[str, eqx.Module]:
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "kernel": mf.KernelField(mf.Euclidean(2), 1, cutoff=10.0, num_kernels=32, width=32, key=k1),
        "egnn": mf.EuclideanEGNN(2, 1, width=32, depth=3, key=k2),
        "mlp": FlatMLP(4, 2, width=128, depth=3, key=k3),
    }


# ------------------------------------------------------------------------------ training
def train(field, data: np.ndarray, base, *, steps: int, batch: int, lr: float, key):
    """Flow matching with the library's training step (`train_step`): `x0 ~ base`, `x1` from
    the data, independent pairs, `t ~ U(0, 1)`, the linear interpolant; Adam with gradient
    clipping 5 and an EMA of the weights (decay 0.999). Returns the EMA field and the losses."""
    species = jnp.zeros(4, jnp.int32)
    optimizer = mf.make_optimizer(mf.TrainConfig(lr=lr, clip=5.0), steps)
    k_state, k_data = jax.random.split(key)
    state = mf.init_train_state(field, optimizer, key=k_state)
    data = jnp.asarray(data)
    strategies = dict(
        interpolant=mf.LinearInterpolant(),
        coupling=mf.IndependentCoupling(),
        base=base,
        optimizer=optimizer,
        ema_decay=0.999,
    )
    losses = []
    for i, k in enumerate(jax.random.split(k_data, steps)):
        x1 = data[jax.random.randint(k, (batch,), 0, data.shape[0])]
        state, metrics = mf.train_step(state, x1, species, **strategies)
        losses.append(float(metrics["loss"]))
        if (i + 1) % max(1, steps // 10) == 0:
            print(f"    step {i + 1}/{steps}: loss {np.mean(losses[-100:]):.4f}", flush=True)
    return state.ema_params, losses


# ---------------------------------------------------------------------------- evaluation
def evaluate(flow, system, num_samples: int, key) -> dict:
    species = jnp.asarray(system.species)
    start = time.process_time()
    x, log_q = mf.sample(flow, key, num_samples, species)
    seconds = time.process_time() - start
    x, log_q = np.asarray(x), np.asarray(log_q)
    energy = np.asarray(jax.vmap(lambda y: system.energy(y, species))(jnp.asarray(x)))
    weights = mf.reweight(energy, log_q, system.default_temperature)
    finite = np.isfinite(energy)
    labels = state_labels(x)
    # The states' Boltzmann probabilities as the reweighted flow estimates them: a state the
    # flow never samples gets 0 whatever its weight should be (the ESS cannot see it).
    onehot = (labels[:, None] == np.arange(len(STATES))[None, :]).astype(float)
    reweighted = np.asarray(mf.weighted_mean(onehot, weights))
    return {
        "x": x,
        "labels": labels,
        "reweighted_states": dict(zip(STATES, reweighted.tolist(), strict=True)),
        "energy": energy,
        "raw_mean_energy": float(np.mean(energy[finite])),
        "reweighted_mean_energy": float(mf.weighted_mean(energy, weights)),
        "ess": float(weights.ess),
        "ess_fraction": float(weights.ess_fraction),
        "khat": float(weights.khat),
        "cpu_seconds_per_sample": seconds / num_samples,
    }


def plot(results: dict, mc: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["MC (all)", "MC (training set)", *results]
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
    for ax, key, title in (
        (axes[0], None, "raw samples"),
        (axes[1], "reweighted_states", "reweighted to the Boltzmann distribution"),
    ):
        fractions = [mc["fractions"], mc["train_fractions"]]
        fractions += [
            state_fractions(r["labels"]) if key is None else r[key] for r in results.values()
        ]
        width = 0.8 / len(names)
        for k, (name, frac) in enumerate(zip(names, fractions, strict=True)):
            heights = [frac[s] for s in STATES]
            ax.bar(np.arange(len(STATES)) + k * width, heights, width, label=name)
        ax.set_xticks(np.arange(len(STATES)) + 0.4 - width / 2, STATES)
        ax.set_title(f"DW4 states, trained on one pattern: {title}", fontsize=9)
    axes[0].set_ylabel("fraction of samples")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "dw4-states.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.6))
    bins = np.linspace(-30, 0, 61)
    ax.hist(mc["energy"], bins, density=True, histtype="step", color="k", label="MC")
    for name, r in results.items():
        e = r["energy"][np.isfinite(r["energy"])]
        ax.hist(e, bins, density=True, histtype="step", label=f"{name} (raw)")
    ax.set_xlabel("U")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "dw4-energies.png", dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run (minutes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="folder for figures and JSON")
    args = parser.parse_args()
    out = args.out or (
        Path("kernel_flows_quick") if args.quick else ROOT / "docs" / "images" / "kernel-flows"
    )
    out.mkdir(parents=True, exist_ok=True)
    steps = 300 if args.quick else 5000
    num_samples = 100 if args.quick else 2000
    chains, per_chain = (8, 500) if args.quick else (32, 2500)
    key = jax.random.key(args.seed)
    k_mc, k_fields, k_train, k_sample = jax.random.split(key, 4)

    system = mf.get_cluster_system("dw4")
    print(f"Monte Carlo: {chains} chains x {per_chain} samples", flush=True)
    run = mf.cluster_monte_carlo(
        system.energy,
        temperature=system.default_temperature,
        num_particles=system.num_particles,
        num_chains=chains,
        num_samples=per_chain,
        sweeps_per_sample=5,
        burn_in_sweeps=500,
        displacement=system.displacement,
        key=k_mc,
        spacing=3.0,
    )
    x_mc = run.flat_positions()
    labels_mc = state_labels(x_mc)
    train_set = x_mc[labels_mc == 0]
    mc = {
        "fractions": state_fractions(labels_mc),
        "train_fractions": state_fractions(state_labels(train_set)),
        "energy": run.flat_energies(),
        "mean_energy": run.mean_energy,
        "mean_energy_error": run.mean_energy_error,
        "acceptance_rate": run.acceptance_rate,
        "tau_energy_samples": run.tau_energy,
        "num_samples": len(x_mc),
        "num_train": len(train_set),
    }
    print(
        f"  <U> = {run.mean_energy:.3f} +- {run.mean_energy_error:.3f}, acceptance "
        f"{run.acceptance_rate:.2f}; states {mc['fractions']}; training set {len(train_set)}"
    )

    scale = float(np.sqrt(np.mean(np.sum(train_set**2, axis=(1, 2))) / system.space.dim))
    base = mf.CenteredGaussianBase(system.space, scale)
    results = {}
    for (name, field), k_t, k_s in zip(
        build_fields(k_fields).items(),
        jax.random.split(k_train, 3),
        jax.random.split(k_sample, 3),
        strict=True,
    ):
        print(f"{name}: training {steps} steps", flush=True)
        start = time.process_time()
        trained, losses = train(field, train_set, base, steps=steps, batch=256, lr=1e-3, key=k_t)
        train_seconds = time.process_time() - start
        flow = mf.ContinuousFlow(system.space, trained, base=base)
        print(f"{name}: sampling {num_samples} ({type(flow.divergence).__name__})", flush=True)
        r = evaluate(flow, system, num_samples, k_s)
        r["final_loss"] = float(np.mean(losses[-200:]))
        r["train_cpu_seconds"] = train_seconds
        r["divergence"] = type(flow.divergence).__name__
        r["num_parameters"] = int(mf.count_parameters(trained))
        results[name] = r
        print(
            f"  states {state_fractions(r['labels'])}\n  ESS {r['ess']:.1f} / {num_samples}, "
            f"<U> raw {r['raw_mean_energy']:.3f}, reweighted {r['reweighted_mean_energy']:.3f}"
        )

    plot(results, mc, out)
    summary = {
        "quick": args.quick,
        "seed": args.seed,
        "steps": steps,
        "num_flow_samples": num_samples,
        "base_scale": scale,
        "mc": {k: v for k, v in mc.items() if k != "energy"},
        "flows": {
            name: {
                "states": state_fractions(r["labels"]),
                **{k: v for k, v in r.items() if k not in ("x", "labels", "energy")},
            }
            for name, r in results.items()
        },
    }
    (out / "dw4-summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
