"""The likelihood audit of an augmented coupling flow: checks that a wrong log-density fails."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray, PyTree

from ..._group import AbstractGroupAction
from ..audit import AuditCheck, AuditReport
from .flow import AugmentedCouplingFlow

#: Names of the checks `coupling_flow_audit` runs, in order.
COUPLING_CHECK_NAMES = (
    "on_manifold",
    "forward_inverse",
    "log_det_inverse",
    "forward_reverse",
    "jacobian",
    "group_invariance",
)
#: Largest dimension `2 N d` of `(x, a)` whose Jacobian the audit materialises.
MAX_JACOBIAN_DIM = 512


def _torus_gap(u, v, box):
    gap = u - v
    return float(jnp.max(jnp.abs(gap - box * jnp.round(gap / box))))


def coupling_flow_audit(
    flow: AugmentedCouplingFlow,
    key: PRNGKeyArray,
    args: PyTree,
    *,
    group: AbstractGroupAction | None = None,
    num_points: int = 3,
    tolerance: float | None = None,
) -> AuditReport:
    """Audit the exact joint log-density of an `AugmentedCouplingFlow` on `num_points` samples.

    The checks (each passes, fails, or is skipped with the reason):

    - `on_manifold`: samples `(x, a)` lie in the box with finite log q.
    - `forward_inverse`: the inverse pass maps the samples back to their base points (largest
      torus distance, in units of the box).
    - `log_det_inverse`: the log-determinants of the forward and the inverse pass cancel.
    - `forward_reverse`: `log q(x, a)` from sampling equals `log_prob_joint(x, a)` (the
      inverse pass).
    - `jacobian`: the forward pass's `log |det|` equals `log |det J|` of its Jacobian
      materialised with `jax.jacfwd` (`(x, a)` of dimension at most `MAX_JACOBIAN_DIM`).
    - `group_invariance`: `log q(g x, g a) = log q(x, a)` for random elements `g` of `group`
      acting on positions and auxiliary points alike (skipped without a group).

    **Arguments:**

    - `flow`: the flow (audited in its own precision).
    - `key`: PRNG key of the samples and group elements.
    - `args`: the species vector.
    - `group`: e.g. `full_symmetry_group(torus, species)`.
    - `num_points`: samples per check.
    - `tolerance`: bound of the log-density checks (default `1e4 * eps * (1 + |log q|)`);
      the positional checks use `1e4 * eps` in units of the box.

    **Returns:**

    An `AuditReport` (`normalized` is True: base and auxiliary target are normalised).
    """
    if not isinstance(flow, AugmentedCouplingFlow):
        raise TypeError(f"coupling_flow_audit needs an AugmentedCouplingFlow; got {type(flow)}.")
    if isinstance(num_points, bool) or int(num_points) != num_points or num_points < 1:
        raise ValueError(f"num_points must be a positive integer; got {num_points!r}.")
    dtype = flow.dtype
    eps = float(jnp.finfo(dtype).eps)
    box = jnp.asarray(flow.space.manifold.lengths, dtype)[None, :]
    scale = float(jnp.max(box))
    sample_key, group_key = jax.random.split(key)
    keys = jax.random.split(sample_key, num_points)

    def base_and_sample(k):
        position_key, aux_key = jax.random.split(k)
        z_x = flow.space.random_uniform(position_key, dtype=dtype)
        z_a = flow.sample_base_aux(aux_key, z_x, args)
        x, a, log_det = flow.forward(z_x, z_a, args)
        log_q = flow.base_log_prob(z_x, z_a, args) - log_det
        return z_x, z_a, x, a, log_det, log_q

    z_x, z_a, x, a, log_det, log_q = jax.jit(jax.vmap(base_and_sample))(keys)
    back_x, back_a, log_det_inv = jax.jit(jax.vmap(lambda x, a: flow.inverse(x, a, args)))(x, a)
    reverse = jax.jit(jax.vmap(lambda x, a: flow.log_prob_joint(x, a, args)))(x, a)
    size = 1.0 + float(jnp.max(jnp.abs(log_q)))
    log_tol = 1e4 * eps * size if tolerance is None else float(tolerance)
    pos_tol = 1e4 * eps
    checks = []

    batch_box = box[None]  # (1, 1, d): the samples come in a batch
    inside = bool(jnp.all((x >= 0) & (x < batch_box) & (a >= 0) & (a < batch_box)))
    finite = bool(jnp.all(jnp.isfinite(log_q)))
    checks.append(
        AuditCheck(
            "on_manifold",
            "samples lie in the box [0, L) with a finite log q",
            0.0 if inside and finite else 1.0,
            0.0,
            inside and finite,
            f"in box: {inside}; finite log q: {finite}",
        )
    )
    gap = max(_torus_gap(back_x, z_x, batch_box), _torus_gap(back_a, z_a, batch_box)) / scale
    checks.append(
        AuditCheck(
            "forward_inverse",
            "the inverse pass returns the base points of the samples",
            gap,
            pos_tol,
            gap <= pos_tol,
            f"largest torus distance / L = {gap:.3g}",
        )
    )
    cancel = float(jnp.max(jnp.abs(log_det + log_det_inv)))
    checks.append(
        AuditCheck(
            "log_det_inverse",
            "forward and inverse log-determinants cancel",
            cancel,
            log_tol,
            cancel <= log_tol,
        )
    )
    agree = float(jnp.max(jnp.abs(log_q - reverse)))
    checks.append(
        AuditCheck(
            "forward_reverse",
            "log q from sampling equals log_prob_joint at the sample",
            agree,
            log_tol,
            agree <= log_tol,
        )
    )
    checks.append(_jacobian_check(flow, args, z_x, z_a, log_det, log_tol))
    checks.append(_group_check(flow, args, group, group_key, x, a, reverse, log_tol))
    config = {"class": type(flow).__name__, "dtype": jnp.dtype(dtype).name, "points": num_points}
    return AuditReport(tuple(checks), True, config)


def _jacobian_check(flow, args, z_x, z_a, log_det, tol) -> AuditCheck:
    n, d = flow.space.point_shape
    dim = 2 * n * d
    description = "the forward log |det| equals that of the materialised Jacobian"
    if dim > MAX_JACOBIAN_DIM:
        return AuditCheck(
            "jacobian",
            description,
            math.nan,
            tol,
            None,
            f"skipped: (x, a) has dimension {dim} > {MAX_JACOBIAN_DIM}",
        )

    def flat_forward(z):
        # Positions come back wrapped; the wrap is locally a translation by multiples of L,
        # so the Jacobian of the wrapped map is that of the unwrapped one almost everywhere.
        x, a, _ = flow.forward(z[: n * d].reshape(n, d), z[n * d :].reshape(n, d), args)
        return jnp.concatenate([x.reshape(-1), a.reshape(-1)])

    def materialised(zx, za):
        jac = jax.jacfwd(flat_forward)(jnp.concatenate([zx.reshape(-1), za.reshape(-1)]))
        return jnp.linalg.slogdet(jac)[1]

    dense = jax.jit(jax.vmap(materialised))(z_x, z_a)
    error = float(jnp.max(jnp.abs(dense - log_det)))
    return AuditCheck(
        "jacobian",
        description,
        error,
        tol * 10,
        error <= tol * 10,
        f"dimension {dim}; largest |log|det J| - log_det| = {error:.3g}",
    )


def _group_check(flow, args, group, key, x, a, log_q, tol) -> AuditCheck:
    description = "log q(g x, g a) = log q(x, a) for random elements g of the symmetry group"
    if group is None:
        return AuditCheck(
            "group_invariance", description, math.nan, tol, None, "skipped: no group given"
        )
    elements = jax.vmap(group.random_element)(jax.random.split(key, x.shape[0]))
    moved_x = jax.vmap(group.act)(elements, x)
    moved_a = jax.vmap(group.act)(elements, a)
    moved = jax.jit(jax.vmap(lambda x, a: flow.log_prob_joint(x, a, args)))(moved_x, moved_a)
    error = float(np.max(np.abs(np.asarray(moved) - np.asarray(log_q))))
    return AuditCheck(
        "group_invariance",
        description,
        error,
        tol,
        error <= tol,
        f"{type(group).__name__}: largest change {error:.3g}",
    )
