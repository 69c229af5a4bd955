"""The likelihood audit: it passes on correct flows and each check fails on a broken one."""

import json

import jax.numpy as jnp
import pytest

import manifold_flows as mf

L, D, N = 3.0, 2, 3
TORUS = mf.FlatTorus(L, dim=D)
SPACE = mf.ParticleSpace(TORUS, N)
SPECIES = jnp.zeros(N, dtype=jnp.int32)


def permutation_equivariant_field(t, x, args):
    """Equivariant under permutations of the particles (not under translations)."""
    k = 2 * jnp.pi / L
    pair = jnp.sum(jnp.sin(k * (x[:, None, :] - x[None, :, :])), axis=1)
    return 0.4 * jnp.sin(k * x[:, ::-1]) + t * jnp.cos(k * x) + 0.3 * pair


def particle_biased_field(t, x, args):
    """The same with one particle singled out: not permutation equivariant."""
    weights = jnp.arange(1, N + 1, dtype=x.dtype)[:, None]
    return permutation_equivariant_field(t, x, args) * weights


class FlippedDivergence(mf.AbstractDivergence):
    """A broken strategy: the exact divergence with the wrong sign."""

    inner: mf.ExactDivergence

    def __init__(self):
        self.inner = mf.ExactDivergence()

    def init_probe(self, key, space, x):
        return None

    def __call__(self, fn, x, probe, space):
        v, div = self.inner(fn, x, probe, space)
        return v, -div


GROUP = mf.PermutationWithinSpecies(SPECIES)


def test_audit_passes_on_a_correct_flow(key):
    flow = mf.ContinuousFlow(SPACE, permutation_equivariant_field, rtol=1e-9, atol=1e-9)
    report = mf.likelihood_audit(flow, key, SPECIES, group=GROUP, num_points=2)
    assert report.passed, str(report)
    ran = {c.name for c in report.checks if not c.skipped}
    everything = {
        "on_manifold",
        "forward_reverse",
        "exact_divergence",
        "hutchinson_unbiased",
        "group_invariance",
        "normalization",
        "constant_field",
        "linear_field",
        "sphere_field",
    }
    assert ran == everything - {"normalization"}  # dim 6 > max_mc_dim: skipped
    assert report["normalization"].skipped
    assert report.normalized
    assert report["forward_reverse"].value <= 1e-6  # float64, rtol = atol = 1e-9
    # The report is JSON-ready (for `mflows evaluate --audit`) and prints as a table.
    decoded = json.loads(json.dumps(report.to_dict()))
    assert decoded["passed"] is True and len(decoded["checks"]) == len(report.checks)
    assert "forward_reverse" in str(report)
    with pytest.raises(KeyError, match="no audit check"):
        report["nonexistent"]


def test_audit_catches_a_sign_error_in_the_divergence(key):
    flow = mf.ContinuousFlow(
        SPACE, permutation_equivariant_field, divergence=FlippedDivergence(), rtol=1e-9, atol=1e-9
    )
    report = mf.likelihood_audit(flow, key, SPECIES, num_points=2)
    assert not report.passed
    # Forward and reverse are consistently wrong, so only the checks against independent
    # answers can see it: the materialised Jacobian and the known closed forms.
    assert set(report.failures) == {"exact_divergence", "linear_field", "sphere_field"}


def test_audit_catches_a_broken_symmetry_and_checks_normalisation(key):
    # Permutations need several particles; the Monte Carlo normalisation needs a low
    # dimension: one particle on the 2D torus.
    flow = mf.ContinuousFlow(SPACE, particle_biased_field, rtol=1e-9, atol=1e-9)
    report = mf.likelihood_audit(flow, key, SPECIES, group=GROUP, num_points=2, known_answers=False)
    assert report.failures == ("group_invariance",)

    one = mf.ParticleSpace(TORUS, 1)
    good = mf.ContinuousFlow(one, permutation_equivariant_field, rtol=1e-7, atol=1e-7)
    report = mf.likelihood_audit(good, key, None, num_points=2, known_answers=False)
    assert report.passed and not report["normalization"].skipped, str(report)


class ForgetfulUniform(mf.AbstractNormalizedBase):
    """A broken base: claims to be normalised but forgets the -log vol."""

    space: mf.ParticleSpace

    def __init__(self, space):
        self.space = space

    def sample(self, key, args):
        return self.space.random_uniform(key)

    def log_prob(self, x, args):
        return jnp.zeros((), x.dtype)


def test_audit_flags_a_log_q_that_does_not_integrate_to_one(key):
    one = mf.ParticleSpace(TORUS, 1)
    flow = mf.ContinuousFlow(one, permutation_equivariant_field, base=ForgetfulUniform(one))
    report = mf.likelihood_audit(flow, key, None, num_points=2, known_answers=False)
    assert report.failures == ("normalization",)


def test_audit_argument_errors(key):
    flow = mf.ContinuousFlow(SPACE, permutation_equivariant_field)
    with pytest.raises(TypeError, match="ContinuousFlow"):
        mf.likelihood_audit(object(), key, None)
    with pytest.raises(ValueError, match="num_points"):
        mf.likelihood_audit(flow, key, SPECIES, num_points=1)
    with pytest.raises(TypeError, match="group"):
        mf.likelihood_audit(flow, key, SPECIES, group="translations")
