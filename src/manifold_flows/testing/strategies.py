"""Hypothesis strategies for manifold points, tangent vectors and particle configurations.

Strategies draw a **seed** and build the arrays from it with `jax.random`, so shapes are
fixed per manifold (a jitted function under test compiles once) and a failing example is
reproduced from its seed. `group_elements(action)` (from the group-law kit) draws group
elements.

```python
from hypothesis import given
from manifold_flows.testing import strategies as mst

@given(mst.tangent_vectors(manifold))
def test_round_trip(xv):
    x, v = xv
    ...
```
"""

import functools
import random
from collections.abc import Callable
from typing import TypeVar

import jax
import jax.numpy as jnp
from hypothesis import strategies as st
from jaxtyping import Array, Int

from .._manifold import AbstractManifold, ParticleSpace
from ._group_laws import group_elements as group_elements
from ._registry import manifold_registry as manifold_registry
from ._sampling import random_point, random_tangent

T = TypeVar("T")

__all__ = [
    "configurations",
    "group_elements",
    "manifold_registry",
    "manifolds",
    "points",
    "seeds",
    "tangent_vectors",
]


def _keeping_python_random_state(build: Callable[[int], T]) -> Callable[[int], T]:
    """Run `build` without changing Python's global `random` state (runtime type checkers
    such as beartype draw from it, which Hypothesis forbids inside strategies)."""

    @functools.wraps(build)
    def wrapped(seed: int) -> T:
        state = random.getstate()
        try:
            return build(seed)
        finally:
            random.setstate(state)

    return wrapped


def seeds() -> st.SearchStrategy[int]:
    """Seeds for `jax.random.key`: integers in `[0, 2**32)`."""
    return st.integers(min_value=0, max_value=2**32 - 1)


def manifolds(names: list[str] | None = None) -> st.SearchStrategy[AbstractManifold]:
    """Manifolds from `manifold_registry()` (all of them, or those in `names`)."""
    registry = manifold_registry()
    if names is None:
        names = sorted(registry)
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise ValueError(
            f"manifolds(names=...): unknown registry names {unknown}; known: {sorted(registry)}."
        )
    return st.sampled_from([registry[n] for n in names])


def points(manifold: AbstractManifold, *, dtype=None) -> st.SearchStrategy[Array]:
    """Points of `manifold` (shape `point_shape`): uniform on compact manifolds, projected
    Gaussians otherwise (see `manifold_flows.testing.random_point`)."""
    build = lambda s: random_point(manifold, jax.random.key(s), dtype=dtype)
    return seeds().map(_keeping_python_random_state(build))


def tangent_vectors(
    manifold: AbstractManifold, max_norm: float | None = None, *, dtype=None
) -> st.SearchStrategy[tuple[Array, Array]]:
    """Pairs `(x, v)`: a point `x` and a tangent vector `v` at `x` of norm below `max_norm`
    (default: 0.9 times the injectivity radius, so exp/log round trips hold; 3 without a cut
    locus). Norms range over several orders of magnitude."""

    def build(seed: int) -> tuple[Array, Array]:
        k_point, k_tangent = jax.random.split(jax.random.key(seed))
        x = random_point(manifold, k_point, dtype=dtype)
        return x, random_tangent(manifold, x, k_tangent, max_norm=max_norm)

    return seeds().map(_keeping_python_random_state(build))


def configurations(
    space: ParticleSpace,
    *,
    num_species: int = 2,
    species: Int[Array, " n"] | None = None,
    dtype=None,
) -> st.SearchStrategy[tuple[Array, Array]]:
    """Pairs `(positions, species)` for a particle space.

    **Arguments:**

    - `space`: a `ParticleSpace` (positions have shape `space.point_shape`).
    - `num_species`: labels are drawn uniformly from `[0, num_species)`.
    - `species`: a fixed species vector instead (e.g. the one a group action was built with).
    - `dtype`: floating dtype of the positions.

    **Returns:**

    A strategy of `(positions, species)`, species as `int32` of shape `(num_particles,)`.
    """
    if not isinstance(space, ParticleSpace):
        raise TypeError(
            f"configurations needs a ParticleSpace; got {type(space).__name__}. Wrap the "
            "single-particle manifold: ParticleSpace(manifold, num_particles)."
        )
    if species is not None:
        species = jnp.asarray(species)
        if species.shape != (space.num_particles,) or not jnp.issubdtype(
            species.dtype, jnp.integer
        ):
            raise ValueError(
                f"configurations(species=...) must be integers of shape ({space.num_particles},)"
                f"; got dtype {species.dtype} and shape {species.shape}."
            )
    elif isinstance(num_species, bool) or not isinstance(num_species, int) or num_species < 1:
        raise ValueError(f"num_species must be an integer >= 1; got {num_species!r}.")

    def build(seed: int) -> tuple[Array, Array]:
        k_pos, k_species = jax.random.split(jax.random.key(seed))
        positions = random_point(space, k_pos, dtype=dtype)
        if species is not None:
            return positions, species
        labels = jax.random.randint(
            k_species, (space.num_particles,), 0, num_species, dtype=jnp.int32
        )
        return positions, labels

    return seeds().map(_keeping_python_random_state(build))
