"""Clusters in Euclidean space with the centre of mass removed: the space, its Gaussian base,
the closed-form divergence there, the DW4 and LJ13 energies and their Monte Carlo."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import manifold_flows as mf
from manifold_flows import (
    CenteredGaussianBase,
    ContinuousFlow,
    DoubleWellPair,
    Euclidean,
    ExactDivergence,
    FieldDivergence,
    KernelField,
    LennardJonesCluster,
    ZeroCenterOfMass,
)
from manifold_flows._energy.cluster_base import AbstractClusterEnergy
from manifold_flows._field.base import AbstractFieldWithDivergence
from manifold_flows._mc.cluster import cluster_monte_carlo, grid_configuration
from manifold_flows.testing import assert_manifold_laws, manifold_registry

SPECIES4 = jnp.zeros(4, jnp.int32)


# ------------------------------------------------------------------------------ the space
def test_zero_com_is_in_the_registry_and_satisfies_the_laws():
    space = manifold_registry()["zero_com_4x2"]
    assert isinstance(space, ZeroCenterOfMass)
    assert space.dim == 6 and space.point_shape == (4, 2)
    results = assert_manifold_laws(space, jax.random.key(3))
    assert "random_uniform_raises" in results


def test_zero_com_projections_remove_the_mean():
    space = ZeroCenterOfMass(5, 3)
    x = jax.random.normal(jax.random.key(0), (5, 3)) + 7.0
    y = space.project(x)
    np.testing.assert_allclose(np.mean(y, axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(y, np.asarray(x) - np.asarray(x).mean(axis=0), atol=1e-12)
    v = space.project_tangent(y, x)
    np.testing.assert_allclose(np.sum(v, axis=0), 0, atol=1e-12)
    space.check(y)
    with pytest.raises(Exception, match="centre of mass"):
        space.check(x)


@pytest.mark.parametrize(
    ("args", "match"), [((1, 2), "num_particles"), ((4, 0), "dim"), ((-3, 2), "num_particles")]
)
def test_zero_com_rejects_bad_sizes(args, match):
    with pytest.raises(ValueError, match=match):
        ZeroCenterOfMass(*args)


# ------------------------------------------------------------------------------- the base
def _subspace_basis(n: int, d: int) -> np.ndarray:
    """An orthonormal basis `((n - 1) d, n, d)` of the zero-centre-of-mass subspace."""
    centred = np.eye(n) - 1.0 / n
    q, _ = np.linalg.qr(centred[:, : n - 1])  # n - 1 orthonormal zero-sum vectors
    basis = [np.outer(q[:, a], np.eye(d)[k]) for a in range(n - 1) for k in range(d)]
    return np.stack(basis)


@pytest.mark.parametrize(("n", "d", "scale"), [(2, 1, 0.7), (3, 1, 1.3), (2, 2, 1.1)])
def test_centered_gaussian_is_normalised_on_the_subspace(n, d, scale):
    """Quadrature over orthonormal coordinates of the subspace (its own volume): the density
    integrates to 1. Normalising over `n d` directions instead would miss by
    `(2 pi s^2)^(d / 2)`."""
    space = ZeroCenterOfMass(n, d)
    base = CenteredGaussianBase(space, scale)
    basis = _subspace_basis(n, d)
    k = basis.shape[0]
    grid = np.linspace(-8 * scale, 8 * scale, 161)
    h = grid[1] - grid[0]
    coords = np.stack(np.meshgrid(*([grid] * k), indexing="ij"), axis=-1).reshape(-1, k)
    points = jnp.asarray(np.einsum("mk,knd->mnd", coords, basis))
    density = np.exp(np.asarray(jax.vmap(lambda x: base.log_prob(x, None))(points)))
    np.testing.assert_allclose(density.sum() * h**k, 1.0, rtol=1e-6)


def test_centered_gaussian_samples_have_its_density():
    """Samples (Gaussian in R^(n d), mean removed) have zero centre of mass, and |x|^2 / s^2
    follows chi^2 with (n - 1) d degrees of freedom, as the density on the subspace says (n d
    would be the law without the projection); a 1D marginal along a unit tangent direction is
    N(0, s^2)."""
    n, d, scale = 4, 2, 1.7
    space = ZeroCenterOfMass(n, d)
    base = CenteredGaussianBase(space, scale)
    keys = jax.random.split(jax.random.key(11), 20000)
    x = np.asarray(jax.vmap(lambda k: base.sample(k, None))(keys))
    np.testing.assert_allclose(x.mean(axis=1), 0, atol=1e-12)
    radial = np.sum(x * x, axis=(1, 2)) / scale**2
    assert scipy.stats.kstest(radial, scipy.stats.chi2(space.dim).cdf).pvalue > 1e-3
    assert scipy.stats.kstest(radial, scipy.stats.chi2(n * d).cdf).pvalue < 1e-6
    direction = _subspace_basis(n, d)[2]
    marginal = np.einsum("rnd,nd->r", x, direction) / scale
    assert scipy.stats.kstest(marginal, scipy.stats.norm().cdf).pvalue > 1e-3


def test_centered_gaussian_rejects_other_spaces_and_scales():
    with pytest.raises(TypeError, match="ZeroCenterOfMass"):
        CenteredGaussianBase(mf.ParticleSpace(Euclidean(2), 4))
    with pytest.raises(ValueError, match="scale"):
        CenteredGaussianBase(ZeroCenterOfMass(4, 2), 0.0)


# --------------------------------------------------- closed-form divergence on the subspace
def _lively_kernel(key) -> KernelField:
    field = KernelField(Euclidean(2), 1, cutoff=6.0, num_kernels=8, width=8, key=key)
    last = field.time_net.layers[-1]
    weight = 3.0 * jax.random.normal(key, last.weight.shape, last.weight.dtype)
    return eqx.tree_at(lambda f: f.time_net.layers[-1].weight, field, weight)


@eqx.filter_jit
def _projected_trace(flow, t, x):
    """`tr(P J)` of the velocity the flow integrates, from the materialised Jacobian."""
    size = x.size
    jac = jax.jacfwd(lambda z: flow.velocity(t, z, SPECIES4))(x).reshape(size, size)
    columns = jax.vmap(lambda c: flow.space.project_tangent(x, c.reshape(x.shape)).reshape(-1))(
        jac.T
    )
    return jnp.trace(columns.T)


@eqx.filter_jit
def _velocity_and_divergence(flow, t, x):
    return flow.velocity_and_divergence(t, x, SPECIES4)


def test_kernel_divergence_on_zero_com_is_the_projected_trace():
    space = ZeroCenterOfMass(4, 2)
    field = _lively_kernel(jax.random.key(5))
    flow = ContinuousFlow(space, field, base=CenteredGaussianBase(space, 2.0))
    assert isinstance(flow.divergence, FieldDivergence)
    generic = ContinuousFlow(
        space, field, base=CenteredGaussianBase(space, 2.0), divergence=ExactDivergence()
    )
    for seed in range(3):
        x = space.project(3.0 * jax.random.normal(jax.random.key(seed), (4, 2)))
        t = jnp.asarray(0.3 + 0.2 * seed)
        v, div = _velocity_and_divergence(flow, t, x)
        v_generic, div_generic = _velocity_and_divergence(generic, t, x)
        expected = _projected_trace(flow, t, x)
        assert abs(float(div)) > 0.1  # a field that does something
        np.testing.assert_allclose(div, expected, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(div_generic, expected, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(v, v_generic, atol=1e-12)


class _ScaledIdentity(AbstractFieldWithDivergence):
    """`v = x` with its ambient trace `n d`: a closed form, but not translation invariant, so
    on ZeroCenterOfMass the Riemannian divergence is `(n - 1) d`, not `n d`."""

    def __call__(self, t, x, args):
        return x

    def velocity_and_divergence(self, t, x, args):
        return x, jnp.asarray(x.size, x.dtype)


def test_field_divergence_is_refused_without_translation_invariance():
    space = ZeroCenterOfMass(4, 2)
    base = CenteredGaussianBase(space)
    field = _ScaledIdentity()
    flow = ContinuousFlow(space, field, base=base)  # default: the generic exact divergence
    assert isinstance(flow.divergence, ExactDivergence)
    x = space.project(jax.random.normal(jax.random.key(0), (4, 2)))
    _, div = flow.velocity_and_divergence(0.5, x, SPECIES4)
    assert float(div) == pytest.approx(space.dim)  # the closed form n d would be wrong here
    with pytest.raises(ValueError, match="translation-invariant"):
        ContinuousFlow(space, field, base=base, divergence=FieldDivergence())


def test_centered_gaussian_and_kernel_flow_densities_are_invariant():
    """The base's log-density and the kernel flow's log q do not change under a permutation
    of the particles or a rotation (the invariance the generalisation experiment relies on);
    a flat MLP's log q does."""
    space = ZeroCenterOfMass(4, 2)
    base = CenteredGaussianBase(space, 2.0)
    flow = ContinuousFlow(space, _lively_kernel(jax.random.key(9)), base=base, rtol=1e-8, atol=1e-8)
    x = space.project(2.5 * jax.random.normal(jax.random.key(2), (4, 2)))
    angle = 0.7
    rotation = jnp.asarray([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = [x[jnp.asarray([2, 0, 3, 1])], x @ rotation.T]
    for y in moved:
        np.testing.assert_allclose(base.log_prob(y, None), base.log_prob(x, None), atol=1e-12)
    log_q = jax.vmap(lambda y: flow.log_prob(y, SPECIES4))(jnp.stack([x, *moved]))
    np.testing.assert_allclose(log_q[1:], log_q[0], atol=1e-5)

    class _FlatField(mf.AbstractVectorField):
        weights: jax.Array

        def __call__(self, t, y, args):
            v = jnp.tanh(self.weights @ y.reshape(-1)).reshape(y.shape)
            return v - jnp.mean(v, axis=0, keepdims=True)

    flat = _FlatField(2.0 * jax.random.normal(jax.random.key(3), (8, 8)))
    flat_flow = ContinuousFlow(space, flat, base=base)
    log_q = jax.vmap(lambda y: flat_flow.log_prob(y, SPECIES4))(jnp.stack([x, moved[0]]))
    assert abs(float(log_q[1] - log_q[0])) > 1e-3


def test_kernel_flow_log_prob_agrees_with_its_samples():
    """Sampling and the reverse log q agree on the subspace (the base's density and the
    closed-form divergence together)."""
    space = ZeroCenterOfMass(4, 2)
    field = _lively_kernel(jax.random.key(8))
    base = CenteredGaussianBase(space, 2.0)
    flow = ContinuousFlow(space, field, base=base, rtol=1e-9, atol=1e-9)
    x, log_q = flow.sample_and_log_prob(jax.random.key(1), SPECIES4)
    np.testing.assert_allclose(np.mean(x, axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(flow.log_prob(x, SPECIES4), log_q, atol=1e-6)


# ------------------------------------------------------------------------------ energies
def test_double_well_pair_minima_and_barrier():
    energy = DoubleWellPair()
    well = math.sqrt(4.0 / (2 * 0.9))  # sqrt(-b / 2c)
    r = jnp.asarray([4.0 - well, 4.0 + well, 4.0])
    np.testing.assert_allclose(energy.pair_energy(r), [-40.0 / 9, -40.0 / 9, 0.0], atol=1e-12)
    slope = jax.vmap(jax.grad(energy.pair_energy))(r)
    np.testing.assert_allclose(slope, 0.0, atol=1e-12)


def test_dw4_energy_of_a_square():
    """A square of side s: four sides and two diagonals s sqrt 2, by hand."""
    system = mf.get_cluster_system("dw4")
    s = 2.5
    x = jnp.asarray([[0, 0], [s, 0], [s, s], [0, s]], dtype=float)

    def w(r):
        return -4 * (r - 4) ** 2 + 0.9 * (r - 4) ** 4

    expected = 4 * w(s) + 2 * w(s * math.sqrt(2))
    np.testing.assert_allclose(system.energy(x, system.species), expected, rtol=1e-12)
    assert system.space == ZeroCenterOfMass(4, 2)
    assert system.default_temperature == 1.0


def test_lj_cluster_energy_by_hand():
    """Two particles at rm: -eps plus the spring (k / 2) sum |x_i - com|^2 = k rm^2 / 4; and
    13 random particles against the explicit double sum."""
    pair = LennardJonesCluster(2, 3)
    x = jnp.asarray([[0.5, 0, 0], [-0.5, 0, 0]])
    np.testing.assert_allclose(pair(x, jnp.zeros(2, jnp.int32)), -1.0 + 0.25, rtol=1e-12)
    system = mf.get_cluster_system("lj13")
    y = np.asarray(grid_configuration(13, 3, 1.1)) + 0.05 * np.random.default_rng(0).normal(
        size=(13, 3)
    )
    r = np.linalg.norm(y[:, None] - y[None], axis=-1)
    iu = np.triu_indices(13, 1)
    lj = np.sum((1 / r[iu]) ** 12 - 2 * (1 / r[iu]) ** 6)
    spring = 0.5 * np.sum((y - y.mean(axis=0)) ** 2)
    got = system.energy(jnp.asarray(y + 3.0), system.species)  # translation invariant
    np.testing.assert_allclose(got, lj + spring, rtol=1e-10)


def test_cluster_presets_and_bad_names():
    assert mf.list_cluster_systems() == ["dw4", "lj13"]
    assert mf.get_cluster_system("dw4", temperature=2.0).default_temperature == 2.0
    with pytest.raises(ValueError, match="dw4"):
        mf.get_cluster_system("dw5")
    with pytest.raises(ValueError, match="`c`"):
        DoubleWellPair(c=0.0)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        mf.get_cluster_system("dw4").energy(jnp.zeros((4, 3)), SPECIES4)
    with pytest.raises(ValueError, match="num_particles=13"):
        mf.get_cluster_system("lj13").energy(jnp.zeros((12, 3)), jnp.zeros(12, jnp.int32))


# ---------------------------------------------------------------------------- Monte Carlo
class _HarmonicPairs(AbstractClusterEnergy):
    """`W(r) = (k / 2) r^2`: `U = (k n / 2) |P x|^2`, a Gaussian on the subspace with variance
    `T / (k n)` per direction, so `<r_ij^2> = 2 d T / (k n)` and `<U> = (n - 1) d T / 2`."""

    dim: int = eqx.field(static=True)
    num_particles: int | None = eqx.field(static=True)
    k: float = eqx.field(static=True)

    def __init__(self, dim: int, k: float):
        self.dim, self.k, self.num_particles = dim, k, None

    def pair_energy(self, r):
        return 0.5 * self.k * r * r


class _AlwaysAccept(mf.AbstractAcceptance):
    """A broken rule (accepts every move): its chain has the wrong averages."""

    def log_probability(self, delta_energy, temperature):
        return jnp.zeros_like(delta_energy)


def _harmonic_run(acceptance=None):
    n, d, k, temperature = 3, 2, 1.5, 0.8
    result = cluster_monte_carlo(
        _HarmonicPairs(d, k),
        temperature=temperature,
        num_particles=n,
        num_chains=16,
        num_samples=300,
        sweeps_per_sample=2,
        burn_in_sweeps=50,
        displacement=0.6,
        key=jax.random.key(4),
        acceptance=acceptance,
    )
    x = result.positions
    r2 = np.sum((x[:, :, 0] - x[:, :, 1]) ** 2, axis=-1)  # (chains, samples)
    expected_r2 = 2 * d * temperature / (k * n)
    expected_u = (n - 1) * d * temperature / 2
    return result, r2, expected_r2, expected_u


def test_cluster_mc_reproduces_the_harmonic_averages():
    result, r2, expected_r2, expected_u = _harmonic_run()
    np.testing.assert_allclose(result.positions.mean(axis=2), 0, atol=1e-12)  # re-centred
    mean, error = mf.mean_with_error(r2.mean(axis=1))
    assert abs(mean - expected_r2) < 4 * error, (mean, error, expected_r2)
    assert abs(result.mean_energy - expected_u) < 4 * result.mean_energy_error
    assert 0.2 < result.acceptance_rate < 0.9


def test_cluster_mc_known_answer_catches_a_broken_acceptance():
    _, r2, expected_r2, _ = _harmonic_run(_AlwaysAccept())
    mean, error = mf.mean_with_error(r2.mean(axis=1))
    assert abs(mean - expected_r2) > 4 * error


def test_cluster_mc_refuses_periodic_energies():
    with pytest.raises(TypeError, match="AbstractClusterEnergy"):
        cluster_monte_carlo(
            mf.get_system("ipl-n10").energy,
            temperature=1.0,
            num_particles=10,
            num_chains=1,
            num_samples=1,
            sweeps_per_sample=1,
            burn_in_sweeps=0,
            displacement=0.1,
            key=jax.random.key(0),
        )


def test_get_system_points_clusters_to_get_cluster_system():
    with pytest.raises(ValueError, match=r"get_cluster_system\('dw4'\)"):
        mf.get_system("dw4")


# ----------------------------------------------------------- the experiment's order parameter
def _example_module():
    import importlib.util
    from pathlib import Path

    path = (
        Path(__file__).resolve().parents[1] / "examples" / "kernel_flows" / "dw4_generalisation.py"
    )
    spec = importlib.util.spec_from_file_location("dw4_generalisation", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dw4_order_parameter_on_hand_built_states():
    """Triangle 1-2-3 (side 2.5) with particle 0 bound to 2 is the trained pattern; the same
    shape with labels 0 and 1 swapped is a permuted copy; a V (0-1-2 bent, 3 far) is the other
    shape; a square of side 2.5 (diagonals 3.54, all six pairs short) is 'other'."""
    g = _example_module()
    h = 2.5 * math.sqrt(3) / 2
    # triangle 1-2-3 of side 2.5; particle 0 at 2.8 from 2, beyond d0 from 1 and 3
    triangle = np.array([[-2.5, 2.5], [h, 0.0], [0.0, 1.25], [0.0, -1.25]])
    copy = triangle[[1, 0, 2, 3]]
    v_shape = np.array(
        [[0.0, 0.0], [2.5, 0.0], [2.5 + 2.5 * np.cos(1.2), 2.5 * np.sin(1.2)], [-3.0, 5.0]]
    )
    square = np.array([[0.0, 0.0], [2.5, 0.0], [2.5, 2.5], [0.0, 2.5]])
    labels = g.state_labels(np.stack([triangle, copy, v_shape, square]))
    assert [g.STATES[k] for k in labels] == [
        "trained pattern",
        "permuted copies",
        "V shape",
        "other",
    ]


# ------------------------------------------------------------- training from the centred base
def test_train_step_draws_base_points_from_a_base_distribution():
    """`train_step` / `draw_pairs` take an `AbstractBase`: the base points are its samples
    (centre of mass zero, the base's spread), and one step of flow matching on
    ZeroCenterOfMass runs and returns a finite loss."""
    space = ZeroCenterOfMass(4, 2)
    base = CenteredGaussianBase(space, 3.0)
    x1 = jnp.stack([space.project(jax.random.normal(jax.random.key(i), (4, 2))) for i in range(64)])
    x0, x1_out, t, z = mf.draw_pairs(
        jax.random.key(0), x1, interpolant=mf.LinearInterpolant(), base=base
    )
    assert z is None and t.shape == (64,)
    np.testing.assert_allclose(np.mean(x0, axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(x1_out, x1)
    spread = float(np.mean(np.sum(np.asarray(x0) ** 2, axis=(1, 2))) / space.dim)
    assert spread == pytest.approx(9.0, rel=0.15)
    field = _lively_kernel(jax.random.key(1))
    optimizer = mf.make_optimizer(mf.TrainConfig(), 10)
    state = mf.init_train_state(field, optimizer, key=jax.random.key(2))
    state, metrics = mf.train_step(
        state,
        x1,
        SPECIES4,
        interpolant=mf.LinearInterpolant(),
        coupling=mf.IndependentCoupling(),
        base=base,
        optimizer=optimizer,
        ema_decay=0.999,
    )
    assert np.isfinite(float(metrics["loss"])) and int(state.step) == 1
