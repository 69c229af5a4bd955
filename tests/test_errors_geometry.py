"""Bad input to the geometry gets a clear error naming the problem and the fix.

Structural mistakes raise ValueError/TypeError at trace time; value problems (NaN, points off
the sphere, out-of-range species) fail at run time through `eqx.error_if`, also under jit.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from manifold_flows import Euclidean, FlatTorus, ParticleSpace, Sphere, check_species

# ----------------------------------------------------------------------------- constructors


@pytest.mark.parametrize(
    "lengths", [(0.0, 1.0), (-1.0, 2.0), (math.nan, 1.0), (math.inf, 1.0), (1.0, -1e-9)]
)
def test_torus_rejects_non_positive_or_non_finite_lengths(lengths):
    with pytest.raises(ValueError, match=r"box lengths must be positive and finite"):
        FlatTorus(lengths)


def test_torus_scalar_length_needs_dim_and_rejects_bad_dim():
    with pytest.raises(ValueError, match=r"needs `dim`"):
        FlatTorus(4.0)
    with pytest.raises(ValueError, match=r"dim >= 1"):
        FlatTorus(4.0, dim=0)
    with pytest.raises(ValueError, match=r"2 box lengths but dim=3"):
        FlatTorus((1.0, 2.0), dim=3)
    with pytest.raises(ValueError, match=r"`lengths` is empty"):
        FlatTorus(())
    with pytest.raises(ValueError, match=r"flat sequence"):
        FlatTorus(np.ones((1, 2)))
    # Wrong types: our own message, or (under the test suite's runtime type checker) one that
    # names the parameter.
    with pytest.raises(TypeError, match=r"must be numbers|parameter 'lengths'"):
        FlatTorus("4.47")
    with pytest.raises(ValueError, match=r"positive and finite"):
        FlatTorus(-2.0, dim=2)


@pytest.mark.parametrize("cls", [Sphere, Euclidean])
@pytest.mark.parametrize("dim", [0, -1, True])
def test_sphere_and_euclidean_reject_bad_dim(cls, dim):
    with pytest.raises(ValueError, match=r"dim >= 1 \(an integer\)"):
        cls(dim)
    with pytest.raises((TypeError, ValueError), match=r"dim >= 1|parameter 'dim'"):
        cls(1.5)


def test_particle_space_rejects_bad_arguments():
    with pytest.raises(TypeError, match=r"needs an AbstractManifold|parameter 'manifold'"):
        ParticleSpace("torus", 3)
    for bad in (0, -1):
        with pytest.raises(ValueError, match=r"num_particles >= 1"):
            ParticleSpace(FlatTorus(1.0, dim=2), bad)
    with pytest.raises((TypeError, ValueError), match=r"num_particles >= 1|'num_particles'"):
        ParticleSpace(FlatTorus(1.0, dim=2), 2.5)


# ----------------------------------------------------------------------------- point shapes


@pytest.mark.parametrize(
    ("manifold", "name"),
    [(FlatTorus(3.0, dim=2), "FlatTorus point"), (Sphere(2), "Sphere"), (Euclidean(2), "Euclid")],
)
def test_wrong_trailing_dimension_and_rank(manifold, name):
    (m,) = manifold.point_shape
    with pytest.raises(
        ValueError, match=rf"{name}.*must have shape \({m},\).*got shape \({m + 1},\)"
    ):
        manifold.check(jnp.zeros(m + 1))
    with pytest.raises(ValueError, match=r"rank 0 instead of 1"):
        manifold.check(jnp.zeros(()))
    with pytest.raises(ValueError, match=r"batch of points: map over it with jax.vmap"):
        manifold.check(jnp.zeros((5, m)))


def test_integer_points_are_rejected_with_the_fix():
    with pytest.raises(TypeError, match=r"floating-point array; got dtype int.*jnp.asarray"):
        FlatTorus(3.0, dim=2).check(jnp.zeros(2, dtype=jnp.int32))


def test_particle_space_shapes():
    space = ParticleSpace(FlatTorus(3.0, dim=2), 4)
    with pytest.raises(ValueError, match=r"shape \(4, 2\).*got shape \(3, 2\).*holds 3 particles"):
        space.check(jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"got shape \(4, 3\)"):
        space.check(jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"batch of configurations"):
        space.check(jnp.zeros((7, 4, 2)))
    with pytest.raises(ValueError, match=r"got shape \(8,\)"):
        space.check(jnp.zeros(8))


# ----------------------------------------------------------------------------- values under jit

_NAN_CASES = [
    (FlatTorus(3.0, dim=2), jnp.array([0.5, jnp.nan]), r"FlatTorus point has NaN or infinite"),
    (Euclidean(3), jnp.array([jnp.inf, 0.0, 1.0]), r"Euclidean point has NaN or infinite"),
    (Sphere(2), jnp.array([jnp.nan, 0.0, 1.0]), r"Sphere\(2\) point has NaN or infinite"),
    (
        ParticleSpace(FlatTorus(3.0, dim=2), 3),
        jnp.array([[0.1, 0.2], [0.3, jnp.nan], [1.0, 2.0]]),
        r"FlatTorus point has NaN or infinite",
    ),
]


@pytest.mark.parametrize(("manifold", "x", "message"), _NAN_CASES)
def test_nan_coordinates_fail_under_jit(manifold, x, message):
    checked = eqx.filter_jit(manifold.check)
    with pytest.raises(RuntimeError, match=message):
        jax.block_until_ready(checked(x))
    # The same check passes a finite point through unchanged.
    good = jnp.where(jnp.isfinite(x), x, 0.5)
    if isinstance(manifold, Sphere):
        good = manifold.project(good)
    np.testing.assert_array_equal(checked(good), good)


def test_nan_coordinates_fail_under_plain_jax_jit():
    checked = jax.jit(FlatTorus(3.0, dim=2).check)
    with pytest.raises(Exception, match=r"FlatTorus point has NaN or infinite"):
        jax.block_until_ready(checked(jnp.array([jnp.nan, 1.0])))


def test_point_off_the_sphere_fails_under_jit():
    sphere = Sphere(2)
    checked = eqx.filter_jit(sphere.check)
    with pytest.raises(
        RuntimeError, match=r"off the unit sphere.*normalise it with Sphere.project"
    ):
        jax.block_until_ready(checked(jnp.array([0.0, 0.0, 1.1])))
    # Within the tolerance of the dtype (sqrt(eps)), a point passes.
    near = jnp.array([0.0, 0.0, 1.0 + 1e-12])
    np.testing.assert_array_equal(checked(near), near)
    # float32: the tolerance follows the dtype.
    assert checked(jnp.array([0.0, 0.0, 1.0001], dtype=jnp.float32)).dtype == jnp.float32


def test_torus_accepts_unwrapped_representatives():
    # Every real vector represents a torus point; check() validates, project() wraps.
    torus = FlatTorus(3.0, dim=2)
    x = jnp.array([-0.5, 7.25])
    np.testing.assert_array_equal(torus.check(x), x)


# ----------------------------------------------------------------------------- species


def test_species_length_mismatch():
    with pytest.raises(ValueError, match=r"length num_particles=4.*got shape \(3,\)"):
        check_species(jnp.array([0, 1, 0], dtype=jnp.int32), 4)
    with pytest.raises(ValueError, match=r"got shape \(2, 2\)"):
        check_species(jnp.zeros((2, 2), dtype=jnp.int32), 4)


def test_species_must_be_integers():
    with pytest.raises(TypeError, match=r"integer labels.*got dtype float.*int32"):
        check_species(jnp.array([0.0, 1.0, 1.0]), 3)
    with pytest.raises(TypeError, match=r"integer labels.*Map names to integers"):
        check_species(np.array(["A", "B", "A"]), 3)


def test_species_out_of_range_fails_under_jit():
    checked = eqx.filter_jit(lambda s: check_species(s, 3, num_species=2))
    with pytest.raises(RuntimeError, match=r"species labels must lie in \[0, 2\)"):
        jax.block_until_ready(checked(jnp.array([0, 2, 1], dtype=jnp.int32)))
    with pytest.raises(RuntimeError, match=r"species labels must lie in \[0, 2\)"):
        jax.block_until_ready(checked(jnp.array([0, -1, 1], dtype=jnp.int32)))
    ok = jnp.array([0, 1, 1], dtype=jnp.int32)
    np.testing.assert_array_equal(checked(ok), ok)


def test_species_accepts_lists_and_numpy_integers():
    out = check_species([0, 1, 1], 3, num_species=2)
    assert out.shape == (3,) and jnp.issubdtype(out.dtype, jnp.integer)


# ----------------------------------------------------------------------------- infinite volume


def test_euclidean_random_uniform_says_why():
    with pytest.raises(ValueError, match=r"infinite volume.*Gaussian base distribution"):
        Euclidean(2).random_uniform(jax.random.key(0))
    with pytest.raises(ValueError, match=r"infinite volume"):
        ParticleSpace(Euclidean(2), 3).random_uniform(jax.random.key(0))
    assert Euclidean(2).log_volume() == jnp.inf
    assert Euclidean(2).uniform_log_prob(jnp.zeros(2)) == -jnp.inf
