"""Continuous normalizing flows: change of variables against closed forms, forward vs reverse,
solver options and statistics, dtypes, batching, and density invariance under symmetries."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.stats
from hypothesis import given, settings, strategies as st
from jax.experimental import io_callback

import manifold_flows as mf

L, D = 3.0, 2
TORUS = mf.FlatTorus(L, dim=D)
SPACE = mf.ParticleSpace(TORUS, 3)


def periodic_field(t, x, args):
    """Smooth, periodic, time-dependent; couples particles and axes."""
    k = 2 * jnp.pi / L
    pair = jnp.sum(jnp.sin(k * (x[:, None, :] - x[None, :, :])), axis=1)
    return 0.4 * jnp.sin(k * x[:, ::-1]) + t * jnp.cos(k * x) + 0.2 * pair


class Constant(mf.AbstractVectorField):
    c: jax.Array

    def __init__(self, c):
        self.c = jnp.asarray(c)

    def __call__(self, t, x, args):
        return jnp.broadcast_to(self.c.astype(x.dtype), x.shape)


class Linear(mf.AbstractVectorField):
    """v = (A + t B) x on R^m."""

    a: jax.Array
    b: jax.Array

    def __init__(self, a, b):
        self.a, self.b = jnp.asarray(a), jnp.asarray(b)

    def __call__(self, t, x, args):
        return (self.a.astype(x.dtype) + jnp.asarray(t, x.dtype) * self.b.astype(x.dtype)) @ x


def gaussian_log_prob(x):
    return float(np.sum(scipy.stats.norm.logpdf(np.asarray(x))))


FLOW = mf.ContinuousFlow(SPACE, periodic_field, rtol=1e-9, atol=1e-9)


@eqx.filter_jit
def forward_then_reverse(flow, key):
    sol = flow.sample_solution(key, None)
    return sol, flow.reverse(sol.x1, None)


# ---------------------------------------------------------------- change of variables
def test_constant_field_keeps_the_uniform_density(key):
    # A rigid translation by more than a box length: samples must be wrapped, and log q is
    # exactly -log vol (div v = 0) in both directions.
    c = jnp.array([[4.1, -3.7], [0.5, 7.9], [-5.0, 1.2]])
    flow = mf.ContinuousFlow(SPACE, Constant(c))
    fwd, rev = forward_then_reverse(flow, key)
    expected = -float(SPACE.log_volume())
    np.testing.assert_allclose(fwd.log_q, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(rev.log_q, expected, rtol=0, atol=1e-12)
    assert np.all((fwd.x1 >= 0) & (fwd.x1 < L))
    np.testing.assert_array_equal(SPACE.project(fwd.x1), fwd.x1)
    np.testing.assert_allclose(SPACE.log(fwd.x1, SPACE.exp(fwd.x0, c)), 0, atol=1e-8)
    np.testing.assert_allclose(SPACE.log(rev.x0, fwd.x0), 0, atol=1e-8)


@eqx.filter_jit
def linear_solutions(flow, key):
    sol = flow.sample_solution(key, None)
    return sol, flow.reverse(sol.x1, None)


@settings(max_examples=4)
@given(seed=st.integers(0, 2**31 - 1))
def test_linear_field_against_closed_form(seed):
    # Time-independent v = A x: x1 = expm(A) x0 and q(x1) = N(x0) / det expm(A), i.e.
    # log q = log N(x0) - tr A, forward and reverse.
    rng = np.random.default_rng(seed)
    m = 3
    a = 0.6 * rng.standard_normal((m, m))
    space = mf.Euclidean(m)
    flow = mf.ContinuousFlow(
        space, Linear(a, np.zeros((m, m))), base=mf.GaussianBase(space), rtol=1e-10, atol=1e-10
    )
    fwd, rev = linear_solutions(flow, jax.random.key(seed))
    expected_x1 = scipy.linalg.expm(a) @ np.asarray(fwd.x0)
    np.testing.assert_allclose(fwd.x1, expected_x1, rtol=1e-8, atol=1e-8)
    expected = gaussian_log_prob(fwd.x0) - np.trace(a)
    np.testing.assert_allclose(fwd.log_q, expected, rtol=0, atol=1e-8)
    # The reverse pass from x1 alone: x0 = expm(-A) x1, the same closed form.
    np.testing.assert_allclose(rev.x0, scipy.linalg.expm(-a) @ expected_x1, atol=1e-8)
    np.testing.assert_allclose(rev.log_q, expected, rtol=0, atol=1e-8)


@settings(max_examples=4)
@given(seed=st.integers(0, 2**31 - 1))
def test_time_dependent_linear_field_against_closed_form(seed):
    # v = (A + t B) x: div v = tr A + t tr B whatever the trajectory, so
    # log q(x1) = log N(x0) - tr A - tr B / 2.
    rng = np.random.default_rng(seed)
    m = 3
    a, b = 0.6 * rng.standard_normal((m, m)), 0.6 * rng.standard_normal((m, m))
    space = mf.Euclidean(m)
    flow = mf.ContinuousFlow(
        space, Linear(a, b), base=mf.GaussianBase(space), rtol=1e-10, atol=1e-10
    )
    fwd, rev = linear_solutions(flow, jax.random.key(seed))
    expected = gaussian_log_prob(fwd.x0) - np.trace(a) - 0.5 * np.trace(b)
    np.testing.assert_allclose(fwd.log_q, expected, rtol=0, atol=1e-8)
    np.testing.assert_allclose(rev.log_q, expected, rtol=0, atol=1e-8)
    np.testing.assert_allclose(fwd.divergence_integral, np.trace(a) + 0.5 * np.trace(b), atol=1e-8)


class SphereField(mf.AbstractVectorField):
    """v(t, x) = P_x (a + t M x) on the unit sphere."""

    a: jax.Array
    m: jax.Array

    def __init__(self, a, m):
        self.a, self.m = jnp.asarray(a), jnp.asarray(m)

    def __call__(self, t, x, args):
        w = self.a + t * (self.m @ x)
        return w - jnp.sum(w * x) * x


def tangent_frame(x):
    q, _ = jnp.linalg.qr(jnp.concatenate([x[:, None], jnp.eye(3)], axis=1))
    return q[:, 1:3]


def test_sphere_flow_against_jacobian_of_the_integrated_map(key):
    # q(x1) = p0(x0) / |det dPhi| with dPhi restricted to tangent planes: orthonormal frames
    # E0 at x0 and E1 at x1, volume change det(E1^T J E0), J = jax.jacfwd of the map
    # integrated by an independent diffrax solve of dx/dt = v alone.
    sphere = mf.Sphere(2)
    k1, k2, k3 = jax.random.split(key, 3)
    field = SphereField(jax.random.normal(k1, (3,)), jax.random.normal(k2, (3, 3)))
    flow = mf.ContinuousFlow(sphere, field, rtol=1e-10, atol=1e-10)

    def flow_map(x0):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(lambda t, y, args: field(t, y / jnp.linalg.norm(y), None)),
            diffrax.Tsit5(),
            0.0,
            1.0,
            None,
            x0,
            stepsize_controller=diffrax.PIDController(rtol=1e-11, atol=1e-11),
            adjoint=diffrax.ForwardMode(),
            max_steps=100_000,
        )
        return sol.ys[-1]

    @jax.jit
    def check(k):
        sol = flow.sample_solution(k, None)
        jac = jax.jacfwd(flow_map)(sol.x0)
        log_det = jnp.linalg.slogdet(tangent_frame(sol.x1).T @ jac @ tangent_frame(sol.x0))[1]
        return sol, sol.log_p0 - log_det, flow_map(sol.x0)

    for k in jax.random.split(k3, 3):
        sol, expected, x1_ref = check(k)
        np.testing.assert_allclose(sol.x1, x1_ref, atol=1e-8)
        np.testing.assert_allclose(sol.log_q, expected, atol=1e-7)
        assert abs(float(sol.divergence_integral)) > 1e-2  # a real volume change
        np.testing.assert_allclose(jnp.linalg.norm(sol.x1), 1.0, atol=1e-14)


@given(seed=st.integers(0, 2**31 - 1))
def test_forward_and_reverse_agree(seed):
    fwd, rev = forward_then_reverse(FLOW, jax.random.key(seed))
    assert abs(float(fwd.divergence_integral)) > 1e-3
    np.testing.assert_allclose(rev.log_q, fwd.log_q, rtol=0, atol=1e-6)
    np.testing.assert_allclose(SPACE.log(rev.x0, fwd.x0), 0, atol=1e-6)
    np.testing.assert_allclose(rev.divergence_integral, fwd.divergence_integral, atol=1e-6)


# ---------------------------------------------------------------- solver options and stats
def counting_field(counter):
    def bump(t):
        counter.append(float(t))
        return np.zeros((), np.float64)

    def field(t, x, args):
        # The callback sees only the (non-differentiated) time: it runs once per evaluation.
        tick = io_callback(bump, jax.ShapeDtypeStruct((), jnp.float64), t, ordered=True)
        return periodic_field(t, x, args) + tick

    return field


@pytest.mark.parametrize(
    "options",
    [
        dict(solver="dopri5", rtol=1e-7, atol=1e-7),
        dict(solver="heun", rtol=1e-4, atol=1e-4, dt0=0.3),
        dict(solver="euler", num_steps=7),
    ],
)
def test_num_fn_evals_counts_field_evaluations(options, key):
    counter = []
    flow = mf.ContinuousFlow(SPACE, counting_field(counter), **options)
    sol = jax.jit(lambda k: flow.sample_solution(k, None))(key)
    jax.block_until_ready(sol)
    assert int(sol.stats.num_fn_evals) == len(counter)
    assert int(sol.stats.num_steps) == int(sol.stats.num_accepted_steps) + int(
        sol.stats.num_rejected_steps
    )
    if "num_steps" in options:
        assert int(sol.stats.num_steps) == options["num_steps"]


def test_fixed_step_solvers_converge_to_the_adaptive_answer(key):
    reference, _ = forward_then_reverse(FLOW, key)
    x0 = reference.x0
    errors = {}
    for solver, steps in (("euler", 100), ("heun", 25)):
        flow = mf.ContinuousFlow(SPACE, periodic_field, solver=solver, num_steps=steps)
        sol = jax.jit(lambda x, f=flow: f.forward(x, None))(x0)
        assert int(sol.stats.num_steps) == steps
        errors[solver] = abs(float(sol.log_q - reference.log_q))
    assert errors["euler"] < 5e-2
    assert errors["heun"] < 5e-3


def test_max_steps_exceeded_is_a_clear_error(key):
    flow = mf.ContinuousFlow(SPACE, periodic_field, rtol=1e-12, atol=1e-12, max_steps=3)
    with pytest.raises(Exception, match="max_steps=3"):
        jax.block_until_ready(flow.sample_and_log_prob(key, None))


def test_unchecked_solve_reports_its_status_instead_of_raising(key):
    tight = mf.ContinuousFlow(SPACE, periodic_field, rtol=1e-12, atol=1e-12, max_steps=3)
    sol = jax.jit(lambda k: tight.sample_solution(k, None, check=False))(key)
    assert int(sol.stats.status) == mf.SOLVE_MAX_STEPS and int(sol.stats.num_steps) == 3
    ok = mf.ContinuousFlow(SPACE, periodic_field)
    sol = ok.sample_solution(key, None, check=False)
    assert int(sol.stats.status) == mf.SOLVE_OK
    # the checked solve of the same flow is the same solve
    checked = ok.sample_solution(key, None)
    np.testing.assert_array_equal(sol.x1, checked.x1)
    assert int(checked.stats.status) == mf.SOLVE_OK


def test_float32_on_request(key):
    m = 3
    space = mf.Euclidean(m)
    field = Linear(np.eye(m) * 0.3, np.ones((m, m)) * 0.1)  # float64 parameters
    flow = mf.ContinuousFlow(space, field, base=mf.GaussianBase(space), dtype="float32")
    assert flow.dtype == np.float32
    assert flow.field.a.dtype == jnp.float32  # cast once at construction
    x, log_q = jax.jit(lambda k: flow.sample_and_log_prob(k, None))(key)
    assert x.dtype == jnp.float32 and log_q.dtype == jnp.float32
    # Without `dtype` the flow follows the field's parameters.
    eye32 = np.eye(m, dtype=np.float32)
    inferred = mf.ContinuousFlow(space, Linear(eye32, eye32), base=mf.GaussianBase(space))
    assert inferred.dtype == np.float32
    # The float64 flow agrees with the float32 one to float32 accuracy.
    flow64 = mf.ContinuousFlow(space, field, base=mf.GaussianBase(space), dtype="float64")
    log_q64 = jax.jit(lambda y: flow64.log_prob(y, None))(x)  # float32 input, cast
    assert log_q64.dtype == jnp.float64
    np.testing.assert_allclose(log_q64, log_q, rtol=1e-4)


def test_batched_helpers_do_not_depend_on_chunking(key):
    # chunk 1: sequential; chunk 2: 5 = 2 + 2 + 1, vmapped chunks and a remainder.
    x, log_q = mf.sample(FLOW, key, 5, None, chunk_size=1)
    x2, log_q2, stats = mf.sample(FLOW, key, 5, None, chunk_size=2, return_stats=True)
    assert x.shape == (5, *SPACE.point_shape) and log_q.shape == (5,)
    np.testing.assert_allclose(x2, x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(log_q2, log_q, rtol=1e-12, atol=1e-12)
    assert stats.num_fn_evals.shape == (5,) and np.all(stats.num_fn_evals > 0)
    assert len(set(np.asarray(log_q).tolist())) == 5  # independent samples
    np.testing.assert_allclose(mf.log_prob_batch(FLOW, x, None), log_q, atol=1e-6)


def test_hutchinson_probe_is_fixed_along_a_trajectory(key):
    # With v = A x, the Hutchinson integrand z^T A z does not depend on time or position,
    # so with ONE probe per trajectory the estimate of int div v is exactly z^T A z. A probe
    # redrawn at every evaluation would average over probes instead.
    m = 4
    a = np.random.default_rng(0).standard_normal((m, m))
    space = mf.Euclidean(m)
    estimator = mf.HutchinsonDivergence(2, "gaussian")
    flow = mf.ContinuousFlow(
        space, Linear(a, np.zeros((m, m))), base=mf.GaussianBase(space), divergence=estimator
    )
    x1 = jnp.arange(m, dtype=jnp.float64)
    reverse = jax.jit(lambda k: flow.reverse(x1, None, key=k))
    for k in jax.random.split(key, 3):
        sol = reverse(k)
        z = estimator.init_probe(k, space, x1)
        expected = np.mean([np.asarray(p) @ a @ np.asarray(p) for p in z])
        np.testing.assert_allclose(sol.divergence_integral, expected, rtol=1e-8)
    assert flow.stochastic
    with pytest.raises(ValueError, match="key"):
        flow.log_prob(x1, None)


# ---------------------------------------------------------------- base distributions
def test_base_distributions(key):
    uniform = mf.UniformBase(SPACE)
    x = uniform.sample(key, None)
    assert uniform.normalized and x.shape == SPACE.point_shape
    np.testing.assert_allclose(uniform.log_prob(x, None), -3 * 2 * np.log(L))
    with pytest.raises(ValueError, match="finite volume"):
        mf.UniformBase(mf.Euclidean(2))

    space = mf.Euclidean(3)
    gauss = mf.GaussianBase(space, scale=2.0)
    y = gauss.sample(key, None)
    np.testing.assert_allclose(
        gauss.log_prob(y, None), np.sum(scipy.stats.norm.logpdf(np.asarray(y), scale=2.0))
    )
    with pytest.raises(ValueError, match="curved"):
        mf.GaussianBase(mf.Sphere(2))

    flat = mf.ParticleSpace(mf.Euclidean(2), 3)
    box = mf.BoxUniformBase(flat, TORUS)
    z = box.sample(key, None)
    assert np.all((z >= 0) & (z < L))
    np.testing.assert_allclose(box.log_prob(z, None), -3 * 2 * np.log(L))
    assert box.log_prob(z.at[0, 0].set(-0.1), None) == -np.inf
    assert box.log_prob(z.at[2, 1].set(L), None) == -np.inf


def test_dataset_base_is_an_unnormalised_boltzmann_density(key):
    system = mf.get_system("ipl-n44")  # box wider than twice the cutoff: no image warning
    n = len(system.species)
    torus = mf.FlatTorus(float(system.parameters["box"][0]), dim=2)
    frames = np.stack(
        [jax.vmap(torus.random_uniform)(jax.random.split(k, n)) for k in jax.random.split(key, 4)]
    )
    data = mf.Dataset(
        frames, system.species, system.species_names, np.asarray(torus.lengths), temperature=0.5
    )
    base = mf.DatasetBase(data, system.energy)
    assert not base.normalized and base.temperature == 0.5
    species = jnp.asarray(system.species)

    @jax.jit
    def draw(k):
        x = base.sample(k, species)
        return x, base.log_prob(x, species), system.energy(x, species)

    for k in jax.random.split(key, 3):
        x, log_p, energy = draw(k)
        assert np.any(np.all(np.abs(frames - np.asarray(x)) < 1e-12, axis=(1, 2)))
        np.testing.assert_allclose(log_p, -energy / 0.5, rtol=1e-12)
    flow = mf.ContinuousFlow(base.space, Constant(np.zeros((n, 2))), base=base)
    assert not flow.normalized
    with pytest.raises(ValueError, match=r"T=0\.5"):
        mf.DatasetBase(data, system.energy, temperature=0.1)
    with pytest.raises(ValueError, match="temperature"):
        mf.DatasetBase(data.replace(temperature=None), system.energy)
    with pytest.raises(Exception, match="species"):
        jax.block_until_ready(eqx.filter_jit(base.log_prob)(frames[0], species[::-1]))


def test_construction_errors():
    with pytest.raises(ValueError, match="num_steps"):
        mf.ContinuousFlow(SPACE, periodic_field, solver="euler")
    with pytest.raises(ValueError, match="unknown solver"):
        mf.ContinuousFlow(SPACE, periodic_field, solver="rk45")
    with pytest.raises(ValueError, match="shape"):
        mf.ContinuousFlow(SPACE, periodic_field, base=mf.UniformBase(mf.ParticleSpace(TORUS, 4)))
    with pytest.raises(ValueError, match="rtol"):
        mf.ContinuousFlow(SPACE, periodic_field, rtol=0.0)
    with pytest.raises(TypeError, match="divergence"):
        mf.ContinuousFlow(SPACE, periodic_field, divergence="exact")
    with pytest.raises(ValueError, match="a batch"):
        FLOW.log_prob(jnp.zeros((2, 3, 2)), None)
    with pytest.raises(ValueError, match="num_points"):
        mf.log_prob_batch(FLOW, jnp.zeros((3, 2)), None)
