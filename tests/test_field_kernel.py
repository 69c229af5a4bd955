"""KernelField: pairwise radial kernels, their closed-form divergence, symmetries, flows."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

import manifold_flows as mf
from manifold_flows import (
    BoxPointGroup,
    Euclidean,
    EuclideanTranslation,
    FlatTorus,
    KernelField,
    OrthogonalGroup,
    PermutationWithinSpecies,
    TorusTranslation,
    full_symmetry_group,
)
from manifold_flows.testing import assert_equivariant, tolerance

SEEDS = st.integers(0, 2**31 - 1)
L = 3.0
SPECIES = jnp.array([0, 1, 0, 1, 1, 0, 0])
SPECIES3 = jnp.array([1, 0, 1, 0, 1])


def lively(field: KernelField, key, scale: float = 3.0) -> KernelField:
    """O(1) kernel weights (a fresh field is nearly zero, which would make every check pass)."""
    last = field.time_net.layers[-1]
    weight = scale * jax.random.normal(key, last.weight.shape, last.weight.dtype)
    return eqx.tree_at(lambda f: f.time_net.layers[-1].weight, field, weight)


def t_key(seed):
    return jax.random.key(seed + 1)


def _config(seed: int, n: int = 7, d: int = 2, length: float = L):
    k = jax.random.key(seed)
    x = length * jax.random.uniform(k, (n, d))
    t = jax.random.uniform(jax.random.fold_in(k, 1), ())
    return t, x


@pytest.fixture(scope="module")
def torus_field():
    key = jax.random.key(50)
    return lively(KernelField(FlatTorus(L, dim=2), 2, num_kernels=8, width=8, key=key), key)


@pytest.fixture(scope="module")
def apply_torus(torus_field):
    return jax.jit(lambda t, x: torus_field(t, x, SPECIES))


@pytest.fixture(scope="module")
def euclid_field():
    key = jax.random.key(51)
    field = KernelField(Euclidean(3), 2, cutoff=2.5, num_kernels=8, width=8, key=key)
    return lively(field, key)


@eqx.filter_jit
def _divergence_and_trace(field, t, x, species):
    v, div = field.velocity_and_divergence(t, x, species)
    jac = jax.jacfwd(lambda z: field(t, z, species))(x).reshape(x.size, x.size)
    return v, div, jnp.trace(jac), field(t, x, species)


# ---------------------------------------------------------------------------- divergence


@pytest.mark.parametrize("where", ["torus_2d", "torus_3d", "euclidean_3d"])
def test_closed_form_divergence_is_the_jacobian_trace(where, torus_field, euclid_field):
    if where == "torus_2d":
        field, species, (t, x) = torus_field, SPECIES, _config(1)
    elif where == "torus_3d":
        key = jax.random.key(52)
        field = lively(KernelField(FlatTorus(2.5, dim=3), 2, num_kernels=6, width=8, key=key), key)
        species, (t, x) = SPECIES3, _config(2, n=5, d=3, length=2.5)
    else:
        field, species, (t, x) = euclid_field, SPECIES3, _config(3, n=5, d=3, length=2.0)
    v, div, trace, plain = _divergence_and_trace(field, t, x, species)
    rtol, atol = tolerance(x.dtype)
    assert abs(float(trace)) > 0.1  # a non-trivial divergence is compared
    np.testing.assert_allclose(div, trace, rtol=rtol, atol=atol)
    np.testing.assert_allclose(v, plain, rtol=rtol, atol=atol)


def test_dropping_the_slope_term_is_caught(torus_field):
    # The radial-derivative term r phi'(r) of the closed form is not negligible: a divergence
    # without it (d * sum phi only) would fail the check above.
    t, x = _config(4)
    _, div, trace, _ = _divergence_and_trace(torus_field, t, x, SPECIES)
    _, r, distinct = torus_field._pairs(x)
    phi = jnp.where(distinct, torus_field._radial(t, SPECIES, r, slope=False)[0], 0)
    without_slope = 2 * jnp.sum(phi)
    assert abs(float(without_slope - trace)) > 100 * abs(float(div - trace)) + 1e-3


def test_the_field_vanishes_smoothly_at_half_the_box(torus_field):
    # Two particles whose minimum image jumps at L/2: the field (and its derivative, through
    # the envelope) is zero on both sides, so the flow sees a smooth periodic field.
    field = torus_field
    species = jnp.array([0, 1])
    apply = jax.jit(lambda x: field(0.3, x, species))
    for gap in (L / 2 - 1e-6, L / 2, L / 2 + 1e-6):
        x = jnp.array([[0.2, 1.0], [0.2 + gap, 1.0]])
        assert float(jnp.max(jnp.abs(apply(x)))) < 1e-12
    x = jnp.array([[0.2, 1.0], [0.2 + 0.8 * L / 2, 1.0]])
    assert float(jnp.max(jnp.abs(apply(x)))) > 1e-3


def test_total_velocity_is_zero(apply_torus, euclid_field):
    t, x = _config(5)
    np.testing.assert_allclose(jnp.sum(apply_torus(t, x), axis=0), 0.0, atol=1e-12)
    t, x = _config(6, n=5, d=3)
    v = euclid_field(t, x, SPECIES3)
    np.testing.assert_allclose(jnp.sum(v, axis=0), 0.0, atol=1e-12)


# ---------------------------------------------------------------------------- symmetries


@given(seed=SEEDS)
def test_equivariant_to_permutations_within_species(apply_torus, seed):
    t, x = _config(seed)
    action = PermutationWithinSpecies(SPECIES)
    assert_equivariant(lambda y: apply_torus(t, y), action, x, action.random_element(t_key(seed)))


@given(seed=SEEDS)
def test_equivariant_to_translations_and_the_point_group(apply_torus, seed):
    t, x = _config(seed)
    torus = FlatTorus(L, dim=2)
    for action in (TorusTranslation(torus), BoxPointGroup(torus)):
        assert_equivariant(
            lambda y: apply_torus(t, y), action, x, action.random_element(t_key(seed))
        )


@given(seed=SEEDS)
def test_equivariant_to_the_full_symmetry_group(apply_torus, seed):
    t, x = _config(seed)
    action = full_symmetry_group(FlatTorus(L, dim=2), SPECIES)
    assert_equivariant(lambda y: apply_torus(t, y), action, x, action.random_element(t_key(seed)))


@given(seed=SEEDS)
def test_euclidean_rotations_translations_permutations(euclid_field, seed):
    t, x = _config(seed, n=5, d=3, length=2.0)
    apply = jax.jit(lambda y: euclid_field(t, y, SPECIES3))
    rotation = OrthogonalGroup(3)
    assert_equivariant(apply, rotation, x, rotation.random_element(t_key(seed)))
    shift = EuclideanTranslation(3)
    assert_equivariant(apply, shift, x, shift.random_element(t_key(seed)), output="invariant")
    perm = PermutationWithinSpecies(SPECIES3)
    assert_equivariant(apply, perm, x, perm.random_element(t_key(seed)))


def test_periodic(apply_torus):
    t, x = _config(7)
    k = jax.random.randint(jax.random.key(8), x.shape, -3, 4).astype(x.dtype)
    rtol, atol = tolerance(x.dtype)
    np.testing.assert_allclose(apply_torus(t, x + L * k), apply_torus(t, x), rtol=rtol, atol=atol)


def test_species_pairs_matter(torus_field):
    # Relabelling particles of different species changes the field (species-aware weights).
    t, x = _config(9)
    v = torus_field(t, x, SPECIES)
    swapped = torus_field(t, x, 1 - SPECIES)
    assert float(jnp.max(jnp.abs(v - swapped))) > 1e-3


# ---------------------------------------------------------------------------- in a flow


def test_flow_uses_the_closed_form_and_agrees_with_the_exact_divergence(torus_field):
    space = mf.ParticleSpace(FlatTorus(L, dim=2), 7)
    fast = mf.ContinuousFlow(space, torus_field, rtol=1e-9, atol=1e-9)
    assert isinstance(fast.divergence, mf.FieldDivergence)
    generic = mf.ContinuousFlow(
        space, torus_field, divergence=mf.ExactDivergence(), rtol=1e-9, atol=1e-9
    )
    both = jax.jit(
        lambda key: (
            fast.sample_and_log_prob(key, SPECIES),
            generic.sample_and_log_prob(key, SPECIES),
        )
    )
    (x_fast, lq_fast), (x_gen, lq_gen) = both(jax.random.key(10))
    uniform = -7 * 2 * np.log(L)  # log q of the base; the flow must have moved away from it
    assert abs(float(lq_fast) - uniform) > 1e-2
    np.testing.assert_allclose(x_fast, x_gen, atol=1e-8)
    np.testing.assert_allclose(lq_fast, lq_gen, atol=1e-7)
    back = jax.jit(lambda x: fast.log_prob(x, SPECIES))(x_fast)
    np.testing.assert_allclose(back, lq_fast, atol=1e-6)


def test_field_divergence_strategy_needs_a_field_that_provides_one():
    torus = FlatTorus(L, dim=2)
    space = mf.ParticleSpace(torus, 7)
    egnn = mf.TorusEGNN(torus, 2, width=8, depth=1, key=jax.random.key(0))
    assert isinstance(mf.ContinuousFlow(space, egnn).divergence, mf.ExactDivergence)
    with pytest.raises(ValueError, match="FieldDivergence"):
        mf.ContinuousFlow(space, egnn, divergence=mf.FieldDivergence())
    # Called directly on a plain function it computes the exact divergence.
    x = space.random_uniform(jax.random.key(1))
    _, div = mf.FieldDivergence()(jnp.sin, x, None, space)
    np.testing.assert_allclose(div, jnp.sum(jnp.cos(x)), rtol=1e-12)


def test_build_field_and_model_config_make_a_kernel_field():
    torus = FlatTorus(L, dim=2)
    field = mf.build_field(
        "kernel",
        torus_or_dim=torus,
        num_particles=7,
        num_species=2,
        width=8,
        num_kernels=5,
        cutoff=1.2,
        key=jax.random.key(0),
    )
    assert isinstance(field, KernelField) and field.num_kernels == 5 and field.cutoff == 1.2
    config = mf.ModelConfig(field="kernel", width=8, num_kernels=5)
    assert config.to_dict()["num_kernels"] == 5
    assert "num_kernels" not in mf.ModelConfig().to_dict()  # other fields' records unchanged
    built = config.build(torus, 7, 2, key=jax.random.key(1))
    assert isinstance(built, KernelField) and built.cutoff == L / 2


def test_structural_errors():
    torus = FlatTorus(L, dim=2)
    with pytest.raises(ValueError, match="L/2"):
        KernelField(torus, 2, cutoff=0.6 * L, key=jax.random.key(0))
    with pytest.raises(ValueError, match="cutoff"):
        KernelField(Euclidean(2), 2, key=jax.random.key(0))
    with pytest.raises(TypeError, match="FlatTorus"):
        KernelField(mf.Sphere(2), 2, key=jax.random.key(0))
    with pytest.raises(ValueError, match="num_kernels"):
        KernelField(torus, 2, num_kernels=0, key=jax.random.key(0))
    field = KernelField(torus, 2, key=jax.random.key(0))
    with pytest.raises(ValueError, match="shape"):
        field(0.5, jnp.zeros((4, 3)), jnp.zeros(4, jnp.int32))
