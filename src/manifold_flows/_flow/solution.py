"""What one flow solve returns: both endpoints, the log-densities and the solver statistics."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, Shaped

SOLVE_OK = 0
"""`FlowStats.status` of a solve that reached the end of its time interval."""
SOLVE_MAX_STEPS = 1
"""`FlowStats.status` of a solve that ran out of its step budget (`max_steps`)."""
SOLVE_FAILED = 2
"""`FlowStats.status` of a solve that failed otherwise (step size collapsed, NaN/inf)."""


class FlowStats(eqx.Module):
    """Cost of one solve (arrays, so they batch under `jax.vmap`).

    - `num_steps`: attempted steps (accepted + rejected);
    - `num_accepted_steps`, `num_rejected_steps`;
    - `num_fn_evals`: evaluations of the augmented vector field (each one is a forward pass of
      the field plus its divergence), counted from the solver's Butcher tableau: stages per
      attempted step (one fewer for FSAL methods) plus the FSAL first stage;
    - `status`: how the solve ended, `SOLVE_OK` (0), `SOLVE_MAX_STEPS` (1: the step budget ran
      out) or `SOLVE_FAILED` (2: any other solver failure). Only solves run with
      `check=False` can return a non-zero status; checked solves raise instead.
    """

    num_steps: Int[Array, ""]
    num_accepted_steps: Int[Array, ""]
    num_rejected_steps: Int[Array, ""]
    num_fn_evals: Int[Array, ""]
    status: Int[Array, ""]

    def __init__(
        self,
        num_steps: Int[Array, ""],
        num_accepted_steps: Int[Array, ""],
        num_rejected_steps: Int[Array, ""],
        num_fn_evals: Int[Array, ""],
        status: Int[Array, ""] | None = None,
    ):
        self.num_steps = num_steps
        self.num_accepted_steps = num_accepted_steps
        self.num_rejected_steps = num_rejected_steps
        self.num_fn_evals = num_fn_evals
        self.status = jnp.zeros((), jnp.int32) if status is None else status


class FlowSolution(eqx.Module):
    """The result of pushing one point through a continuous flow (either direction).

    - `x0`: the base point (t = 0), wrapped onto the manifold;
    - `x1`: the data-side point (t = 1), wrapped;
    - `log_p0`: base log-density at `x0`;
    - `divergence_integral`: `int_0^1 div v(t, x_t) dt` along the trajectory;
    - `log_q`: `log_p0 - divergence_integral`, the flow's log-density at `x1`;
    - `stats`: the solver's `FlowStats`.
    """

    x0: Shaped[Array, "..."]
    x1: Shaped[Array, "..."]
    log_p0: Float[Array, ""]
    divergence_integral: Float[Array, ""]
    log_q: Float[Array, ""]
    stats: FlowStats

    def __init__(
        self,
        x0: Shaped[Array, "..."],
        x1: Shaped[Array, "..."],
        log_p0: Float[Array, ""],
        divergence_integral: Float[Array, ""],
        log_q: Float[Array, ""],
        stats: FlowStats,
    ):
        self.x0 = x0
        self.x1 = x1
        self.log_p0 = log_p0
        self.divergence_integral = divergence_integral
        self.log_q = log_q
        self.stats = stats
