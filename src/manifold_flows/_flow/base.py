"""The likelihood interface: models that sample and evaluate their own log-density."""

import abc

import equinox as eqx
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree, Shaped

from .._manifold import AbstractManifold
from ._base_dist import AbstractBase


class AbstractLikelihood(eqx.Module):
    """A generative model with a tractable log-density q on a manifold (a flow).

    One example in; batch with `jax.vmap` or the helpers `sample` / `log_prob_batch`.

    Contract:

    - `sample_and_log_prob(key, args)` returns `(x, log_q)`: `x ~ q`, a point of `space` in
      canonical form (`space.project(x) == x`), and `log q(x)`, the log-density with respect
      to the Riemannian volume of `space`;
    - `log_prob(x, args)` evaluates the same function at a given point, so that for a
      deterministic model `log_prob(x, args) == log_q` on the samples (up to the numerical
      tolerance of the model);
    - log q is normalised (integrates to one) exactly when `base.normalized`; otherwise it is
      known up to the base's additive constant, which is the same for every `x`.
    """

    space: eqx.AbstractVar[AbstractManifold]
    base: eqx.AbstractVar[AbstractBase]

    @abc.abstractmethod
    def sample_and_log_prob(
        self, key: PRNGKeyArray, args: PyTree
    ) -> tuple[Shaped[Array, "..."], Float[Array, ""]]:
        """Draw one sample and its log-density in one pass.

        **Arguments:**

        - `key`: a PRNG key.
        - `args`: extra data for the model (for particle systems: the species vector).

        **Returns:**

        `(x, log_q)`: a point of `space` and the scalar `log q(x)`.
        """

    @abc.abstractmethod
    def log_prob(
        self, x: Shaped[ArrayLike, "..."], args: PyTree, *, key: PRNGKeyArray | None = None
    ) -> Float[Array, ""]:
        """Log-density of a given point.

        **Arguments:**

        - `x`: one point of `space` (wrapped onto it first).
        - `args`: extra data for the model.
        - `key`: a PRNG key, needed only by stochastic estimators.

        **Returns:**

        The scalar `log q(x)`.
        """

    # concrete helper (never overridden)
    @property
    def normalized(self) -> bool:
        """Whether log q is normalised (its base density is)."""
        return self.base.normalized
