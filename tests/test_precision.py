"""Reduced-precision matrix products (TF32) reproduced on a CPU.

On recent NVIDIA GPUs XLA computes float32 matrix products with TF32 inputs (10-bit
mantissas) unless a precision is set. CPUs ignore the precision setting, so a CPU run cannot
see what goes wrong there. `emulated_tf32` makes it visible: while it is active, every float32
`dot_general` compiled for the CPU rounds its operands to TF32 first, unless the product asks
for `Precision.HIGHEST`, exactly as the GPU does. The tests below check the library's choices
(see `manifold_flows._precision`): geometry, group actions and log q are exact under it, the
training loss is not (TF32 is accepted there).
"""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax._src.interpreters import mlir
from jax._src.lax import lax as lax_internal

import manifold_flows as mf
from manifold_flows.testing import check_group_laws, group_action_registry

F32 = jnp.float32


@contextlib.contextmanager
def emulated_tf32():
    """Compile float32 matrix products for the CPU as a TF32 GPU does (inputs rounded to 10
    mantissa bits, float32 accumulation), except those with `Precision.HIGHEST`.

    It swaps the CPU lowering rule of `dot_general` (a private JAX table) and clears JAX's
    compilation caches on entry and exit, so nothing compiled inside leaks out or vice versa.
    """
    primitive = lax_internal.dot_general_p
    table = mlir._platform_specific_lowerings["cpu"]
    entry = table[primitive]
    original = entry.rule
    rounding = mlir.lower_fun(
        lambda x: jax.lax.reduce_precision(x, exponent_bits=8, mantissa_bits=10),
        multiple_results=False,
    )

    def rule(ctx, lhs, rhs, *, precision, **params):
        exact = precision is not None and all(p == jax.lax.Precision.HIGHEST for p in precision)
        operands = []
        for value, aval in zip((lhs, rhs), ctx.avals_in, strict=True):
            if not exact and aval.dtype == np.float32:
                (value,) = rounding(ctx.replace(avals_in=[aval], avals_out=[aval]), value)
            operands.append(value)
        return original(ctx, *operands, precision=precision, **params)

    jax.clear_caches()
    table[primitive] = mlir.LoweringRuleEntry(rule, entry.inline)
    try:
        yield
    finally:
        table[primitive] = entry
        jax.clear_caches()


def _product(a, b):
    return a @ b


def test_emulation_rounds_default_products_and_spares_highest():
    a = jax.random.normal(jax.random.key(0), (64, 64), F32)
    b = jax.random.normal(jax.random.key(1), (64, 64), F32)
    exact = np.asarray(a, np.float64) @ np.asarray(b, np.float64)
    jitted = jax.jit(_product)

    def plain(a, b):
        return np.asarray(jitted(a, b), np.float64)

    assert np.max(np.abs(plain(a, b) - exact)) < 1e-4
    with emulated_tf32():
        tf32 = np.max(np.abs(plain(a, b) - exact))
        highest = jax.jit(lambda a, b: jnp.matmul(a, b, precision="highest"))(a, b)
        highest = np.asarray(highest, np.float64)
    # TF32 inputs: relative rounding 2^-11 per factor, summed over 64 terms of size ~1.
    assert tf32 > 1e-3
    assert np.max(np.abs(highest - exact)) < 1e-4
    # The table is restored: the plain product is exact to float32 again.
    assert np.max(np.abs(plain(a, b) - exact)) < 1e-4


@pytest.mark.parametrize(
    "name",
    [
        # every action with a matrix product (the others permute or shift coordinates) ...
        "orthogonal_2d",
        "orthogonal_3d",
        "euclidean_permutation_rotation",
        # ... and two without, as a control
        "full_symmetry_2d",
        "point_group_3d",
    ],
)
def test_float32_group_laws_hold_with_tf32_products(name):
    # `mflows doctor` failed these laws on an H200 (errors 1e-4 to 1.2e-3) before the group
    # actions asked for exact products.
    with emulated_tf32(), jax.enable_x64(False):
        case = group_action_registry()[name]
        k_point, k_laws = jax.random.split(jax.random.key(0))
        x = case.make_point(k_point, jnp.dtype("float32"))
        results = check_group_laws(case.action, x, k_laws, num_elements=8, manifold=case.manifold)
    failed = {law: r for law, r in results.items() if not r.passed}
    assert not failed, failed


def _small_flow(precision):
    system = mf.get_system("ipl-n10")
    field = mf.TorusEGNN(
        system.torus, num_species=2, width=16, depth=2, key=jax.random.key(3), dtype="float32"
    )
    flow = mf.ContinuousFlow(
        system.space,
        field,
        solver="heun",
        num_steps=3,
        dtype="float32",
        matmul_precision=precision,
    )
    return flow, jnp.asarray(system.species)


@jax.jit
def _sample_and_reverse(flow, key, species):
    x, log_q = flow.sample_and_log_prob(key, species)
    return x, log_q, flow.log_prob(x, species)


@pytest.mark.parametrize("precision", ["highest", None])
def test_log_q_is_unchanged_by_tf32_products_only_with_exact_precision(precision):
    flow, species = _small_flow(precision)
    key = jax.random.key(5)
    x, log_q, log_q_back = _sample_and_reverse(flow, key, species)
    with emulated_tf32():
        x_t, log_q_t, log_q_back_t = _sample_and_reverse(flow, key, species)
    change = max(
        float(jnp.max(jnp.abs(x_t - x))),
        abs(float(log_q_t - log_q)),
        abs(float(log_q_back_t - log_q_back)),
    )
    if precision == "highest":
        # The products of the field are computed exactly: TF32 does not touch them.
        assert change == 0.0
    else:
        # JAX's default precision: TF32 moves the samples and log q (this is what a GPU does
        # to a flow built with matmul_precision=None), so the check above can fail. (A fresh
        # field moves points little, so the change is small; it is not zero.)
        assert change > 0.0


def test_the_training_loss_accepts_tf32_products():
    # Training is deliberately left at JAX's default precision (TF32 on GPUs): the field
    # evaluated directly, outside a flow, sees the rounding.
    flow, species = _small_flow("highest")
    field = flow.field
    x = flow.space.random_uniform(jax.random.key(1)).astype(F32)
    evaluate = jax.jit(lambda f, x: f(jnp.asarray(0.3, F32), x, species))
    v = evaluate(field, x)
    with emulated_tf32():
        v_tf32 = evaluate(field, x)
    assert float(jnp.max(jnp.abs(v_tf32 - v))) > 0.0


def test_matmul_precision_is_validated():
    system = mf.get_system("ipl-n10")
    field = mf.TorusEGNN(system.torus, num_species=2, width=8, depth=1, key=jax.random.key(0))
    with pytest.raises(ValueError, match="matmul_precision"):
        mf.ContinuousFlow(system.space, field, matmul_precision="exact")
