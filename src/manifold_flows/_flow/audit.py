"""The likelihood audit: named numerical checks that a flow's log q is what it claims to be.

A wrong sign or a missing term in log q still yields plausible samples; only checks with
known answers catch it. `likelihood_audit` runs them on a given flow (with its own solver,
tolerances, divergence strategy and dtype) and returns an `AuditReport`: one `AuditCheck`
per check with the measured discrepancy, its tolerance and pass / fail / skipped.
"""

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray, PyTree

from .._group import AbstractGroupAction
from .._manifold import Euclidean, FlatTorus, ParticleSpace, Sphere
from .._precision import EXACT
from ._base_dist import GaussianBase, UniformBase
from ._divergence import (
    AbstractStochasticDivergence,
    ExactDivergence,
    FieldDivergence,
    HutchinsonDivergence,
    is_flat_embedded,
)
from ._known_fields import ConstantField, LinearField, SphereField
from .continuous import ContinuousFlow

#: Every check the audit knows, in the order it runs them.
CHECK_NAMES = (
    "on_manifold",
    "forward_reverse",
    "exact_divergence",
    "hutchinson_unbiased",
    "group_invariance",
    "normalization",
    "constant_field",
    "linear_field",
    "sphere_field",
)

#: The checks that integrate fields with known answers instead of the audited flow's field.
KNOWN_ANSWER_CHECKS = ("constant_field", "linear_field", "sphere_field")

#: z-score bound of the statistical checks (Hutchinson mean, Monte Carlo normalisation).
Z_BOUND = 4.0


@dataclasses.dataclass(frozen=True)
class AuditCheck:
    """One check of the audit.

    **Fields:**

    - `name`: the check's name (see `CHECK_NAMES`).
    - `description`: what it checks, in one sentence.
    - `value`: the measured discrepancy (an absolute error, or a z-score for statistical
      checks), `nan` when skipped.
    - `tolerance`: the bound `value` must not exceed.
    - `passed`: `True` / `False`, or `None` when the check does not apply (skipped).
    - `detail`: numbers behind the verdict, or why the check was skipped.
    """

    name: str
    description: str
    value: float
    tolerance: float
    passed: bool | None
    detail: str = ""

    @property
    def skipped(self) -> bool:
        return self.passed is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "value": None if math.isnan(self.value) else self.value,
            "tolerance": self.tolerance,
            "passed": self.passed,
            "detail": self.detail,
        }


@dataclasses.dataclass(frozen=True)
class AuditReport:
    """The result of `likelihood_audit`.

    **Fields:**

    - `checks`: the `AuditCheck`s, in the order they ran.
    - `normalized`: whether the flow's log q is normalised (else it is relative to the
      unknown normalising constant of its base: log Z estimates are then relative too).
    - `config`: the flow configuration the audit ran with (solver, tolerances, dtype, ...).
    """

    checks: tuple[AuditCheck, ...]
    normalized: bool
    config: dict[str, Any]

    @property
    def passed(self) -> bool:
        """True when no check failed (skipped checks do not count)."""
        return all(c.passed is not False for c in self.checks)

    @property
    def failures(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.checks if c.passed is False)

    def __getitem__(self, name: str) -> AuditCheck:
        for c in self.checks:
            if c.name == name:
                return c
        names = [c.name for c in self.checks]
        raise KeyError(f"no audit check named {name!r}; the checks are {names}.")

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "normalized": self.normalized,
            "config": self.config,
            "checks": [c.to_dict() for c in self.checks],
        }

    def format(self) -> str:
        """A plain-text table, one line per check."""
        lines = [
            f"likelihood audit: {'PASSED' if self.passed else 'FAILED'}"
            f" ({'normalised' if self.normalized else 'UNNORMALISED base: log q is relative'})"
        ]
        for c in self.checks:
            verdict = "skip" if c.passed is None else ("ok" if c.passed else "FAIL")
            value = "-" if math.isnan(c.value) else f"{c.value:.3g}"
            lines.append(
                f"  [{verdict:>4}] {c.name:<20} {value:>10} <= {c.tolerance:<9.3g} {c.detail}"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


# ---------------------------------------------------------------------------- helpers
def _eps(flow: ContinuousFlow) -> float:
    return float(np.finfo(flow.dtype).eps)


def default_logq_tolerance(flow: ContinuousFlow, dim: int | None = None) -> float:
    """The audit's default relative bound on log q discrepancies for this flow (on a space of
    intrinsic dimension `dim`, default the flow's): two values of log q must agree within
    `tolerance * (1 + |int_0^1 div v dt|)`, since the solver's error scales with the size of
    the divergence integral.

    Adaptive solves: `1000 * max(rtol, atol) * sqrt(dim)` (the controller bounds the local
    error of the augmented state relative to `rtol, atol`; the log q error accumulates over
    `dim` divergence terms), but no less than `1e4 * eps(dtype) * sqrt(dim)` (rounding).
    Fixed-step solves have no error control: `1e-2 * sqrt(dim)` is only a heuristic; pass
    `tolerance=` explicitly.
    """
    dim = flow.space.dim if dim is None else dim
    scale = max(1.0, math.sqrt(dim))
    solver_part = 1000 * max(flow.rtol, flow.atol) if flow.num_steps is None else 1e-2
    return max(solver_part, 1e4 * _eps(flow)) * scale


def _deterministic(flow: ContinuousFlow) -> ContinuousFlow:
    """The flow with an exact divergence if its own is stochastic."""
    if isinstance(flow.divergence, AbstractStochasticDivergence):
        return eqx.tree_at(lambda f: f.divergence, flow, ExactDivergence())
    return flow


def _like(flow: ContinuousFlow, space, field, base) -> ContinuousFlow:
    """A flow on another space/field with the same solver configuration and dtype (and the
    same divergence strategy, unless it is the flow's own field's closed form, which the
    other field does not have: then the generic exact one)."""
    divergence = _deterministic(flow).divergence
    if isinstance(divergence, FieldDivergence):
        divergence = ExactDivergence()
    return ContinuousFlow(
        space,
        field,
        base=base,
        divergence=divergence,
        solver=flow.solver,
        rtol=flow.rtol,
        atol=flow.atol,
        dt0=flow.dt0,
        num_steps=flow.num_steps,
        max_steps=flow.max_steps,
        dtype=flow.dtype,
    )


def _verdict(name, description, value, tolerance, detail="") -> AuditCheck:
    value = float(value)
    passed = bool(np.isfinite(value) and value <= tolerance)
    return AuditCheck(name, description, value, float(tolerance), passed, detail)


def _skip(name, description, reason) -> AuditCheck:
    return AuditCheck(name, description, float("nan"), float("nan"), None, reason)


def _torus_of(space) -> FlatTorus | None:
    if isinstance(space, FlatTorus):
        return space
    if isinstance(space, ParticleSpace) and isinstance(space.manifold, FlatTorus):
        return space.manifold
    return None


def _trace_materialised(flow: ContinuousFlow, t, x, args) -> tuple[Array, Array]:
    """`tr(P J)` from the full materialised Jacobian (jax.jacfwd) of the flow's velocity,
    and the largest Jacobian entry (for the rounding tolerance)."""
    size = x.size
    jac = jax.jacfwd(lambda z: flow.velocity(t, z, args))(x).reshape(size, size)
    if not is_flat_embedded(flow.space):
        z = flow.space.project(x)
        basis = jnp.eye(size, dtype=x.dtype).reshape(size, *x.shape)
        proj = jax.vmap(lambda e: flow.space.project_tangent(z, e).reshape(-1))(basis)
        jac = jnp.matmul(proj.T, jac, precision=EXACT)
    return jnp.trace(jac), jnp.max(jnp.abs(jac))


# ---------------------------------------------------------------------------- checks
@eqx.filter_jit
def _samples(flow: ContinuousFlow, keys, args):
    return jax.vmap(lambda k: flow.sample_solution(k, args))(keys)


@eqx.filter_jit
def _base_points(flow: ContinuousFlow, keys, args):
    return jax.vmap(lambda k: flow.space.project(flow.base.sample(k, args).astype(flow.dtype)))(
        keys
    )


@eqx.filter_jit
def _reverse(flow: ContinuousFlow, x, args):
    return jax.vmap(lambda xi: flow.reverse(xi, args))(x)


@eqx.filter_jit
def _divergences(flow: ContinuousFlow, ts, x, args):
    def one(t, xi):
        _, div = flow.velocity_and_divergence(t, xi, args, None)
        ref, scale = _trace_materialised(flow, t, xi, args)
        return div, ref, scale

    return jax.vmap(one)(ts, x)


@eqx.filter_jit
def _hutchinson(flow: ContinuousFlow, estimator, keys, t, x, args):
    def one(k):
        probe = estimator.init_probe(k, flow.space, x)
        _, div = estimator(lambda z: flow.velocity(t, z, args), x, probe, flow.space)
        return div

    estimates = jax.vmap(one)(keys)
    _, exact = ExactDivergence()(lambda z: flow.velocity(t, z, args), x, None, flow.space)
    return estimates, exact


@eqx.filter_jit
def _act(group: AbstractGroupAction, space, keys, x):
    def one(k, xi):
        return space.project(group.act(group.random_element(k), xi))

    return jax.vmap(one)(keys, x)


@eqx.filter_jit
def _normalization(flow: ContinuousFlow, keys, args):
    def one(k):
        x = flow.space.random_uniform(k).astype(flow.dtype)
        return flow.log_prob(x, args) + jnp.asarray(flow.space.log_volume(), flow.dtype)

    return jax.lax.map(one, keys, batch_size=256)


@eqx.filter_jit
def _reverse_with_jacobian(flow: ContinuousFlow, x1):
    """Reverse solves on S^2 and the log volume change of the integrated inverse map, from
    `jax.jacfwd` through a solve of the point alone, in orthonormal tangent frames."""

    def frame(x):
        # Orthonormal basis of the tangent plane at x: QR of [x, e_1, e_2, ...].
        m = x.shape[0]
        q, _ = jnp.linalg.qr(jnp.concatenate([x[:, None], jnp.eye(m, dtype=x.dtype)], axis=1))
        return q[:, 1:m]

    def inverse_map(z):
        solution = flow._diffeqsolve(
            lambda t, y, args: flow.velocity(t, y, None),
            flow.space.project(z),
            None,
            reverse=True,
            adjoint=diffrax.ForwardMode(),
        )
        return flow.space.project(solution.ys[-1])

    def one(x):
        sol = flow.reverse(x, None)
        jac = jax.jacfwd(inverse_map)(x)
        # q(x1) = p0(x0) |det D(Phi^-1)(x1)| in orthonormal frames at x1 and x0.
        frames = jnp.matmul(frame(sol.x0).T, jac, precision=EXACT)
        log_det = jnp.linalg.slogdet(jnp.matmul(frames, frame(x), precision=EXACT))[1]
        return sol.log_q, sol.log_p0 + log_det

    return jax.vmap(one)(x1)


# ---------------------------------------------------------------------------- entry point
def likelihood_audit(
    flow: ContinuousFlow,
    key: PRNGKeyArray,
    args: PyTree,
    *,
    group: AbstractGroupAction | None = None,
    num_points: int = 3,
    num_probes: int = 256,
    mc_samples: int = 2048,
    max_mc_dim: int = 4,
    known_answers: bool = True,
    tolerance: float | None = None,
    checks: Sequence[str] | None = None,
) -> AuditReport:
    """Audit a flow's likelihood with named checks; returns an `AuditReport`.

    The checks (each either passes, fails, or is skipped with the reason):

    - `on_manifold`: samples are canonical points (`project(x) == x` up to rounding) with
      finite log q.
    - `forward_reverse`: log q from the forward pass (sampling) equals log q from the reverse
      pass (`log_prob`) on the same points.
    - `exact_divergence`: the flow's divergence (exact strategy; `ExactDivergence` if the
      flow's is stochastic) equals the trace of the materialised `jax.jacfwd` Jacobian
      (projected, `tr(P J)`, on embedded manifolds) at the sample points.
    - `hutchinson_unbiased`: the mean of `num_probes` Hutchinson estimates (the flow's
      estimator, or a Rademacher one) is within `Z_BOUND` standard errors of the exact value.
    - `group_invariance` (needs `group`): `log q(g x) == log q(x)` for random `g` (holds for
      an equivariant field on an invariant base; fails for a non-equivariant one).
    - `normalization` (normalised base, compact space, `dim <= max_mc_dim`): the Monte Carlo
      mean of `q(x) vol` over uniform `x` is 1 within `Z_BOUND` standard errors.
    - known answers, by reverse passes with this flow's solver, tolerances, divergence and
      dtype (if `known_answers`): `constant_field` (torus spaces: a constant field keeps the
      uniform density, log q = -log vol), `linear_field` (`v = (A + t B) x` in R^4: the
      divergence integral is `tr A + tr B / 2`), and `sphere_field` (a time-dependent field
      on S^2: log q equals log p0 plus the log volume change of the integrated inverse map,
      from `jax.jacfwd` through the solver, in orthonormal tangent frames).

    Stochastic flows (Hutchinson) are audited with an exact divergence wherever a
    deterministic log q is compared; the estimator itself is checked by `hutchinson_unbiased`.

    **Arguments:**

    - `flow`: the `ContinuousFlow` to audit.
    - `key`: a PRNG key.
    - `args`: the flow's extra data (species vector).
    - `group`: a symmetry group acting on configurations (e.g. `full_symmetry_group(torus,
      species)`), or `None` to skip the invariance check.
    - `num_points`: sample points per check.
    - `num_probes`: Hutchinson probes for the unbiasedness check.
    - `mc_samples`: uniform points for the normalisation check.
    - `max_mc_dim`: largest intrinsic dimension where the normalisation check runs (Monte
      Carlo over the uniform distribution is hopeless in high dimension).
    - `known_answers`: run the known-answer checks (`KNOWN_ANSWER_CHECKS`).
    - `checks`: names of the checks to run (default: all of `CHECK_NAMES`); the others are
      left out of the report. Each check costs its own compilations; selecting few is faster.
    - `tolerance`: relative bound on log q discrepancies, which must stay below
      `tolerance * (1 + |int div v|)` (default `default_logq_tolerance(flow)`).

    **Returns:**

    An `AuditReport` (`report.passed`, `report.failures`, `report["forward_reverse"]`,
    `report.to_dict()` for JSON, `str(report)` for a table).
    """
    if not isinstance(flow, ContinuousFlow):
        raise TypeError(f"likelihood_audit needs a ContinuousFlow; got {type(flow).__name__}.")
    if group is not None and not isinstance(group, AbstractGroupAction):
        raise TypeError(f"`group` must be an AbstractGroupAction or None; got {type(group)}.")
    for name, value in (("num_points", num_points), ("num_probes", num_probes)):
        if int(value) != value or value < 2:
            raise ValueError(
                f"likelihood_audit({name}=...) must be an integer >= 2; got {value!r}."
            )
    selected = CHECK_NAMES if checks is None else tuple(checks)
    unknown = sorted(set(selected) - set(CHECK_NAMES))
    if unknown:
        raise ValueError(
            f"likelihood_audit(checks=...) names unknown checks {unknown}; choose among "
            f"{list(CHECK_NAMES)}."
        )
    if not known_answers:
        selected = tuple(c for c in selected if c not in KNOWN_ANSWER_CHECKS)
    tol = default_logq_tolerance(flow) if tolerance is None else float(tolerance)
    eps = _eps(flow)
    dtype = flow.dtype
    det = _deterministic(flow)
    counter = iter(range(1 << 30))

    def next_key():
        return jax.random.fold_in(key, next(counter))

    results: dict[str, AuditCheck] = {}

    # --- points: samples of the flow when a check needs them, else base points ----------
    samples = reverse = None
    if {"on_manifold", "forward_reverse"} & set(selected):
        samples = _samples(det, jax.random.split(next_key(), num_points), args)
        points = samples.x1
    else:
        points = _base_points(det, jax.random.split(next_key(), num_points), args)

    if "on_manifold" in selected:
        deviation = jnp.max(jnp.abs(jax.vmap(det.space.project)(points) - points))
        finite = bool(jnp.all(jnp.isfinite(samples.log_q)))
        scale = float(jnp.max(jnp.abs(points))) + 1.0
        results["on_manifold"] = _verdict(
            "on_manifold",
            "samples are canonical points of the manifold with finite log q",
            deviation if finite else float("inf"),
            8 * eps * scale,
            f"max |project(x) - x| = {float(deviation):.3g}; log q finite: {finite}",
        )
    if {"forward_reverse", "group_invariance"} & set(selected):
        reverse = _reverse(det, points, args)
    if "forward_reverse" in selected:
        # The solver's error on log q scales with the size of the divergence integral.
        bound = tol * (1.0 + float(jnp.max(jnp.abs(samples.divergence_integral))))
        x0_gap = float(jnp.max(jnp.abs(jax.vmap(det.space.log)(samples.x0, reverse.x0))))
        results["forward_reverse"] = _verdict(
            "forward_reverse",
            "log q from sampling (t: 0 -> 1) equals log_prob (t: 1 -> 0) on the same points",
            jnp.max(jnp.abs(reverse.log_q - samples.log_q)),
            bound,
            f"log q = {np.array2string(np.asarray(samples.log_q), precision=6)}; "
            f"max |x0 - x0_reverse| = {x0_gap:.3g}",
        )

    # --- divergence strategies ---------------------------------------------------------
    ts = jax.random.uniform(next_key(), (num_points,), dtype=dtype)
    size = math.prod(flow.space.point_shape)
    div_tol = 64 * eps * size
    if "exact_divergence" in selected:
        div, ref, jac_scale = _divergences(det, ts, points, args)
        div_tol = div_tol * (1.0 + float(jnp.max(jac_scale)))
        results["exact_divergence"] = _verdict(
            "exact_divergence",
            f"{type(det.divergence).__name__} equals the trace of the materialised Jacobian",
            jnp.max(jnp.abs(div - ref)),
            div_tol,
            f"divergences {np.array2string(np.asarray(ref), precision=6)}",
        )
    if "hutchinson_unbiased" in selected:
        estimator = (
            flow.divergence
            if isinstance(flow.divergence, AbstractStochasticDivergence)
            else HutchinsonDivergence(1, "rademacher")
        )
        estimates, exact = _hutchinson(
            flow, estimator, jax.random.split(next_key(), num_probes), ts[0], points[0], args
        )
        mean = jnp.mean(estimates)
        stderr = jnp.std(estimates, ddof=1) / math.sqrt(num_probes)
        # A zero-variance estimator (Rademacher on a diagonal Jacobian) must then be exact.
        results["hutchinson_unbiased"] = _verdict(
            "hutchinson_unbiased",
            f"mean of {num_probes} {estimator.distribution} Hutchinson estimates is within "
            f"{Z_BOUND:g} standard errors of the exact divergence",
            jnp.abs(mean - exact) / jnp.maximum(stderr, div_tol),
            Z_BOUND,
            f"mean {float(mean):.6g} +- {float(stderr):.3g} vs exact {float(exact):.6g}",
        )

    # --- symmetry -------------------------------------------------------------------------
    description = "log q(g x) == log q(x) for random group elements g"
    if "group_invariance" not in selected:
        pass
    elif group is None:
        results["group_invariance"] = _skip(
            "group_invariance", description, "no symmetry group given"
        )
    else:
        # Redraw elements that leave their point fixed (e.g. the identity of a small
        # finite group): such a comparison would be vacuous.
        gx = _act(group, det.space, jax.random.split(next_key(), num_points), points)
        point_axes = tuple(range(1, points.ndim))
        for _ in range(16):
            fixed = np.asarray(jnp.all(gx == points, axis=point_axes))
            if not fixed.any():
                break
            redrawn = _act(group, det.space, jax.random.split(next_key(), num_points), points)
            gx = jnp.where(fixed.reshape(-1, *([1] * len(point_axes))), redrawn, gx)
        moved = float(jnp.max(jnp.abs(gx - points)))
        if moved == 0:
            results["group_invariance"] = _skip(
                "group_invariance", description, "the group left every point fixed"
            )
        else:
            lqg = _reverse(det, gx, args).log_q
            results["group_invariance"] = _verdict(
                "group_invariance",
                description,
                jnp.max(jnp.abs(lqg - reverse.log_q)),
                tol * (1.0 + float(jnp.max(jnp.abs(reverse.divergence_integral)))),
                f"group {type(group).__name__}; max |g x - x| = {moved:.3g}",
            )

    # --- normalisation ----------------------------------------------------------------------
    description = "exp(log q) integrates to one (Monte Carlo over uniform points)"
    log_volume = float(flow.space.log_volume())
    if "normalization" not in selected:
        pass
    elif not flow.normalized:
        results["normalization"] = _skip(
            "normalization", description, "unnormalised base: log q is relative"
        )
    elif not math.isfinite(log_volume):
        results["normalization"] = _skip("normalization", description, "infinite volume")
    elif flow.space.dim > max_mc_dim:
        results["normalization"] = _skip(
            "normalization",
            description,
            f"dim {flow.space.dim} > max_mc_dim={max_mc_dim}: the Monte Carlo estimate would "
            "be too noisy",
        )
    else:
        ratio = jnp.exp(_normalization(det, jax.random.split(next_key(), mc_samples), args))
        mean = jnp.mean(ratio)
        stderr = jnp.std(ratio, ddof=1) / math.sqrt(mc_samples)
        results["normalization"] = _verdict(
            "normalization",
            description,
            jnp.abs(mean - 1) / jnp.maximum(stderr, 1e3 * eps),
            Z_BOUND,
            f"integral = {float(mean):.5f} +- {float(stderr):.2g}",
        )

    # --- known answers with this flow's machinery, by reverse passes --------------------------
    # (Together with `forward_reverse` this pins down both directions.)
    def small_tol(dim: int) -> float:
        # The known-answer problems are small: the default bound for their dimension.
        return default_logq_tolerance(flow, dim) if tolerance is None else tol

    description = "a constant field on the torus keeps the uniform density: log q == -log vol"
    torus = _torus_of(flow.space)
    if "constant_field" not in selected:
        pass
    elif torus is None:
        results["constant_field"] = _skip(
            "constant_field", description, "the flow's space is not a torus"
        )
    else:
        shape = flow.space.point_shape
        box = jnp.broadcast_to(jnp.asarray(torus.lengths, dtype), shape)
        c = jax.random.uniform(next_key(), shape, dtype, -1.0, 1.0) * box
        const_flow = _like(flow, flow.space, ConstantField(c), UniformBase(flow.space))
        x = jax.vmap(lambda k: flow.space.random_uniform(k).astype(dtype))(
            jax.random.split(next_key(), num_points)
        )
        sol = _reverse(const_flow, x, args)
        expected = -jnp.asarray(flow.space.log_volume(), dtype)
        target = jax.vmap(flow.space.exp)(sol.x0, jnp.broadcast_to(c, sol.x0.shape))
        moved = jax.vmap(flow.space.log)(sol.x1, target)
        results["constant_field"] = _verdict(
            "constant_field",
            description,
            jnp.max(jnp.abs(sol.log_q - expected)),
            tol,
            f"max position error {float(jnp.max(jnp.abs(moved))):.3g}",
        )

    if "linear_field" in selected:
        m = 4
        ka, kb, kx = jax.random.split(next_key(), 3)
        linear = LinearField(
            0.5 * jax.random.normal(ka, (m, m), dtype), 0.5 * jax.random.normal(kb, (m, m), dtype)
        )
        euclid = Euclidean(m)
        lin_flow = _like(flow, euclid, linear, GaussianBase(euclid))
        sol = _reverse(lin_flow, jax.random.normal(kx, (num_points, m), dtype), None)
        expected = linear.divergence_integral()
        results["linear_field"] = _verdict(
            "linear_field",
            "v = (A + t B) x in R^4: the divergence integral is tr A + tr B / 2",
            jnp.max(jnp.abs(sol.divergence_integral - expected)),
            small_tol(m) * (1.0 + abs(float(expected))),
            f"tr A + tr B / 2 = {float(expected):.6g}, integrated "
            f"{np.array2string(np.asarray(sol.divergence_integral), precision=6)}",
        )

    if "sphere_field" in selected:
        sphere = Sphere(2)
        ka, km, kx = jax.random.split(next_key(), 3)
        s_field = SphereField(
            jax.random.normal(ka, (3,), dtype), jax.random.normal(km, (3, 3), dtype)
        )
        s_flow = _like(flow, sphere, s_field, UniformBase(sphere))
        x1 = jax.vmap(lambda k: sphere.random_uniform(k, dtype=dtype))(
            jax.random.split(kx, num_points)
        )
        lq_div, lq_jac = _reverse_with_jacobian(s_flow, x1)
        uniform_log_p = -float(sphere.log_volume())  # log q - log p0 = -int div v
        results["sphere_field"] = _verdict(
            "sphere_field",
            "on S^2, log q == log p0 + log |det| of the inverse map's Jacobian in tangent frames",
            jnp.max(jnp.abs(lq_div - lq_jac)),
            small_tol(sphere.dim) * (1.0 + float(jnp.max(jnp.abs(lq_div - uniform_log_p)))),
            f"log q {np.array2string(np.asarray(lq_div), precision=6)}",
        )

    config = {
        "solver": type(flow.solver).__name__,
        "rtol": flow.rtol,
        "atol": flow.atol,
        "num_steps": flow.num_steps,
        "dtype": flow.dtype_name,
        "divergence": type(flow.divergence).__name__,
        "base": type(flow.base).__name__,
        "space": type(flow.space).__name__,
        "dim": flow.space.dim,
        "logq_tolerance": tol,
    }
    ordered = tuple(results[name] for name in CHECK_NAMES if name in results)
    return AuditReport(ordered, flow.normalized, config)
