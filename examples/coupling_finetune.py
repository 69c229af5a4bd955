"""Fine-tune a trained coupling-flow run and measure what it changed (docs/howto/coupling-flow.md,
"Train with several draws").

Three commands:

    # continue training RUN's flow with other settings (any [train] field), into OUT
    python examples/coupling_finetune.py finetune RUN OUT DATA objective=mixed \\
        energy_weight=0.5 energy_max_force=30.0 lr=2e-4 epochs=3
    python examples/coupling_finetune.py finetune OUT OUT2 DATA aux_draws=8 lr=2e-4 \\
        batch_size=64 epochs=1 --like RUN

    # ESS, k-hat and reweighted u/N of R flow samples weighted with K auxiliary draws
    python examples/coupling_finetune.py ess OUT2 --like RUN -R 10000 -K 8 --seed 0

    # -log q~_K on M Monte Carlo configurations for K = 1, 4, 16, 64, and the hot share:
    # the fraction of 2000 flow samples with more than twice their mean energy
    python examples/coupling_finetune.py bounds OUT2 REFERENCE --like RUN

    # with an independent log Z (examples/free_energy/absolute_ti.py), both also report KL
    # divergences: `bounds` the forward KL of the K-draw model, E_p[log p(x) - log q~_K], an
    # upper bound on that of the x-marginal, and exp(-KL), the ceiling of its ESS / R for
    # large R; `ess` an upper bound on the reverse KL of the x-marginal
    python examples/coupling_finetune.py bounds RUN REFERENCE --log-z -34.383

A run fine-tuned here trained a flow passed in from Python, so loading it needs the original
run (`--like RUN`) for the flow's structure. The system and temperature are the run's. From
the command line, the same fine-tunes are warm starts (`[train] init_from`, e.g.
`examples/configs/coupling_ipl_n10_energy.toml`); `ess` and `bounds` measure those runs too
(without `--like`).
"""

import argparse
import ast
import json
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

import manifold_flows as mf
from manifold_flows._train.config import TrainConfig
from manifold_flows._train.fit_likelihood import fit_likelihood
from manifold_flows._train.likelihood import draw_with_energy


def _load(run_dir, like):
    if like is None:
        return mf.load_run(run_dir)
    return mf.load_run(run_dir, like=mf.load_run(like).field)


def _system(run, like):
    """The run's system and temperature (a fine-tuned run records those of its data)."""
    source = run if run.system is not None else mf.load_run(like)
    return mf.get_system(source.system), float(source.temperature)


def finetune(args):
    run = _load(args.run, args.like)
    settings = dict(
        objective="ml", lr=1e-4, batch_size=128, epochs=3, schedule="cosine", clip=5.0,
        ema_decay=0.99, val_num_samples=0, log_every=10, dtype="float32",
    )  # fmt: skip
    for item in args.settings:
        name, _, text = item.partition("=")
        try:
            settings[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            settings[name] = text
    data = mf.load_configurations(args.data)
    system, temperature = _system(run, args.like)
    start = time.time()
    result = fit_likelihood(
        mf.flow_for_run(run, dtype="float32"),
        data,
        config=TrainConfig(**settings),
        system=system,
        temperature=temperature,
        run_dir=args.out,
        progress=False,
    )
    print(json.dumps({
        "minutes": (time.time() - start) / 60,
        "val_loss_before": result.initial_val_loss,
        "val_loss_after": result.val_loss,
    }))  # fmt: skip


def ess(args):
    run = _load(args.run, args.like)
    system, temperature = _system(run, args.like)
    flow = mf.flow_for_run(run, dtype="float32")
    if args.K > 1:
        flow = mf.MultiAuxFlow(flow, args.K)
    species = jnp.asarray(run.species)
    start, log_q, u = time.time(), [], []
    for first in range(0, args.R, 500):
        idx = jnp.arange(first, min(first + 500, args.R))
        keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(args.seed), i))(idx)
        lq, energies = draw_with_energy(flow, system.energy, species, keys)
        log_q.append(np.asarray(lq, np.float64))
        u.append(np.asarray(energies, np.float64))
    log_q, u = np.concatenate(log_q), np.concatenate(u)
    weights = mf.reweight(u, log_q, temperature)
    n = len(species)
    per_particle = mf.summarize_observable(u / n, weights.log_w, num_bootstrap=200)
    print(json.dumps({
        "R": args.R, "K": args.K, "seed": args.seed, "ess": weights.ess,
        "ess_fraction": weights.ess_fraction, "khat": weights.khat,
        "u": per_particle.reweighted, "u_err": per_particle.reweighted_err,
        "log_z_is": weights.log_z, **_reverse_kl(args.log_z, log_q, u, temperature),
        "seconds": time.time() - start,
    }, default=float))  # fmt: skip


def _reverse_kl(log_z, log_q, u, temperature):
    """An upper bound on KL(q_x || p) given an independent log Z (absolute_ti.py): the joint
    KL(q(x, a) || p(x) p_aux(a | x)) = E_q[log q~ + U / T] + log Z."""
    if log_z is None:
        return {}
    return {"reverse_kl_bound": float(np.mean(log_q + u / temperature) + log_z)}  # inf if any U is


def bounds(args):
    run = _load(args.run, args.like)
    system, temperature = _system(run, args.like)
    flow = mf.flow_for_run(run, dtype="float32")
    species = jnp.asarray(run.species)
    ref = mf.load_configurations(args.reference)
    count = min(args.M, len(ref.energy))
    idx = np.random.default_rng(0).choice(len(ref.energy), count, replace=False)
    draws = 64

    def terms(x, key):
        aux = jax.vmap(lambda k: flow.sample_aux(k, x, species))(jax.random.split(key, draws))
        joint = jax.vmap(lambda a: flow.log_prob_joint(x, a, species))(aux)
        return joint - jax.vmap(lambda a: flow.aux_log_prob(a, x, species))(aux)

    batched = jax.jit(jax.vmap(terms))
    x = jnp.asarray(ref.positions[idx], jnp.float32)
    t = np.concatenate([
        np.asarray(batched(x[i : i + 50], jax.random.split(jax.random.key(i), len(x[i : i + 50]))))
        for i in range(0, len(x), 50)
    ])  # fmt: skip
    out = {}
    for k in (1, 4, 16, 64):
        log_q = jax.scipy.special.logsumexp(t[:, :k], axis=1) - math.log(k)
        out[f"nll_K{k}"] = float(-np.mean(log_q))
    out["aux_scatter_median"] = float(np.median(t.std(axis=1)))
    if args.log_z is not None:  # KL(p || q_x) <= E_p[-log q~_K] - E_p[U] / T - log Z
        log_p = -ref.energy[idx] / temperature - args.log_z  # paired with log q~ on the same x
        for k in (1, 4, 16, 64):
            log_q = jax.scipy.special.logsumexp(t[:, :k], axis=1) - math.log(k)
            gap = log_p - np.asarray(log_q, np.float64)
            out[f"forward_kl_bound_K{k}"] = float(np.mean(gap))
            out[f"forward_kl_bound_K{k}_err"] = float(np.std(gap, ddof=1) / math.sqrt(count))
            # ESS / R -> exp(-D_2(P || Q)) <= exp(-KL(P || Q)) for large R, P = p(x) p_aux^K
            out[f"ess_fraction_ceiling_K{k}"] = math.exp(-out[f"forward_kl_bound_K{k}"])
    keys = jax.random.split(jax.random.key(99), 2000)
    u = np.asarray(draw_with_energy(flow, system.energy, species, keys)[1])
    out["hot_share"] = float(np.mean(u > 2 * np.mean(ref.energy[idx])))
    out["temperature"] = temperature
    print(json.dumps(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("finetune")
    p.add_argument("run")
    p.add_argument("out")
    p.add_argument("data")
    p.add_argument("settings", nargs="*", help="[train] fields, name=value")
    p.add_argument("--like", default=None)
    p.set_defaults(func=finetune)
    p = commands.add_parser("ess")
    p.add_argument("run")
    p.add_argument("--like", default=None)
    p.add_argument("-R", type=int, default=10000)
    p.add_argument("-K", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-z", type=float, default=None, help="log Z from absolute_ti.py")
    p.set_defaults(func=ess)
    p = commands.add_parser("bounds")
    p.add_argument("run")
    p.add_argument("reference")
    p.add_argument("--like", default=None)
    p.add_argument("-M", type=int, default=300)
    p.add_argument("--log-z", type=float, default=None, help="log Z from absolute_ti.py")
    p.set_defaults(func=bounds)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
