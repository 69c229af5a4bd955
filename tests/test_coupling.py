"""Couplings: optimal per-species pairing (exact vs brute force), species respected, cost never
increases, the point-group option, the Euclidean (eFM) variant and symmetry invariance."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

import manifold_flows as mf
from manifold_flows.testing import tolerance

TORUS = mf.FlatTorus(3.0, dim=2)
EUCLID = mf.Euclidean(2)
# unsorted on purpose: the coupling must not assume species blocks are contiguous
SPECIES = jnp.array([1, 0, 1, 0, 0, 1], dtype=jnp.int32)
N = 6
BATCH = 4

COUPLINGS = {
    "torus": mf.SpeciesOTCoupling(TORUS),
    "torus+point_group": mf.SpeciesOTCoupling(TORUS, point_group=True),
    "euclidean": mf.SpeciesOTCoupling(EUCLID),
}
METRIC = {"torus": TORUS, "torus+point_group": TORUS, "euclidean": EUCLID}


def _batch(seed: int):
    space = mf.ParticleSpace(TORUS, N)
    k0, k1 = jax.random.split(jax.random.key(seed))
    x0 = jax.vmap(space.random_uniform)(jax.random.split(k0, BATCH))
    x1 = jax.vmap(space.random_uniform)(jax.random.split(k1, BATCH))
    return x0, x1


@jax.jit
def _couple_all(seed):
    x0, x1 = _batch(seed)
    out = {}
    for name, coupling in COUPLINGS.items():
        a0, a1 = jax.vmap(coupling, in_axes=(0, 0, None))(x0, x1, SPECIES)
        cost = jax.vmap(lambda a, b, m=METRIC[name]: mf.transport_cost(m, a, b))
        out[name] = {"x0": a0, "x1": a1, "cost": cost(a0, a1), "identity_cost": cost(x0, x1)}
    return x0, x1, out


def _brute_force_cost(metric, x0, x1, species, candidates):
    """min over candidate images of x1 and over all within-species permutations."""
    species = np.asarray(species)
    blocks = [np.flatnonzero(species == s) for s in np.unique(species)]
    sq = jax.vmap(jax.vmap(metric.sq_dist, in_axes=(None, 0)), in_axes=(0, None))
    best = np.inf
    for y in candidates:
        c = np.asarray(sq(x0, y))
        total = 0.0
        for idx in blocks:
            total += min(
                sum(c[i, j] for i, j in zip(idx, perm, strict=True))
                for perm in itertools.permutations(idx)
            )
        best = min(best, total)
    return best


def _point_group_images(x1):
    group = mf.BoxPointGroup(TORUS)
    return list(jax.vmap(lambda g: group.act(g, x1))(group.elements()))


@given(seed=st.integers(0, 2**30))
def test_pairing_is_optimal_against_brute_force(seed):
    x0, x1, out = _couple_all(seed)
    rtol, atol = tolerance(x0.dtype)
    for b in range(2):  # 3 + 3 particles: 36 permutations (x 8 point-group images)
        for name, candidates in (
            ("torus", [x1[b]]),
            ("euclidean", [x1[b]]),
            ("torus+point_group", _point_group_images(x1[b])),
        ):
            brute = _brute_force_cost(METRIC[name], x0[b], x1[b], SPECIES, candidates)
            np.testing.assert_allclose(out[name]["cost"][b], brute, rtol=rtol, atol=atol)


@given(seed=st.integers(0, 2**30))
def test_cost_never_increases_and_point_group_never_worse(seed):
    _, _, out = _couple_all(seed)
    for name, res in out.items():
        assert bool(jnp.all(res["cost"] <= res["identity_cost"] + 1e-12)), name
    assert bool(jnp.all(out["torus+point_group"]["cost"] <= out["torus"]["cost"] + 1e-12))


def _match_rows(a, b):
    """index j with b[j] == a[i] exactly for every row i (or None)."""
    eq = np.all(np.asarray(a)[:, None, :] == np.asarray(b)[None, :, :], axis=-1)
    if not np.all(eq.sum(axis=1) >= 1):
        return None
    return eq.argmax(axis=1)


@given(seed=st.integers(0, 2**30))
def test_pairs_respect_species_and_x0_is_untouched(seed):
    x0, x1, out = _couple_all(seed)
    species = np.asarray(SPECIES)
    for name, res in out.items():
        np.testing.assert_array_equal(res["x0"], x0)
        for b in range(BATCH):
            candidates = _point_group_images(x1[b]) if "point_group" in name else [x1[b]]
            matches = [_match_rows(res["x1"][b], y) for y in candidates]
            perm = next(m for m in matches if m is not None)
            assert sorted(perm.tolist()) == list(range(N)), "not a permutation"
            np.testing.assert_array_equal(species[perm], species)  # paired species equal


@pytest.mark.parametrize(
    ("name", "group"),
    [
        ("torus", mf.full_symmetry_group(TORUS, SPECIES)),
        ("euclidean", mf.PermutationWithinSpecies(SPECIES)),
        # The point-group search turns x1 about the box origin, which does not commute with
        # translations, so there the optimal cost is invariant under permutations and the
        # point group only (the coupling still has the right marginals).
        (
            "torus+point_group",
            mf.ProductAction(mf.PermutationWithinSpecies(SPECIES), mf.BoxPointGroup(TORUS)),
        ),
    ],
)
def test_optimal_cost_is_invariant_under_the_symmetry_group(name, group, key):
    """Moving x0 and x1 by the same symmetry leaves the optimal cost unchanged: the coupling
    respects the group."""

    @jax.jit
    def costs(key):
        x0, x1 = _batch(7)
        g = jax.vmap(group.random_element)(jax.random.split(key, BATCH))
        gx0, gx1 = jax.vmap(group.act)(g, x0), jax.vmap(group.act)(g, x1)
        batched = jax.vmap(COUPLINGS[name], in_axes=(0, 0, None))
        cost = jax.vmap(lambda a, b: mf.transport_cost(METRIC[name], a, b))
        return cost(*batched(gx0, gx1, SPECIES)), cost(*batched(x0, x1, SPECIES))

    moved, original = costs(key)
    np.testing.assert_allclose(moved, original, rtol=1e-10)


def test_vmap_matches_one_pair_at_a_time():
    x0, x1, out = _couple_all(11)
    coupling = COUPLINGS["torus"]
    for b in range(BATCH):
        _, y = coupling(x0[b], x1[b], SPECIES)
        np.testing.assert_array_equal(y, out["torus"]["x1"][b])


def test_independent_coupling_keeps_pairs():
    x0, x1 = jnp.zeros((N, 2)), jnp.ones((N, 2))
    a, b = mf.IndependentCoupling()(x0, x1, SPECIES)
    assert a is x0 and b is x1


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="FlatTorus"):
        mf.SpeciesOTCoupling(EUCLID, point_group=True)
    with pytest.raises(TypeError, match="AbstractFiniteGroupAction"):
        mf.SpeciesOTCoupling(TORUS, point_group=mf.TorusTranslation(TORUS))
    with pytest.raises(TypeError, match="AbstractManifold"):
        mf.SpeciesOTCoupling("torus")
    with pytest.raises(ValueError, match="valid names"):
        mf.build_coupling("sinkhorn", TORUS)
    x0, x1 = _batch(0)
    with pytest.raises(ValueError, match=r"jax\.vmap"):
        COUPLINGS["torus"](x0, x1, None)  # a batch passed as one pair
