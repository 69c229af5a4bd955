"""Group-law checkers and Hypothesis strategies for group actions.

Users check their own `AbstractGroupAction` implementations with the same laws as ours:

```python
from manifold_flows.testing import assert_group_laws

assert_group_laws(my_action, x, jax.random.key(0), manifold=my_space)
```
"""

import math
import random
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray, PyTree, Shaped

from .._group import (
    AbstractFiniteGroupAction,
    AbstractGroupAction,
    BoxPointGroup,
    EuclideanTranslation,
    GroupElement,
    OrthogonalGroup,
    PermutationWithinSpecies,
    ProductAction,
    TorusIsometryGroup,
    TorusTranslation,
    full_symmetry_group,
)
from .._manifold import AbstractManifold, Euclidean, FlatTorus, ParticleSpace
from ._law_result import LawResult, law_result as _result
from ._tolerances import tolerance

__all__ = [
    "GroupActionCase",
    "LawResult",
    "assert_group_laws",
    "check_group_laws",
    "group_action_registry",
    "group_elements",
]

#: Finite groups up to this order have `elements()` checked (distinct, closed, complete).
_MAX_CHECKED_ORDER = 100_000
#: Finite groups up to this order have closure checked on every pair of elements.
_ALL_PAIRS_ORDER = 64


def _max_abs(a: Array) -> Array:
    return jnp.max(jnp.abs(a)) if a.size else jnp.zeros((), dtype=a.dtype)


def _point_error(manifold: AbstractManifold | None, a: Array, b: Array) -> Array:
    """Deviation of the point `a` from `b`: the size of `log(b, a)` on a manifold (so that two
    representatives of one torus point agree), the plain difference otherwise."""
    if manifold is None:
        return _max_abs(a - b)
    return _max_abs(manifold.log(b, a))


class _Draws(NamedTuple):
    g: GroupElement
    h: GroupElement
    k: GroupElement
    v: Array
    y: Array | None


def _draw(
    action: AbstractGroupAction,
    manifold: AbstractManifold | None,
    x: Array,
    y: Array | None,
    key: PRNGKeyArray,
    num_elements: int,
) -> _Draws:
    """The random elements and vectors the laws are checked on (drawn outside `jit`, so the
    compiled law graph stays small and free of random-number code)."""
    kg, kh, kk, kv, ky = jax.random.split(key, 5)
    draw = jax.vmap(action.random_element)
    gs, hs, ks = (draw(jax.random.split(k_, num_elements)) for k_ in (kg, kh, kk))
    v = jax.random.normal(kv, x.shape, dtype=x.dtype)
    if manifold is not None:
        v = manifold.project_tangent(x, v)
        if y is None:
            # A nearby second point, well inside the injectivity radius of every particle.
            radius = manifold.injectivity_radius
            step = 1.0 if math.isinf(radius) else 0.25 * radius / math.sqrt(x.size)
            u = manifold.project_tangent(x, jax.random.normal(ky, x.shape, dtype=x.dtype))
            y = manifold.exp(x, step * u)
    return _Draws(gs, hs, ks, v, y)


@eqx.filter_jit
def _law_errors(
    action: AbstractGroupAction,
    manifold: AbstractManifold | None,
    x: Array,
    draws: _Draws,
    pairs: tuple[GroupElement, GroupElement] | None,
) -> tuple[dict[str, Array], dict[str, Array], GroupElement | None]:
    """Every law as a max-deviation scalar, the scales its tolerance is relative to, and the
    products `compose(a, b)` of `pairs` (for the closure check of finite groups; composed
    here so that one compiled graph does all the work)."""
    gs, hs, ks, v, y = draws
    act = lambda g, z: action.act(g, z)
    per_element = jax.vmap
    point_err = lambda a, b: _point_error(manifold, a, b)
    errors: dict[str, Array] = {}
    scales: dict[str, Array] = {"point": _max_abs(x), "tangent": _max_abs(v)}

    errors["identity"] = point_err(act(action.identity(), x), x)
    errors["inverse_left"] = jnp.max(
        per_element(lambda g: point_err(act(action.compose(action.inverse(g), g), x), x))(gs)
    )
    errors["inverse_right"] = jnp.max(
        per_element(lambda g: point_err(act(action.compose(g, action.inverse(g)), x), x))(gs)
    )
    errors["compatibility"] = jnp.max(
        per_element(lambda g, h: point_err(act(action.compose(g, h), x), act(g, act(h, x))))(gs, hs)
    )
    errors["associativity"] = jnp.max(
        per_element(
            lambda g, h, k: point_err(
                act(action.compose(action.compose(g, h), k), x),
                act(action.compose(g, action.compose(h, k)), x),
            )
        )(gs, hs, ks)
    )

    def jvp_error(g):
        _, pushed = jax.jvp(lambda z: act(g, z), (x,), (v,))
        return _max_abs(action.act_tangent(g, x, v) - pushed)

    errors["tangent_is_jvp"] = jnp.max(per_element(jvp_error)(gs))

    if isinstance(action, ProductAction):
        # Each pair of factors must commute for the product to be a group action.
        count = len(action.actions)
        factor_pairs = [(i, j) for i in range(count) for j in range(i + 1, count)]

        def commute_error(g):
            worst = jnp.zeros((), dtype=x.dtype)
            for i, j in factor_pairs:
                ai, aj = action.actions[i], action.actions[j]
                ij = ai.act(g[i], aj.act(g[j], x))
                ji = aj.act(g[j], ai.act(g[i], x))
                worst = jnp.maximum(worst, point_err(ij, ji))
            return worst

        errors["factors_commute"] = jnp.max(per_element(commute_error)(gs))

    if manifold is not None:
        log_xy = manifold.log(x, y)
        scales["log"] = _max_abs(log_xy)
        errors["stays_on_manifold"] = jnp.max(
            per_element(lambda g: _max_abs(manifold.project(act(g, x)) - act(g, x)))(gs)
        )
        errors["isometry_log"] = jnp.max(
            per_element(
                lambda g: _max_abs(
                    manifold.log(act(g, x), act(g, y)) - action.act_tangent(g, x, log_xy)
                )
            )(gs)
        )
        errors["isometry_dist"] = jnp.max(
            per_element(
                lambda g: jnp.abs(manifold.dist(act(g, x), act(g, y)) - manifold.dist(x, y))
            )(gs)
        )
    products = None if pairs is None else jax.vmap(action.compose)(*pairs)
    return errors, scales, products


def _flat_rows(tree: PyTree, count: int) -> np.ndarray:
    """Stacked elements (leading axis `count`) as rows of one float64 matrix."""
    leaves = [np.asarray(a, dtype=np.float64).reshape(count, -1) for a in jax.tree.leaves(tree)]
    return np.concatenate(leaves, axis=1) if leaves else np.zeros((count, 0))


def _distance_to_set(rows: np.ndarray, table: np.ndarray) -> np.ndarray:
    """For every row, the max-norm distance to the nearest row of `table`."""
    out = np.empty(rows.shape[0])
    for start in range(0, rows.shape[0], 256):
        block = rows[start : start + 256]
        out[start : start + 256] = np.abs(block[:, None, :] - table[None, :, :]).max(-1).min(-1)
    return out


def _closure_pairs(
    action: AbstractGroupAction, draws: _Draws
) -> tuple[tuple[GroupElement, GroupElement] | None, PyTree | None]:
    """For a finite group small enough to enumerate: its elements and the pairs whose products
    the closure law checks (every pair for small groups, the drawn pairs otherwise)."""
    if not isinstance(action, AbstractFiniteGroupAction) or action.order > _MAX_CHECKED_ORDER:
        return None, None
    elements = jax.tree.map(np.asarray, action.elements())
    if action.order <= _ALL_PAIRS_ORDER:
        i, j = np.meshgrid(np.arange(action.order), np.arange(action.order), indexing="ij")
        take = lambda idx: jax.tree.map(lambda a: jnp.asarray(a[idx.reshape(-1)]), elements)
        return (take(i), take(j)), elements
    return (draws.g, draws.h), elements


def _finite_group_results(
    action: AbstractFiniteGroupAction,
    elements: PyTree,
    products: GroupElement,
    draws: _Draws,
    atol: float,
) -> dict[str, LawResult]:
    order = action.order
    count = jax.tree.leaves(elements)[0].shape[0]
    table = _flat_rows(elements, count)
    results = {"elements_count": _result("elements_count", abs(count - order), 0.0)}
    # Rows closer than atol count as the same element.
    distinct = np.unique(np.round(table / max(atol, 1e-300)), axis=0).shape[0]
    results["elements_distinct"] = _result("elements_distinct", count - distinct, 0.0)

    num_products = jax.tree.leaves(products)[0].shape[0]
    closed = _distance_to_set(_flat_rows(products, num_products), table)
    results["elements_closed"] = _result("elements_closed", closed.max(initial=0.0), atol)

    drawn = np.concatenate([_flat_rows(d, jax.tree.leaves(d)[0].shape[0]) for d in draws[:3]])
    found = _distance_to_set(drawn, table)
    results["random_in_elements"] = _result("random_in_elements", found.max(initial=0.0), atol)
    return results


def check_group_laws(
    action: AbstractGroupAction,
    x: Shaped[Array, "..."],
    key: PRNGKeyArray,
    *,
    num_elements: int = 8,
    manifold: AbstractManifold | None = None,
    y: Shaped[Array, "..."] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> dict[str, LawResult]:
    """Check the group-action laws of `action` at the point `x` on random elements.

    Laws (each an entry of the returned dict, for `num_elements` random `g, h, k`):

    - `identity`: `act(identity(), x) == x`;
    - `inverse_left` / `inverse_right`: `act(compose(inverse(g), g), x) == x` and
      `act(compose(g, inverse(g)), x) == x`;
    - `compatibility`: `act(compose(g, h), x) == act(g, act(h, x))`;
    - `associativity`: `compose(compose(g, h), k)` and `compose(g, compose(h, k))` act alike;
    - `tangent_is_jvp`: `act_tangent(g, x, v)` equals the JVP of `z -> act(g, z)` at `x`;
    - `factors_commute` (a `ProductAction` only): every pair of factors commutes;
    - with `manifold`: `stays_on_manifold` (`project(g x) == g x`), `isometry_log`
      (`log(g x, g y) == act_tangent(g, x, log(x, y))`) and `isometry_dist`
      (`dist(g x, g y) == dist(x, y)`);
    - for an `AbstractFiniteGroupAction` of order <= 1e5: `elements_count` (`elements()` has
      `order` rows), `elements_distinct`, `elements_closed` (products of elements are
      elements; every pair when the order is <= 64, random pairs otherwise) and
      `random_in_elements`.

    Points are compared through `manifold.log` when a manifold is given (so two
    representatives of one torus point agree) and coordinate-wise otherwise.

    **Arguments:**

    - `action`: the group action to check.
    - `x`: one point the action acts on (e.g. a configuration of shape `(n, d)`).
    - `key`: PRNG key for the random elements and tangent vectors.
    - `num_elements`: how many random elements to draw for each law.
    - `manifold`: the space `x` lives on (e.g. `ParticleSpace(FlatTorus(...), n)`), to check
      that the action is by isometries.
    - `y`: the second point of the isometry laws; by default a point near `x`.
    - `rtol`, `atol`: tolerances; default `manifold_flows.testing.tolerance(x.dtype)`. A law
      passes when its error is at most `atol + rtol * scale` (scale: the largest coordinate
      of the compared quantity, at least 1).

    **Returns:**

    A dict from law name to `LawResult(name, passed, error, tolerance)`.
    """
    if not isinstance(action, AbstractGroupAction):
        raise TypeError(
            f"check_group_laws needs an AbstractGroupAction; got {type(action).__name__}."
        )
    if int(num_elements) != num_elements or num_elements < 1:
        raise ValueError(f"num_elements must be a positive integer; got {num_elements!r}.")
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"check_group_laws needs a floating-point `x`; got dtype {x.dtype}.")
    if y is not None:
        y = jnp.asarray(y, dtype=x.dtype)
        if manifold is None:
            raise ValueError("check_group_laws: `y` is only used with `manifold=`; pass both.")
    default_rtol, default_atol = tolerance(x.dtype)
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol

    draws = _draw(action, manifold, x, y, key, int(num_elements))
    pairs, elements = _closure_pairs(action, draws)
    errors, scales, products = _law_errors(action, manifold, x, draws, pairs)
    scale_of = {"tangent_is_jvp": "tangent", "isometry_log": "log", "isometry_dist": "log"}
    results = {}
    for name, error in errors.items():
        scale = max(1.0, float(scales[scale_of.get(name, "point")]))
        results[name] = _result(name, error, atol + rtol * scale)
    if elements is not None:
        results.update(_finite_group_results(action, elements, products, draws, atol))
    return results


def assert_group_laws(
    action: AbstractGroupAction, x: Shaped[Array, "..."], key: PRNGKeyArray, **kwargs
) -> dict[str, LawResult]:
    """Run `check_group_laws(action, x, key, **kwargs)` and raise `AssertionError` naming every
    failed law with its error and tolerance. Returns the results when all laws pass."""
    results = check_group_laws(action, x, key, **kwargs)
    failed = [r for r in results.values() if not r.passed]
    if failed:
        lines = "; ".join(
            f"{r.name}: error {r.error:.3g} > tolerance {r.tolerance:.3g}" for r in failed
        )
        raise AssertionError(f"{type(action).__name__} breaks group laws: {lines}")
    return results


def group_elements(action: AbstractGroupAction):
    """Hypothesis strategy for elements of `action`'s group.

    Finite groups of order <= 1e5 draw an index into `elements()` (so small groups are
    covered exhaustively, identity included); other groups draw a seed and call
    `random_element(jax.random.key(seed))`. Elements are pytrees of JAX arrays. Needs
    `hypothesis` (a test dependency).
    """
    from hypothesis import strategies as st

    if isinstance(action, AbstractFiniteGroupAction) and action.order <= _MAX_CHECKED_ORDER:
        elements = action.elements()
        return st.integers(0, action.order - 1).map(
            lambda i: jax.tree.map(lambda a: a[i], elements)
        )

    def from_seed(seed: int) -> GroupElement:
        # Runtime type checkers (beartype, as run by our test suite) may sample container items
        # with Python's global `random`, which Hypothesis reports as non-determinism inside a
        # strategy; the drawn element does not depend on it, so its state is restored.
        state = random.getstate()
        try:
            return action.random_element(jax.random.key(seed))
        finally:
            random.setstate(state)

    return st.integers(0, 2**32 - 1).map(from_seed)


class GroupActionCase(NamedTuple):
    """One entry of `group_action_registry()`.

    - `action`: the group action.
    - `manifold`: the space its points live on (for the isometry laws), or `None`.
    - `make_point`: `make_point(key, dtype)` returns one point the action acts on.
    """

    action: AbstractGroupAction
    manifold: AbstractManifold | None
    make_point: Callable[[PRNGKeyArray, object], Array]


def _torus_case(action: AbstractGroupAction, torus: FlatTorus, n: int) -> GroupActionCase:
    space = ParticleSpace(torus, n)
    return GroupActionCase(action, space, lambda key, dtype=None: space.random_uniform(key, dtype))


def _euclidean_case(action: AbstractGroupAction, dim: int, n: int) -> GroupActionCase:
    space = ParticleSpace(Euclidean(dim), n)

    def make_point(key, dtype=None):
        dtype = jnp.result_type(float) if dtype is None else dtype
        return jax.random.normal(key, (n, dim), dtype=dtype)

    return GroupActionCase(action, space, make_point)


def group_action_registry() -> dict[str, GroupActionCase]:
    """Every built-in group action on a small example, keyed by name.

    Contract tests run the same laws over all of them (a new action is added here); covers
    sorted and unsorted species vectors, 1D/2D/3D cubic boxes and rectangular boxes.
    """
    sorted_species = jnp.asarray([0, 0, 0, 1, 1], dtype=jnp.int32)
    unsorted_species = jnp.asarray([1, 0, 2, 0, 1, 2], dtype=jnp.int32)
    square = FlatTorus(4.472136, dim=2)
    line = FlatTorus(3.0, dim=1)
    cube = FlatTorus(2.5, dim=3)
    rectangle = FlatTorus((4.0, 6.5))
    slab = FlatTorus((2.0, 2.0, 3.5))
    return {
        "permutation_sorted": _torus_case(PermutationWithinSpecies(sorted_species), square, 5),
        "permutation_unsorted": _torus_case(PermutationWithinSpecies(unsorted_species), cube, 6),
        "translation_1d": _torus_case(TorusTranslation(line), line, 4),
        "translation_2d": _torus_case(TorusTranslation(square), square, 5),
        "translation_3d_slab": _torus_case(TorusTranslation(slab), slab, 4),
        "point_group_1d": _torus_case(BoxPointGroup(line), line, 4),
        "point_group_2d": _torus_case(BoxPointGroup(square), square, 5),
        "point_group_3d": _torus_case(BoxPointGroup(cube), cube, 4),
        "point_group_rectangle": _torus_case(BoxPointGroup(rectangle), rectangle, 4),
        "point_group_3d_slab": _torus_case(BoxPointGroup(slab), slab, 4),
        "isometry_2d": _torus_case(TorusIsometryGroup(square), square, 5),
        "isometry_3d": _torus_case(TorusIsometryGroup(cube), cube, 4),
        "isometry_rectangle": _torus_case(TorusIsometryGroup(rectangle), rectangle, 4),
        "full_symmetry_2d": _torus_case(full_symmetry_group(square, sorted_species), square, 5),
        "full_symmetry_3d": _torus_case(full_symmetry_group(cube, unsorted_species), cube, 6),
        "euclidean_translation_2d": _euclidean_case(EuclideanTranslation(2), 2, 5),
        "orthogonal_2d": _euclidean_case(OrthogonalGroup(2), 2, 5),
        "orthogonal_3d": _euclidean_case(OrthogonalGroup(3), 3, 4),
        "euclidean_permutation_rotation": _euclidean_case(
            ProductAction(PermutationWithinSpecies(sorted_species), OrthogonalGroup(2)), 2, 5
        ),
    }
