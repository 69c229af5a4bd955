"""`MultiAuxFlow`: the mean of K auxiliary draws in log q~, exact for every K.

Known answer: with U = 0 the importance weights must give Z = V^N; with the 1/K of the mean
left out (a planted bug) they are off by log K. The K-draw estimate scatters less over the
auxiliary draws than one draw, and K = 1 is the flow itself."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import manifold_flows as mf
from manifold_flows._flow.augmented import multi_aux as multi_aux_module

L, N, D = 2.5, 4, 2
SPECIES = jnp.array([0, 1, 0, 1])


@pytest.fixture(scope="module")
def flow():
    space = mf.ParticleSpace(mf.FlatTorus(L, dim=D), N)
    return mf.AugmentedCouplingFlow(space, 2, num_layers=1, num_bins=6, width=16, channels=4,
                                    num_rbf=8, init_scale=0.3, key=jax.random.key(10))  # fmt: skip


def _log_z(model, count=2000):
    keys = jax.random.split(jax.random.key(6), count)
    _, log_q = eqx.filter_jit(jax.vmap(lambda k: model.sample_and_log_prob(k, SPECIES)))(keys)
    result = mf.reweight(np.zeros(count), np.asarray(log_q), 1.0)
    return result.log_z, result.log_z_err


@pytest.mark.parametrize("num_aux", [1, 4])
def test_weights_of_k_draws_give_the_right_log_z(flow, num_aux):
    log_z, err = _log_z(mf.MultiAuxFlow(flow, num_aux))
    assert abs(log_z - N * D * math.log(L)) < 4 * err + 1e-3, (log_z, err)


def test_log_z_check_catches_a_sum_in_place_of_the_mean(flow, monkeypatch):
    monkeypatch.setattr(multi_aux_module.math, "log", lambda k: 0.0)  # drops the 1/K
    log_z, err = _log_z(mf.MultiAuxFlow(flow, 4))
    assert abs(log_z - N * D * math.log(L)) > 4 * err + 1.0


def test_k_draws_scatter_less_and_one_draw_is_the_flow(flow):
    x = flow.space.random_uniform(jax.random.key(1))
    keys = jax.random.split(jax.random.key(2), 256)

    # compiled: run op by op, the 256 x 16 draws take minutes
    @eqx.filter_jit
    def scatter(model):
        return jnp.std(jax.vmap(lambda k: model.log_prob(x, SPECIES, key=k))(keys))

    one, many = float(scatter(mf.MultiAuxFlow(flow, 1))), float(scatter(mf.MultiAuxFlow(flow, 16)))
    assert one > 0.05 and many < 0.5 * one, (one, many)
    # K = 1: the joint density is the flow's, and the slots carry the flow's auxiliaries
    a = flow.sample_aux(jax.random.key(3), x, SPECIES)
    single = mf.MultiAuxFlow(flow, 1)
    joint = eqx.filter_jit(lambda model, y, aux: model.log_prob_joint(y, aux, SPECIES))
    np.testing.assert_allclose(joint(single, x, a[None]), joint(flow, x, a), atol=1e-12)
    triple = mf.MultiAuxFlow(flow, 3)
    x2, aux, log_q = eqx.filter_jit(lambda m: m.sample_joint(jax.random.key(4), SPECIES))(triple)
    assert aux.shape == (3, N, D)
    np.testing.assert_allclose(log_q, joint(triple, x2, aux), atol=1e-9)


def test_refuses_what_it_cannot_average(flow):
    with pytest.raises(ValueError, match="positive integer"):
        mf.MultiAuxFlow(flow, 0)
    # (the run-time type check of the tests may answer before the class's own message)
    with pytest.raises(TypeError, match=r"augmented flow|AbstractAugmentedLikelihood"):
        mf.MultiAuxFlow(mf.MultiAuxFlow(flow, 2).flow.base, 2)
