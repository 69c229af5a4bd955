"""The concrete group actions: their exact formulas, transformations (jit/vmap) and errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from manifold_flows import (
    BoxPointGroup,
    EuclideanTranslation,
    FlatTorus,
    OrthogonalGroup,
    ParticleSpace,
    PermutationWithinSpecies,
    ProductAction,
    SignedPermutation,
    TorusIsometry,
    TorusIsometryGroup,
    TorusTranslation,
    full_symmetry_group,
)
from manifold_flows.testing import tolerance

RTOL, ATOL = tolerance(jnp.float64)
EXAMPLES = max(3, settings.default.max_examples // 4)
seeds = st.integers(0, 2**31 - 1)

SQUARE = FlatTorus(4.472136, dim=2)
CUBE = FlatTorus(2.5, dim=3)
SORTED = jnp.asarray([0, 0, 0, 1, 1], dtype=jnp.int32)
UNSORTED = jnp.asarray([1, 0, 2, 0, 1, 2], dtype=jnp.int32)


def _config(torus: FlatTorus, n: int, seed: int):
    return ParticleSpace(torus, n).random_uniform(jax.random.key(seed))


def _torus_close(torus: FlatTorus, a, b):
    """a == b as points of the torus (coordinates may differ by a multiple of L)."""
    delta = jax.vmap(torus.log)(a, b)
    np.testing.assert_allclose(np.asarray(delta), 0.0, atol=ATOL)


# ---------------------------------------------------------------------------------------------
# Permutations within species


@pytest.mark.parametrize("species", [SORTED, UNSORTED], ids=["sorted", "unsorted"])
@settings(max_examples=EXAMPLES)
@given(seed=seeds)
def test_random_permutation_only_exchanges_equal_species(species, seed):
    group = PermutationWithinSpecies(species)
    p = group.random_element(jax.random.key(seed))
    assert p.dtype == jnp.int32
    assert sorted(np.asarray(p).tolist()) == list(range(species.shape[0]))
    np.testing.assert_array_equal(np.asarray(species[p]), np.asarray(species))


def test_permutation_relabels_rows():
    group = PermutationWithinSpecies(UNSORTED)
    x = jnp.arange(12.0).reshape(6, 2)
    p = jnp.asarray([4, 3, 5, 1, 0, 2], dtype=jnp.int32)  # species-preserving
    np.testing.assert_array_equal(np.asarray(group.act(p, x)), np.asarray(x[p]))
    q = group.inverse(p)
    np.testing.assert_array_equal(np.asarray(group.act(q, group.act(p, x))), np.asarray(x))
    # compose(g, h) applies h first.
    h = jnp.asarray([0, 3, 2, 1, 4, 5], dtype=jnp.int32)
    np.testing.assert_array_equal(
        np.asarray(group.act(group.compose(p, h), x)), np.asarray(group.act(p, group.act(h, x)))
    )


def test_random_permutation_mixes_every_species(key):
    # Every particle of every species is moved to every allowed slot over enough draws.
    group = PermutationWithinSpecies(UNSORTED)
    perms = np.asarray(jax.vmap(group.random_element)(jax.random.split(key, 200)))
    s = np.asarray(UNSORTED)
    for i in range(6):
        assert set(perms[:, i].tolist()) == set(np.flatnonzero(s == s[i]).tolist())


# ---------------------------------------------------------------------------------------------
# Torus translations, point group, isometries


@settings(max_examples=EXAMPLES)
@given(seed=seeds)
def test_translation_wraps_into_the_box_and_ignores_lattice_shifts(seed):
    group = TorusTranslation(SQUARE)
    x = _config(SQUARE, 5, seed)
    t = group.random_element(jax.random.key(seed + 1))
    y = group.act(t, x)
    L = np.asarray(SQUARE.lengths)
    assert np.all((np.asarray(y) >= 0) & (np.asarray(y) < L))
    np.testing.assert_allclose(np.asarray(y), np.mod(np.asarray(x) + np.asarray(t), L), atol=ATOL)
    # Translating by a lattice vector is the identity on the torus.
    _torus_close(SQUARE, group.act(t + jnp.asarray([2.0, -3.0]) * SQUARE.box(), x), y)
    v = jnp.ones_like(x)
    np.testing.assert_array_equal(np.asarray(group.act_tangent(t, x, v)), np.asarray(v))


@settings(max_examples=EXAMPLES)
@given(seed=seeds)
def test_point_group_is_the_matrix_action_mod_l(seed):
    group = BoxPointGroup(CUBE)
    x = _config(CUBE, 6, seed)
    g = group.random_element(jax.random.key(seed))
    m = group.as_matrix(g)
    np.testing.assert_allclose(np.asarray(m @ m.T), np.eye(3), atol=ATOL)
    expected = np.mod(np.asarray(x) @ np.asarray(m).T, 2.5)
    _torus_close(CUBE, group.act(g, x), jnp.asarray(expected))
    v = jax.random.normal(jax.random.key(seed + 1), x.shape)
    np.testing.assert_allclose(
        np.asarray(group.act_tangent(g, x, v)), np.asarray(v @ m.T), atol=ATOL
    )
    # Matrices compose like the elements.
    h = group.random_element(jax.random.key(seed + 2))
    np.testing.assert_allclose(
        np.asarray(group.as_matrix(group.compose(g, h))),
        np.asarray(m @ group.as_matrix(h)),
        atol=ATOL,
    )


def test_point_group_accepts_plain_tuples_and_keeps_the_rectangle():
    group = BoxPointGroup(FlatTorus((4.0, 6.5)))
    perms, _ = group.elements()
    assert np.all(np.asarray(perms) == np.asarray([0, 1]))  # the rectangle never swaps axes
    x = jnp.asarray([[1.0, 2.0], [3.5, 6.0]])
    flip = (jnp.asarray([0, 1], dtype=jnp.int32), jnp.asarray([-1, 1], dtype=jnp.int32))
    np.testing.assert_allclose(np.asarray(group.act(flip, x)), [[3.0, 2.0], [0.5, 6.0]])


@settings(max_examples=EXAMPLES)
@given(seed=seeds)
def test_isometry_composition_is_semidirect(seed):
    group = TorusIsometryGroup(SQUARE)
    k1, k2 = jax.random.split(jax.random.key(seed))
    g, h = group.random_element(k1), group.random_element(k2)
    x = _config(SQUARE, 5, seed)
    gh = group.compose(g, h)
    (r1, t1), (r2, t2) = g, h
    # (R1, t1)(R2, t2) = (R1 R2, R1 t2 + t1) mod L, written out with matrices.
    m1, m2 = group.point_group.as_matrix(r1), group.point_group.as_matrix(r2)
    np.testing.assert_allclose(np.asarray(group.point_group.as_matrix(gh.linear)), m1 @ m2)
    _torus_close(SQUARE, gh.translation[None], (m1 @ t2 + t1)[None])
    # act((R, t), x) = R x + t mod L.
    _torus_close(SQUARE, group.act(g, x), x @ m1.T + t1[None, :])
    _torus_close(SQUARE, group.act(gh, x), group.act(g, group.act(h, x)))


def test_translations_and_point_group_do_not_commute():
    # Why TorusIsometryGroup is a semidirect product: a flip and a translation fail to commute.
    group = TorusIsometryGroup(SQUARE)
    flip = TorusIsometry(
        SignedPermutation(jnp.asarray([0, 1], dtype=jnp.int32), jnp.asarray([-1, 1], jnp.int32)),
        jnp.zeros(2),
    )
    shift = TorusIsometry(group.point_group.identity(), jnp.asarray([1.0, 0.0]))
    x = jnp.asarray([[0.5, 0.5]])
    a = group.act(group.compose(flip, shift), x)
    b = group.act(group.compose(shift, flip), x)
    assert float(jnp.max(jnp.abs(jax.vmap(SQUARE.log)(a, b)))) > 1.0


def test_full_symmetry_group_preserves_minimum_image_distances(key):
    # Pairwise minimum-image distances, hence every pair energy, are invariant up to the
    # relabelling of particles within species.
    group = full_symmetry_group(SQUARE, SORTED)
    assert isinstance(group, ProductAction)
    assert [type(a) for a in group.actions] == [PermutationWithinSpecies, TorusIsometryGroup]
    x = _config(SQUARE, 5, 0)
    g = group.random_element(key)
    y = group.act(g, x)
    dist = lambda z: jax.vmap(lambda a: jax.vmap(lambda b: SQUARE.dist(a, b))(z))(z)
    p = g[0]
    np.testing.assert_allclose(np.asarray(dist(y)), np.asarray(dist(x)[p][:, p]), atol=1e-9)


# ---------------------------------------------------------------------------------------------
# Euclidean actions


def test_orthogonal_random_elements_are_haar_like(key):
    group = OrthogonalGroup(3)
    qs = jax.vmap(group.random_element)(jax.random.split(key, 2000))
    eye = jnp.broadcast_to(jnp.eye(3), qs.shape)
    np.testing.assert_allclose(np.asarray(jnp.swapaxes(qs, 1, 2) @ qs), np.asarray(eye), atol=1e-12)
    dets = np.asarray(jnp.linalg.det(qs))
    # Both components of O(3), in equal proportion; the Haar mean of Q is 0 (each entry has
    # variance 1/3, so the standard error of the mean is 0.013).
    assert abs(np.mean(dets > 0) - 0.5) < 0.05
    assert float(jnp.max(jnp.abs(jnp.mean(qs, axis=0)))) < 0.06


def test_euclidean_actions_formulas(key):
    x = jax.random.normal(key, (4, 2))
    t = jnp.asarray([0.3, -1.2])
    trans = EuclideanTranslation(2)
    np.testing.assert_allclose(np.asarray(trans.act(t, x)), np.asarray(x + t[None, :]))
    np.testing.assert_allclose(np.asarray(trans.act(trans.inverse(t), trans.act(t, x))), x)
    c, s = np.cos(0.7), np.sin(0.7)
    q = jnp.asarray([[c, -s], [s, c]])
    rot = OrthogonalGroup(2)
    np.testing.assert_allclose(np.asarray(rot.act(q, x)), np.asarray(x) @ np.asarray(q).T)
    np.testing.assert_allclose(np.asarray(rot.compose(q, rot.inverse(q))), np.eye(2), atol=1e-15)


# ---------------------------------------------------------------------------------------------
# jit and vmap agree with eager evaluation and python loops


def _actions_and_points():
    return [
        (TorusIsometryGroup(SQUARE), _config(SQUARE, 5, 3)),
        (OrthogonalGroup(3), jax.random.normal(jax.random.key(4), (6, 3))),
    ]


@pytest.mark.parametrize("index", range(2), ids=["isometry", "orthogonal"])
def test_jit_and_vmap_agree_with_eager_and_loops(index, key):
    action, x = _actions_and_points()[index]
    keys = jax.random.split(key, 2)
    gs = jax.vmap(action.random_element)(keys)
    looped = [action.random_element(k) for k in keys]
    for i, g in enumerate(looped):  # vmapped draws equal looped draws
        for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(gs), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b[i]), rtol=RTOL, atol=ATOL)
    v = jnp.ones_like(x)
    batched = jax.jit(jax.vmap(lambda g: (action.act(g, x), action.act_tangent(g, x, v))))(gs)
    for i, g in enumerate(looped):
        np.testing.assert_allclose(
            np.asarray(batched[0][i]), np.asarray(action.act(g, x)), rtol=RTOL, atol=ATOL
        )
        np.testing.assert_allclose(
            np.asarray(batched[1][i]), np.asarray(action.act_tangent(g, x, v)), rtol=RTOL, atol=ATOL
        )
    # A batch of configurations under one element.
    xs = jnp.stack([x, x[::-1]])
    out = jax.vmap(action.act, in_axes=(None, 0))(looped[0], xs)
    for i in range(2):
        np.testing.assert_allclose(
            np.asarray(out[i]), np.asarray(action.act(looped[0], xs[i])), rtol=RTOL, atol=ATOL
        )


# ---------------------------------------------------------------------------------------------
# Errors name the argument and the fix


def test_point_group_rejects_unsupported_dimension():
    with pytest.raises(ValueError, match=r"d=7"):
        BoxPointGroup(FlatTorus(1.0, dim=7))
    with pytest.raises(ValueError, match=r"d=7"):
        TorusIsometryGroup(FlatTorus(1.0, dim=7))
    assert BoxPointGroup(FlatTorus(1.0, dim=6)).order == 2**6 * 720


def test_torus_actions_need_a_flat_torus():
    for cls in (TorusTranslation, BoxPointGroup, TorusIsometryGroup):
        with pytest.raises(TypeError, match="FlatTorus"):
            cls(3.0)


@pytest.mark.parametrize(
    "action",
    [TorusTranslation(SQUARE), BoxPointGroup(SQUARE), TorusIsometryGroup(SQUARE)],
    ids=["translation", "point_group", "isometry"],
)
def test_wrong_trailing_dimension_is_named(action):
    g = action.identity()
    with pytest.raises(ValueError, match=r"shape \(n, 2\).*got shape \(5, 3\)"):
        action.act(g, jnp.zeros((5, 3)))
    # A batch instead of one configuration: rejected by the shape annotations when the
    # jaxtyping hook is on (as in this suite), otherwise by the action's own check.
    with pytest.raises((TypeError, ValueError), match="x"):
        action.act(g, jnp.zeros((7, 5, 2)))


def test_batch_hint_of_the_configuration_check():
    from manifold_flows._group._checks import check_configuration

    with pytest.raises(ValueError, match=r"got shape \(7, 5, 2\) \(a batch\? map over it"):
        check_configuration(jnp.zeros((7, 5, 2)), 2, "TorusTranslation.act")


def test_euclidean_action_errors():
    with pytest.raises(ValueError, match=r"dim=0"):
        OrthogonalGroup(0)
    with pytest.raises(ValueError, match=r"scale=-1"):
        EuclideanTranslation(2, scale=-1.0)
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        OrthogonalGroup(3).act(jnp.eye(3), jnp.zeros((4, 2)))


def test_species_errors():
    with pytest.raises(TypeError, match="integer species labels"):
        PermutationWithinSpecies(jnp.asarray([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"one integer label per particle; got shape \(2, 2\)"):
        PermutationWithinSpecies(jnp.zeros((2, 2), dtype=jnp.int32))
    group = PermutationWithinSpecies(SORTED)
    # Wrong number of particles: caught by the shape annotations or by the action itself.
    with pytest.raises((TypeError, ValueError)):
        group.act(group.identity(), jnp.zeros((4, 2)))


def test_order_of_traced_species_is_a_clear_error():
    @jax.jit
    def order_inside_jit(species):
        return jnp.asarray(PermutationWithinSpecies(species).order)

    with pytest.raises(ValueError, match="concrete species vector"):
        order_inside_jit(SORTED)

    @jax.jit
    def draw_inside_jit(species, key):
        return PermutationWithinSpecies(species).random_element(key)

    p = draw_inside_jit(UNSORTED, jax.random.key(0))  # random_element works under jit
    np.testing.assert_array_equal(np.asarray(UNSORTED[p]), np.asarray(UNSORTED))


def test_product_action_errors():
    with pytest.raises(ValueError, match="at least one factor"):
        ProductAction()
    with pytest.raises(TypeError, match="FlatTorus"):
        ProductAction(TorusTranslation(SQUARE), SQUARE)
    group = full_symmetry_group(SQUARE, SORTED)
    with pytest.raises(ValueError, match=r"one element per factor \(2 factors\).*length 1"):
        group.act((group.actions[0].identity(),), _config(SQUARE, 5, 0))
