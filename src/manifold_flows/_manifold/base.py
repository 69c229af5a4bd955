"""The manifold interface: one point in, one point out; batching is `jax.vmap` at the call site."""

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, Shaped


class AbstractManifold(eqx.Module):
    """A Riemannian manifold embedded in an ambient array space.

    Points and tangent vectors are arrays of shape `point_shape`. Every method takes a
    **single** point; batch with `jax.vmap`.

    Contract (checked for every implementation by `manifold_flows.testing.check_manifold_laws`):

    - `exp(x, v)` lies on the manifold (`project(exp(x, v)) == exp(x, v)`), and
      `exp(x, 0) == x`;
    - `exp(x, log(x, y)) == y` whenever `dist(x, y) < injectivity_radius`;
    - `log(x, exp(x, v)) == v` and `dist(x, exp(x, v)) == norm(x, v)` whenever
      `norm(x, v) < injectivity_radius`;
    - `log(x, x) == 0`, and `log(x, y)` is tangent at `x`;
    - `dist(x, y) == dist(y, x) >= 0`, with the triangle inequality;
    - `project` and `project_tangent` are idempotent;
    - `uniform_log_prob(x) == -log_volume()` for every `x` on the manifold, and
      `random_uniform` samples that density (for compact manifolds; it raises `ValueError`
      for manifolds of infinite volume).
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

        A tangent vector at `x`, shape `point_shape`, of norm `dist(x, y)`. On the cut locus
        of `x` the choice among equally short vectors is implementation-defined.
        """

    @abc.abstractmethod
    def inner(
        self, x: Shaped[Array, "..."], u: Shaped[Array, "..."], v: Shaped[Array, "..."]
    ) -> Float[Array, ""]:
        """Riemannian inner product of the tangent vectors `u`, `v` at `x`.

        **Arguments:**

        - `x`: a point of the manifold.
        - `u`, `v`: tangent vectors at `x`.

        **Returns:**

        The scalar `<u, v>_x`: symmetric, bilinear, positive definite on the tangent space.
        """

    @abc.abstractmethod
    def project(self, x: Shaped[Array, "..."]) -> Shaped[Array, "..."]:
        """Map an ambient array onto the manifold (wrap into the box, normalise onto the
        sphere, ...).

        **Arguments:**

        - `x`: an array of shape `point_shape`.

        **Returns:**

        A point of the manifold in canonical form. `project` is idempotent, and the identity
        on canonical points.
        """

    @abc.abstractmethod
    def project_tangent(
        self, x: Shaped[Array, "..."], v: Shaped[Array, "..."]
    ) -> Shaped[Array, "..."]:
        """Orthogonal projection of an ambient vector onto the tangent space at `x`.

        **Arguments:**

        - `x`: a point of the manifold.
        - `v`: an ambient vector of shape `point_shape`.

        **Returns:**

        The tangent vector at `x` closest to `v` (idempotent; the identity on tangent vectors).
        """

    @abc.abstractmethod
    def random_uniform(self, key: PRNGKeyArray, dtype=None) -> Shaped[Array, "..."]:
        """Draw one point from the normalised uniform (Riemannian volume) distribution.

        **Arguments:**

        - `key`: a JAX PRNG key.
        - `dtype`: floating dtype of the result (default: JAX's default float dtype).

        **Returns:**

        One point of the manifold with density `exp(uniform_log_prob(x))`. Raises
        `ValueError` for manifolds of infinite volume.
        """

    @abc.abstractmethod
    def log_volume(self) -> Float[Array, ""]:
        """Logarithm of the Riemannian volume (`inf` for non-compact manifolds)."""

    @abc.abstractmethod
    def check(self, x: Shaped[Array, "..."]) -> Shaped[Array, "..."]:
        """Validate one point.

        A structural mistake (rank, trailing shape, dtype) raises `ValueError`/`TypeError` at
        trace time; a value problem (NaN, off the manifold) fails through `eqx.error_if`, which
        also works under `jit`.

        **Arguments:**

        - `x`: the candidate point.

        **Returns:**

        `x` itself; use the returned value so that the runtime check is not optimised away.
        """

    # ------------------------------------------------------------------ concrete helpers
    # Derived from the abstract members; never overridden (STYLE.md rule 1).

    def norm(self, x: Shaped[Array, "..."], v: Shaped[Array, "..."]) -> Float[Array, ""]:
        """Riemannian norm of the tangent vector `v` at `x`."""
        return jnp.sqrt(self.inner(x, v, v))

    def dist(self, x: Shaped[Array, "..."], y: Shaped[Array, "..."]) -> Float[Array, ""]:
        """Geodesic distance `norm(x, log(x, y))` (not differentiable at `x == y`; use
        `sq_dist` in losses)."""
        return self.norm(x, self.log(x, y))

    def sq_dist(self, x: Shaped[Array, "..."], y: Shaped[Array, "..."]) -> Float[Array, ""]:
        """Squared geodesic distance (smooth where `dist` is not, at `x == y`)."""
        v = self.log(x, y)
        return self.inner(x, v, v)

    def geodesic(
        self, x: Shaped[Array, "..."], y: Shaped[Array, "..."], t: Float[Array, ""] | float
    ) -> Shaped[Array, "..."]:
        """The point at time `t` on the minimising geodesic from `x` (t=0) to `y` (t=1).

        `t` is cast to the dtype of the points, so a float64 time may be used with float32
        points under strict dtype promotion.
        """
        v = self.log(x, y)
        return self.exp(x, jnp.asarray(t, dtype=v.dtype) * v)

    def uniform_log_prob(self, x: Shaped[Array, "..."]) -> Float[Array, ""]:
        """Log-density of the normalised uniform distribution at `x`: `-log_volume()` in the
        floating dtype of `x` (`-inf` for manifolds of infinite volume)."""
        x = jnp.asarray(x)
        dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.result_type(float)
        return jnp.asarray(-self.log_volume(), dtype=dtype)
