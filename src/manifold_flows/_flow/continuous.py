"""Continuous normalizing flow on a manifold: one diffrax solve for the point and its log q."""

import math
from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree, Shaped

from .._field.base import AbstractFieldWithDivergence, AbstractTranslationInvariantField
from .._manifold import AbstractManifold, ZeroCenterOfMass
from .._precision import EXACT_NAME
from ._base_dist import AbstractBase, UniformBase
from ._divergence import (
    AbstractDivergence,
    AbstractStochasticDivergence,
    ExactDivergence,
    FieldDivergence,
    is_flat_embedded,
)
from ._solvers import evaluations, is_adaptive, make_solver
from .base import AbstractLikelihood
from .solution import SOLVE_FAILED, SOLVE_MAX_STEPS, SOLVE_OK, FlowSolution, FlowStats

MAX_STEPS_MESSAGE = (
    "ContinuousFlow: the ODE solver reached max_steps={max_steps} before the end of the time "
    "interval; raise max_steps, loosen rtol/atol, or use a fixed-step solver (num_steps=...)."
)
#: Matrix-product precisions a flow accepts (`jax.default_matmul_precision` names); `None` leaves
#: JAX's default, which is TF32 for float32 products on recent NVIDIA GPUs.
MATMUL_PRECISIONS = ("highest", "high", "default", "float32", "tensorfloat32", "bfloat16")

FAILED_MESSAGE = (
    "ContinuousFlow: the ODE solve failed (step size collapsed or non-finite values); check the "
    "vector field for NaN/inf, or loosen rtol/atol."
)


def closed_form_applies(field: Callable, space: AbstractManifold) -> bool:
    """Whether the field's own divergence (`velocity_and_divergence`, the trace of its ambient
    Jacobian) is the Riemannian divergence on `space`, so that `FieldDivergence` may be used.

    True for an `AbstractFieldWithDivergence` on a flat space (the tangent projector is the
    identity), and on `ZeroCenterOfMass` when the field is also an
    `AbstractTranslationInvariantField`: its Jacobian then satisfies `J P = J` for the
    projector `P` onto zero centre of mass, so `tr(P J) = tr(J P) = tr(J)`.
    """
    if not isinstance(field, AbstractFieldWithDivergence):
        return False
    if is_flat_embedded(space):
        return True
    return isinstance(space, ZeroCenterOfMass) and isinstance(
        field, AbstractTranslationInvariantField
    )


def _floating_dtypes(tree: PyTree) -> set[np.dtype]:
    return {
        np.dtype(leaf.dtype)
        for leaf in jtu.tree_leaves(tree)
        if eqx.is_array(leaf) and jnp.issubdtype(leaf.dtype, jnp.floating)
    }


def _cast_floating(tree: PyTree, dtype: np.dtype) -> PyTree:
    def cast(leaf):
        if eqx.is_array(leaf) and jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf.astype(dtype)
        return leaf

    return jtu.tree_map(cast, tree)


class ContinuousFlow(AbstractLikelihood):
    """A continuous normalizing flow on a manifold, integrated with diffrax.

    The flow map pushes a base point `x0 ~ p0` along `dx/dt = v(t, x, args)` from `t = 0` to
    `t = 1`. The log-density of `x1` follows from the instantaneous change of variables,

        d(log q)/dt = -div v(t, x_t),     log q(x1) = log p0(x0) - int_0^1 div v(t, x_t) dt,

    with `div` the Riemannian divergence. The point and the divergence integral form one
    augmented state `(x, Delta)`, `dDelta/dt = div v`, integrated in **one** diffrax solve
    (the adaptive controller controls the error of both). `log_prob(x1)` integrates the same
    system backwards, `t: 1 -> 0`, from `(x1, 0)`; the state then ends at
    `(x0, -int_0^1 div v)`, giving the same formula.

    Wrapping. Inside the solver the state is an ambient array that may leave the fundamental
    domain (torus) or drift off the manifold (sphere); the field is always evaluated at
    `project(x)` and its value projected onto the tangent space there, and every point handed
    out of the solver is projected. On the torus this does not change the ODE: the field is
    periodic, so `v(project(x)) = v(x)` and the derivative of the wrap is the identity. On an
    embedded manifold it extends `v` off the manifold smoothly, which leaves the trajectory
    and the (tangential) divergence unchanged.

    **Arguments:**

    - `space`: the manifold (e.g. `ParticleSpace(FlatTorus(L, dim=2), n)`).
    - `field`: the velocity, a callable `(t, x, args) -> v` (an `AbstractVectorField`).
    - `base`: the base distribution (default `UniformBase(space)`).
    - `divergence`: an `AbstractDivergence` (default: `FieldDivergence()` when the field
      computes its own divergence in closed form (`AbstractFieldWithDivergence`, e.g.
      `KernelField`) on a flat space or, translation invariant, on `ZeroCenterOfMass`
      (`closed_form_applies`), else `ExactDivergence()`; use a stochastic estimator
      only where a noisy log q is acceptable, never for importance weights).
    - `solver`: a name (`"dopri5"`, `"tsit5"`, `"bosh3"`, `"heun"`, `"midpoint"`,
      `"ralston"`, `"euler"`, `"dopri8"`) or a diffrax explicit Runge-Kutta solver.
    - `rtol`, `atol`: tolerances of the adaptive PID step-size controller.
    - `dt0`: initial step for adaptive solves (`None`: diffrax's default start).
    - `num_steps`: if set, integrate with this many equal steps instead (no error control;
      any solver, including `"euler"`).
    - `max_steps`: the most steps an adaptive solve may take; exceeding it is an error.
    - `dtype`: the floating dtype of the computation (`"float32"`/`"float64"`, or `None`:
      that of the field's parameters, or JAX's default float for a parameter-free field). The
      field's and base's floating arrays are cast to it.
    - `matmul_precision`: the precision of the field's matrix products whenever the flow
      evaluates it (sampling, `log_prob`, the divergence, the audit): `"highest"` (default)
      computes float32 products in full float32, as log q and importance weights need;
      `None` leaves JAX's default, which on recent NVIDIA GPUs is TF32 (10-bit mantissas,
      relative errors ~1e-3 per product: faster, but log q is then off by amounts that bias
      reweighting). Float64 products are exact either way. Training is not affected: the
      flow-matching loss evaluates the field directly, at JAX's default precision.
    """

    space: AbstractManifold
    field: Callable
    base: AbstractBase
    divergence: AbstractDivergence
    solver: diffrax.AbstractSolver
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    dt0: float | None = eqx.field(static=True)
    num_steps: int | None = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    dtype_name: str = eqx.field(static=True)
    matmul_precision: str | None = eqx.field(static=True)

    def __init__(
        self,
        space: AbstractManifold,
        field: Callable,
        *,
        base: AbstractBase | None = None,
        divergence: AbstractDivergence | None = None,
        solver: str | diffrax.AbstractSolver = "dopri5",
        rtol: float = 1e-5,
        atol: float = 1e-5,
        dt0: float | None = None,
        num_steps: int | None = None,
        max_steps: int = 4096,
        dtype=None,
        matmul_precision: str | None = EXACT_NAME,
    ):
        if not isinstance(space, AbstractManifold):
            raise TypeError(f"ContinuousFlow needs an AbstractManifold `space`; got {type(space)}.")
        if not callable(field):
            raise TypeError(
                f"ContinuousFlow needs a vector field `field(t, x, args) -> v`; got {type(field)}."
            )
        base = UniformBase(space) if base is None else base
        if not isinstance(base, AbstractBase):
            raise TypeError(f"ContinuousFlow `base` must be an AbstractBase; got {type(base)}.")
        if tuple(base.space.point_shape) != tuple(space.point_shape):
            raise ValueError(
                f"ContinuousFlow: the base lives on points of shape {base.space.point_shape} "
                f"but the flow's space has shape {space.point_shape}; build both on one space."
            )
        closed_form = closed_form_applies(field, space)
        if divergence is None:
            divergence = FieldDivergence() if closed_form else ExactDivergence()
        if not isinstance(divergence, AbstractDivergence):
            raise TypeError(
                "ContinuousFlow `divergence` must be an AbstractDivergence (ExactDivergence(), "
                f"HutchinsonDivergence(...)); got {type(divergence)}."
            )
        if isinstance(divergence, FieldDivergence) and not closed_form:
            raise ValueError(
                "ContinuousFlow: FieldDivergence needs a field that computes its own divergence "
                "(an AbstractFieldWithDivergence, e.g. KernelField) on a flat space, or a "
                "translation-invariant one on ZeroCenterOfMass; got "
                f"{type(field).__name__} on {type(space).__name__}. Use ExactDivergence()."
            )
        solver = make_solver(solver)
        for name, value in (("rtol", rtol), ("atol", atol)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"ContinuousFlow({name}=...) must be positive; got {value!r}.")
        if num_steps is not None:
            if int(num_steps) != num_steps or num_steps < 1:
                raise ValueError(
                    f"ContinuousFlow(num_steps=...) must be a positive integer or None; got "
                    f"{num_steps!r}."
                )
            num_steps = int(num_steps)
        elif not is_adaptive(solver):
            raise ValueError(
                f"solver {type(solver).__name__} has no error estimate, so it cannot adapt its "
                "step size: pass num_steps=... for fixed steps, or use 'dopri5' / 'tsit5'."
            )
        if dt0 is not None and not (math.isfinite(dt0) and 0 < dt0 <= 1):
            raise ValueError(f"ContinuousFlow(dt0=...) must lie in (0, 1]; got {dt0!r}.")
        if int(max_steps) != max_steps or max_steps < 1:
            raise ValueError(f"ContinuousFlow(max_steps=...) must be >= 1; got {max_steps!r}.")

        if dtype is None:
            found = _floating_dtypes(field)
            if len(found) > 1:
                raise ValueError(
                    f"the field mixes floating dtypes {sorted(str(d) for d in found)}; pass "
                    "dtype='float32' or 'float64' to ContinuousFlow to cast it to one."
                )
            dtype = found.pop() if found else jnp.result_type(float)
        dtype = np.dtype(dtype)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(f"ContinuousFlow(dtype=...) must be a floating dtype; got {dtype}.")
        if dtype.itemsize == 8 and not jax.config.jax_enable_x64:
            raise ValueError(
                "ContinuousFlow(dtype='float64') needs 64-bit JAX: set "
                "jax.config.update('jax_enable_x64', True) at start-up (or use float32)."
            )

        self.space = space
        self.field = _cast_floating(field, dtype)
        self.base = _cast_floating(base, dtype)
        self.divergence = divergence
        self.solver = solver
        self.rtol = float(rtol)
        self.atol = float(atol)
        self.dt0 = None if dt0 is None else float(dt0)
        self.num_steps = num_steps
        self.max_steps = num_steps if num_steps is not None else int(max_steps)
        self.dtype_name = dtype.name
        if matmul_precision is not None and matmul_precision not in MATMUL_PRECISIONS:
            raise ValueError(
                f"ContinuousFlow(matmul_precision=...) must be one of {MATMUL_PRECISIONS} or "
                f"None; got {matmul_precision!r}. Use 'highest' for exact likelihoods."
            )
        self.matmul_precision = matmul_precision

    # ------------------------------------------------------------------ public
    @property
    def dtype(self) -> np.dtype:
        """The floating dtype of points, times and log-densities."""
        return np.dtype(self.dtype_name)

    @property
    def stochastic(self) -> bool:
        """Whether log q is a random estimate (a stochastic divergence strategy)."""
        return isinstance(self.divergence, AbstractStochasticDivergence)

    def sample_and_log_prob(
        self, key: PRNGKeyArray, args: PyTree
    ) -> tuple[Shaped[Array, "..."], Float[Array, ""]]:
        solution = self.sample_solution(key, args)
        return solution.x1, solution.log_q

    def log_prob(
        self, x: Shaped[ArrayLike, "..."], args: PyTree, *, key: PRNGKeyArray | None = None
    ) -> Float[Array, ""]:
        return self.reverse(x, args, key=key).log_q

    def sample_solution(
        self, key: PRNGKeyArray, args: PyTree, *, check: bool = True
    ) -> FlowSolution:
        """Draw a base point and push it forward: `sample_and_log_prob` with both endpoints and
        the solver statistics (`FlowSolution`); `check` as in `forward`."""
        base_key, probe_key = jax.random.split(key)
        x0 = self.base.sample(base_key, args)
        return self.forward(x0, args, key=probe_key, check=check)

    def forward(
        self,
        x0: Shaped[ArrayLike, "..."],
        args: PyTree,
        *,
        key: PRNGKeyArray | None = None,
        check: bool = True,
    ) -> FlowSolution:
        """Push a given base point forward, `t: 0 -> 1`.

        **Arguments:**

        - `x0`: one point of `space` (wrapped onto it first).
        - `args`: extra data for the field (and the base).
        - `key`: PRNG key for the probe of a stochastic divergence (unused when exact).
        - `check`: raise a runtime error (`eqx.error_if`) when the solver fails (the default).
          With `check=False` nothing is raised and the failure is reported in
          `stats.status` (`SOLVE_MAX_STEPS`, `SOLVE_FAILED`; the end point is then not
          usable): for callers that handle failures on the host, such as computations split
          over several devices, where a runtime error of each device would be raised
          separately.

        **Returns:**

        A `FlowSolution` with `x1`, `log_q = log p0(x0) - int div v`, and the statistics.
        """
        x0 = self._prepare(x0, "x0")
        x1, integral, stats = self._solve(x0, args, key, reverse=False, check=check)
        log_p0 = self._base_log_prob(x0, args)
        return FlowSolution(x0, x1, log_p0, integral, log_p0 - integral, stats)

    def reverse(
        self, x1: Shaped[ArrayLike, "..."], args: PyTree, *, key: PRNGKeyArray | None = None
    ) -> FlowSolution:
        """Pull a given point back to the base, `t: 1 -> 0`, and evaluate its log-density.

        **Arguments:**

        - `x1`: one point of `space` (wrapped onto it first).
        - `args`: extra data for the field (and the base).
        - `key`: PRNG key for the probe of a stochastic divergence (unused when exact).

        **Returns:**

        A `FlowSolution` with `x0`, `log_q = log p0(x0) - int div v`, and the statistics.
        """
        x1 = self._prepare(x1, "x")
        x0, integral, stats = self._solve(x1, args, key, reverse=True)
        log_p0 = self._base_log_prob(x0, args)
        return FlowSolution(x0, x1, log_p0, integral, log_p0 - integral, stats)

    def velocity(
        self, t: Float[Array, ""] | float, x: Shaped[Array, "..."], args: PyTree
    ) -> Shaped[Array, "..."]:
        """The velocity the solver integrates: the field at `project(x)`, projected onto the
        tangent space there (a smooth extension of the field to the solver's ambient state;
        on the manifold it is the field itself)."""
        t = jnp.asarray(t, self.dtype)
        z = self.space.project(x)
        return self.space.project_tangent(z, self._with_precision(self.field, t, z, args))

    def _with_precision(self, fn: Callable, *inputs):
        """`fn(*inputs)` traced with this flow's matrix-product precision."""
        if self.matmul_precision is None:
            return fn(*inputs)
        # Trace-time setting: every product traced inside `fn` (and, through its JVP rule,
        # inside the divergence's tangent passes) carries this precision.
        with jax.default_matmul_precision(self.matmul_precision):
            return fn(*inputs)

    def velocity_and_divergence(
        self,
        t: Float[Array, ""] | float,
        x: Shaped[Array, "..."],
        args: PyTree,
        probe: PyTree = None,
    ) -> tuple[Shaped[Array, "..."], Float[Array, ""]]:
        """The augmented vector field `(v, div v)` at one point, with this flow's divergence
        strategy (`probe` from `divergence.init_probe`; `None` for the exact one)."""
        t = jnp.asarray(t, self.dtype)
        if isinstance(self.divergence, FieldDivergence):
            # The field's closed form. On a flat space the tangent projector is the identity
            # and the wrap onto the torus has the identity derivative, so this is `tr J` of
            # the velocity the solver integrates; on ZeroCenterOfMass the field is translation
            # invariant and `tr(P J) = tr(J)` (`closed_form_applies`). The velocity is made
            # tangent as in `velocity` (the identity on flat spaces).
            z = self.space.project(x)
            v, div = self._with_precision(self.field.velocity_and_divergence, t, z, args)
            return self.space.project_tangent(z, v), jnp.asarray(div, self.dtype)
        v, div = self.divergence(lambda z: self.velocity(t, z, args), x, probe, self.space)
        return v, jnp.asarray(div, self.dtype)

    # ------------------------------------------------------------------ internals
    def _prepare(self, x: Shaped[ArrayLike, "..."], name: str) -> Array:
        x = jnp.asarray(x)
        if x.shape != tuple(self.space.point_shape):
            hint = (
                " (a batch? use sample / log_prob_batch, or jax.vmap)"
                if x.shape[1:] == tuple(self.space.point_shape)
                else ""
            )
            raise ValueError(
                f"ContinuousFlow: `{name}` must be one point of shape {self.space.point_shape}; "
                f"got shape {x.shape}{hint}."
            )
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(
                f"ContinuousFlow: `{name}` must be a floating-point array; got {x.dtype}."
            )
        x = x.astype(self.dtype)
        x = eqx.error_if(
            x, ~jnp.all(jnp.isfinite(x)), f"ContinuousFlow: `{name}` has NaN/inf coordinates."
        )
        return self.space.project(x)

    def _base_log_prob(self, x0: Array, args: PyTree) -> Float[Array, ""]:
        return jnp.asarray(self.base.log_prob(x0, args)).astype(self.dtype)

    def _solve(
        self,
        x_start: Array,
        args: PyTree,
        key: PRNGKeyArray | None,
        *,
        reverse: bool,
        check: bool = True,
    ) -> tuple[Array, Float[Array, ""], FlowStats]:
        """Integrate `(x, Delta)` from `x_start`; returns the wrapped end point, the divergence
        integral over [0, 1] (sign-corrected for the direction) and the statistics."""
        dtype = self.dtype
        probe = self.divergence.init_probe(key, self.space, x_start)

        def vector_field(t, y, ode_args):
            field_args, probe = ode_args
            return self.velocity_and_divergence(t, y[0], field_args, probe)

        y0 = (x_start, jnp.zeros((), dtype))
        solution = self._diffeqsolve(vector_field, y0, (args, probe), reverse=reverse)
        x_end = self.space.project(solution.ys[0][-1])
        delta = solution.ys[1][-1]
        result = solution.result
        out_of_steps = result == diffrax.RESULTS.max_steps_reached
        failed = (result != diffrax.RESULTS.successful) & ~out_of_steps
        if check:
            x_end = eqx.error_if(
                x_end, out_of_steps, MAX_STEPS_MESSAGE.format(max_steps=self.max_steps)
            )
            x_end = eqx.error_if(x_end, failed, FAILED_MESSAGE)
        status = jnp.where(out_of_steps, SOLVE_MAX_STEPS, jnp.where(failed, SOLVE_FAILED, SOLVE_OK))
        # Forward: Delta(1) = int_0^1 div. Reverse: Delta(0) = int_1^0 div = -int_0^1 div.
        integral = delta if not reverse else -delta
        return x_end, integral, self._stats(solution.stats, status.astype(jnp.int32))

    def _diffeqsolve(
        self,
        vector_field: Callable,
        y0: PyTree,
        args: PyTree,
        *,
        reverse: bool,
        adjoint: diffrax.AbstractAdjoint | None = None,
    ) -> diffrax.Solution:
        """One diffrax solve over [0, 1] (or [1, 0]) with this flow's solver, step-size control
        and dtype, saving only the final state."""
        dtype = self.dtype
        t0, t1 = (1.0, 0.0) if reverse else (0.0, 1.0)
        if self.num_steps is not None:
            times = np.linspace(t0, t1, self.num_steps + 1)
            controller = diffrax.StepTo(ts=jnp.asarray(times, dtype))
            dt0 = None
        else:
            controller = diffrax.PIDController(rtol=self.rtol, atol=self.atol)
            sign = -1.0 if reverse else 1.0
            dt0 = None if self.dt0 is None else jnp.asarray(sign * self.dt0, dtype)
        return diffrax.diffeqsolve(
            diffrax.ODETerm(vector_field),
            self.solver,
            t0=jnp.asarray(t0, dtype),
            t1=jnp.asarray(t1, dtype),
            dt0=dt0,
            y0=y0,
            args=args,
            stepsize_controller=controller,
            saveat=diffrax.SaveAt(t1=True),
            max_steps=self.max_steps,
            throw=False,
            **({} if adjoint is None else {"adjoint": adjoint}),
        )

    def _stats(self, stats: dict, status: Array) -> FlowStats:
        # diffrax's automatic first step (dt0=None) costs no evaluation here: for the wrapped
        # ODE term it starts from a fixed small step (a test counts the evaluations).
        per_step, once = evaluations(self.solver)
        num_steps = jnp.asarray(stats["num_steps"]).astype(jnp.int32)
        return FlowStats(
            num_steps=num_steps,
            num_accepted_steps=jnp.asarray(stats["num_accepted_steps"]).astype(jnp.int32),
            num_rejected_steps=jnp.asarray(stats["num_rejected_steps"]).astype(jnp.int32),
            num_fn_evals=per_step * num_steps + once,
            status=status,
        )
