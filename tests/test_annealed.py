"""Annealed importance sampling from an augmented flow: exact weights for any flow.

Known answer: particles in the external potential `U = k sum (1 - cos(2 pi x / L))` on a
2D torus, `log Z = N d (log L - k/T + log I0(k/T))` and `<U> = N d k (1 - I1/I0)`. A poor
(random) flow's own weights are carried by a handful of samples; annealed ones give log Z
and <U> within their errors with a larger ESS. Planted bugs (Langevin moves without the
Metropolis test; the weight increment taken after a move that targets the next stage) are
caught by the same checks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import i0e, i1e

import manifold_flows as mf
from manifold_flows._mc import annealed as annealed_module

L, N, D, K, T = 2.5, 4, 2, 1.5, 1.0
SPECIES = jnp.array([0, 1, 0, 1])
KAPPA = K / T
LOG_Z = N * D * (math.log(L) + math.log(i0e(KAPPA)))
MEAN_U = N * D * K * (1 - i1e(KAPPA) / i0e(KAPPA))
R = 1000


def energy(x, species):
    return K * jnp.sum(1 - jnp.cos(2 * jnp.pi * x / L))


@pytest.fixture(scope="module")
def flow():
    space = mf.ParticleSpace(mf.FlatTorus(L, dim=D), N)
    return mf.AugmentedCouplingFlow(space, 2, num_layers=1, num_bins=6, width=16, channels=4,
                                    num_rbf=8, init_scale=0.3, key=jax.random.key(10))  # fmt: skip


def _run(flow, steps, *, betas=None, seed=1, steps_per_stage=3, coordinates="auto", count=R):
    betas = mf.annealing_ladder(24) if betas is None else betas
    return mf.annealed_importance_sample(
        flow, energy, SPECIES, jax.random.key(seed), count, temperature=T, betas=betas,
        step_sizes=steps, steps_per_stage=steps_per_stage, chunk_size=500,
        coordinates=coordinates,
    )  # fmt: skip


def _errors(samples):
    """Deviations of log Z and <U> from the exact values, in standard errors."""
    result = mf.reweight(samples.energy, samples.log_q, T)
    mean_u = mf.summarize_observable(samples.energy, samples.log_w, num_bootstrap=200)
    return (
        (result.log_z - LOG_Z) / result.log_z_err,
        (mean_u.reweighted - MEAN_U) / mean_u.reweighted_err,
        result.ess,
    )


def _tuned(flow, coordinates="auto"):
    ladder = mf.annealing_ladder(24)
    key = jax.random.key(99)  # not a key of the runs the sizes are used in
    return mf.tune_step_sizes(flow, energy, SPECIES, key, temperature=T, betas=ladder,
                              steps_per_stage=3, initial=0.02, coordinates=coordinates)  # fmt: skip


@pytest.fixture(scope="module")
def steps(flow):
    return _tuned(flow)


@pytest.mark.parametrize("coordinates", ["latent", "direct"])
def test_annealed_weights_give_the_exact_log_z_and_mean_energy(flow, coordinates):
    samples = _run(flow, _tuned(flow, coordinates), coordinates=coordinates)
    assert samples.coordinates == coordinates
    z_log_z, z_u, ess = _errors(samples)
    assert abs(z_log_z) < 4 and abs(z_u) < 4, (z_log_z, z_u)
    flow_only = mf.reweight(samples.energy, -samples.energy / T - samples.log_w_flow, T)
    assert ess > 1.3 * flow_only.ess, (ess, flow_only.ess)  # the point of annealing
    assert np.all((samples.acceptance > 0.3) & (samples.acceptance < 0.9)), samples.acceptance
    assert samples.positions.shape == (R, N, D)
    assert np.all((samples.positions >= 0) & (samples.positions < L))
    np.testing.assert_allclose(samples.energy, jax.vmap(lambda x: energy(x, SPECIES))(
        jnp.asarray(samples.positions, jnp.float32)), rtol=1e-4)  # fmt: skip


@pytest.mark.parametrize("num_aux", [1, 3])
def test_one_stage_is_the_flow_itself(flow, num_aux):
    model = flow if num_aux == 1 else mf.MultiAuxFlow(flow, num_aux)
    samples = _run(model, 0.01, betas=[0.0, 1.0])
    np.testing.assert_allclose(samples.log_w, samples.log_w_flow, rtol=1e-4, atol=1e-3)
    assert samples.acceptance.size == 0 and samples.evaluations == 2
    assert samples.coordinates == ("latent" if num_aux == 1 else "direct")


def test_several_auxiliary_draws_anneal_on_x_and_all_draws(flow):
    samples = _run(mf.MultiAuxFlow(flow, 3), 0.02, betas=mf.annealing_ladder(3), count=256)
    assert samples.positions.shape == (256, N, D) and np.all(np.isfinite(samples.log_w))
    assert np.all(samples.acceptance > 0.2), samples.acceptance


def test_results_do_not_depend_on_the_chunk_size(flow, steps):
    betas = mf.annealing_ladder(4)
    one = mf.annealed_importance_sample(flow, energy, SPECIES, jax.random.key(3), 10,
                                        temperature=T, betas=betas, step_sizes=steps[:3],
                                        chunk_size=10)  # fmt: skip
    two = mf.annealed_importance_sample(flow, energy, SPECIES, jax.random.key(3), 10,
                                        temperature=T, betas=betas, step_sizes=steps[:3],
                                        chunk_size=4)  # fmt: skip
    np.testing.assert_allclose(one.log_w, two.log_w, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(one.positions, two.positions, atol=1e-5)


@pytest.fixture
def fresh_traces():
    """A planted bug must reach the compiled function: drop the cached traces before and
    after (the patched helpers are looked up when the chunk is traced)."""
    jax.clear_caches()
    yield
    jax.clear_caches()


def test_langevin_moves_without_the_metropolis_test_are_caught(flow, fresh_traces, monkeypatch):
    monkeypatch.setattr(annealed_module, "_metropolis", lambda key, log_ratio: True)
    z_log_z, z_u, _ = _errors(_run(flow, 0.12))
    assert max(abs(z_log_z), abs(z_u)) > 4, (z_log_z, z_u)


def test_weights_taken_after_moving_to_the_next_stage_are_caught(
    flow, steps, fresh_traces, monkeypatch
):
    real = annealed_module._mala_step

    def ahead(dens, key, state, beta, step, box):  # moves for a rung further on
        return real(dens, key, state, jnp.minimum(beta + 0.25, 1.0), step, box)

    monkeypatch.setattr(annealed_module, "_mala_step", ahead)
    z_log_z, z_u, _ = _errors(_run(flow, steps))
    assert max(abs(z_log_z), abs(z_u)) > 4, (z_log_z, z_u)


@pytest.mark.parametrize("images", [2, 0])
def test_wrapped_proposal_density_is_normalised_on_the_torus(images, monkeypatch):
    """At the largest allowed step (L^2 / 26) the proposal density must integrate to one over
    the circle; the minimum image alone (a planted bug) misses 1 % of it."""
    monkeypatch.setattr(annealed_module, "_IMAGES", images)
    h = L**2 / 26
    grid = jnp.linspace(-L / 2, L / 2, 4001)
    box = jnp.asarray([L])
    kernel = annealed_module._wrapped_log_kernel
    log_k = jax.vmap(lambda t: kernel(t[None], jnp.asarray(h), box))(grid)
    mass = np.trapezoid(np.exp(np.asarray(log_k)), np.asarray(grid)) / math.sqrt(4 * math.pi * h)
    if images:
        assert abs(mass - 1) < 1e-9, mass
    else:
        assert abs(mass - 1) > 1e-3, mass


def test_refuses_what_it_cannot_anneal(flow):
    with pytest.raises(ValueError, match="from 0 to 1"):
        _run(flow, 0.01, betas=[0.0, 0.5])
    with pytest.raises(ValueError, match="tune_step_sizes"):
        _run(flow, -1.0)
    with pytest.raises(ValueError, match="at most L\\^2 / 26"):
        _run(flow, 0.5)
    torus = mf.FlatTorus(L, dim=D)
    field = mf.TorusEGNN(torus, 2, width=8, depth=1, key=jax.random.key(0))
    continuous = mf.ContinuousFlow(mf.ParticleSpace(torus, N), field)
    with pytest.raises(TypeError, match="augmented flow with a one-pass joint density"):
        _run(continuous, 0.01)
    with pytest.raises(ValueError, match="use 'direct'"):
        _run(mf.MultiAuxFlow(flow, 2), 0.01, coordinates="latent")
