"""The coupling interface: how base draws are paired with data points for flow matching."""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PyTree

from .._manifold import AbstractManifold, ParticleSpace


class AbstractCoupling(eqx.Module):
    """A coupling of one base draw `x0` with one data point `x1`.

    One pair in (configurations of shape `(n, d)` with a species vector `(n,)`); batch with
    `jax.vmap` (the species vector is usually shared: `in_axes=(0, 0, None)`).

    Contract: the returned pair `(x0', x1')` has `x0' = x0`, and `x1'` is the image of `x1`
    under a symmetry of the data distribution (a permutation of particles within species,
    optionally a box point-group element), so the coupled pairs still have the right
    marginals when both marginals are invariant under those symmetries. Paired particles have
    equal species.
    """

    @abc.abstractmethod
    def __call__(
        self,
        x0: Float[Array, " n *d"],
        x1: Float[Array, " n *d"],
        species: Int[Array, " n"] | None,
    ) -> tuple[Float[Array, " n *d"], Float[Array, " n *d"]]:
        """Pair `x0` with (a symmetric image of) `x1`.

        **Arguments:**

        - `x0`: a draw of the base distribution.
        - `x1`: a data point, same shape.
        - `species`: integer species labels `(n,)` (ignored by couplings that do not look at
          particles; may then be `None`).

        **Returns:**

        `(x0, x1')`: `x1'` is `x1` re-ordered within species (and possibly transformed by a
        symmetry) so that particle `i` of `x0` travels to particle `i` of `x1'`.
        """


class AbstractHostCoupling(AbstractCoupling):
    """A coupling whose pairing is decided by a host (NumPy/SciPy) computation.

    It is split in three stages so that callers can choose where the host stage runs:

    1. `pose(x0, x1, species)`: the problem of one pair, as JAX arrays (traceable: jit, vmap);
    2. `solve(problems, species)`: the host computation, on NumPy arrays with any number of
       leading batch axes (one call for a whole batch);
    3. `apply(x0, x1, solution)`: the coupled pair from the solution of its problem
       (traceable).

    Calling the coupling (`coupling(x0, x1, species)`) runs the three stages in one traced
    function, with `solve` as a `jax.pure_callback` (a vmapped batch makes one host call).
    `train_step` instead runs `solve` between two compiled functions: a host callback inside
    a computation split over several devices can deadlock (JAX stages the callback's inputs
    on the first CPU device, which on a CPU-only mesh is itself busy running its part), and
    a host round trip per step costs little next to the step.
    """

    @abc.abstractmethod
    def pose(
        self, x0: Float[Array, " n *d"], x1: Float[Array, " n *d"], species: Int[Array, " n"]
    ) -> PyTree[Array]:
        """The problem of the pair `(x0, x1)` (arrays without a batch axis)."""

    @abc.abstractmethod
    def solution_struct(self, x0: Float[Array, " n *d"]) -> PyTree[jax.ShapeDtypeStruct]:
        """Shapes and dtypes of the solution for one pair like `x0`."""

    @abc.abstractmethod
    def solve(self, problems: PyTree[np.ndarray], species: np.ndarray) -> PyTree[np.ndarray]:
        """Solve a batch of problems on the host.

        **Arguments:**

        - `problems`: the output of `pose` stacked along leading batch axes, as NumPy arrays.
        - `species`: the species vector `(n,)`, or one per problem (broadcastable).

        **Returns:**

        The solutions, with the same leading batch axes and the shapes of `solution_struct`.
        """

    @abc.abstractmethod
    def apply(
        self, x0: Float[Array, " n *d"], x1: Float[Array, " n *d"], solution: PyTree[Array]
    ) -> tuple[Float[Array, " n *d"], Float[Array, " n *d"]]:
        """The coupled pair `(x0, x1')` given the solution of the pair's problem."""

    @abc.abstractmethod
    def check_pair(
        self, x0: Float[Array, " n *d"], x1: Float[Array, " n *d"], species: Int[Array, " n"] | None
    ) -> Int[Array, " n"]:
        """Validate one pair (raise `ValueError` naming the problem and the fix) and return
        its species vector as int32 (zeros for `None`; see `species_vector`)."""

    def __call__(
        self,
        x0: Float[Array, " n *d"],
        x1: Float[Array, " n *d"],
        species: Int[Array, " n"] | None,
    ) -> tuple[Float[Array, " n *d"], Float[Array, " n *d"]]:
        species = self.check_pair(x0, x1, species)
        x0, x1 = jnp.asarray(x0), jnp.asarray(x1)
        problem = jax.lax.stop_gradient(self.pose(x0, x1, species))
        solution = jax.pure_callback(
            lambda p, s: self.solve(p, s),
            self.solution_struct(x0),
            problem,
            species,
            vmap_method="expand_dims",
        )
        return self.apply(x0, x1, solution)


def species_vector(owner: str, n: int, species: Int[Array, " n"] | None) -> Int[Array, " n"]:
    """`species` checked to be an integer vector of length `n` (zeros for `None`), as int32;
    `owner` names the caller in the error message."""
    if species is None:
        return jnp.zeros((n,), dtype=jnp.int32)
    species = jnp.asarray(species)
    if species.shape != (n,) or not jnp.issubdtype(species.dtype, jnp.integer):
        raise ValueError(
            f"{owner}: `species` must be an integer vector of length n={n}; got shape "
            f"{species.shape}, dtype {species.dtype}."
        )
    return species.astype(jnp.int32)


def transport_cost(
    manifold: AbstractManifold, x0: Float[Array, " n *d"], x1: Float[Array, " n *d"]
) -> Float[Array, ""]:
    """The transport cost of the pairing `i -> i`: `sum_i dist(x0_i, x1_i)^2` on `manifold`
    (a single-particle manifold, or the `ParticleSpace` it lives in)."""
    if isinstance(manifold, ParticleSpace):
        manifold = manifold.manifold
    return jnp.sum(jax.vmap(manifold.sq_dist)(x0, x1))
