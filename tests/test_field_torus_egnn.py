"""TorusEGNN: the architecture of DESIGN.md section 2, its symmetries, periodicity and numerics."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st
from test_field_helpers import lively, reference_egnn

from manifold_flows import (
    BoxPointGroup,
    FlatTorus,
    PermutationWithinSpecies,
    TorusEGNN,
    TorusTranslation,
    count_parameters,
    full_symmetry_group,
)
from manifold_flows.testing import assert_equivariant, tolerance

SEEDS = st.integers(0, 2**31 - 1)
L2 = 3.0
SPECIES2 = jnp.array([0, 1, 0, 1, 1, 0, 0])
L3 = 2.5
SPECIES3 = jnp.array([1, 0, 1, 0, 1])


#: Jitted evaluation that takes the field as an argument, so fields of one structure share
#: the compiled code (compilation dominates the run time of these tests).
_APPLY = eqx.filter_jit(lambda field, t, x, species: field(t, x, species))


def _config(seed: int, n: int, d: int, length: float):
    k = jax.random.key(seed)
    x = length * jax.random.uniform(k, (n, d))
    t = jax.random.uniform(jax.random.fold_in(k, 1), ())
    return t, x


@pytest.fixture(scope="module")
def torus2():
    return FlatTorus(L2, dim=2)


@pytest.fixture(scope="module")
def field2(torus2):
    key = jax.random.key(20)
    return lively(TorusEGNN(torus2, 2, width=8, depth=3, key=key), jax.random.fold_in(key, 1))


@pytest.fixture(scope="module")
def apply2(field2):
    return jax.jit(lambda t, x: field2(t, x, SPECIES2))


@pytest.fixture(scope="module")
def small(torus2):
    # One layer: for the checks that compile extra variants (grad, eager, other dtypes).
    key = jax.random.key(21)
    return lively(TorusEGNN(torus2, 2, width=8, depth=1, key=key), jax.random.fold_in(key, 1))


@pytest.fixture(scope="module")
def torus3():
    return FlatTorus(L3, dim=3)


@pytest.fixture(scope="module")
def apply3(torus3):
    key = jax.random.key(30)
    field = lively(TorusEGNN(torus3, 2, width=8, depth=2, key=key), jax.random.fold_in(key, 1))
    return jax.jit(lambda t, x: field(t, x, SPECIES3))


# ---------------------------------------------------------------------------- architecture


@pytest.mark.parametrize(
    "options",
    [dict(), dict(attention=False, tanh_bound=False)],
    ids=["default", "no-attention-no-tanh"],
)
def test_matches_edge_by_edge_reference(torus2, options, key):
    # The factorised, fused implementation computes exactly the network of DESIGN.md section 2,
    # transcribed edge by edge (concatenated edge input, unfactorised weights) in the helper.
    field = TorusEGNN(torus2, 2, width=8, depth=2, key=key, **options)
    field = lively(field, jax.random.fold_in(key, 1), scale=0.5)
    t, x = _config(7, 7, 2, L2)
    fast = jax.jit(lambda t, x: field(t, x, SPECIES2))(t, x)
    ref = jax.jit(
        lambda t, x: reference_egnn(field, t, x, SPECIES2, periodic=True, lengths=torus2.lengths)
    )(t, x)
    assert float(jnp.max(jnp.abs(ref))) > 0.05  # a non-trivial output is being compared
    rtol, atol = tolerance(x.dtype)
    np.testing.assert_allclose(fast, ref, rtol=rtol, atol=atol)


def test_parameter_count(torus2, key):
    # Paper network at width H, depth K, S species: embedding (1 + S) H + H; per layer
    # phi_e (2H + 2) H + H + H^2 + H, attention H + 1, phi_x H^2 + H + H (no bias),
    # phi_h 2H^2 + H + H^2 + H, except in the last layer, whose node update is never read.
    # Checked at width 8 (cheap to build); the formula gives 19,363 at H=32, K=3, S=2.
    H, K, S = 8, 3, 2
    per_layer = (2 * H + 2) * H + H + H * H + H + (H + 1) + (H * H + H + H)
    phi_h = 2 * H * H + H + H * H + H
    expected = (1 + S) * H + H + K * per_layer + (K - 1) * phi_h
    assert count_parameters(TorusEGNN(torus2, S, width=H, depth=K, key=key)) == expected
    no_att = TorusEGNN(torus2, S, width=H, depth=K, attention=False, key=key)
    assert count_parameters(no_att) == expected - K * (H + 1)


# ---------------------------------------------------------------------------- symmetries


@given(seed=SEEDS)
def test_equivariant_to_permutations_within_species(apply2, seed):
    t, x = _config(seed, 7, 2, L2)
    action = PermutationWithinSpecies(SPECIES2)
    g = action.random_element(jax.random.key(seed + 1))
    assert_equivariant(lambda y: apply2(t, y), action, x, g)


@given(seed=SEEDS)
def test_equivariant_to_torus_translations(apply2, torus2, seed):
    t, x = _config(seed, 7, 2, L2)
    action = TorusTranslation(torus2)
    g = action.random_element(jax.random.key(seed + 1))
    assert_equivariant(lambda y: apply2(t, y), action, x, g)


@given(seed=SEEDS)
def test_equivariant_to_every_point_group_element_2d(apply2, torus2, seed):
    t, x = _config(seed, 7, 2, L2)
    action = BoxPointGroup(torus2)
    elements = action.elements()
    assert action.order == 8
    for k in range(action.order):
        g = jax.tree.map(lambda e, k=k: e[k], elements)
        assert_equivariant(lambda y: apply2(t, y), action, x, g)


@given(seed=SEEDS, index=st.integers(0, 47))
def test_equivariant_to_point_group_3d(apply3, torus3, seed, index):
    t, x = _config(seed, 5, 3, L3)
    action = BoxPointGroup(torus3)
    assert action.order == 48
    g = jax.tree.map(lambda e: e[index], action.elements())
    assert_equivariant(lambda y: apply3(t, y), action, x, g)


@given(seed=SEEDS)
def test_equivariant_to_full_symmetry_group(apply2, torus2, seed):
    t, x = _config(seed, 7, 2, L2)
    action = full_symmetry_group(torus2, SPECIES2)
    g = action.random_element(jax.random.key(seed + 1))
    assert_equivariant(lambda y: apply2(t, y), action, x, g)


@given(seed=SEEDS)
def test_periodic(apply2, seed):
    t, x = _config(seed, 7, 2, L2)
    k = jax.random.randint(jax.random.key(seed + 1), x.shape, -3, 4).astype(x.dtype)
    rtol, atol = tolerance(x.dtype)
    np.testing.assert_allclose(apply2(t, x + L2 * k), apply2(t, x), rtol=rtol, atol=atol)


def _broken_apply(field, torus):
    # The same weights driven with raw differences x_i - x_j (no minimum image): the network a
    # careless port would compute. It must fail the symmetry checks the real field passes.
    L = torus.box(jnp.float64)[None]  # (1, d): broadcasts over particles
    core = field.core

    def raw(y):
        return y[:, None, :] - y[None, :, :]

    def fn(t, x):
        total = core(t, x, SPECIES2, raw, lambda y, v: jnp.mod(y + v, L))
        return total - L * jnp.round(total / L)

    return jax.jit(fn)


def test_broken_variant_fails_translation_and_periodicity(field2, torus2):
    broken = _broken_apply(field2, torus2)
    t, x = _config(3, 7, 2, L2)
    action = TorusTranslation(torus2)
    g = action.random_element(jax.random.key(4))
    with pytest.raises(AssertionError):
        assert_equivariant(lambda y: broken(t, y), action, x, g)
    k = jnp.array([[1, 0], [0, 0], [-2, 1], [0, 3], [1, 1], [0, -1], [2, 0]], dtype=x.dtype)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(broken(t, x + L2 * k), broken(t, x), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------- numerics


def test_output_is_a_finite_tangent_vector(apply2, field2, torus2):
    t, x = _config(11, 7, 2, L2)
    v = apply2(t, x)
    assert v.shape == x.shape and v.dtype == x.dtype
    assert bool(jnp.all(jnp.isfinite(v)))
    # Guards the symmetry tests: the field they check moves particles by O(0.1) or more (a
    # freshly initialised field is near zero and would pass any check vacuously).
    assert float(jnp.max(jnp.abs(v))) > 0.05
    # The output is log_x(x_final): a minimum-image displacement, at most L/2 per axis.
    assert bool(jnp.all(jnp.abs(v) <= L2 / 2))
    assert bool(jnp.all(torus2.project_tangent(x[0], v[0]) == v[0]))


def test_gradients_finite_with_self_edges_and_coincident_particles(small):
    # r_ii = 0 on every self-edge, and here particles 0 and 1 also sit at the same point: the
    # guarded square root must keep gradients in x and in the weights finite.
    t, x = _config(5, 7, 2, L2)
    x = x.at[1].set(x[0])

    params, static = eqx.partition(small, eqx.is_inexact_array)

    def loss(params, x):
        return jnp.sum(eqx.combine(params, static)(t, x, SPECIES2) ** 2)

    gp, gx = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x)
    assert bool(jnp.all(jnp.isfinite(gx)))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(gp))


def test_jit_matches_eager_and_vmap_matches_loop(small):
    keys = jax.random.split(jax.random.key(9), 3)
    xs = L2 * jax.vmap(lambda k: jax.random.uniform(k, (7, 2)))(keys)
    ts = jnp.array([0.0, 0.4, 1.0])
    rtol, atol = tolerance(xs.dtype)
    batched = eqx.filter_jit(jax.vmap(lambda t, x: small(t, x, SPECIES2)))(ts, xs)
    jitted = [_APPLY(small, ts[i], xs[i], SPECIES2) for i in range(3)]
    for i in range(3):
        np.testing.assert_allclose(batched[i], jitted[i], rtol=rtol, atol=atol)
    # Eager mode compiles every primitive separately: once, on the one-layer field.
    eager = small(ts[1], xs[1], SPECIES2)
    np.testing.assert_allclose(jitted[1], eager, rtol=rtol, atol=atol)


def test_dtype_follows_input(small):
    # float32 parameters (training) evaluate in float64 (likelihoods), and float32 throughout.
    field = jax.tree.map(lambda p: p.astype(jnp.float32) if eqx.is_inexact_array(p) else p, small)
    t, x64 = _config(2, 7, 2, L2)
    v64 = _APPLY(field, t, x64, SPECIES2)
    v32 = _APPLY(field, t.astype(jnp.float32), x64.astype(jnp.float32), SPECIES2)
    assert v64.dtype == jnp.float64 and v32.dtype == jnp.float32
    rtol, atol = tolerance(jnp.float32)
    np.testing.assert_allclose(v32, v64, rtol=100 * rtol, atol=100 * atol)  # float32 roundoff
    # A python float time is accepted and takes the dtype of x.
    assert jax.eval_shape(lambda x: field(0.5, x, SPECIES2), x64).dtype == jnp.float64


def test_any_number_of_particles(field2):
    # The graph is fully connected over whatever particles come in (no size baked in).
    t, x = _config(1, 4, 2, L2)
    out = jax.eval_shape(lambda t, x: field2(t, x, jnp.array([0, 0, 1, 1])), t, x)
    assert out.shape == (4, 2)


# ---------------------------------------------------------------------------- errors


def test_structural_errors(torus2, field2):
    key = jax.random.key(0)
    with pytest.raises(TypeError, match="FlatTorus"):
        TorusEGNN(2, 2, key=key)
    with pytest.raises(ValueError, match="num_species"):
        TorusEGNN(torus2, 0, key=key)
    with pytest.raises(ValueError, match="width"):
        TorusEGNN(torus2, 2, width=0, key=key)
    with pytest.raises(ValueError, match="tanh_bound"):
        TorusEGNN(torus2, 2, tanh_bound=-1.0, key=key)
    x = jnp.zeros((7, 2))
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        field2(0.5, jnp.zeros((7, 3)), SPECIES2)
    # A species vector of the wrong length or dtype: ValueError / TypeError from the field, or
    # the jaxtyping TypeCheckError (a TypeError) first when the annotation hook is active.
    with pytest.raises((ValueError, TypeError)):
        field2(0.5, x, SPECIES2[:3])
    with pytest.raises(TypeError):
        field2(0.5, x, SPECIES2.astype(jnp.float64))


def test_out_of_range_species_fails_under_jit(field2):
    bad = jnp.array([0, 1, 0, 1, 1, 0, 2])
    # Under `eqx.filter_jit` (the library's entry points) the message reaches the user on
    # every backend.
    with pytest.raises(Exception, match="species labels"):
        eqx.filter_jit(lambda x: field2(0.5, x, bad))(jnp.zeros((7, 2)))
    # Under plain `jax.jit` the run still fails; how XLA frames the message differs between
    # backends (on a GPU it did not carry it), so only the failure is asserted here.
    with pytest.raises(Exception):  # noqa: B017
        jax.block_until_ready(jax.jit(lambda x: field2(0.5, x, bad))(jnp.zeros((7, 2))))
