"""The baseline fields (EuclideanEGNN for eFM, AngleMLP for RSI) and the field factory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st
from test_field_helpers import lively, reference_egnn

from manifold_flows import (
    FIELD_NAMES,
    AbstractVectorField,
    AngleMLP,
    EuclideanEGNN,
    EuclideanTranslation,
    FlatTorus,
    KernelField,
    OrthogonalGroup,
    PermutationWithinSpecies,
    TorusEGNN,
    build_field,
    count_parameters,
)
from manifold_flows.testing import assert_equivariant, tolerance

SEEDS = st.integers(0, 2**31 - 1)
SPECIES = jnp.array([0, 1, 0, 1, 1, 0])
L = 3.0


def _config(seed: int, n: int = 6, d: int = 2, scale: float = L):
    k = jax.random.key(seed)
    x = scale * jax.random.uniform(k, (n, d))
    t = jax.random.uniform(jax.random.fold_in(k, 1), ())
    return t, x


# ---------------------------------------------------------------------------- Euclidean EGNN


@pytest.fixture(scope="module")
def euclid():
    key = jax.random.key(40)
    return lively(EuclideanEGNN(2, 2, width=8, depth=2, key=key), jax.random.fold_in(key, 1))


@pytest.fixture(scope="module")
def apply_euclid(euclid):
    return jax.jit(lambda t, x: euclid(t, x, SPECIES))


def test_euclidean_matches_reference_and_has_zero_mean(euclid, apply_euclid):
    t, x = _config(1)
    v = apply_euclid(t, x)
    ref = jax.jit(lambda t, x: reference_egnn(euclid, t, x, SPECIES, periodic=False))(t, x)
    rtol, atol = tolerance(x.dtype)
    assert float(jnp.max(jnp.abs(v))) > 0.05  # a non-trivial field
    np.testing.assert_allclose(v, ref, rtol=rtol, atol=atol)
    np.testing.assert_allclose(jnp.mean(v, axis=0), jnp.zeros(2), atol=atol)


@given(seed=SEEDS)
def test_euclidean_equivariant_to_permutations(apply_euclid, seed):
    t, x = _config(seed)
    action = PermutationWithinSpecies(SPECIES)
    assert_equivariant(
        lambda y: apply_euclid(t, y), action, x, action.random_element(jax.random.key(seed))
    )


@given(seed=SEEDS)
def test_euclidean_invariant_to_translations(apply_euclid, seed):
    t, x = _config(seed)
    action = EuclideanTranslation(2)
    g = action.random_element(jax.random.key(seed))
    assert_equivariant(lambda y: apply_euclid(t, y), action, x, g, output="invariant")


@given(seed=SEEDS)
def test_euclidean_equivariant_to_rotations_and_reflections(apply_euclid, seed):
    t, x = _config(seed)
    action = OrthogonalGroup(2)
    g = action.random_element(jax.random.key(seed))
    assert_equivariant(lambda y: apply_euclid(t, y), action, x, g)


def test_euclidean_in_3d_is_rotation_equivariant(key):
    field = lively(EuclideanEGNN(3, 2, width=8, depth=1, key=key), key)
    t, x = _config(3, n=4, d=3)
    action = OrthogonalGroup(3)
    g = action.random_element(jax.random.fold_in(key, 2))
    apply = jax.jit(lambda y: field(t, y, jnp.array([0, 0, 1, 1])))
    assert_equivariant(apply, action, x, g)


# ---------------------------------------------------------------------------- AngleMLP


@pytest.fixture(scope="module")
def mlp():
    return AngleMLP(FlatTorus(L, dim=2), 6, 2, width=16, depth=2, key=jax.random.key(50))


@pytest.fixture(scope="module")
def apply_mlp(mlp):
    return jax.jit(lambda t, x: mlp(t, x, SPECIES))


@given(seed=SEEDS)
def test_mlp_is_periodic(apply_mlp, seed):
    t, x = _config(seed)
    k = jax.random.randint(jax.random.key(seed + 1), x.shape, -3, 4).astype(x.dtype)
    v = apply_mlp(t, x)
    assert v.shape == x.shape and bool(jnp.all(jnp.isfinite(v)))
    # sin/cos of 2 pi (x + L k) / L: agreement up to the float64 rounding of the shifted angles.
    rtol, atol = tolerance(x.dtype)
    np.testing.assert_allclose(apply_mlp(t, x + L * k), v, rtol=1e3 * rtol, atol=1e3 * atol)


def test_mlp_is_not_permutation_equivariant(apply_mlp):
    # The check that passes on the EGNNs must fail on the MLP baseline, so it can fail at all.
    t, x = _config(2)
    action = PermutationWithinSpecies(SPECIES)
    g = jnp.array([2, 1, 0, 3, 4, 5], dtype=jnp.int32)  # swaps two particles of species 0
    with pytest.raises(AssertionError):
        assert_equivariant(lambda y: apply_mlp(t, y), action, x, g)


def test_mlp_rejects_a_different_number_of_particles(mlp):
    with pytest.raises(ValueError, match="num_particles"):
        mlp(0.5, jnp.zeros((5, 2)), SPECIES[:5])


# ---------------------------------------------------------------------------- factory


def test_build_field_builds_each_name(key):
    torus = FlatTorus(L, dim=2)
    kinds = {
        "torus_egnn": TorusEGNN,
        "euclidean_egnn": EuclideanEGNN,
        "mlp": AngleMLP,
        "kernel": KernelField,
    }
    assert set(FIELD_NAMES) == set(kinds)
    for name, kind in kinds.items():
        field = build_field(
            name, torus_or_dim=torus, num_particles=6, num_species=2, width=8, depth=2, key=key
        )
        assert isinstance(field, kind) and isinstance(field, AbstractVectorField)
        assert count_parameters(field) > 0
        out = jax.eval_shape(lambda x, f=field: f(0.5, x, SPECIES), jnp.zeros((6, 2)))
        assert out.shape == (6, 2)
    plain = build_field(
        "euclidean_egnn", torus_or_dim=3, num_particles=6, num_species=2, width=8, key=key
    )
    assert plain.dim == 3


def test_build_field_options_reach_the_field(key):
    torus = FlatTorus(L, dim=2)
    kwargs = dict(torus_or_dim=torus, num_particles=6, num_species=2, width=8, key=key)
    a = build_field("torus_egnn", depth=2, attention=False, tanh_bound=False, **kwargs)
    assert all(layer.attention is None for layer in a.core.layers)
    assert a.core.coord_scale is None and len(a.core.layers) == 2
    b = build_field("torus_egnn", depth=4, tanh_bound=True, **kwargs)
    assert b.core.coord_scale == pytest.approx(15 / 4)
    assert count_parameters(a) < count_parameters(b)


def test_build_field_errors(key):
    torus = FlatTorus(L, dim=2)
    with pytest.raises(ValueError, match="torus_egnn, euclidean_egnn, mlp, kernel"):
        build_field("egnn", torus_or_dim=torus, num_particles=6, num_species=2, key=key)
    with pytest.raises(TypeError, match="FlatTorus"):
        build_field("torus_egnn", torus_or_dim=2, num_particles=6, num_species=2, key=key)
    with pytest.raises(TypeError, match="torus_or_dim"):
        build_field("euclidean_egnn", torus_or_dim="2", num_particles=6, num_species=2, key=key)
    with pytest.raises(ValueError, match="num_particles"):
        build_field("mlp", torus_or_dim=torus, num_particles=0, num_species=2, key=key)
    with pytest.raises(ValueError, match="depth"):
        build_field(
            "torus_egnn", torus_or_dim=torus, num_particles=6, num_species=2, depth=0, key=key
        )
