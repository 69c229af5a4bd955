"""Augmented likelihoods: a model of positions x together with auxiliary variables a."""

import abc

import jax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree, Shaped

from ..base import AbstractLikelihood


class AbstractAugmentedLikelihood(AbstractLikelihood):
    """A flow over `(x, a)`: positions `x` of `space` and auxiliary variables `a`, with an exact
    joint log-density `log q(x, a)` and a chosen auxiliary target `p_aux(a | x)`.

    The marginal `q(x)` is not tractable, but the *aux-corrected* log-density

        log q~(x, a) = log q(x, a) - log p_aux(a | x),   a drawn with x,

    is what importance sampling needs: for the target `p(x) ∝ exp(-U(x) / T)`,
    `log w = -U/T - log q~ = -U/T + log p_aux(a | x) - log q(x, a)` are exact importance
    weights of the augmented target `p(x) p_aux(a | x)`, whose x-marginal is `p`; and
    `E_q[w] = Z`, so log Z and free energies from `reweight` are unchanged.

    Contract (what the `AbstractLikelihood` methods mean here):

    - `sample_and_log_prob(key, args)` returns `(x, log q~(x, a))`, `a` the auxiliary sample
      drawn jointly with `x` (use `sample_joint` to see it). Pass it to `reweight` as `log_q`.
    - `log_prob(x, args, key=key)` draws `a ~ p_aux(. | x)` with `key` and returns
      `log q(x, a) - log p_aux(a | x)`: a one-sample estimate whose exponential is unbiased
      for `q(x)` (`E_a[q(x, a) / p_aux(a | x)] = q(x)`), so reverse (equilibrium-sample) log Z
      estimates stay consistent. It is stochastic: a key is required, and it does not equal
      the value `sample_and_log_prob` returned for the same `x`.
    - `log_prob_joint(x, a, args)` is the exact, deterministic joint log-density.
    """

    @abc.abstractmethod
    def sample_joint(
        self, key: PRNGKeyArray, args: PyTree
    ) -> tuple[Shaped[Array, "..."], Shaped[Array, "..."], Float[Array, ""]]:
        """Draw `(x, a) ~ q` with the exact joint `log q(x, a)`.

        **Returns:**

        `(x, a, log_q_joint)`, `x` a canonical point of `space`.
        """

    @abc.abstractmethod
    def log_prob_joint(
        self, x: Shaped[ArrayLike, "..."], a: Shaped[ArrayLike, "..."], args: PyTree
    ) -> Float[Array, ""]:
        """The exact joint log-density `log q(x, a)` (the inverse pass of the flow)."""

    @abc.abstractmethod
    def sample_aux(
        self, key: PRNGKeyArray, x: Shaped[ArrayLike, "..."], args: PyTree
    ) -> Shaped[Array, "..."]:
        """Draw auxiliary variables from the auxiliary target `p_aux(. | x)`."""

    @abc.abstractmethod
    def aux_log_prob(
        self, a: Shaped[ArrayLike, "..."], x: Shaped[ArrayLike, "..."], args: PyTree
    ) -> Float[Array, ""]:
        """The normalised log-density `log p_aux(a | x)` of the auxiliary target."""

    @abc.abstractmethod
    def permute_aux(self, a: Shaped[Array, "..."], order: ArrayLike) -> Shaped[Array, "..."]:
        """The auxiliary variables `a` of a configuration whose particles are re-ordered by
        `order` (`x[order]`): the auxiliaries of each particle go with it."""

    def sample_and_log_prob(
        self, key: PRNGKeyArray, args: PyTree
    ) -> tuple[Shaped[Array, "..."], Float[Array, ""]]:
        x, a, log_q = self.sample_joint(key, args)
        return x, log_q - self.aux_log_prob(a, x, args)

    def log_prob(
        self, x: Shaped[ArrayLike, "..."], args: PyTree, *, key: PRNGKeyArray | None = None
    ) -> Float[Array, ""]:
        if key is None:
            raise ValueError(
                f"{type(self).__name__}.log_prob(x, args, key=...) needs a PRNG key: the "
                "log-density of positions alone is estimated by drawing the auxiliary variables "
                "a ~ p_aux(. | x); pass key=jax.random.key(...) (log_prob_batch: key=...), or "
                "use log_prob_joint(x, a, args) for the exact joint density."
            )
        x = self.space.project(jax.numpy.asarray(x))
        a = self.sample_aux(key, x, args)
        return self.log_prob_joint(x, a, args) - self.aux_log_prob(a, x, args)
