"""The device assignment (`auction_assignment`) and the coupling built on it
(`AuctionOTCoupling`): checked against SciPy's Hungarian solver, the host coupling, and
`train_step`; a planted bug (the auction maximising instead of minimising) fails the check."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from test_train import CONFIG, SPECIES, TORUS, N, TinyField, make_dataset

import manifold_flows as mf
from manifold_flows._coupling import auction as auction_module


def _optimum(cost, species):
    total = 0.0
    for label in np.unique(species):
        idx = np.flatnonzero(species == label)
        block = cost[np.ix_(idx, idx)]
        rows, cols = linear_sum_assignment(block)
        total += block[rows, cols].sum()
    return total


def _problems(seed, batch, species, box=3.0, dim=2):
    rng = np.random.default_rng(seed)
    n = len(species)
    x0, x1 = rng.uniform(0, box, (2, batch, n, dim))
    delta = x0[:, :, None] - x1[:, None]
    delta -= box * np.round(delta / box)
    return np.sum(delta**2, axis=-1)


def _check(cost, species, tolerance=1e-4, **kwargs):
    """Largest excess of the auction's total over the optimum, in units of max C, after
    checking that every answer is a permutation within species with the right total."""
    solve = jax.jit(jax.vmap(lambda c: mf.auction_assignment(c, species, **kwargs)))
    result = solve(jnp.asarray(cost))
    perm, species = np.asarray(result.perm), np.asarray(species)
    excess = []
    for b in range(cost.shape[0]):
        assert sorted(perm[b]) == list(range(len(species)))
        assert np.all(species[perm[b]] == species)
        np.testing.assert_allclose(
            float(result.total[b]), cost[b][np.arange(len(species)), perm[b]].sum(), rtol=1e-6
        )
        excess.append((float(result.total[b]) - _optimum(cost[b], species)) / cost[b].max())
    return max(excess)


@pytest.mark.parametrize(
    "species",
    [
        [0] * 12,
        [0] * 7 + [1] * 4 + [2],  # a species of one particle
        [1, 0, 2, 0, 1, 0, 2, 1, 0, 0],  # interleaved labels
        [0],
    ],
)
def test_auction_finds_the_optimal_assignment_within_species(species):
    species = jnp.asarray(species, jnp.int32)
    cost = _problems(0, 24, species)
    assert _check(cost, species) <= 1e-4


def test_auction_check_catches_an_auction_that_maximises(monkeypatch):
    species = jnp.asarray([0] * 8 + [1] * 4, jnp.int32)
    real = auction_module._bid_round
    monkeypatch.setattr(
        auction_module, "_bid_round", lambda benefit, eps, state: real(-benefit, eps, state)
    )
    assert _check(_problems(1, 8, species), species) > 1e-2


def test_auction_always_returns_a_permutation():
    species = jnp.asarray([0] * 6 + [1] * 6, jnp.int32)
    cost = _problems(2, 8, species)
    # one round per phase: most rows are paired by the index-order completion
    assert _check(cost, species, max_rounds=1) >= -1e-9  # valid (checked inside), not better
    # non-finite costs (from non-finite inputs) count as the most expensive
    bad = cost.copy()
    bad[:, 0, :] = np.nan
    bad[:, 3, 5] = np.inf
    perm = np.asarray(jax.vmap(lambda c: mf.auction_assignment(c, species).perm)(bad))
    assert all(sorted(p) == list(range(12)) for p in perm)
    assert np.all(perm[:, 3] != 5)


@pytest.mark.parametrize("point_group", [False, True])
def test_auction_coupling_pairs_as_the_host_coupling(point_group):
    species = jnp.asarray([0] * 6 + [1] * 4 + [2] * 2, jnp.int32)
    torus = mf.FlatTorus(3.0, dim=2)
    rng = np.random.default_rng(3)
    x0, x1 = jnp.asarray(rng.uniform(0, 3.0, (2, 16, 12, 2)))
    host = mf.SpeciesOTCoupling(torus, point_group=point_group)
    device = mf.AuctionOTCoupling(torus, point_group=point_group)
    assert not isinstance(device, mf.AbstractHostCoupling)  # no host stage in train_step
    both = (0, 0, None)
    _, h1 = jax.vmap(host, both)(x0, x1, species)
    d0, d1 = jax.jit(jax.vmap(device, both))(x0, x1, species)
    np.testing.assert_array_equal(np.asarray(d0), np.asarray(x0))
    np.testing.assert_allclose(np.asarray(d1), np.asarray(h1), atol=1e-12)
    assert float(jnp.max(jnp.abs(d1 - x1))) > 1e-3  # it did re-pair


def test_auction_coupling_builds_by_name_and_trains_like_the_host_coupling():
    coupling = mf.build_coupling("species_ot_auction", TORUS)
    assert isinstance(coupling, mf.AuctionOTCoupling) and coupling.manifold == TORUS
    with pytest.raises(ValueError, match="needs the manifold"):
        mf.build_coupling("species_ot_auction")
    data = make_dataset(num=12)
    opt = mf.make_optimizer(CONFIG, 48)
    state = mf.init_train_state(
        TinyField(jax.random.key(3)), opt, key=jax.random.key(4), dtype=jnp.float32
    )
    x1 = jnp.asarray(data.positions, dtype=jnp.float32)
    species = jnp.asarray(SPECIES)
    losses = []
    for c in (coupling, mf.SpeciesOTCoupling(TORUS)):
        strategies = dict(
            interpolant=mf.GeodesicInterpolant(TORUS), coupling=c, base=mf.ParticleSpace(TORUS, N)
        )
        _, out = mf.train_step(state, x1, species, optimizer=opt, ema_decay=0.9, **strategies)
        losses.append(float(out["loss"]))
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-6)
