"""The interpolant interface: a curve x_t from x0 (t = 0) to x1 (t = 1) and its velocity."""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._manifold import AbstractManifold, ParticleSpace


class AbstractInterpolant(eqx.Module):
    """A stochastic or deterministic interpolant between two points of a space.

    One pair in: `x0`, `x1` (and the latent noise `z` when `needs_noise`) are single points, e.g.
    one configuration of shape `(n, d)`; batch with `jax.vmap`. The curve `t -> x_t` is the
    path along which flow matching regresses a vector field `v(t, x)` onto the target velocity
    `u_t = d x_t / d t`; the marginal of `x_t` over the pairs is then transported by the ODE
    `dx/dt = E[u_t | x_t]`.

    Contract (checked by the tests for every implementation):

    - endpoints: `interpolate(0, x0, x1, z) == x0` and `interpolate(1, x0, x1, z) == x1` for
      points in canonical form (wrapped into the box, on the sphere, ...);
    - the target is the time derivative of the curve: `velocity(t, x0, x1, z) ==
      d/dt interpolate(t, x0, x1, z)` (a tangent vector at `x_t`; on a curved or periodic
      space the derivative is measured with the manifold's `log`);
    - `x_t` lies on the space (wrapped onto the torus).

    `needs_noise` declares whether the curve depends on a latent `z`: training draws
    `z ~ N(0, I)` with the shape of `x0` (an ambient array; the interpolant projects it onto
    the tangent space it needs) and passes it to both methods.
    """

    needs_noise: eqx.AbstractClassVar[bool]

    @abc.abstractmethod
    def interpolate(
        self,
        t: Float[Array, ""] | float,
        x0: Float[Array, "*shape"],
        x1: Float[Array, "*shape"],
        z: Float[Array, "*shape"] | None = None,
    ) -> Float[Array, "*shape"]:
        """The point `x_t` of the interpolating curve.

        **Arguments:**

        - `t`: scalar time in `[0, 1]`.
        - `x0`: start point (a draw of the base distribution).
        - `x1`: end point (a data point), same shape as `x0`.
        - `z`: latent noise with the shape of `x0`; required when `needs_noise`, else ignored.

        **Returns:**

        `x_t`, a point of the space with the shape of `x0`.
        """

    @abc.abstractmethod
    def velocity(
        self,
        t: Float[Array, ""] | float,
        x0: Float[Array, "*shape"],
        x1: Float[Array, "*shape"],
        z: Float[Array, "*shape"] | None = None,
    ) -> Float[Array, "*shape"]:
        """The regression target `u_t = d x_t / d t`, a tangent vector at `x_t`.

        **Arguments:** as for `interpolate`.

        **Returns:**

        The time derivative of `interpolate(t, x0, x1, z)`, with the shape of `x0`.
        """

    # ------------------------------------------------------------------ concrete helpers
    def interpolate_and_velocity(
        self,
        t: Float[Array, ""] | float,
        x0: Float[Array, "*shape"],
        x1: Float[Array, "*shape"],
        z: Float[Array, "*shape"] | None = None,
    ) -> tuple[Float[Array, "*shape"], Float[Array, "*shape"]]:
        """`(interpolate(...), velocity(...))` in one call (what a training step needs)."""
        return self.interpolate(t, x0, x1, z), self.velocity(t, x0, x1, z)


# ---------------------------------------------------------------------- shared private helpers
def as_time(t, x: Array) -> Array:
    """`t` as a scalar array of the dtype of `x` (so strict dtype promotion never trips)."""
    t = jnp.asarray(t, dtype=x.dtype)
    if t.shape != ():
        raise ValueError(
            f"interpolant time `t` must be a scalar (one pair in; batch with jax.vmap); got "
            f"shape {t.shape}."
        )
    return t


def check_pair(owner: str, x0: Array, x1: Array) -> tuple[Array, Array]:
    x0, x1 = jnp.asarray(x0), jnp.asarray(x1)
    if x0.shape != x1.shape:
        raise ValueError(
            f"{owner}: `x0` and `x1` must have the same shape (one pair of points); got "
            f"{x0.shape} and {x1.shape}."
        )
    if not (jnp.issubdtype(x0.dtype, jnp.floating) and x0.dtype == x1.dtype):
        raise TypeError(
            f"{owner}: `x0` and `x1` must be floating arrays of one dtype; got {x0.dtype} and "
            f"{x1.dtype}. Cast them with jnp.asarray(x, dtype=...)."
        )
    return x0, x1


def check_noise(owner: str, z: Array | None, x0: Array) -> Array:
    if z is None:
        raise ValueError(
            f"{owner} needs latent noise `z` (needs_noise is True): pass z ~ N(0, I) with the "
            f"shape of x0 {x0.shape}, e.g. jax.random.normal(key, x0.shape, x0.dtype)."
        )
    z = jnp.asarray(z)
    if z.shape != x0.shape:
        raise ValueError(f"{owner}: noise `z` must have the shape of x0 {x0.shape}; got {z.shape}.")
    return z.astype(x0.dtype)


def space_for(owner: str, manifold: AbstractManifold, x: Array) -> AbstractManifold:
    """The manifold to apply to one point `x`: `manifold` itself when `x` is one of its points,
    or the power manifold `manifold^n` when `x` stacks `n` of its points (a configuration)."""
    shape = tuple(manifold.point_shape)
    if x.shape == shape:
        return manifold
    if x.ndim == len(shape) + 1 and x.shape[1:] == shape:
        return ParticleSpace(manifold, x.shape[0])
    raise ValueError(
        f"{owner}: points must have the manifold's point shape {shape} or be a configuration "
        f"of such points (n, {', '.join(map(str, shape))}); got shape {x.shape}. Batches of "
        "pairs go through jax.vmap."
    )


def time_derivative(curve, t: Array) -> tuple[Array, Array]:
    """`(curve(t), d curve / dt)` by one forward-mode pass."""
    return jax.jvp(curve, (t,), (jnp.ones_like(t),))
