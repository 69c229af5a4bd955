"""The likelihood audit: it passes on correct flows, and each kind of error makes it fail."""

import json

import equinox as eqx
import jax.numpy as jnp
import pytest

import manifold_flows as mf

L, D, N = 3.0, 2, 3
TORUS = mf.FlatTorus(L, dim=D)
SPACE = mf.ParticleSpace(TORUS, N)
SPECIES = jnp.array([0, 0, 1], dtype=jnp.int32)
KNOWN_ANSWERS = ("constant_field", "linear_field", "sphere_field")


def periodic_field(t, x, args):
    k = 2 * jnp.pi / L
    pair = jnp.sum(jnp.sin(k * (x[:, None, :] - x[None, :, :])), axis=1)
    return 0.4 * jnp.sin(k * x[:, ::-1]) + t * jnp.cos(k * x) + 0.3 * pair


def strong_egnn(key):
    # Scale the tiny-initialised last coordinate layers up: a fresh network is nearly the
    # zero field, whose density would be trivially invariant.
    field = mf.TorusEGNN(TORUS, 2, width=8, depth=1, key=key)
    return eqx.tree_at(
        lambda f: [layer.coord2 for layer in f.core.layers], field, replace_fn=lambda w: 30 * w
    )


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


class ForgetfulUniform(mf.AbstractNormalizedBase):
    """A broken base: claims to be normalised but forgets the -log vol."""

    space: mf.ParticleSpace

    def __init__(self, space):
        self.space = space

    def sample(self, key, args):
        return self.space.random_uniform(key)

    def log_prob(self, x, args):
        return jnp.zeros((), x.dtype)


def test_audit_passes_on_the_torus_egnn_flow(key):
    # The flow's own checks on the equivariant network, including log q(g x) == log q(x)
    # under the full symmetry group (permutations within species, translations, box point
    # group). The known answers do not involve the field: they run in the next test.
    flow = mf.ContinuousFlow(SPACE, strong_egnn(key), rtol=1e-8, atol=1e-8)
    group = mf.full_symmetry_group(TORUS, SPECIES)
    report = mf.likelihood_audit(flow, key, SPECIES, group=group, num_points=2, known_answers=False)
    assert report.passed, str(report)
    ran = {c.name for c in report.checks if not c.skipped}
    assert ran == set(mf.AUDIT_CHECKS) - {"normalization"} - set(KNOWN_ANSWERS)
    assert report["normalization"].skipped and report.normalized  # dim 6 > max_mc_dim
    # JSON-ready for `mflows evaluate --audit`, and a readable table.
    decoded = json.loads(json.dumps(report.to_dict()))
    assert decoded["passed"] is True and len(decoded["checks"]) == len(report.checks)
    assert "group_invariance" in str(report)
    with pytest.raises(KeyError, match="no audit check"):
        report["nonexistent"]


def test_audit_known_answers_pass_with_a_correct_flow(key):
    flow = mf.ContinuousFlow(SPACE, periodic_field, rtol=1e-9, atol=1e-9)
    report = mf.likelihood_audit(flow, key, SPECIES, num_points=2, checks=KNOWN_ANSWERS)
    assert report.passed and [c.name for c in report.checks] == list(KNOWN_ANSWERS), str(report)


def test_audit_catches_a_sign_error_in_the_divergence(key):
    flow = mf.ContinuousFlow(
        SPACE, periodic_field, divergence=FlippedDivergence(), rtol=1e-9, atol=1e-9
    )
    report = mf.likelihood_audit(
        flow, key, SPECIES, num_points=2, checks=("exact_divergence", "linear_field")
    )
    assert [c.name for c in report.checks] == ["exact_divergence", "linear_field"]
    assert report.failures == ("exact_divergence", "linear_field")


def test_audit_catches_a_non_equivariant_field(key):
    mlp = mf.AngleMLP(TORUS, N, 2, width=16, depth=2, key=key)
    flow = mf.ContinuousFlow(SPACE, mlp, rtol=1e-8, atol=1e-8)
    group = mf.full_symmetry_group(TORUS, SPECIES)
    report = mf.likelihood_audit(
        flow, key, SPECIES, group=group, num_points=2, checks=("group_invariance",)
    )
    assert report.failures == ("group_invariance",)
    assert report["group_invariance"].value > 1e3 * report["group_invariance"].tolerance


def test_audit_normalisation_in_low_dimension(key):
    one = mf.ParticleSpace(TORUS, 1)
    good = mf.ContinuousFlow(one, periodic_field, rtol=1e-7, atol=1e-7)
    report = mf.likelihood_audit(good, key, None, checks=("normalization",), mc_samples=1024)
    assert report.passed and not report["normalization"].skipped, str(report)
    # A log q that does not integrate to one (the base forgot -log vol) fails.
    bad = mf.ContinuousFlow(one, periodic_field, base=ForgetfulUniform(one), rtol=1e-7, atol=1e-7)
    report = mf.likelihood_audit(bad, key, None, checks=("normalization",), mc_samples=1024)
    assert report.failures == ("normalization",)


def test_audit_argument_errors(key):
    flow = mf.ContinuousFlow(SPACE, periodic_field)
    with pytest.raises(TypeError, match="ContinuousFlow"):
        mf.likelihood_audit(object(), key, None)
    with pytest.raises(ValueError, match="num_points"):
        mf.likelihood_audit(flow, key, SPECIES, num_points=1)
    with pytest.raises(TypeError, match="group"):
        mf.likelihood_audit(flow, key, SPECIES, group="translations")
    with pytest.raises(ValueError, match="unknown checks"):
        mf.likelihood_audit(flow, key, SPECIES, checks=("forward_reverse", "speed"))
