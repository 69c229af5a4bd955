"""The vector-field interface: a time-dependent tangent field with diffrax's signature."""

import abc

import equinox as eqx
from jaxtyping import Array, Float, PyTree, Shaped


class AbstractVectorField(eqx.Module):
    """A time-dependent vector field `v = f(t, x, args)` tangent to a manifold at `x`.

    The signature is diffrax's `(t, y, args)`, so a field drops into `diffrax.ODETerm`
    unchanged. One point in (a configuration of shape `(n, d)` for particle systems); batch with
    `jax.vmap`. Particle fields take the species vector in `args` (integers in
    `[0, num_species)`); species are data and never change along the flow.

    Contract: the returned array has the shape of `x` and lies in the tangent space at `x`.
    A G-equivariant field additionally satisfies `f(t, g x, args) == g_* f(t, x, args)`
    (checked with `manifold_flows.testing.assert_equivariant`).
    """

    @abc.abstractmethod
    def __call__(
        self, t: Float[Array, ""] | float, x: Shaped[Array, "..."], args: PyTree
    ) -> Shaped[Array, "..."]:
        """Evaluate the field.

        **Arguments:**

        - `t`: scalar time in [0, 1].
        - `x`: one point of the manifold.
        - `args`: extra data (for particle fields: the species vector `Int[Array, " n"]`).

        **Returns:**

        A tangent vector at `x` with the shape of `x`.
        """


class AbstractFieldWithDivergence(AbstractVectorField):
    """Capability marker: a vector field that computes its own divergence in closed form.

    `ContinuousFlow` integrates such a field with `FieldDivergence` by default: one call of
    `velocity_and_divergence` per step instead of the generic exact divergence (`N d`
    tangent passes). Only where the divergence is the trace of the Jacobian: flat spaces (the
    torus, Euclidean space), and `ZeroCenterOfMass` for a field that is also an
    `AbstractTranslationInvariantField`.
    """

    @abc.abstractmethod
    def velocity_and_divergence(
        self, t: Float[Array, ""] | float, x: Shaped[Array, "..."], args: PyTree
    ) -> tuple[Shaped[Array, "..."], Float[Array, ""]]:
        """The field and its divergence at one point.

        **Arguments:** as for `__call__`.

        **Returns:**

        `(v, div)`: `v == self(t, x, args)` and the exact divergence
        `div v = sum_k dv_k / dx_k` (the trace of the Jacobian) at `x`.
        """


class AbstractTranslationInvariantField(AbstractVectorField):
    """Capability marker: a particle field that a rigid translation of all particles leaves
    unchanged, `f(t, x + 1 c^T, args) == f(t, x, args)` for every shift `c` in `R^d` (on a
    torus: every torus translation).

    Its Jacobian `J` then vanishes on the translation directions, `J P = J` with
    `P = I - (1/n) 1 1^T` (per axis) the projector onto zero centre of mass, so on
    `ZeroCenterOfMass` the Riemannian divergence `tr(P J) = tr(J P) = tr(J)` is the plain
    trace: a closed-form divergence (`AbstractFieldWithDivergence`) then applies unchanged,
    and `ContinuousFlow` uses it there (`FieldDivergence`). The property is checked by
    `assert_equivariant` with a translation action.
    """
