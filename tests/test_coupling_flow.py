"""The local augmented coupling flow: circular splines, exact log-determinants, symmetries.

Every property is checked twice: it holds for the real code, and a planted bug (a patched
helper or a broken strategy object) makes the same check fail, so no check is vacuous.
"""

import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import manifold_flows as mf
from manifold_flows._flow.augmented import (
    conditioner as conditioner_module,
    flow as flow_module,
    spline as spline_module,
)
from manifold_flows._flow.augmented.flow import AugmentedCouplingFlow
from manifold_flows._flow.augmented.neighbours import AbstractNeighbourList
from manifold_flows.testing import tolerance

RTOL, ATOL = tolerance(jnp.float64)
EPS = float(np.finfo(np.float64).eps)
L = 2.5
N, D = 4, 2
SPECIES = jnp.array([0, 1, 0, 1])


# ---------------------------------------------------------------- helpers
def _circle_gap(u, v, length):
    gap = u - v
    return jnp.abs(gap - length * jnp.round(gap / length))


def _spline_grid(length):
    interior = jnp.linspace(0.0, length, 1001)[:-1]
    edges = jnp.array([0.0, 1e-300, 1e-15, length * (1 - EPS), length - 1e-13, length / 2])
    return jnp.concatenate([interior, edges])


def _spline_round_trip(raw, length):
    """Largest round-trip error in units of the rounding of L (scaled by the slope where the
    map contracts, as an exact inverse of a rounded `y` must be), and the largest
    `log S' + log (S^-1)'`."""
    u = _spline_grid(length)
    length = jnp.asarray(length)
    y, log_det = jax.vmap(lambda v: spline_module.circular_spline(v, raw, length))(u)
    back, log_det_inv = jax.vmap(lambda v: spline_module.circular_spline_inverse(v, raw, length))(y)
    slope = jnp.minimum(1.0, jnp.exp(log_det))
    error = jnp.max(_circle_gap(back, u, length) * slope) / (EPS * length)
    return float(error), float(jnp.max(jnp.abs(log_det + log_det_inv)))


def _raw(key, scale=1.0, bins=8):
    return scale * jax.random.normal(key, (spline_module.num_spline_params(bins),))


@pytest.fixture(scope="module")
def flow():
    space = mf.ParticleSpace(mf.FlatTorus(L, dim=D), N)
    model = AugmentedCouplingFlow(
        space, 2, num_layers=1, num_bins=6, width=16, channels=4, num_rbf=8,
        init_scale=1.0, key=jax.random.key(0),
    )  # fmt: skip
    return _perturbed(model, jax.random.key(1))


def _perturbed(model, key):
    """`model` with every parameter perturbed, so that the map is far from the identity."""
    params, static = eqx.partition(model, eqx.is_inexact_array)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    leaves = [p + 0.3 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys, strict=True)]
    return eqx.combine(jax.tree.unflatten(tree, leaves), static)


@pytest.fixture(scope="module")
def state(flow):
    x, a, _ = eqx.filter_jit(flow.sample_joint)(jax.random.key(2), SPECIES)
    return x, a


def _log_q_function():
    return eqx.filter_jit(lambda f, x, a: f.log_prob_joint(x, a, SPECIES))


# Compiled once for the tests of the real code; a test that patches a helper of the package
# passes `fresh=True` so that the patched helper is traced anew.
_LOG_Q = _log_q_function()


def _signed_permutations(d):
    for perm in itertools.permutations(range(d)):
        for signs in itertools.product((1.0, -1.0), repeat=d):
            yield list(perm), jnp.array(signs)


def _point_group_gap(flow, x, a, fresh=False):
    log_q = _log_q_function() if fresh else _LOG_Q
    ref = log_q(flow, x, a)
    gaps = []
    for perm, signs in _signed_permutations(D):

        def act(p, perm=perm, signs=signs):
            return jnp.mod(p[:, perm] * signs[None, :], L)

        gaps.append(abs(float(log_q(flow, act(x), act(a)) - ref)))
    return max(gaps)


def _translation_gap(flow, x, a, fresh=False):
    log_q = _log_q_function() if fresh else _LOG_Q
    c = jnp.array([[0.7, -1.9]])
    return abs(float(log_q(flow, jnp.mod(x + c, L), jnp.mod(a + c, L)) - log_q(flow, x, a)))


def _permutation_gap(flow, x, a, fresh=False):
    log_q = _log_q_function() if fresh else _LOG_Q
    perm = jnp.array([2, 3, 0, 1])  # swaps the two particles of each species
    assert bool(jnp.all(SPECIES[perm] == SPECIES))
    return abs(float(log_q(flow, x[perm], a[perm]) - log_q(flow, x, a)))


# ---------------------------------------------------------------- the circular spline
@pytest.mark.parametrize("seed", range(4))
def test_spline_round_trip_over_the_whole_circle(seed):
    error, log_det_gap = _spline_round_trip(_raw(jax.random.key(seed)), L)
    assert error < 64, error  # a few dozen roundings of L, including at 0 and next to L
    assert log_det_gap < 1e-11


def test_spline_round_trip_catches_the_wrong_root(monkeypatch):
    def other_root(qa, qb, qc):  # the wrong sign of the square root: the other root
        return 2 * qc / (-qb + jnp.sqrt(jnp.maximum(qb * qb - 4 * qa * qc, 0)))

    monkeypatch.setattr(spline_module, "_bin_root", other_root)
    error, _ = _spline_round_trip(_raw(jax.random.key(0)), L)
    assert not error < 64


def test_spline_log_derivative_matches_autodiff():
    raw, length = _raw(jax.random.key(5)), jnp.asarray(L)
    u = _spline_grid(L)
    y, log_det = jax.vmap(lambda v: spline_module.circular_spline(v, raw, length))(u)
    slope = jax.vmap(jax.grad(lambda v: spline_module.circular_spline(v, raw, length)[0]))(u)
    np.testing.assert_allclose(log_det, jnp.log(slope), rtol=RTOL, atol=1e-12)
    inverse = jax.vmap(jax.grad(lambda v: spline_module.circular_spline_inverse(v, raw, length)[0]))
    _, log_det_inv = jax.vmap(lambda v: spline_module.circular_spline_inverse(v, raw, length))(y)
    np.testing.assert_allclose(log_det_inv, jnp.log(inverse(y)), rtol=RTOL, atol=1e-10)
    # and a central finite difference away from the knots agrees to its own accuracy
    h = 1e-6
    mid = u[100:900:37]
    fd = jax.vmap(lambda v: spline_module.circular_spline(v + h, raw, length)[0])(mid) - jax.vmap(
        lambda v: spline_module.circular_spline(v - h, raw, length)[0]
    )(mid)
    fd = (fd - L * jnp.round(fd / L)) / (2 * h)
    np.testing.assert_allclose(jnp.log(fd), log_det[100:900:37], atol=1e-6)


def test_spline_is_a_degree_one_circle_diffeomorphism():
    raw, length = _raw(jax.random.key(7), scale=2.0), jnp.asarray(L)
    u = jnp.linspace(0.0, L, 4001)  # closed loop: the last point is the first
    y, log_det = jax.vmap(lambda v: spline_module.circular_spline(v, raw, length))(u)
    steps = jnp.diff(y)
    steps = steps - L * jnp.round(steps / L)
    assert bool(jnp.all(steps > 0))  # strictly increasing along the circle ...
    np.testing.assert_allclose(jnp.sum(steps), L, rtol=RTOL)  # ... winding exactly once
    np.testing.assert_allclose(log_det[0], log_det[-1], rtol=RTOL)  # C^1 across 0 == L
    assert bool(jnp.all((y >= 0) & (y < L)))


# ---------------------------------------------------------------- the flow as a bijection
def test_flow_round_trip(flow):
    key_x, key_a = jax.random.split(jax.random.key(3))
    z_x = flow.space.random_uniform(key_x)
    z_a = flow.sample_aux(key_a, z_x, SPECIES)
    x, a, log_det = eqx.filter_jit(flow.forward)(z_x, z_a, SPECIES)
    zx2, za2, log_det_inv = eqx.filter_jit(flow.inverse)(x, a, SPECIES)
    assert float(jnp.max(_circle_gap(zx2, z_x, L))) < 1e-10
    assert float(jnp.max(_circle_gap(za2, z_a, L))) < 1e-10
    np.testing.assert_allclose(log_det, -log_det_inv, atol=1e-9)
    assert float(jnp.max(_circle_gap(x, z_x, L))) > 1e-2  # the map is not the identity


def _jacobian_gap(flow, x, a):
    def inverse(flat):
        zx, za, _ = flow.inverse(flat[: N * D].reshape(N, D), flat[N * D :].reshape(N, D), SPECIES)
        return jnp.concatenate([zx.ravel(), za.ravel()])

    flat = jnp.concatenate([x.ravel(), a.ravel()])
    jacobian = eqx.filter_jit(jax.jacfwd(inverse))(flat)
    sign, logabs = jnp.linalg.slogdet(jacobian)
    log_det = eqx.filter_jit(lambda f, x, a: f.inverse(x, a, SPECIES)[2])(flow, x, a)
    assert float(sign) == 1.0  # orientation preserving
    return abs(float(logabs - log_det))


def test_log_det_matches_materialised_jacobian(flow, state):
    assert _jacobian_gap(flow, *state) < 1e-9


def test_log_det_check_catches_a_wrong_log_slope(flow, state, monkeypatch):
    def half_log_det(u, raw, length):
        u, log_det = spline_module.circular_spline_inverse(u, raw, length)
        return u, 0.5 * log_det

    monkeypatch.setattr(flow_module, "circular_spline_inverse", half_log_det)
    assert not _jacobian_gap(flow, *state) < 1e-9


# ---------------------------------------------------------------- symmetries of log q(x, a)
def test_log_q_is_translation_invariant(flow, state):
    assert _translation_gap(flow, *state) < 1e-10


def test_log_q_is_invariant_under_permutations_within_species(flow, state):
    assert _permutation_gap(flow, *state) < 1e-10
    # species are seen: swapping particles of different species changes log q
    x, a = state
    cross = jnp.array([1, 0, 2, 3])
    assert abs(float(_LOG_Q(flow, x[cross], a[cross]) - _LOG_Q(flow, x, a))) > 1e-3


def test_log_q_is_point_group_invariant(flow, state):
    assert _point_group_gap(flow, *state) < 1e-10


def test_translation_check_catches_absolute_coordinates(flow, state, monkeypatch):
    real = conditioner_module._pair_geometry

    def absolute(anchor, neighbours, box):
        delta, r, mask = real(anchor, neighbours, box)
        return delta + anchor[:, None, :], r, mask  # leaks the absolute position

    monkeypatch.setattr(conditioner_module, "_pair_geometry", absolute)
    assert not _translation_gap(flow, *state, fresh=True) < 1e-10


class _FirstNeighbours(AbstractNeighbourList):
    """A planted bug: drops the last candidate of every row, so what a particle sees depends
    on the particles' order."""

    def __call__(self, positions, lengths, cutoff):
        n = positions.shape[0]
        rows = jnp.arange(n)[:, None]
        cols = jnp.arange(n - 2)[None, :]
        return jnp.where(cols < rows, cols, cols + 1).astype(jnp.int32)


def test_permutation_check_catches_an_order_dependent_neighbour_list(flow, state):
    broken = eqx.tree_at(lambda f: f.neighbour_list, flow, _FirstNeighbours())
    assert not _permutation_gap(broken, *state, fresh=True) < 1e-10


def test_point_group_check_catches_an_unsymmetrised_conditioner(flow, state, monkeypatch):
    monkeypatch.setattr(conditioner_module, "_symmetrize", lambda plus, minus, k: plus)
    # still translation invariant, but no longer point-group invariant
    assert _translation_gap(flow, *state, fresh=True) < 1e-10
    assert not _point_group_gap(flow, *state, fresh=True) < 1e-10


# ---------------------------------------------------------------- angular moments
@pytest.fixture(scope="module")
def angular_flow():
    space = mf.ParticleSpace(mf.FlatTorus(L, dim=D), N)
    model = AugmentedCouplingFlow(
        space, 2, num_layers=1, num_bins=6, width=16, channels=4, num_rbf=8, angular=3,
        init_scale=1.0, key=jax.random.key(5),
    )  # fmt: skip
    flow = _perturbed(model, jax.random.key(6))
    x, a, _ = eqx.filter_jit(flow.sample_joint)(jax.random.key(7), SPECIES)
    return flow, x, a


def test_angular_moments_keep_every_symmetry_and_the_exact_log_det(angular_flow):
    flow, x, a = angular_flow
    assert _translation_gap(flow, x, a) < 1e-10
    assert _permutation_gap(flow, x, a) < 1e-10
    assert _point_group_gap(flow, x, a) < 1e-10
    assert _jacobian_gap(flow, x, a) < 1e-9


def test_point_group_check_catches_odd_angular_weights(angular_flow, monkeypatch):
    # A planted bug: odd powers of the cosine flip with the axis, so the "even" moments no
    # longer keep their parity under a reflection.
    def odd_powers(delta, r, orders):
        cos = delta / jnp.where(r > 0, r, 1)[..., None]
        return cos[..., None] ** jnp.arange(orders, dtype=delta.dtype).reshape(1, 1, 1, -1)

    monkeypatch.setattr(conditioner_module, "_angular_powers", odd_powers)
    flow, x, a = angular_flow
    assert _translation_gap(flow, x, a, fresh=True) < 1e-10
    assert not _point_group_gap(flow, x, a, fresh=True) < 1e-10


def test_angular_gradient_is_finite_for_a_pair_on_an_axis_plane(angular_flow):
    # Two particles with exactly the same first coordinate (Delta_0 = 0, which float32
    # training batches produce): the gradient of log q through the conditioner's geometry
    # (with respect to its anchor positions, as training meets it for every transformed
    # intermediate and energy training for the samples) must stay finite. Powers computed as
    # c2 ** p have a NaN gradient there (p = 0), which cost training steps.
    flow, x, a = angular_flow
    x = x.at[1, 0].set(x[0, 0])
    score = jax.grad(lambda y: flow.log_prob_joint(y, a, SPECIES))(x)
    assert bool(jnp.all(jnp.isfinite(score)))
    assert float(jnp.max(jnp.abs(score))) > 0


def test_angular_moments_reach_the_splines(angular_flow):
    # The higher orders are features, not dead weight: zeroing the edge outputs that weight
    # them (orders p >= 2 of both moments) changes the splines.
    flow, x, _ = angular_flow
    cond = flow.position_conditioners[0]
    w, c, p = cond.width, cond.channels, cond.angular
    neighbours = flow.neighbour_list(x, flow.space.manifold.lengths, cond.cutoff)
    box = jnp.full((D,), L)
    first = jnp.tile(jnp.arange(p) == 0, 2).repeat(c).astype(jnp.float64)
    keep = jnp.ones(w + 2 * p * c).at[w:].set(first)
    last = cond.edge_net.layers[-1]
    plain = eqx.tree_at(
        lambda m: (m.edge_net.layers[-1].weight, m.edge_net.layers[-1].bias),
        cond,
        (last.weight * keep[:, None], last.bias * keep),
    )
    full = cond(x, SPECIES, neighbours, box)
    first_order = plain(x, SPECIES, neighbours, box)
    assert float(jnp.max(jnp.abs(full - first_order))) > 1e-3


def test_the_default_conditioner_is_the_first_order_one():
    # angular = 1 is the conditioner runs were trained with before the option existed: the
    # same parameter shapes, and its record leaves the option out.
    space = mf.ParticleSpace(mf.FlatTorus(L, dim=D), N)
    one = AugmentedCouplingFlow(space, 2, num_layers=1, key=jax.random.key(0))
    shapes = [p.shape for p in jax.tree.leaves(eqx.filter(one, eqx.is_inexact_array))]
    assert (16 + 2 * 2, 32) in [tuple(reversed(s)) for s in shapes]  # edge input: rbf + species
    edge_out = one.position_conditioners[0].edge_net.layers[-1].weight.shape[0]
    assert edge_out == 32 + 2 * 8
    config = mf.ModelConfig(flow="augmented_coupling")
    assert "angular" not in config.to_dict()
    assert mf.ModelConfig(flow="augmented_coupling", angular=2).to_dict()["angular"] == 2


# ---------------------------------------------------------------- message rounds
@pytest.fixture(scope="module")
def rounds_flow():
    space = mf.ParticleSpace(mf.FlatTorus(L, dim=D), N)
    model = AugmentedCouplingFlow(
        space, 2, num_layers=1, num_bins=6, width=16, channels=4, num_rbf=8, rounds=3,
        init_scale=1.0, key=jax.random.key(8),
    )  # fmt: skip
    flow = _perturbed(model, jax.random.key(9))
    x, a, _ = eqx.filter_jit(flow.sample_joint)(jax.random.key(10), SPECIES)
    return flow, x, a


def test_message_rounds_keep_every_symmetry_and_the_exact_log_det(rounds_flow):
    flow, x, a = rounds_flow
    assert len(flow.position_conditioners[0].message_nets) == 2
    assert _translation_gap(flow, x, a) < 1e-10
    assert _permutation_gap(flow, x, a) < 1e-10
    assert _point_group_gap(flow, x, a) < 1e-10
    assert _jacobian_gap(flow, x, a) < 1e-9
    x_back, a_back = flow.inverse(*flow.forward(x, a, SPECIES)[:2], SPECIES)[:2]
    assert float(jnp.max(jnp.abs(x_back - x))) < 1e-9
    assert float(jnp.max(jnp.abs(a_back - a))) < 1e-9


def test_permutation_check_catches_a_message_round_that_sees_particle_order(
    rounds_flow, monkeypatch
):
    # A planted bug: a message round whose node features carry the particle's index. Still
    # a function of differences (translation invariant), but no longer of the unordered
    # neighbourhood.
    original = conditioner_module._edge_network

    def indexed(net, rbf, node, neighbours):
        out = original(net, rbf, node, neighbours)
        if out.shape[-1] != 16:  # the last edge network (width + moments): left as it is
            return out
        order = jnp.arange(out.shape[0], dtype=out.dtype)[:, None, None]
        return out * (1 + 0.1 * order)

    monkeypatch.setattr(conditioner_module, "_edge_network", indexed)
    flow, x, a = rounds_flow
    assert _translation_gap(flow, x, a, fresh=True) < 1e-10
    assert not _permutation_gap(flow, x, a, fresh=True) < 1e-10


def test_message_rounds_reach_the_splines_through_the_neighbours(rounds_flow):
    # The earlier rounds are not dead weight: zeroing the node features they pass on (the
    # messages' last layer) changes the splines.
    flow, x, _ = rounds_flow
    cond = flow.position_conditioners[0]
    neighbours = flow.neighbour_list(x, flow.space.manifold.lengths, cond.cutoff)
    box = jnp.full((D,), L)
    silent = eqx.tree_at(
        lambda m: tuple(net.layers[-1].weight for net in m.message_nets),
        cond,
        tuple(jnp.zeros_like(net.layers[-1].weight) for net in cond.message_nets),
    )
    silent = eqx.tree_at(
        lambda m: tuple(net.layers[-1].bias for net in m.message_nets),
        silent,
        tuple(jnp.zeros_like(net.layers[-1].bias) for net in cond.message_nets),
    )
    full = cond(x, SPECIES, neighbours, box)
    assert float(jnp.max(jnp.abs(full - silent(x, SPECIES, neighbours, box)))) > 1e-3


def test_one_round_is_the_default_and_left_out_of_the_record():
    space = mf.ParticleSpace(mf.FlatTorus(L, dim=D), N)
    one = AugmentedCouplingFlow(space, 2, num_layers=1, key=jax.random.key(0))
    assert one.position_conditioners[0].message_nets == ()
    assert "rounds" not in mf.ModelConfig(flow="augmented_coupling").to_dict()
    config = mf.ModelConfig(flow="augmented_coupling", rounds=2)
    assert config.to_dict()["rounds"] == 2
    assert config.to_dict()["cutoff"] is None  # options without a later default stay
    with pytest.raises(ValueError, match="rounds"):
        mf.ModelConfig(flow="augmented_coupling", rounds=0)
    with pytest.raises(ValueError, match="rounds"):
        AugmentedCouplingFlow(space, 2, rounds=0, key=jax.random.key(0))


def test_resized_flow_keeps_the_message_rounds(rounds_flow):
    flow, _, _ = rounds_flow
    big = flow.resized(mf.ParticleSpace(mf.FlatTorus(2 * L, dim=D), 4 * N))
    assert big.position_conditioners[0].rounds == 3
    trained = jax.tree.leaves(eqx.filter(flow.position_conditioners[0].message_nets, eqx.is_array))
    kept = jax.tree.leaves(eqx.filter(big.position_conditioners[0].message_nets, eqx.is_array))
    assert len(kept) == len(trained) > 0
    assert all(bool(jnp.array_equal(k, t)) for k, t in zip(kept, trained, strict=True))


# ---------------------------------------------------------------- locality
def test_conditioner_is_local_and_ignores_padding():
    box = jnp.array([6.0, 6.0])
    cond = conditioner_module.LocalConditioner(
        2, 1.5, num_bins=4, width=8, channels=2, num_rbf=4, init_scale=1.0, key=jax.random.key(9)
    )
    anchor = jnp.array([[1.0, 1.0], [1.8, 1.2], [4.0, 4.0], [5.8, 0.9]])
    species = jnp.array([0, 1, 0, 1])
    dense = mf.DenseNeighbourList()(anchor, (6.0, 6.0), 1.5)
    cond = eqx.filter_jit(cond)
    raw = cond(anchor, species, dense, box)
    # moving particle 2 elsewhere beyond the cutoff of particles 0 and 1 leaves them unchanged
    moved = anchor.at[2].set(jnp.array([5.0, 2.0]))  # now a neighbour of particle 3 only
    raw_moved = cond(moved, species, dense, box)
    np.testing.assert_array_equal(raw[:2], raw_moved[:2])
    assert not np.allclose(raw[2], raw_moved[2])
    # particle 3 at x = 5.8 is within the cutoff of particle 0 through the periodic image
    far = anchor.at[3].set(jnp.array([3.0, 0.9]))
    assert not np.allclose(cond(far, species, dense, box)[0], raw[0])
    # extra padding entries (value N) change nothing
    padded = jnp.concatenate([dense, jnp.full((4, 3), 4, dense.dtype)], axis=1)
    np.testing.assert_allclose(cond(anchor, species, padded, box), raw, rtol=RTOL, atol=ATOL)


def _missing_pairs(neighbours, positions, length, cutoff):
    """Pairs closer than the cutoff (minimum image) that a neighbour list leaves out."""
    n = positions.shape[0]
    delta = positions[:, None, :] - positions[None, :, :]
    delta = delta - length * np.round(delta / length)
    close = (np.sum(delta**2, axis=-1) < cutoff**2) & ~np.eye(n, dtype=bool)
    listed = np.zeros((n, n + 1), dtype=bool)
    listed[np.arange(n)[:, None], np.asarray(neighbours)] = True
    return int(np.sum(close & ~listed[:, :n]))


# 4 x 4 cells (row length 9 x capacity, whatever N), the same narrowed to the neighbours
# within the cutoff, or a box too small to cut (one cell)
@pytest.mark.parametrize(
    ("length", "capacity", "most", "row"),
    [(12.0, 12, None, 108), (12.0, 12, 16, 16), (4.0, 60, None, 60)],
)
def test_cell_list_lists_every_close_pair_and_matches_dense(length, capacity, most, row):
    cutoff, n = 2.5, 60
    positions = jax.random.uniform(jax.random.key(11), (n, 2)) * length
    species = jnp.arange(n) % 2
    cells = eqx.filter_jit(mf.CellNeighbourList(capacity=capacity, max_neighbours=most))
    neighbours = np.asarray(cells(positions, (length, length), cutoff))
    assert _missing_pairs(neighbours, positions, length, cutoff) == 0
    for i, listed in enumerate(neighbours):  # no particle itself, none twice
        real = listed[listed < n]
        assert i not in real.tolist() and len(set(real.tolist())) == len(real)
    dense = mf.DenseNeighbourList()(positions, (length, length), cutoff)
    assert neighbours.shape == (n, row)
    # the planted bug: a list that drops candidates misses close pairs
    assert _missing_pairs(np.asarray(dense)[:, :-5], positions, length, cutoff) > 0
    cond = eqx.filter_jit(
        conditioner_module.LocalConditioner(
            2, cutoff, num_bins=4, width=8, channels=2, num_rbf=4, init_scale=1.0,
            key=jax.random.key(12),
        )
    )  # fmt: skip
    box = jnp.array([length, length])
    np.testing.assert_allclose(
        cond(positions, species, jnp.asarray(neighbours), box),
        cond(positions, species, dense, box),
        rtol=RTOL,
        atol=ATOL,
    )


def test_cell_list_refuses_an_overfull_cell_or_row():
    positions = jnp.full((8, 2), 1.0)  # every particle in one cell, all neighbours
    with pytest.raises(Exception, match="raise `capacity`"):
        eqx.filter_jit(mf.CellNeighbourList(capacity=4))(positions, (12.0, 12.0), 2.5)
    with pytest.raises(Exception, match="raise `max_neighbours`"):
        eqx.filter_jit(mf.CellNeighbourList(capacity=8, max_neighbours=5))(
            positions, (12.0, 12.0), 2.5
        )


# ---------------------------------------------------------------- densities and batch helpers
def test_aux_density_is_normalised_with_periodic_images():
    length = 1.3
    box = jnp.array([[length]])
    grid = (jnp.arange(20000, dtype=jnp.float64) + 0.5) * (length / 20000)
    for scale in (0.05, 0.6, 2.0):  # from a narrow bump to nearly uniform
        images = flow_module._num_images(scale, (length,))
        log_density = jax.jit(
            jax.vmap(
                lambda g, s=scale, m=images: flow_module.wrapped_normal_log_prob(
                    jnp.reshape(g - 0.1, (1, 1)), s, box, m
                )
            )
        )(grid)
        np.testing.assert_allclose(jnp.sum(jnp.exp(log_density)) * length / 20000, 1.0, rtol=1e-9)
    # the planted bug: the nearest image alone is not normalised for a wide bump
    one_image = jax.vmap(
        lambda g: flow_module.wrapped_normal_log_prob(jnp.reshape(g - 0.1, (1, 1)), 0.6, box, 0)
    )(grid)
    assert not abs(float(jnp.sum(jnp.exp(one_image)) * length / 20000) - 1.0) < 1e-9


def test_samples_lie_on_the_torus_and_batch_helpers_work(flow):
    x, log_q = mf.sample(flow, jax.random.key(4), 16, SPECIES, chunk_size=None)
    assert x.shape == (16, N, D)
    assert bool(jnp.all((x >= 0) & (x < L))) and bool(jnp.all(jnp.isfinite(log_q)))
    estimates = mf.log_prob_batch(flow, x, SPECIES, key=jax.random.key(5), chunk_size=None)
    assert estimates.shape == (16,) and bool(jnp.all(jnp.isfinite(estimates)))
    with pytest.raises(ValueError, match="needs a PRNG key"):
        flow.log_prob(x[0], SPECIES)


@pytest.fixture(scope="module")
def mild_flow():
    # Close enough to the augmented target that 2000 importance weights are well behaved.
    space = mf.ParticleSpace(mf.FlatTorus(L, dim=D), N)
    return AugmentedCouplingFlow(space, 2, num_layers=1, num_bins=6, width=16, channels=4,
                                 num_rbf=8, init_scale=0.3, key=jax.random.key(10))  # fmt: skip


def _log_z_with_zero_energy(flow):
    """`reweight`'s log Z for U = 0 from 2000 samples, with the aux-corrected log q and (the
    planted bug: the correction forgotten) with the joint log q(x, a)."""

    def one(key):
        x, a, log_q = flow.sample_joint(key, SPECIES)
        return log_q - flow.aux_log_prob(a, x, SPECIES), log_q

    keys = jax.random.split(jax.random.key(6), 2000)
    corrected, joint = eqx.filter_jit(jax.vmap(one))(keys)
    out = []
    for log_q in (corrected, joint):
        result = mf.reweight(np.zeros(2000), np.asarray(log_q), 1.0)
        out.append((result.log_z, result.log_z_err))
    return out


def test_aux_corrected_weights_give_the_right_log_z(mild_flow):
    # With U = 0, Z = V^N: the aux-corrected log q of `sample_and_log_prob` makes `reweight`
    # estimate it; the joint log q(x, a) alone does not.
    expected = N * D * math.log(L)
    (log_z, err), (wrong, wrong_err) = _log_z_with_zero_energy(mild_flow)
    assert abs(log_z - expected) < 4 * err + 1e-3, (log_z, err, expected)
    assert abs(wrong - expected) > 4 * wrong_err + 1e-3


def test_identity_initialised_flow_has_the_uniform_corrected_density(flow):
    # Zero last layers (`init_scale=0`) make every spline the identity: q(x, a) is then the base,
    # uniform x times p_aux(a | x), and the aux-corrected log q is exactly -log V.
    conditioners = (*flow.position_conditioners, *flow.aux_conditioners)

    def last_layers(f):
        layers = [c.axis_net.layers[-1] for c in (*f.position_conditioners, *f.aux_conditioners)]
        return [p for layer in layers for p in (layer.weight, layer.bias)]

    zeros = [jnp.zeros_like(p) for p in last_layers(flow)]
    assert len(zeros) == 2 * len(conditioners)
    identity = eqx.tree_at(last_layers, flow, zeros)
    _, log_q = mf.sample(identity, jax.random.key(9), 16, SPECIES, chunk_size=None)
    np.testing.assert_allclose(log_q, -N * D * math.log(L), rtol=RTOL, atol=ATOL)
