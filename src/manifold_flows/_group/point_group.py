"""The point group of a periodic box: signed axis permutations (the hyperoctahedral group)."""

import functools
import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._manifold import FlatTorus
from ._checks import check_configuration, check_torus
from .base import AbstractFiniteGroupAction

#: Largest box dimension whose point group is built (2^6 6! = 46080 elements).
MAX_POINT_GROUP_DIM = 6


class SignedPermutation(NamedTuple):
    """A signed axis permutation `R`: `(R x)[k] = signs[k] * x[perm[k]]` for a point `x` (d,).

    Both fields are int32 vectors of shape `(d,)`; `signs` holds +1 or -1.
    """

    perm: Int[Array, " d"]
    signs: Int[Array, " d"]


#: A signed axis permutation as passed around: a `SignedPermutation` or a plain `(perm, signs)`.
SignedPermutationLike = tuple[Int[Array, " d"], Int[Array, " d"]]


def signed_permutation_apply(
    r: SignedPermutationLike, v: Float[Array, "*batch d"]
) -> Float[Array, "*batch d"]:
    """Apply the linear map `R` to `v` along its last axis (a point, a tangent vector, or one
    row per particle)."""
    perm, signs = r
    signs = signs.astype(v.dtype).reshape((1,) * (v.ndim - 1) + (-1,))
    return jnp.take(v, perm, axis=-1) * signs


def signed_permutation_compose(
    r1: SignedPermutationLike, r2: SignedPermutationLike
) -> SignedPermutation:
    """The product `R1 R2` (apply `R2` first)."""
    (p1, s1), (p2, s2) = r1, r2
    # (R1 R2 x)[k] = s1[k] (R2 x)[p1[k]] = s1[k] s2[p1[k]] x[p2[p1[k]]].
    return SignedPermutation(p2[p1], s1 * s2[p1])


def signed_permutation_inverse(r: SignedPermutationLike) -> SignedPermutation:
    """The inverse `R^{-1} = R^T`."""
    perm, signs = r
    inv = jnp.argsort(perm).astype(perm.dtype)
    return SignedPermutation(inv, signs[inv])


@functools.lru_cache(maxsize=32)
def _point_group_table(lengths: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """All signed axis permutations mapping the box `lengths` onto itself, identity first."""
    d = len(lengths)
    perms = [
        p
        for p in itertools.permutations(range(d))
        if all(lengths[p[k]] == lengths[k] for k in range(d))
    ]
    signs = list(itertools.product((1, -1), repeat=d))
    perm_rows = np.array([p for p in perms for _ in signs], dtype=np.int32).reshape(-1, d)
    sign_rows = np.array([s for _ in perms for s in signs], dtype=np.int32).reshape(-1, d)
    return perm_rows, sign_rows


class BoxPointGroup(AbstractFiniteGroupAction):
    """The point group of a periodic box about the origin, acting on configurations `(n, d)`.

    For a cubic box this is the hyperoctahedral group B_d of signed axis permutations
    (`2^d d!` elements: 8 in 2D, 48 in 3D). An element `R = SignedPermutation(perm, signs)` maps

    `act(R, x)[i] = (R x[i]) mod L`,  with `(R y)[k] = signs[k] * y[perm[k]]`.

    `R` must map the box onto itself, so for a rectangular box only axes of equal length are
    permuted (a 2D rectangle keeps the 4 sign flips; lengths count as equal only when they are
    exactly equal floats). The differential is the linear part: `act_tangent(R, x, v) = R v`.
    `compose(R1, R2) = R1 R2`; `random_element` is uniform over `elements()`.

    **Arguments:**

    - `torus`: the periodic box (`FlatTorus`) of dimension `1 <= d <= 6`.
    """

    torus: FlatTorus

    def __init__(self, torus: FlatTorus):
        torus = check_torus(torus, "BoxPointGroup")
        if not 1 <= torus.dim <= MAX_POINT_GROUP_DIM:
            raise ValueError(
                f"BoxPointGroup supports box dimensions 1 <= d <= {MAX_POINT_GROUP_DIM}; got "
                f"d={torus.dim} (the group has 2^d d! elements). Use TorusTranslation alone or "
                "a smaller box."
            )
        self.torus = torus

    def _table(self) -> tuple[np.ndarray, np.ndarray]:
        return _point_group_table(self.torus.lengths)

    @property
    def order(self) -> int:
        return self._table()[0].shape[0]

    def as_matrix(self, g: SignedPermutationLike, dtype=None) -> Float[Array, "d d"]:
        """The orthogonal `d x d` matrix of `g` (so that `R y == matrix @ y`)."""
        d = self.torus.dim
        dtype = jnp.result_type(float) if dtype is None else dtype
        perm, signs = g
        return jnp.zeros((d, d), dtype=dtype).at[jnp.arange(d), perm].set(signs.astype(dtype))

    # ------------------------------------------------------------------ group structure
    def identity(self) -> SignedPermutation:
        d = self.torus.dim
        return SignedPermutation(jnp.arange(d, dtype=jnp.int32), jnp.ones(d, dtype=jnp.int32))

    def compose(self, g: SignedPermutationLike, h: SignedPermutationLike) -> SignedPermutation:
        return signed_permutation_compose(g, h)

    def inverse(self, g: SignedPermutationLike) -> SignedPermutation:
        return signed_permutation_inverse(g)

    def act(self, g: SignedPermutationLike, x: Float[Array, "n dim"]) -> Float[Array, "n dim"]:
        check_configuration(x, self.torus.dim, "BoxPointGroup.act")
        return jax.vmap(self.torus.project)(signed_permutation_apply(g, x))

    def act_tangent(
        self, g: SignedPermutationLike, x: Float[Array, "n dim"], v: Float[Array, "n dim"]
    ) -> Float[Array, "n dim"]:
        check_configuration(v, self.torus.dim, "BoxPointGroup.act_tangent")
        return signed_permutation_apply(g, v)

    def random_element(self, key: PRNGKeyArray) -> SignedPermutation:
        perms, signs = self._table()
        index = jax.random.randint(key, (), 0, perms.shape[0])
        return SignedPermutation(jnp.asarray(perms)[index], jnp.asarray(signs)[index])

    def elements(self) -> SignedPermutation:
        perms, signs = self._table()
        return SignedPermutation(jnp.asarray(perms), jnp.asarray(signs))
