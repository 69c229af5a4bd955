"""Contract tests: every manifold of the registry satisfies the manifold laws.

The laws themselves (exp/log round trips away from the cut locus, log(x, x) = 0, symmetric
non-negative distances with the triangle inequality, idempotent projections, exp landing in
the fundamental domain, torus log equal to the brute-force minimum over the 3^d periodic
images, the uniform density and Monte Carlo uniformity) live in
`manifold_flows.testing.check_manifold_laws`; tests/test_testing_kit.py proves that each law
fails on a manifold that breaks it.
"""

import jax
import jax.numpy as jnp
import pytest
from hypothesis import given

from manifold_flows.testing import (
    MANIFOLD_LAWS,
    assert_manifold_laws,
    check_manifold_laws,
    manifold_registry,
)
from manifold_flows.testing.strategies import seeds

REGISTRY = manifold_registry()
TORUS_LIKE = {"torus_1d", "torus_2d", "torus_2d_rectangle", "torus_3d", "particles_torus_2d"}


@pytest.mark.parametrize("name", sorted(REGISTRY))
@given(seed=seeds())
def test_registry_manifold_satisfies_the_laws(name, seed):
    results = assert_manifold_laws(REGISTRY[name], jax.random.key(seed))
    # The laws that must apply to this manifold did run.
    expected = {
        "exp_log_round_trip",
        "log_exp_round_trip",
        "triangle_inequality",
        "dist_symmetric",
        "exp_on_manifold",
    }
    if name in TORUS_LIKE:
        expected |= {"log_brute_force", "in_fundamental_domain", "uniform_moments"}
    if name.startswith("sphere"):
        expected |= {"uniform_moments", "volume_small_balls"}
    if name.startswith("euclidean"):
        expected |= {"random_uniform_raises"}
    assert expected <= set(results), expected - set(results)
    assert set(results) <= set(MANIFOLD_LAWS)


@pytest.mark.parametrize("name", ["sphere_2", "particles_torus_2d"])
def test_registry_laws_hold_in_float32(name):
    results = assert_manifold_laws(REGISTRY[name], jax.random.key(7), dtype=jnp.float32)
    assert all(r.passed for r in results.values())


def test_every_registry_entry_is_a_distinct_manifold():
    names = sorted(REGISTRY)
    assert len({repr(REGISTRY[n]) for n in names}) == len(names)
    dims = {REGISTRY[n].dim for n in names if n.startswith("torus")}
    assert dims == {1, 2, 3}
    assert any(len(set(REGISTRY[n].lengths)) > 1 for n in names if n.startswith("torus"))


def test_checker_rejects_bad_arguments():
    torus = REGISTRY["torus_2d"]
    with pytest.raises(TypeError, match=r"needs an AbstractManifold|parameter 'manifold'"):
        check_manifold_laws("torus", jax.random.key(0))
    with pytest.raises(ValueError, match=r"num_points must be an integer >= 2"):
        check_manifold_laws(torus, jax.random.key(0), num_points=1)
    with pytest.raises(TypeError, match=r"floating dtype"):
        check_manifold_laws(torus, jax.random.key(0), dtype=jnp.int32)
    with jax.enable_x64(False):
        with pytest.raises(ValueError, match=r"needs 64-bit JAX.*jax_enable_x64"):
            check_manifold_laws(torus, jax.random.key(0), dtype="float64")
