"""The base-distribution interface: the density a flow starts from at t = 0."""

import abc

import equinox as eqx
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree, Shaped

from ..._manifold import AbstractManifold


class AbstractBase(eqx.Module):
    """A base (prior) distribution on a manifold, one point at a time.

    Contract:

    - `sample(key, args)` returns one point of `space`, in canonical form
      (`space.project(x) == x`);
    - `log_prob(x, args)` is the log-density of those samples with respect to the Riemannian
      volume of `space`, **up to an additive constant** that does not depend on `x`. The
      constant is zero (the density integrates to one) exactly when the base is an instance of
      the marker `AbstractNormalizedBase`; check `base.normalized` before quoting a log Z.

    `args` are the same extra data the flow's vector field receives (for particle systems: the
    species vector); a base may ignore them.
    """

    space: eqx.AbstractVar[AbstractManifold]

    @abc.abstractmethod
    def sample(self, key: PRNGKeyArray, args: PyTree) -> Shaped[Array, "..."]:
        """Draw one point.

        **Arguments:**

        - `key`: a PRNG key.
        - `args`: the flow's extra data (e.g. the species vector).

        **Returns:**

        One point of `space`, shape `space.point_shape`.
        """

    @abc.abstractmethod
    def log_prob(self, x: Shaped[ArrayLike, "..."], args: PyTree) -> Float[Array, ""]:
        """Log-density at one point (normalised or not: see the class docstring).

        **Arguments:**

        - `x`: one point of `space`.
        - `args`: the flow's extra data.

        **Returns:**

        A scalar.
        """

    # concrete helper derived from the marker (never overridden)
    @property
    def normalized(self) -> bool:
        """Whether `log_prob` is a normalised log-density (the marker `AbstractNormalizedBase`)."""
        return isinstance(self, AbstractNormalizedBase)


class AbstractNormalizedBase(AbstractBase):
    """Marker: `log_prob` is normalised (`integral of exp(log_prob) dvol == 1`), so a flow on
    top of it has a normalised log q and importance weights give absolute log Z estimates."""
