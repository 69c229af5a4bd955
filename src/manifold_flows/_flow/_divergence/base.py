"""The divergence interface: the velocity and its Riemannian divergence at one point."""

import abc
import math
from collections.abc import Callable

import equinox as eqx
from jaxtyping import Array, Float, PRNGKeyArray, PyTree, Shaped

from ..._manifold import AbstractManifold

#: A vector field with everything but the point closed over: `x -> v(t, x, args)`.
PointField = Callable[[Shaped[Array, "..."]], Shaped[Array, "..."]]


def is_flat_embedded(space: AbstractManifold) -> bool:
    """Whether every ambient direction is tangent (`dim == prod(point_shape)`).

    True for the flat torus, Euclidean space and their particle powers: the tangent projector is
    the identity and the Riemannian divergence is the plain trace of the ambient Jacobian.
    False for embedded manifolds such as the sphere, where the projector matters.
    """
    return space.dim == math.prod(space.point_shape)


class AbstractDivergence(eqx.Module):
    """A strategy that returns a vector field and its divergence at one point.

    The flow calls `probe = init_probe(key, space, x)` **once per trajectory** and hands the
    same `probe` to every evaluation along it (it rides in the ODE arguments), so a stochastic
    estimator integrates one fixed random function of time, as the change-of-variables
    formula requires.

    Contract of `__call__(fn, x, probe, space)`: returns `(v, div)` with `v = fn(x)` and
    `div` the Riemannian divergence of `fn` at `x` (exactly, or an unbiased estimate of it
    over the distribution of `probe`). For a manifold embedded in its ambient array space
    with the induced metric and orthogonal tangent projector `P(x)`,

        div v (x) = tr(P(x) J(x)) = sum_i e_i^T J(x) e_i,

    where `J` is the ambient Jacobian of `fn` (any smooth extension of `v` off the manifold;
    only tangent directions enter) and `e_i` is an orthonormal basis of the tangent space at
    `x`. On flat spaces (`P = I`: torus, Euclidean space) this is `tr J`.
    """

    @abc.abstractmethod
    def init_probe(
        self, key: PRNGKeyArray | None, space: AbstractManifold, x: Shaped[Array, "..."]
    ) -> PyTree[Array]:
        """Draw the randomness of one trajectory.

        **Arguments:**

        - `key`: a PRNG key (may be `None` for a deterministic strategy).
        - `space`: the manifold the flow lives on.
        - `x`: a point of the manifold, giving the shape and dtype of the probes.

        **Returns:**

        A pytree of arrays (`None` for a deterministic strategy), passed unchanged to every
        call along the trajectory.
        """

    @abc.abstractmethod
    def __call__(
        self,
        fn: PointField,
        x: Shaped[Array, "..."],
        probe: PyTree[Array],
        space: AbstractManifold,
    ) -> tuple[Shaped[Array, "..."], Float[Array, ""]]:
        """Evaluate the field and its divergence.

        **Arguments:**

        - `fn`: the field at fixed time and arguments, `x -> v`, shape-preserving.
        - `x`: one point (the ambient array the solver holds).
        - `probe`: what `init_probe` returned for this trajectory.
        - `space`: the manifold (for the tangent projector of an embedded manifold).

        **Returns:**

        `(v, div)`: `v = fn(x)` and the scalar divergence (exact or unbiased estimate).
        """


class AbstractStochasticDivergence(AbstractDivergence):
    """Marker: the divergence is a random estimate; `init_probe` needs a PRNG key, and the
    resulting log-density is noisy (unbiased in the divergence, not in exp(log q)). Never use
    such an estimate for importance weights."""
