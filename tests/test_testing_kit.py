"""The public testing kit catches broken extensions: every manifold law fails on a manifold
that breaks it, the equivariance assertions fail on non-equivariant maps (and report the
deviation), and the strategies produce what they promise."""

import math
import subprocess
import sys
import textwrap

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from jaxtyping import Array

from manifold_flows import (
    AbstractManifold,
    Euclidean,
    FlatTorus,
    ParticleSpace,
    PermutationWithinSpecies,
    Sphere,
    TorusTranslation,
)
from manifold_flows.testing import (
    LawResult,
    assert_equivariant,
    assert_invariant,
    assert_manifold_laws,
    check_manifold_laws,
    manifold_registry,
    random_point,
    random_tangent,
    strategies as mst,
)

# ----------------------------------------------------------------------------- broken manifolds

DEFECTS = (
    "none",
    "log_no_round",
    "log_offset",
    "log_not_tangent",
    "exp_offset",
    "exp_off_manifold",
    "project_not_idempotent",
    "sample_off_manifold",
    "dist_asymmetric",
    "inner_negative",
    "dist_squared",
    "dist_override",
    "project_tangent_doubles",
    "uniform_log_prob_wrong",
    "wrong_volume",
    "random_uniform_no_raise",
)


class _Defective(AbstractManifold):
    """A user extension with one deliberate bug, chosen by `code` (an array, so that every
    defect of one base manifold shares a single compiled law graph).

    It wraps a correct manifold and breaks one map; "none" forwards everything unchanged. It
    overrides `dist` and `uniform_log_prob` (which the package never does) to model users who
    do.
    """

    base: AbstractManifold
    code: Array

    def __init__(self, base: AbstractManifold, defect: str):
        self.base = base
        self.code = jnp.asarray(DEFECTS.index(defect), dtype=jnp.int32)

    def _on(self, defect):
        return self.code == DEFECTS.index(defect)

    @property
    def point_shape(self):
        return self.base.point_shape

    @property
    def dim(self):
        return self.base.dim

    @property
    def injectivity_radius(self):
        return self.base.injectivity_radius

    def exp(self, x, v):
        good = self.base.exp(x, v)
        out = jnp.where(self._on("exp_offset"), self.base.exp(x, v + 1e-3), good)
        return jnp.where(self._on("exp_off_manifold"), 1.01 * good, out)

    def log(self, x, y):
        good = self.base.log(x, y)
        out = jnp.where(self._on("log_no_round"), y - x, good)  # torus log without the round
        out = jnp.where(self._on("log_offset"), good + 1e-3, out)
        return jnp.where(self._on("log_not_tangent"), good + 1e-3 * x, out)

    def inner(self, x, u, v):
        good = self.base.inner(x, u, v)
        out = jnp.where(self._on("inner_negative"), -good, good)
        out = jnp.where(self._on("dist_squared"), good**2, out)
        return jnp.where(self._on("dist_asymmetric"), good * (1.5 + jnp.tanh(x.ravel()[0])), out)

    def project(self, x):
        good = self.base.project(x)
        return jnp.where(self._on("project_not_idempotent"), 0.9 * good, good)

    def project_tangent(self, x, v):
        good = self.base.project_tangent(x, v)
        return jnp.where(self._on("project_tangent_doubles"), 2 * good, good)

    def random_uniform(self, key, dtype=None):
        if isinstance(self.base, Euclidean):  # only ever called eagerly (infinite volume)
            if bool(self._on("random_uniform_no_raise")):
                return jax.random.normal(key, self.point_shape, dtype)
            return self.base.random_uniform(key, dtype)
        good = self.base.random_uniform(key, dtype)
        return jnp.where(self._on("sample_off_manifold"), 2 * good + 0.25, good)

    def log_volume(self):
        good = self.base.log_volume()
        return jnp.where(self._on("wrong_volume"), good + math.log(2.0), good)

    def check(self, x):
        return self.base.check(x)

    def dist(self, x, y):
        good = AbstractManifold.dist(self, x, y)
        return jnp.where(self._on("dist_override"), 0.9 * good, good)

    def uniform_log_prob(self, x):
        good = AbstractManifold.uniform_log_prob(self, x)
        return jnp.where(self._on("uniform_log_prob_wrong"), good + 1.0, good)


TORUS = FlatTorus((3.0, 5.5))
SPHERE = Sphere(2)
EUCLID = Euclidean(2)

# (defect, base manifold, laws that must fail)
BROKEN = [
    ("log_no_round", TORUS, {"log_exp_round_trip", "dist_is_tangent_norm"}),
    ("log_offset", SPHERE, {"log_x_x_zero"}),
    ("log_not_tangent", SPHERE, {"log_is_tangent"}),
    ("exp_offset", SPHERE, {"exp_zero", "exp_log_round_trip", "log_exp_round_trip"}),
    ("exp_off_manifold", SPHERE, {"exp_on_manifold"}),
    ("project_not_idempotent", TORUS, {"project_idempotent", "sample_on_manifold"}),
    ("sample_off_manifold", SPHERE, {"sample_on_manifold"}),
    ("dist_asymmetric", TORUS, {"dist_symmetric"}),
    ("inner_negative", TORUS, {"dist_nonnegative"}),
    ("dist_squared", EUCLID, {"triangle_inequality"}),
    ("dist_override", SPHERE, {"dist_is_tangent_norm"}),
    ("project_tangent_doubles", SPHERE, {"tangent_projection_idempotent"}),
    ("uniform_log_prob_wrong", TORUS, {"uniform_log_prob"}),
    ("wrong_volume", SPHERE, {"volume_small_balls"}),
    ("wrong_volume", TORUS, {"volume_small_balls"}),
    ("random_uniform_no_raise", EUCLID, {"random_uniform_raises"}),
]


@pytest.mark.parametrize("base", [TORUS, SPHERE, EUCLID], ids=["torus", "sphere", "euclid"])
def test_the_faithful_wrapper_passes(base):
    assert_manifold_laws(_Defective(base, "none"), jax.random.key(0))


@pytest.mark.parametrize(
    ("defect", "base", "laws"), BROKEN, ids=[f"{d}-{type(b).__name__}" for d, b, _ in BROKEN]
)
def test_each_law_fails_on_a_manifold_that_breaks_it(defect, base, laws):
    results = check_manifold_laws(_Defective(base, defect), jax.random.key(0))
    failed = {name for name, r in results.items() if not r.passed}
    assert laws <= failed, f"{defect}: expected {laws} to fail, failed: {failed}"
    with pytest.raises(AssertionError, match=r"breaks \d+ manifold law") as info:
        assert_manifold_laws(_Defective(base, defect), jax.random.key(0))
    # The message names each failed law with its numbers.
    for law in laws:
        assert f"FAIL {law}: error" in str(info.value)
        assert "tolerance" in str(info.value)


def test_every_law_is_shown_to_fail_somewhere():
    covered = set().union(*(laws for _, _, laws in BROKEN)) | {
        "log_brute_force",
        "in_fundamental_domain",
        "uniform_moments",
    }
    from manifold_flows.testing import MANIFOLD_LAWS

    assert covered == set(MANIFOLD_LAWS)


def _torus_log_without_round(self, x, y):
    return y - x


def _project_without_fold(self, x):
    return jnp.mod(x, jnp.asarray(self.lengths, dtype=x.dtype))


def _sample_squared(self, key, dtype=None):
    # Covers the whole box, with density piling up near 0: not uniform.
    dtype = jnp.result_type(float) if dtype is None else dtype
    return jax.random.uniform(key, self.point_shape, dtype) ** 2 * self.box(dtype)


def test_torus_specific_laws_catch_a_broken_flat_torus(monkeypatch):
    # Break FlatTorus itself (log without the round, mod without folding L to 0, samples with
    # a non-uniform density). The box lengths are used nowhere else, so no compiled graph is reused.
    monkeypatch.setattr(FlatTorus, "log", _torus_log_without_round)
    monkeypatch.setattr(FlatTorus, "project", _project_without_fold)
    monkeypatch.setattr(FlatTorus, "random_uniform", _sample_squared)
    results = check_manifold_laws(FlatTorus((2.75, 3.25)), jax.random.key(0))
    for law in ("log_brute_force", "in_fundamental_domain", "uniform_moments"):
        assert not results[law].passed, results[law]
    # The edge cases alone catch the missing fold: mod(-tiny, L) rounds to L.
    assert results["in_fundamental_domain"].error >= 1


def test_moments_catch_particles_that_are_not_independent(monkeypatch):
    def identical_particles(self, key, dtype=None):
        one = self.manifold.random_uniform(key, dtype=dtype)
        return jnp.broadcast_to(one, self.point_shape)

    monkeypatch.setattr(ParticleSpace, "random_uniform", identical_particles)
    space = ParticleSpace(FlatTorus((2.75, 3.25)), 3)
    result = check_manifold_laws(space, jax.random.key(1))["uniform_moments"]
    assert not result.passed and result.error > 20, result


def test_law_results_report_numbers():
    result = check_manifold_laws(FlatTorus((3.0, 5.5)), jax.random.key(0))["log_brute_force"]
    assert isinstance(result, LawResult)
    assert result.passed and 0 <= result.error <= result.tolerance
    assert result.tolerance > 0


# ----------------------------------------------------------------------------- equivariance

BOX = FlatTorus((3.0, 5.5))
SPACE = ParticleSpace(BOX, 4)
SPECIES = jnp.asarray([0, 1, 0, 1], dtype=jnp.int32)


def _pair_field(x):
    """An equivariant field on the torus: the sum of minimum-image displacements to the
    other particles, weighted by distance (permutation- and translation-equivariant)."""
    delta = jax.vmap(lambda xi: jax.vmap(lambda xj: BOX.log(xi, xj))(x))(x)
    weight = jnp.exp(-jnp.sum(delta**2, axis=-1, keepdims=True))
    return jnp.sum(weight * delta, axis=1)


def _species_field(x, species):
    return _pair_field(x) * (1.0 + species[:, None].astype(x.dtype))


def _energy(x):
    d2 = jax.vmap(lambda xi: jax.vmap(lambda xj: BOX.sq_dist(xi, xj))(x))(x)
    return jnp.sum(jnp.exp(-d2))


def _config(seed):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.uniform(size=(4, 2)) * np.asarray([3.0, 5.5]))


def test_equivariant_field_passes_under_translations_and_permutations():
    x = _config(0)
    translate = TorusTranslation(BOX)
    permute = PermutationWithinSpecies(SPECIES)
    field, species_field, energy = (jax.jit(f) for f in (_pair_field, _species_field, _energy))
    for k in range(2):
        t = translate.random_element(jax.random.key(10 + k))
        p = permute.random_element(jax.random.key(20 + k))
        assert assert_equivariant(field, translate, x, t) < 1e-12
        assert_equivariant(field, permute, x, p)
        # Species ride along unchanged in `args`.
        assert_equivariant(species_field, permute, x, p, args=SPECIES)
        assert_invariant(energy, translate, x, t)
        assert_invariant(energy, permute, x, p)


def test_non_equivariant_field_fails_with_the_deviation():
    x = _config(1)
    translate = TorusTranslation(BOX)
    t = jnp.asarray([0.7, 1.3])
    not_equivariant = lambda z: jnp.sin(z)  # depends on absolute positions
    with pytest.raises(AssertionError, match=r"not equivariant.*max deviation [0-9.e+-]+"):
        assert_equivariant(not_equivariant, translate, x, t)
    # A permutation that mixes species breaks a species-dependent field.
    mixing = PermutationWithinSpecies(jnp.zeros(4, dtype=jnp.int32))
    swap = jnp.asarray([1, 0, 2, 3], dtype=jnp.int32)
    with pytest.raises(AssertionError, match=r"act_tangent\(g, x, f\(x\)\)"):
        assert_equivariant(_species_field, mixing, x, swap, args=SPECIES)


def test_non_invariant_scalar_fails():
    x = _config(2)
    with pytest.raises(AssertionError, match=r"not invariant.*f\(g x\) == f\(x\)"):
        assert_invariant(lambda z: jnp.sum(z), TorusTranslation(BOX), x, jnp.asarray([0.5, 0.5]))


def test_point_maps_compare_on_the_manifold():
    x = _config(3)
    translate = TorusTranslation(BOX)
    t = jnp.asarray([2.9, 5.0])
    # The identity written with an unwrapped representative: equivariant as a map of torus
    # points, but the coordinates differ by whole box lengths.
    unwrapped = lambda z: z + BOX.box()[None, :]
    assert_equivariant(unwrapped, translate, x, t, output="point", manifold=SPACE)
    with pytest.raises(AssertionError, match=r"act\(g, f\(x\)\)"):
        assert_equivariant(unwrapped, translate, x, t, output="point")
    with pytest.raises(AssertionError):
        assert_equivariant(lambda z: z * 0.5, translate, x, t, output="point", manifold=SPACE)


def test_equivariance_tolerances_and_bad_arguments():
    x = _config(4)
    translate = TorusTranslation(BOX)
    t = jnp.asarray([0.1, 0.2])
    nudged = lambda z: _pair_field(z) + 1e-6 * jnp.sin(z)  # equivariant up to 1e-6
    with pytest.raises(AssertionError):
        assert_equivariant(nudged, translate, x, t)
    assert assert_equivariant(nudged, translate, x, t, atol=1e-5) < 1e-5
    with pytest.raises((ValueError, TypeError), match=r"output must be one of|'output'"):
        assert_equivariant(_pair_field, translate, x, t, output="vector")


# ----------------------------------------------------------------------------- strategies

REGISTRY = manifold_registry()

# Strategies must leave Python's global `random` state alone (the runtime type checker of the
# test suite draws from it); Hypothesis reports a change as this warning.
_NO_RANDOM_STATE_CHANGE = pytest.mark.filterwarnings(
    "error::hypothesis.errors.HypothesisDeprecationWarning"
)


@jax.jit
def _point_and_tangent(manifold, key):
    x = random_point(manifold, key)
    v = random_tangent(manifold, x, jax.random.fold_in(key, 1))
    return x, manifold.project(x), v, manifold.project_tangent(x, v), manifold.norm(x, v)


@settings(max_examples=3)
@given(manifold=mst.manifolds(), seed=mst.seeds())
def test_points_and_tangent_vectors_from_the_kit(manifold, seed):
    x, px, v, pv, norm = _point_and_tangent(manifold, jax.random.key(seed))
    assert x.shape == manifold.point_shape and x.dtype == jnp.float64
    np.testing.assert_allclose(px, x, atol=1e-12)
    np.testing.assert_allclose(pv, v, atol=1e-12)
    assert float(norm) < 0.9 * min(manifold.injectivity_radius, 10.0 / 3.0) + 1e-9


@_NO_RANDOM_STATE_CHANGE
@settings(max_examples=3)
@given(xv=mst.tangent_vectors(REGISTRY["sphere_2"], max_norm=0.5))
def test_tangent_vector_strategy(xv):
    x, v = xv
    assert x.shape == v.shape == (3,)
    assert abs(float(jnp.dot(x, v))) < 1e-12 and float(jnp.linalg.norm(v)) < 0.5


@_NO_RANDOM_STATE_CHANGE
@settings(max_examples=3)
@given(p=mst.points(REGISTRY["torus_2d_rectangle"], dtype=jnp.float32))
def test_point_strategy_respects_dtype_and_domain(p):
    assert p.dtype == jnp.float32 and p.shape == (2,)
    assert bool(jnp.all((p >= 0) & (p < jnp.asarray([3.0, 5.5], dtype=jnp.float32))))


@_NO_RANDOM_STATE_CHANGE
@settings(max_examples=3)
@given(config=mst.configurations(SPACE, num_species=3))
def test_configuration_strategy(config):
    positions, species = config
    assert positions.shape == (4, 2) and species.shape == (4,) and species.dtype == jnp.int32
    assert bool(jnp.all((species >= 0) & (species < 3)))


def test_strategy_arguments_are_checked():
    with pytest.raises(TypeError, match=r"needs a ParticleSpace|parameter 'space'"):
        mst.configurations(BOX)
    with pytest.raises(ValueError, match=r"unknown registry names \['klein_bottle'\]"):
        mst.manifolds(["klein_bottle"])
    with pytest.raises(ValueError, match=r"must be integers of shape \(4,\)"):
        mst.configurations(SPACE, species=jnp.zeros(3, dtype=jnp.int32))


@_NO_RANDOM_STATE_CHANGE
@settings(max_examples=2)
@given(config=mst.configurations(SPACE, species=SPECIES))
def test_configuration_strategy_with_fixed_species(config):
    positions, species = config
    assert positions.shape == (4, 2)
    np.testing.assert_array_equal(species, SPECIES)


def test_checkers_import_without_hypothesis():
    # `mflows doctor` must run after a plain `pip install` (no test extras).
    script = textwrap.dedent(
        """
        import sys
        sys.modules["hypothesis"] = None  # make `import hypothesis` fail
        import manifold_flows.testing as t
        assert callable(t.check_manifold_laws) and callable(t.assert_equivariant)
        try:
            t.strategies
        except ModuleNotFoundError as exc:
            assert "hypothesis" in str(exc)
        else:
            raise SystemExit("strategies imported without hypothesis")
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


def test_module_classes_in_this_file_are_final():
    # The defective manifold is a final class too (fields and __init__ here, no subclasses).
    assert issubclass(_Defective, eqx.Module) and not _Defective.__subclasses__()
