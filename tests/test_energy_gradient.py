"""The two estimators of the energy objective's gradient (`energy_gradient` "path" and
"total"): same expectation, and the path estimator's per-sample gradient vanishes where the
flow equals the target. Planted bugs show that both checks can fail."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import manifold_flows as mf
from manifold_flows._flow.augmented import AugmentedCouplingFlow
from manifold_flows._train import likelihood as likelihood_module
from manifold_flows._train.config import TrainConfig
from manifold_flows._train.likelihood import energy_loss

BOX = 4.0


def _flow(init_scale, seed=0, num_particles=3):
    space = mf.ParticleSpace(mf.FlatTorus((BOX, BOX)), num_particles)
    return AugmentedCouplingFlow(
        space,
        2,
        num_layers=2,
        width=8,
        channels=2,
        num_rbf=4,
        num_bins=4,
        aux_scale=0.5,
        init_scale=init_scale,
        dtype=jnp.float64,
        key=jax.random.key(seed),
    )


SPECIES = jnp.array([0, 1, 1])


def _soft_pair_energy(x, species):
    """A smooth periodic pair energy with no singularity (the test is about the estimator)."""
    delta = x[:, None, :] - x[None, :, :]
    pair = jnp.sum(jnp.cos(2 * jnp.pi * delta / BOX), axis=-1)
    return 0.5 * jnp.sum(jnp.where(jnp.eye(x.shape[0], dtype=bool), 0.0, pair))


def _per_sample_gradients(flow, energy, gradient, num, seed):
    """Flattened per-sample gradients of the one-sample energy loss, `(num, P)`."""
    params, static = eqx.partition(flow, eqx.is_inexact_array)

    def one(p, key):
        loss, _ = energy_loss(
            eqx.combine(p, static),
            energy,
            SPECIES,
            key,
            batch_size=1,
            temperature=1.0,
            cap=1e6,
            gradient=gradient,
        )
        return loss

    grad = jax.jit(jax.vmap(jax.grad(one), in_axes=(None, 0)))
    tree = grad(params, jax.random.split(jax.random.key(seed), num))
    leaves = jax.tree.leaves(tree)
    return np.concatenate([np.asarray(leaf).reshape(num, -1) for leaf in leaves], axis=1)


def test_path_gradient_vanishes_where_the_flow_is_the_target():
    """An identity flow is exactly q(x, a) = uniform(x) p_aux(a | x), the augmented target of a
    constant energy: every path-gradient sample is zero; total-gradient samples are not (the
    score term), though they average to zero."""
    flow = _flow(init_scale=0.0)
    energy = lambda x, species: jnp.zeros((), x.dtype)
    path = _per_sample_gradients(flow, energy, "path", 64, seed=1)
    total = _per_sample_gradients(flow, energy, "total", 64, seed=1)
    assert np.max(np.abs(path)) < 1e-9, np.max(np.abs(path))
    assert np.max(np.abs(total)) > 1e-2, np.max(np.abs(total))


NUM = 1024


@pytest.fixture(scope="module")
def total_gradients():
    """A non-trivial flow, a unit direction (the mean total gradient of an independent draw)
    and the total per-sample gradients projected on it."""
    flow = _flow(init_scale=1.0)
    direction = _per_sample_gradients(flow, _soft_pair_energy, "total", 256, seed=11).mean(0)
    direction /= np.linalg.norm(direction)
    total = _per_sample_gradients(flow, _soft_pair_energy, "total", NUM, seed=3) @ direction
    return flow, direction, total


def _difference_z_score(flow, direction, total):
    """z-score of the mean of (total - path) per-sample gradients on the same samples,
    projected on `direction`: 0 in expectation iff the two estimators agree in expectation."""
    path = _per_sample_gradients(flow, _soft_pair_energy, "path", NUM, seed=3) @ direction
    diff = total - path
    return float(np.mean(diff) / (np.std(diff) / np.sqrt(NUM)))


def test_path_and_total_gradients_agree_in_expectation(total_gradients):
    """Same samples, two estimators: their difference (the score term) has mean zero."""
    flow, direction, total = total_gradients
    z = _difference_z_score(flow, direction, total)
    assert abs(z) < 4, z
    # the gradient itself is clearly non-zero along the direction
    assert abs(np.mean(total)) > 4 * np.std(total) / np.sqrt(NUM)


def test_a_biased_path_gradient_is_caught(total_gradients, monkeypatch):
    """Planted bug: the log-density evaluated with the sample held fixed as well (only U/T is
    differentiated) drops a term of non-zero mean; the z-score exposes it."""
    path_fn = likelihood_module._path_sample_and_log_prob

    def biased(flow, key, species):
        x, log_q = path_fn(flow, key, species)
        return x, jax.lax.stop_gradient(log_q)

    monkeypatch.setattr(likelihood_module, "_path_sample_and_log_prob", biased)
    z = _difference_z_score(*total_gradients)
    assert abs(z) > 8, z


def test_energy_gradient_option():
    with pytest.raises(ValueError, match="energy_gradient must be one of path, total"):
        TrainConfig(objective="energy", energy_gradient="score")
    assert TrainConfig(objective="energy").to_dict()["energy_gradient"] == "path"
    # no energy term, no estimator: maximum-likelihood records stay as they were
    assert "energy_gradient" not in TrainConfig(objective="ml").to_dict()
    with pytest.raises(ValueError, match="gradient must be one of path, total"):
        energy_loss(
            _flow(0.0),
            _soft_pair_energy,
            SPECIES,
            jax.random.key(0),
            batch_size=2,
            temperature=1.0,
            cap=1e6,
            gradient="bogus",
        )
