"""The manifold interface: one point in, one point out; batching is `jax.vmap` at the call site."""

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, Shaped


class AbstractManifold(eqx.Module):
    """A Riemannian manifold embedded in an ambient array space.

    Points and tangent vectors are arrays of shape `point_shape`. Every method takes a
    **single** point; batch with `jax.vmap`.

    Contract (checked for every implementation by `manifold_flows.testing`):

    - `exp(x, v)` lies on the manifold (`project(exp(x, v)) == exp(x, v)`);
    - `exp(x, log(x, y)) == y` whenever `dist(x, y) < injectivity_radius`;
    - `log(x, exp(x, v)) == v` whenever `norm(x, v) < injectivity_radius`;
    - `dist(x, y) == dist(y, x) >= 0`, with the triangle inequality;
    - `uniform_log_prob(x) == -log_volume()` for every `x` on the manifold, and
      `random_uniform` samples that density.
    """

    @property
    @abc.abstractmethod
    def point_shape(self) -> tuple[int, ...]:
        """Shape of one point (and of one tangent vector) in the ambient array space."""

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Intrinsic dimension (the number of terms in a divergence)."""

    @property
    @abc.abstractmethod
    def injectivity_radius(self) -> float:
        """Largest radius r such that `exp_x` is injective on tangent balls of radius r at every x
        (`inf` when there is no cut locus)."""

    @abc.abstractmethod
    def exp(self, x: Shaped[Array, "..."], v: Shaped[Array, "..."]) -> Shaped[Array, "..."]:
        """Exponential map: follow the geodesic from `x` with initial velocity `v` for unit time.

        **Arguments:**

        - `x`: a point of the manifold, shape `point_shape`.
        - `v`: a tangent vector at `x`, shape `point_shape`.

        **Returns:**

        A point of the manifold (in its canonical representation, e.g. wrapped into the box).
        """

    @abc.abstractmethod
    def log(self, x: Shaped[Array, "..."], y: Shaped[Array, "..."]) -> Shaped[Array, "..."]:
        """Logarithmic map: the shortest tangent vector `v` at `x` with `exp(x, v) == y`.

        **Arguments:**

        - `x`, `y`: points of the manifold, shape `point_shape`.

        **Returns:**

        A tangent vector at `x`, shape `point_shape`. On the cut locus of `x` the choice
        among equally short vectors is implementation-defined.
        """

    @abc.abstractmethod
    def inner(
        self, x: Shaped[Array, "..."], u: Shaped[Array, "..."], v: Shaped[Array, "..."]
    ) -> Float[Array, ""]:
        """Riemannian inner product of the tangent vectors `u`, `v` at `x`."""

    @abc.abstractmethod
    def project(self, x: Shaped[Array, "..."]) -> Shaped[Array, "..."]:
        """Map an ambient array onto the manifold (wrap into the box, normalise onto the
        sphere, ...). Idempotent, and the identity on canonical points of the manifold."""

    @abc.abstractmethod
    def project_tangent(
        self, x: Shaped[Array, "..."], v: Shaped[Array, "..."]
    ) -> Shaped[Array, "..."]:
        """Orthogonal projection of an ambient vector onto the tangent space at `x`."""

    @abc.abstractmethod
    def random_uniform(self, key: PRNGKeyArray, dtype=None) -> Shaped[Array, "..."]:
        """Draw one point from the normalised uniform (Riemannian volume) distribution.

        Raises `ValueError` for manifolds of infinite volume."""

    @abc.abstractmethod
    def log_volume(self) -> Float[Array, ""]:
        """Logarithm of the Riemannian volume (`inf` for non-compact manifolds)."""

    @abc.abstractmethod
    def check(self, x: Shaped[Array, "..."]) -> Shaped[Array, "..."]:
        """Validate one point: a structural mistake (rank, trailing shape) raises `ValueError`
        at trace time; a value problem (NaN, off the manifold) fails through `eqx.error_if`,
        which also works under `jit`. Returns `x`; use the returned value so the check runs."""

    # ------------------------------------------------------------------ concrete helpers
    # Derived from the abstract members; never overridden (STYLE.md rule 1).

    def norm(self, x: Shaped[Array, "..."], v: Shaped[Array, "..."]) -> Float[Array, ""]:
        """Riemannian norm of the tangent vector `v` at `x`."""
        return jnp.sqrt(self.inner(x, v, v))

    def dist(self, x: Shaped[Array, "..."], y: Shaped[Array, "..."]) -> Float[Array, ""]:
        """Geodesic distance `norm(x, log(x, y))`."""
        return self.norm(x, self.log(x, y))

    def sq_dist(self, x: Shaped[Array, "..."], y: Shaped[Array, "..."]) -> Float[Array, ""]:
        """Squared geodesic distance (smooth where `dist` is not, at `x == y`)."""
        v = self.log(x, y)
        return self.inner(x, v, v)

    def geodesic(
        self, x: Shaped[Array, "..."], y: Shaped[Array, "..."], t: Float[Array, ""] | float
    ) -> Shaped[Array, "..."]:
        """The point at time `t` on the minimising geodesic from `x` (t=0) to `y` (t=1)."""
        return self.exp(x, t * self.log(x, y))

    def uniform_log_prob(self, x: Shaped[Array, "..."]) -> Float[Array, ""]:
        """Log-density of the normalised uniform distribution at `x` (`-log_volume()`)."""
        return -self.log_volume() * jnp.ones((), dtype=jnp.result_type(x.dtype, float))
