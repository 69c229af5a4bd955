"""Assertions that a map commutes with a group action: `f(g x) == g . f(x)`."""

from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PyTree, Shaped

from .._group import AbstractGroupAction, GroupElement
from .._manifold import AbstractManifold
from ._tolerances import tolerance

__all__ = ["assert_equivariant", "assert_invariant"]

_OUTPUTS = ("tangent", "point", "invariant")


def _leaves_dtype(tree: PyTree) -> Any:
    """The floating dtype of the first floating leaf of `tree` (default float if none)."""
    for leaf in _leaves(tree):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf.dtype
    return jnp.result_type(float)


def _leaves(tree: PyTree) -> list[Array]:
    return [jnp.asarray(leaf) for leaf in jax.tree.leaves(tree)]


def assert_equivariant(
    f: Callable[..., PyTree],
    action: AbstractGroupAction,
    x: Shaped[Array, "..."],
    g: GroupElement,
    *,
    args: PyTree = None,
    output: Literal["tangent", "point", "invariant"] = "tangent",
    manifold: AbstractManifold | None = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> float:
    """Assert that `f` commutes with the action of the group element `g` at the point `x`.

    `f` maps one point to one output; what "commutes" means depends on the output:

    - `output="tangent"` (a vector field): `f(g x) == action.act_tangent(g, x, f(x))`;
    - `output="point"` (a map between points, e.g. a flow or a coupling):
      `f(g x) == action.act(g, f(x))`;
    - `output="invariant"` (a scalar or any output the group leaves alone, e.g. an energy or a
      log-density): `f(g x) == f(x)`; `assert_invariant` is a shorthand.

    A vector field with the diffrax signature `field(t, x, args)` is wrapped into a callable
    of one point, e.g. `lambda x: field(t, x, species)`; pass `args=` instead to call
    `f(x, args)` with the same `args` on both sides (species vectors are left unchanged by
    permutations within species, so they need no transformation).

    Only the `AbstractGroupAction` interface is used (`act`, `act_tangent`), so user-defined
    actions are checked the same way as the built-in ones. Draw `g` with
    `action.random_element(key)`, or from the Hypothesis strategy
    `manifold_flows.testing.group_elements(action)`.

    **Arguments:**

    - `f`: the map under test, `f(x)` or `f(x, args)`.
    - `action`: the group action.
    - `x`: one point (e.g. a configuration of shape `(n, d)`).
    - `g`: one group element.
    - `args`: extra data passed unchanged as the second argument of `f` (optional).
    - `output`: `"tangent"`, `"point"` or `"invariant"` (see above).
    - `manifold`: for `output="point"`, the manifold of the outputs: points are then compared
      through `manifold.log`, so that two representatives of one torus point agree.
    - `rtol`, `atol`: tolerances (default `manifold_flows.testing.tolerance(dtype)` of the
      output). The assertion passes when `|lhs - rhs| <= atol + rtol * |rhs|` elementwise.

    **Returns:**

    The largest absolute deviation `max |lhs - rhs|` (a float), when the assertion passes.

    **Raises:**

    `AssertionError` naming the output kind, the largest deviation, the tolerance and where
    it occurred; `ValueError` for an unknown `output` or mismatched output structures.
    """
    if output not in _OUTPUTS:
        raise ValueError(
            f"assert_equivariant: output must be one of {_OUTPUTS}; got output={output!r}. Use "
            "'tangent' for vector fields, 'point' for maps between points, 'invariant' for "
            "scalars such as energies."
        )
    if not isinstance(action, AbstractGroupAction):
        raise TypeError(
            f"assert_equivariant needs an AbstractGroupAction; got {type(action).__name__}."
        )
    call = (lambda z: f(z)) if args is None else (lambda z: f(z, args))
    x = jnp.asarray(x)
    gx = action.act(g, x)
    fx = call(x)
    lhs = call(gx)
    if output == "tangent":
        rhs = action.act_tangent(g, x, fx)
        relation = "f(g x) == act_tangent(g, x, f(x))"
    elif output == "point":
        rhs = action.act(g, fx)
        relation = "f(g x) == act(g, f(x))"
    else:
        rhs = fx
        relation = "f(g x) == f(x)"
    return _assert_close(lhs, rhs, relation, output, manifold, rtol, atol)


def assert_invariant(
    f: Callable[..., PyTree],
    action: AbstractGroupAction,
    x: Shaped[Array, "..."],
    g: GroupElement,
    *,
    args: PyTree = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> float:
    """Assert that `f(g x) == f(x)` (an invariant: energy, log-density, loss, ...).

    Shorthand for `assert_equivariant(f, action, x, g, output="invariant", ...)`; see there
    for the arguments. Returns the largest absolute deviation.
    """
    return assert_equivariant(f, action, x, g, args=args, output="invariant", rtol=rtol, atol=atol)


def _assert_close(
    lhs: PyTree,
    rhs: PyTree,
    relation: str,
    output: str,
    manifold: AbstractManifold | None,
    rtol: float | None,
    atol: float | None,
) -> float:
    lhs_leaves, lhs_tree = jax.tree.flatten(lhs)
    rhs_leaves, rhs_tree = jax.tree.flatten(rhs)
    if lhs_tree != rhs_tree:
        raise ValueError(
            f"assert_equivariant: the two sides of {relation} have different structures "
            f"({lhs_tree} vs {rhs_tree}); `f` must return the same kind of output for x and g x."
        )
    default_rtol, default_atol = tolerance(_leaves_dtype(rhs))
    rtol = default_rtol if rtol is None else float(rtol)
    atol = default_atol if atol is None else float(atol)
    worst = 0.0
    worst_excess = -np.inf
    where = ""
    for index, (a, b) in enumerate(zip(lhs_leaves, rhs_leaves, strict=True)):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            raise ValueError(
                f"assert_equivariant: output leaf {index} has shape {a.shape} at g x but "
                f"{b.shape} at x."
            )
        if output == "point" and manifold is not None:
            diff = np.abs(np.asarray(_log_diff(manifold, jnp.asarray(b), jnp.asarray(a))))
        else:
            with np.errstate(invalid="ignore"):
                diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        allowed = atol + rtol * np.abs(b.astype(np.float64))
        # Non-finite deviations are failures (unless both sides are the same infinity).
        same = a == b
        diff = np.where(same, 0.0, np.where(np.isfinite(diff), diff, np.inf))
        if diff.size == 0:
            continue
        excess = diff - allowed
        k = int(np.argmax(excess))
        if excess.flat[k] > worst_excess:
            worst_excess = float(excess.flat[k])
            position = np.unravel_index(k, diff.shape) if diff.ndim else ()
            where = f"leaf {index}, index {tuple(int(i) for i in position)}"
            worst_allowed = float(allowed.flat[k])
            worst_at = float(diff.flat[k])
        worst = max(worst, float(np.max(diff)))
    if worst_excess > 0:
        raise AssertionError(
            f"not {'invariant' if output == 'invariant' else 'equivariant'} "
            f"(output={output!r}): {relation} fails; max deviation {worst:.3g}; at "
            f"{where} the deviation {worst_at:.3g} exceeds atol + rtol*|rhs| = "
            f"{worst_allowed:.3g} (rtol={rtol:g}, atol={atol:g})."
        )
    return worst


def _log_diff(manifold: AbstractManifold, b: Array, a: Array) -> Array:
    """`log_b(a)` for one point or, when `a` carries extra leading axes, for each point."""
    extra = a.ndim - len(manifold.point_shape)
    if extra < 0 or a.shape[extra:] != manifold.point_shape:
        raise ValueError(
            f"assert_equivariant: outputs of shape {a.shape} are not points of {manifold} "
            f"(point_shape {manifold.point_shape}); drop `manifold=` or pass the right one."
        )
    log = manifold.log
    for _ in range(extra):
        log = jax.vmap(log)
    return log(b, a)
