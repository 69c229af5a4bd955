"""Acceptance rules of a Monte Carlo move: the probability to accept an energy change."""

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float


class AbstractAcceptance(eqx.Module):
    """The rule that accepts or rejects a proposed move from its energy change.

    Contract: for a symmetric proposal, the chain leaves `p(x) ∝ exp(-U(x) / T)` invariant iff
    the acceptance probability `a(dU, T)` satisfies detailed balance,
    `a(dU, T) = exp(-dU / T) a(-dU, T)`. A move is accepted when a uniform draw `v` in `(0, 1]`
    satisfies `log v <= log_probability(dU, T)`.
    """

    @abc.abstractmethod
    def log_probability(
        self, delta_energy: Float[Array, ""], temperature: Float[Array, ""]
    ) -> Float[Array, ""]:
        """Log of the acceptance probability of a move that changes the energy by `delta_energy`
        at temperature `temperature`.

        **Arguments:**

        - `delta_energy`: `U(new) - U(old)`; `+inf` (an overlap) must give `-inf`.
        - `temperature`: `T > 0`.

        **Returns:**

        `log a(dU, T) <= 0`.
        """


class Metropolis(AbstractAcceptance):
    """The Metropolis rule `a = min(1, exp(-dU / T))`."""

    def log_probability(
        self, delta_energy: Float[Array, ""], temperature: Float[Array, ""]
    ) -> Float[Array, ""]:
        return jnp.minimum(-delta_energy / temperature, 0.0)


class Barker(AbstractAcceptance):
    """Barker's (heat-bath) rule `a = 1 / (1 + exp(dU / T))`: also exact, accepts less often
    than Metropolis."""

    def log_probability(
        self, delta_energy: Float[Array, ""], temperature: Float[Array, ""]
    ) -> Float[Array, ""]:
        return -jnp.logaddexp(0.0, delta_energy / temperature)
