"""Per-sample, per-species optimal-transport pairing of particles (Hungarian assignment)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int
from scipy.optimize import linear_sum_assignment

from .._group import AbstractFiniteGroupAction
from .._manifold import AbstractManifold, FlatTorus, ParticleSpace
from .auction import auction_assignment
from .base import AbstractCoupling, AbstractHostCoupling, species_vector


def _assign_host(cost: ArrayLike, species: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Host side of the assignment, for a whole batch at once.

    `cost` is `(*batch, k, n, n)` (one matrix per candidate transform of `x1`), `species` is
    `(*batch, n)` or broadcastable to it. Returns `perm (*batch, n)` with `x0[i]` paired to
    `x1_g[perm[i]]`, and the chosen candidate `g (*batch,)`, minimising the total cost.
    """
    # NaN/inf costs (from non-finite inputs) would make the solver raise inside the compiled
    # step; treat them as prohibitively expensive instead (the loss is then non-finite anyway
    # and the training step reports it).
    cost = np.asarray(cost)
    if not np.all(np.isfinite(cost)):
        cost = np.where(np.isfinite(cost), cost, 1e30)
    batch_shape = cost.shape[:-3]
    k, n = cost.shape[-3], cost.shape[-1]
    flat = cost.reshape(-1, k, n, n)
    species = np.broadcast_to(np.asarray(species), (*batch_shape, n)).reshape(-1, n)
    perms = np.empty((flat.shape[0], n), dtype=np.int32)
    chosen = np.empty(flat.shape[0], dtype=np.int32)
    # Samples sharing a species vector (usually all of them) are solved together: the blocks
    # of each species are cut out of all their cost matrices at once.
    if np.all(species == species[:1]):
        rows_of, group_of = species[:1], np.zeros(species.shape[0], dtype=np.int64)
    else:
        rows_of, group_of = np.unique(species, axis=0, return_inverse=True)
    for group, labels in enumerate(rows_of):
        members = np.flatnonzero(group_of.reshape(-1) == group)
        sub_cost = flat[members]  # (m, k, n, n)
        totals = np.zeros((members.size, k))
        assignment = []  # per species block: (idx, cols of shape (m, k, block))
        for label in np.unique(labels):
            idx = np.flatnonzero(labels == label)
            block = sub_cost[:, :, idx[:, None], idx[None, :]]  # (m, k, s, s)
            cols = np.empty(block.shape[:3], dtype=np.int64)
            for b in range(members.size):
                for g in range(k):
                    _, c = linear_sum_assignment(block[b, g])  # rows come back as 0..s-1
                    cols[b, g] = c
                    totals[b, g] += block[b, g, np.arange(idx.size), c].sum()
            assignment.append((idx, cols))
        best = np.argmin(totals, axis=1)  # the first of equally cheap candidates
        chosen[members] = best
        for idx, cols in assignment:
            perms[members[:, None], idx[None, :]] = idx[cols[np.arange(members.size), best]]
    return perms.reshape(*batch_shape, n), chosen.reshape(batch_shape)


class SpeciesOTCoupling(AbstractHostCoupling):
    """Optimal transport between the particles of `x0` and `x1`, species by species.

    For each pair of configurations and each species `a`, the particles of species `a` in `x0`
    are matched to those of species `a` in `x1` by a Hungarian assignment
    (`scipy.optimize.linear_sum_assignment`) minimising `sum_i dist(x0_i, x1_{perm(i)})^2`
    with the distance of `manifold` (minimum image on a `FlatTorus`, straight-line in
    `Euclidean`: the eFM variant). With `point_group`, every element `R` of a finite group
    acting on configurations (the box point group) is tried on `x1` as well and the cheapest
    `(R, perm)` is kept. Both are symmetries of the data distribution, so the marginals of the
    coupling are unchanged. The optimal cost is invariant when `x0` and `x1` are moved by the
    same permutation within species, torus translation or box symmetry; with `point_group`
    the search turns `x1` about the box origin, which does not commute with translations, so
    that variant is invariant under permutations and the point group only.

    Implementation (an `AbstractHostCoupling`): the cost matrices are computed in JAX
    (`pose`, jit/vmap friendly) and the assignment runs on the host (`solve`:
    `linear_sum_assignment`, C code, on blocks of size `n_a`, one call for a whole batch).
    Called directly, the coupling makes that host call through `jax.pure_callback` with
    `vmap_method="expand_dims"`, so a vmapped batch makes ONE host call; `train_step` instead
    ships only the cost matrices to the host between its two compiled halves, so the base
    draws, times and noise stay on the devices and remain a function of (seed, step).

    **Arguments:**

    - `manifold_or_space`: the single-particle manifold (or the `ParticleSpace` over it) whose
      squared distance is the cost.
    - `point_group`: `None`/`False` (permutations only), `True` (the box point group of the
      `FlatTorus`, `BoxPointGroup`), or any `AbstractFiniteGroupAction` on configurations.
    """

    manifold: AbstractManifold
    point_group: AbstractFiniteGroupAction | None

    def __init__(
        self,
        manifold_or_space: AbstractManifold,
        *,
        point_group: AbstractFiniteGroupAction | bool | None = None,
    ):
        if isinstance(manifold_or_space, ParticleSpace):
            manifold_or_space = manifold_or_space.manifold
        if not isinstance(manifold_or_space, AbstractManifold):
            raise TypeError(
                "SpeciesOTCoupling needs an AbstractManifold (the single-particle manifold, e.g. "
                f"FlatTorus or Euclidean); got {type(manifold_or_space).__name__}."
            )
        if point_group is True:
            if not isinstance(manifold_or_space, FlatTorus):
                raise ValueError(
                    "SpeciesOTCoupling(point_group=True) builds the box point group and needs a "
                    f"FlatTorus; got {type(manifold_or_space).__name__}. Pass a finite group "
                    "action instead, or point_group=None."
                )
            from .._group import BoxPointGroup

            point_group = BoxPointGroup(manifold_or_space)
        elif point_group is False:
            point_group = None
        if point_group is not None and not isinstance(point_group, AbstractFiniteGroupAction):
            raise TypeError(
                "SpeciesOTCoupling: `point_group` must be None, True or an "
                f"AbstractFiniteGroupAction (its elements are enumerated); got {point_group!r}."
            )
        self.manifold = manifold_or_space
        self.point_group = point_group

    def _candidates(self, x1: Array) -> Array:
        if self.point_group is None:
            return x1[None]
        return jax.vmap(lambda g: self.point_group.act(g, x1))(self.point_group.elements())

    def cost_matrices(
        self, x0: Float[Array, " n *d"], x1: Float[Array, " n *d"]
    ) -> tuple[Float[Array, "k n n"], Float[Array, "k n *d"]]:
        """The candidate images `x1_g` (`k` of them; `k = 1` without a point group) and the
        cost matrices `C[g, i, j] = dist(x0_i, x1_g[j])^2`."""
        candidates = self._candidates(x1)
        pair = jax.vmap(jax.vmap(self.manifold.sq_dist, in_axes=(None, 0)), in_axes=(0, None))
        return jax.vmap(lambda y: pair(x0, y))(candidates), candidates

    def check_pair(self, x0, x1, species):
        x0, x1 = jnp.asarray(x0), jnp.asarray(x1)
        if x0.shape != x1.shape or x0.ndim != len(self.manifold.point_shape) + 1:
            raise ValueError(
                "SpeciesOTCoupling pairs one configuration with one configuration of shape "
                f"(n, {', '.join(map(str, self.manifold.point_shape))}); got x0 {x0.shape} and "
                f"x1 {x1.shape}. Batch with jax.vmap(coupling, in_axes=(0, 0, None))."
            )
        return species_vector("SpeciesOTCoupling", x0.shape[0], species)

    def pose(
        self, x0: Float[Array, " n *d"], x1: Float[Array, " n *d"], species: Int[Array, " n"]
    ) -> Float[Array, "k n n"]:
        """The cost matrices of the pair (see `cost_matrices`)."""
        del species
        return self.cost_matrices(x0, x1)[0]

    def solution_struct(self, x0: Float[Array, " n *d"]):
        n = jnp.shape(x0)[0]
        return (jax.ShapeDtypeStruct((n,), jnp.int32), jax.ShapeDtypeStruct((), jnp.int32))

    def solve(self, problems, species) -> tuple[np.ndarray, np.ndarray]:
        """Hungarian assignment per species block for a batch of cost matrices
        `(*batch, k, n, n)`: returns `perm (*batch, n)` and the chosen candidate `g (*batch,)`
        (see the class docstring)."""
        return _assign_host(problems, species)

    def apply(
        self, x0: Float[Array, " n *d"], x1: Float[Array, " n *d"], solution
    ) -> tuple[Float[Array, " n *d"], Float[Array, " n *d"]]:
        perm, g = solution
        return x0, self._candidates(x1)[g][perm]


class AuctionOTCoupling(AbstractCoupling):
    """The pairing of `SpeciesOTCoupling`, solved on the device: the same cost matrices (per
    species, optionally over the box point group), assigned by `auction_assignment` inside
    the traced computation instead of by SciPy on the host.

    The assignment is within `tolerance * max C` of the optimum (in practice it is the
    optimum: see `tests/test_auction.py`); any permutation within species keeps the coupling's
    marginals, so the tolerance only affects how straight the pairs are, never correctness.
    Being an ordinary JAX function, it runs wherever the training step runs and needs no host
    round trip: the choice for GPUs, where the host Hungarian assignment would starve the
    device. On a CPU the Hungarian solver is faster (measured in `benchmarks/`), and
    `SpeciesOTCoupling` stays the default.

    **Arguments:**

    - `manifold_or_space`, `point_group`: as for `SpeciesOTCoupling`.
    - `tolerance`: relative accuracy of the assignment (see `auction_assignment`).
    """

    problem: SpeciesOTCoupling
    tolerance: float = eqx.field(static=True)

    def __init__(
        self,
        manifold_or_space: AbstractManifold,
        *,
        point_group: AbstractFiniteGroupAction | bool | None = None,
        tolerance: float = 1e-4,
    ):
        self.problem = SpeciesOTCoupling(manifold_or_space, point_group=point_group)
        if not (isinstance(tolerance, (int, float)) and 0 < tolerance < 1):
            raise ValueError(
                f"AuctionOTCoupling(tolerance=...) must lie in (0, 1); got {tolerance!r}."
            )
        self.tolerance = float(tolerance)

    @property
    def manifold(self) -> AbstractManifold:
        return self.problem.manifold

    @property
    def point_group(self) -> AbstractFiniteGroupAction | None:
        return self.problem.point_group

    def __call__(
        self,
        x0: Float[Array, " n *d"],
        x1: Float[Array, " n *d"],
        species: Int[Array, " n"] | None,
    ) -> tuple[Float[Array, " n *d"], Float[Array, " n *d"]]:
        species = self.problem.check_pair(x0, x1, species)
        x0, x1 = jnp.asarray(x0), jnp.asarray(x1)
        cost, candidates = self.problem.cost_matrices(x0, x1)
        cost = jax.lax.stop_gradient(cost)
        result = jax.vmap(lambda c: auction_assignment(c, species, tolerance=self.tolerance))(cost)
        g = jnp.argmin(result.total)  # the first of equally cheap candidates
        return x0, candidates[g][result.perm[g]]
