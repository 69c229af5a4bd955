"""Contract tests: every registered group action obeys the group-action laws, and the checkers
catch broken actions."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings, strategies as st
from jaxtyping import Array, Float, PRNGKeyArray

from manifold_flows import (
    AbstractFiniteGroupAction,
    AbstractGroupAction,
    BoxPointGroup,
    FlatTorus,
    OrthogonalGroup,
    ParticleSpace,
    PermutationWithinSpecies,
    ProductAction,
    SignedPermutation,
    TorusIsometry,
    TorusIsometryGroup,
    TorusTranslation,
)
from manifold_flows.testing import (
    LawResult,
    assert_group_laws,
    check_group_laws,
    group_action_registry,
    group_elements,
)

REGISTRY = group_action_registry()
# Each example already checks the laws on 8 random triples of elements; a few seeds per action
# are plenty and keep the suite fast.
EXAMPLES = max(3, settings.default.max_examples // 4)
seeds = st.integers(0, 2**31 - 1)


def _case_points(name: str, seed: int, dtype=jnp.float64):
    case = REGISTRY[name]
    kx, ky = jax.random.split(jax.random.key(seed))
    return case, case.make_point(kx, dtype), case.make_point(ky, dtype)


@pytest.mark.parametrize("name", sorted(REGISTRY))
@settings(max_examples=EXAMPLES)
@given(seed=seeds)
def test_registry_action_obeys_group_laws(name, seed):
    # `y` is an independent random point: the isometry laws then see displacements of every
    # size, including minimum-image wrap-around on the torus.
    case, x, y = _case_points(name, seed)
    results = assert_group_laws(
        case.action, x, jax.random.key(seed + 1), manifold=case.manifold, y=y
    )
    expected = {
        "identity",
        "inverse_left",
        "inverse_right",
        "compatibility",
        "associativity",
        "tangent_is_jvp",
        "stays_on_manifold",
        "isometry_log",
        "isometry_dist",
    }
    if isinstance(case.action, ProductAction):
        expected.add("factors_commute")
    if isinstance(case.action, AbstractFiniteGroupAction):
        expected |= {"elements_count", "elements_distinct", "elements_closed", "random_in_elements"}
    assert set(results) == expected
    assert all(isinstance(r, LawResult) and r.passed for r in results.values())


@pytest.mark.parametrize("name", ["isometry_2d"])
def test_group_laws_hold_in_float32(name):
    # Default second point (near x): exercises the checker's own choice of y.
    case, x, _ = _case_points(name, 3, jnp.float32)
    results = assert_group_laws(case.action, x, jax.random.key(4), manifold=case.manifold)
    assert results["isometry_log"].tolerance > 1e-6  # the float32 row of the tolerance table


def test_registry_covers_every_action_type():
    kinds = {type(case.action).__name__ for case in REGISTRY.values()}
    assert kinds == {
        "PermutationWithinSpecies",
        "TorusTranslation",
        "BoxPointGroup",
        "TorusIsometryGroup",
        "ProductAction",
        "EuclideanTranslation",
        "OrthogonalGroup",
    }


# ---------------------------------------------------------------------------------------------
# The checkers must fail on broken actions (otherwise the contract tests prove nothing).

SQUARE = FlatTorus(4.472136, dim=2)
SPACE = ParticleSpace(SQUARE, 5)


class _DirectProductIsometries(AbstractGroupAction):
    """WRONG on purpose: translations x point group with the component-wise (direct) product
    `(R1, t1)(R2, t2) = (R1 R2, t1 + t2)` instead of the semidirect one."""

    inner: TorusIsometryGroup

    def __init__(self, torus: FlatTorus):
        self.inner = TorusIsometryGroup(torus)

    def identity(self):
        return self.inner.identity()

    def compose(self, g, h):
        linear = self.inner.point_group.compose(g[0], h[0])
        return TorusIsometry(linear, self.inner.torus.project(g[1] + h[1]))

    def inverse(self, g):
        return TorusIsometry(self.inner.point_group.inverse(g[0]), self.inner.torus.project(-g[1]))

    def act(self, g, x):
        return self.inner.act(g, x)

    def act_tangent(self, g, x, v):
        return self.inner.act_tangent(g, x, v)

    def random_element(self, key: PRNGKeyArray):
        return self.inner.random_element(key)


class _NoPushforward(AbstractGroupAction):
    """WRONG on purpose: the point group with `act_tangent` left as the identity."""

    inner: BoxPointGroup

    def __init__(self, torus: FlatTorus):
        self.inner = BoxPointGroup(torus)

    def identity(self):
        return self.inner.identity()

    def compose(self, g, h):
        return self.inner.compose(g, h)

    def inverse(self, g):
        return self.inner.inverse(g)

    def act(self, g, x):
        return self.inner.act(g, x)

    def act_tangent(self, g, x, v):
        return v

    def random_element(self, key):
        return self.inner.random_element(key)


class _Unwrapped(AbstractGroupAction):
    """WRONG on purpose: torus translations that forget to wrap into the box."""

    inner: TorusTranslation

    def __init__(self, torus: FlatTorus):
        self.inner = TorusTranslation(torus)

    def identity(self):
        return self.inner.identity()

    def compose(self, g, h):
        return self.inner.compose(g, h)

    def inverse(self, g):
        return self.inner.inverse(g)

    def act(self, g: Float[Array, " d"], x: Float[Array, "n d"]) -> Float[Array, "n d"]:
        return x + g[None, :]

    def act_tangent(self, g, x, v):
        return v

    def random_element(self, key):
        return self.inner.random_element(key)


class _RepeatedElements(AbstractFiniteGroupAction):
    """WRONG on purpose: the 2D point group whose `elements()` lists the identity twice."""

    inner: BoxPointGroup

    def __init__(self, torus: FlatTorus):
        self.inner = BoxPointGroup(torus)

    @property
    def order(self) -> int:
        return self.inner.order

    def elements(self):
        perms, signs = self.inner.elements()
        return SignedPermutation(perms.at[1].set(perms[0]), signs.at[1].set(signs[0]))

    def identity(self):
        return self.inner.identity()

    def compose(self, g, h):
        return self.inner.compose(g, h)

    def inverse(self, g):
        return self.inner.inverse(g)

    def act(self, g, x):
        return self.inner.act(g, x)

    def act_tangent(self, g, x, v):
        return self.inner.act_tangent(g, x, v)

    def random_element(self, key):
        return self.inner.random_element(key)


def _failed(results: dict[str, LawResult]) -> set[str]:
    return {name for name, r in results.items() if not r.passed}


def test_direct_product_of_translations_and_point_group_fails_compatibility(key):
    x = SPACE.random_uniform(key)
    results = check_group_laws(_DirectProductIsometries(SQUARE), x, key, manifold=SPACE)
    assert "compatibility" in _failed(results)
    # The real (semidirect) group passes on the same point and key.
    assert not _failed(check_group_laws(TorusIsometryGroup(SQUARE), x, key, manifold=SPACE))


def test_product_of_non_commuting_factors_is_caught(key):
    x = SPACE.random_uniform(key)
    wrong = ProductAction(TorusTranslation(SQUARE), BoxPointGroup(SQUARE))
    failed = _failed(check_group_laws(wrong, x, key, manifold=SPACE))
    assert {"factors_commute", "compatibility"} <= failed
    with pytest.raises(AssertionError, match="factors_commute"):
        assert_group_laws(wrong, x, key, manifold=SPACE)


def test_missing_pushforward_fails_tangent_and_isometry_laws(key):
    x = SPACE.random_uniform(key)
    failed = _failed(check_group_laws(_NoPushforward(SQUARE), x, key, manifold=SPACE))
    assert {"tangent_is_jvp", "isometry_log"} <= failed


def test_unwrapped_translation_leaves_the_box(key):
    x = SPACE.random_uniform(key)
    failed = _failed(check_group_laws(_Unwrapped(SQUARE), x, key, manifold=SPACE))
    assert "stays_on_manifold" in failed


def test_repeated_elements_are_caught(key):
    x = SPACE.random_uniform(key)
    failed = _failed(check_group_laws(_RepeatedElements(SQUARE), x, key, manifold=SPACE))
    assert "elements_distinct" in failed


def test_assert_group_laws_reports_numbers(key):
    x = SPACE.random_uniform(key)
    with pytest.raises(AssertionError, match=r"tangent_is_jvp: error [0-9.e+-]+ > tolerance"):
        assert_group_laws(_NoPushforward(SQUARE), x, key, manifold=SPACE)


def test_checker_argument_errors(key):
    x = SPACE.random_uniform(key)
    with pytest.raises(TypeError, match="AbstractGroupAction"):
        check_group_laws(SQUARE, x, key)
    with pytest.raises(ValueError, match="num_elements"):
        check_group_laws(TorusTranslation(SQUARE), x, key, num_elements=0)
    with pytest.raises(ValueError, match="manifold"):
        check_group_laws(TorusTranslation(SQUARE), x, key, y=x)


# ---------------------------------------------------------------------------------------------
# Finite groups: orders, enumeration, uniform sampling.


@pytest.mark.parametrize(
    ("lengths", "order"),
    [
        ((3.0,), 2),
        ((4.0, 4.0), 8),
        ((4.0, 6.5), 4),  # rectangle: sign flips only
        ((2.5, 2.5, 2.5), 48),
        ((2.0, 2.0, 3.5), 16),  # two equal axes: 2! * 2^3
        ((1.0, 2.0, 3.0), 8),
        ((1.0, 1.0, 1.0, 1.0), 384),
    ],
)
def test_point_group_order_and_elements(lengths, order):
    group = BoxPointGroup(FlatTorus(lengths))
    assert group.order == order
    perms, signs = group.elements()
    assert perms.shape == signs.shape == (order, len(lengths))
    rows = np.concatenate([np.asarray(perms), np.asarray(signs)], axis=1)
    assert np.unique(rows, axis=0).shape[0] == order
    lengths_arr = np.asarray(lengths)
    # Every element maps the box onto itself: only axes of equal length are exchanged.
    assert np.all(lengths_arr[np.asarray(perms)] == lengths_arr[None, :])
    assert set(np.unique(np.asarray(signs))) == {-1, 1}


@pytest.mark.parametrize(
    ("species", "order"),
    [([0, 0, 0, 1, 1], 12), ([1, 0, 2, 0, 1, 2], 8), ([0, 1, 0, 1, 0, 0, 1], 144), ([3], 1)],
)
def test_permutation_order_and_elements_preserve_species(species, order):
    group = PermutationWithinSpecies(jnp.asarray(species))
    assert group.order == order
    perms = np.asarray(group.elements())
    assert perms.shape == (order, len(species))
    assert np.unique(perms, axis=0).shape[0] == order
    s = np.asarray(species)
    assert np.all(s[perms] == s[None, :])
    assert np.all(np.sort(perms, axis=1) == np.arange(len(species))[None, :])


def _chi_square_pvalue(indices: np.ndarray, num_bins: int) -> float:
    counts = np.bincount(indices, minlength=num_bins)
    return float(scipy.stats.chisquare(counts).pvalue)


def _element_indices(group: AbstractFiniteGroupAction, drawn) -> np.ndarray:
    """Index of each drawn element in `group.elements()` (asserting that it is there)."""
    table = np.concatenate(
        [np.asarray(a).reshape(group.order, -1) for a in jax.tree.leaves(group.elements())], 1
    )
    rows = np.concatenate(
        [np.asarray(a).reshape(a.shape[0], -1) for a in jax.tree.leaves(drawn)], 1
    )
    match = np.all(rows[:, None, :] == table[None, :, :], axis=-1)
    assert np.all(match.sum(axis=1) == 1), "random_element drew something not in elements()"
    return match.argmax(axis=1)


@pytest.mark.parametrize(
    "group",
    [
        BoxPointGroup(FlatTorus(4.0, dim=2)),
        BoxPointGroup(FlatTorus(2.0, dim=3)),
        PermutationWithinSpecies(jnp.asarray([1, 0, 1, 0, 0])),
    ],
    ids=["point_group_2d", "point_group_3d", "permutation_unsorted"],
)
def test_random_element_is_uniform(group, key):
    # Chi-square goodness of fit to the uniform distribution on elements(); 200 draws per
    # element. The p-value threshold 1e-4 makes a false alarm very unlikely while any
    # systematic bias of a few percent is caught (see the power check below).
    draws = 200 * group.order
    drawn = jax.vmap(group.random_element)(jax.random.split(key, draws))
    indices = _element_indices(group, drawn)
    assert _chi_square_pvalue(indices, group.order) > 1e-4


def test_uniformity_check_has_power(key):
    # A sampler that never draws one of the 8 elements (or draws one twice as often) fails.
    indices = np.asarray(jax.random.randint(key, (1600,), 0, 7))
    assert _chi_square_pvalue(indices, 8) < 1e-4
    biased = np.concatenate([np.repeat(np.arange(8), 200), np.zeros(200, dtype=int)])
    assert _chi_square_pvalue(biased, 8) < 1e-4


def test_large_permutation_group_refuses_to_enumerate():
    group = PermutationWithinSpecies(jnp.asarray([0] * 6 + [1] * 6))
    assert group.order == 720 * 720
    with pytest.raises(ValueError, match=r"order 518400 .*random_element"):
        group.elements()


# ---------------------------------------------------------------------------------------------
# Hypothesis strategies for group elements.


@settings(max_examples=EXAMPLES)
@given(g=group_elements(BoxPointGroup(FlatTorus(4.0, dim=3))))
def test_group_elements_strategy_draws_point_group_elements(g):
    perm, signs = g
    assert sorted(np.asarray(perm).tolist()) == [0, 1, 2]
    assert set(np.asarray(signs).tolist()) <= {-1, 1}


@settings(max_examples=EXAMPLES)
@given(g=group_elements(PermutationWithinSpecies(jnp.asarray([0] * 5 + [1] * 5 + [2] * 4))))
def test_group_elements_strategy_for_large_groups_preserves_species(g):
    # Order 5!^2 4! > 1e5: drawn through random_element from a seed.
    species = np.asarray([0] * 5 + [1] * 5 + [2] * 4)
    assert np.all(species[np.asarray(g)] == species)


@settings(max_examples=EXAMPLES)
@given(g=group_elements(TorusIsometryGroup(FlatTorus((4.0, 6.5)))))
def test_group_elements_strategy_for_isometries(g):
    (perm, _), t = g
    assert np.asarray(perm).tolist() == [0, 1]  # a rectangle never swaps its axes
    assert np.all((np.asarray(t) >= 0) & (np.asarray(t) < np.asarray([4.0, 6.5])))


def test_orthogonal_elements_strategy_draws_orthogonal_matrices():
    group = OrthogonalGroup(3)

    @settings(max_examples=EXAMPLES)
    @given(q=group_elements(group))
    def check(q):
        np.testing.assert_allclose(np.asarray(q.T @ q), np.eye(3), atol=1e-12)

    check()


def test_point_group_laws_exhaustively_in_2d(key):
    # Every pair of the 8 elements: compatibility and log(gx, gy) == R log(x, y).
    group = BoxPointGroup(SQUARE)
    kx, ky = jax.random.split(key)
    x, y = SPACE.random_uniform(kx), SPACE.random_uniform(ky)
    elements = group.elements()
    take = lambda i: jax.tree.map(lambda a: a[i], elements)

    @eqx.filter_jit
    def errors(i, j):
        g, h = take(i), take(j)
        compat = SPACE.log(group.act(g, group.act(h, x)), group.act(group.compose(g, h), x))
        iso = SPACE.log(group.act(g, x), group.act(g, y)) - group.act_tangent(g, x, SPACE.log(x, y))
        return jnp.max(jnp.abs(compat)), jnp.max(jnp.abs(iso))

    i, j = jnp.meshgrid(jnp.arange(8), jnp.arange(8), indexing="ij")
    compat, iso = jax.vmap(errors)(i.reshape(-1), j.reshape(-1))
    assert float(jnp.max(compat)) < 1e-12 and float(jnp.max(iso)) < 1e-12
