"""The independent coupling: pairs as drawn."""

from jaxtyping import Array, Float, Int

from .base import AbstractCoupling


class IndependentCoupling(AbstractCoupling):
    """Keep the pairs as drawn: `(x0, x1) -> (x0, x1)` (the product of the marginals)."""

    def __init__(self):
        pass

    def __call__(
        self,
        x0: Float[Array, "*shape"],
        x1: Float[Array, "*shape"],
        species: Int[Array, " n"] | None = None,
    ) -> tuple[Float[Array, "*shape"], Float[Array, "*shape"]]:
        return x0, x1
