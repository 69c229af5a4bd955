"""The field's own closed-form divergence, for fields that provide one."""

from jaxtyping import Array, Float, PRNGKeyArray, Shaped

from ..._manifold import AbstractManifold
from .base import AbstractDivergence, PointField
from .exact import ExactDivergence


class FieldDivergence(AbstractDivergence):
    """Use the divergence the vector field computes itself (an
    `AbstractFieldWithDivergence`, e.g. `KernelField`).

    `ContinuousFlow` recognises this strategy and evaluates the velocity and its divergence
    with one call of `field.velocity_and_divergence`: about the cost of the velocity, where
    the generic exact divergence costs `N d` tangent passes. It is the default of a
    `ContinuousFlow` whose field provides its divergence, on flat spaces.

    Called directly, with a plain function `fn` (which carries no closed form), it computes
    the same quantity the generic way (`ExactDivergence`), so the contract of
    `AbstractDivergence` holds either way.
    """

    def init_probe(
        self, key: PRNGKeyArray | None, space: AbstractManifold, x: Shaped[Array, "..."]
    ) -> None:
        return None

    def __call__(
        self,
        fn: PointField,
        x: Shaped[Array, "..."],
        probe: None,
        space: AbstractManifold,
    ) -> tuple[Shaped[Array, "..."], Float[Array, ""]]:
        return ExactDivergence()(fn, x, probe, space)
