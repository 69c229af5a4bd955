"""A pairwise radial kernel field with a closed-form divergence (equivariant kernel flows)."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._manifold import Euclidean, FlatTorus
from .._manifold.particles import check_species
from ._egnn_core import cast_floating
from ._options import check_positive_int
from .base import AbstractFieldWithDivergence, AbstractTranslationInvariantField


class KernelField(AbstractFieldWithDivergence, AbstractTranslationInvariantField):
    """A sum of pairwise radial kernels, with its divergence in closed form:

        v_i(t, x) = sum_{j != i} Delta_ij phi_{s_i s_j}(|Delta_ij|, t),

    `Delta_ij = log_{x_j}(x_i)` (`x_i - x_j`; on a torus the minimum image), and
    `phi_ab(r, t) = e(r / r_c) sum_k w_abk(t) exp(-(r - mu_k)^2 / (2 sigma^2))`: `K` Gaussian
    radial basis functions with centres `mu_k` evenly spaced on `[0, r_c]` and width
    `sigma = r_c / K`, weights from a small network of `t` (symmetric in the species pair
    `ab`), and the envelope `e(u) = (1 - u^2)^3` that takes `phi`, its slope and its
    curvature smoothly to zero at the cutoff `r_c`.

    Since `d(Delta_ij)/d(x_i)` is the identity, the Jacobian block of particle `i` is
    `sum_j [phi I + Delta Delta^T phi'(r) / r]`, so

        div v = sum_{i != j} [d phi(r_ij) + r_ij phi'(r_ij)],

    which costs one pass over the pairs, about what the velocity costs (`phi'` is assembled
    from the same basis functions as `phi`), instead of the `N d` tangent passes of a
    generic field. `ContinuousFlow` uses it automatically
    (`FieldDivergence`).

    Symmetry: the field depends on the positions only through the pair vectors `Delta_ij`
    and distances, with species-pair weights, so it is equivariant under permutations within
    species, translations (torus or Euclidean), rotations and reflections (Euclidean) and the
    point group of the box (torus), and the total velocity `sum_i v_i` is zero (the centre of
    mass does not move): it is an `AbstractTranslationInvariantField`, so its closed-form
    divergence also holds on `ZeroCenterOfMass` (Euclidean clusters). On a torus `r_c` may
    not exceed half the shortest box side: the kernels then vanish before the minimum image
    jumps, and the field is smooth and periodic.
    This is the kernel flow of Köhler, Klein and Noé ("Equivariant Flows"), with species.

    **Arguments:**

    - `manifold`: the per-particle space: a `FlatTorus` (the box) or `Euclidean(d)`.
    - `num_species`: the number of species labels.
    - `cutoff`: `r_c` (default: half the shortest box side on a torus; required in
      Euclidean space, e.g. a few particle diameters).
    - `num_kernels`: `K` radial basis functions (default 32).
    - `width`: hidden width of the time network (default 32).
    - `dtype`: parameter dtype (default: JAX's default float dtype).
    - `key`: PRNG key for the initialisation.
    """

    manifold: FlatTorus | Euclidean
    num_species: int = eqx.field(static=True)
    cutoff: float = eqx.field(static=True)
    time_net: eqx.nn.MLP

    def __init__(
        self,
        manifold: FlatTorus | Euclidean,
        num_species: int,
        *,
        cutoff: float | None = None,
        num_kernels: int = 32,
        width: int = 32,
        dtype=None,
        key: PRNGKeyArray,
    ):
        check_positive_int("KernelField", "num_species", num_species, "e.g. 2.")
        check_positive_int("KernelField", "num_kernels", num_kernels, "e.g. 32.")
        check_positive_int("KernelField", "width", width, "e.g. 32.")
        if isinstance(manifold, FlatTorus):
            half = 0.5 * float(min(manifold.lengths))
            cutoff = half if cutoff is None else float(cutoff)
            if not 0 < cutoff <= half:
                raise ValueError(
                    f"KernelField: on a torus the cutoff must lie in (0, L/2 = {half:g}] so "
                    f"that the kernels vanish before the minimum image jumps; got {cutoff!r}."
                )
        elif isinstance(manifold, Euclidean):
            if cutoff is None or not (math.isfinite(cutoff) and cutoff > 0):
                raise ValueError(
                    "KernelField in Euclidean space needs a positive finite `cutoff` (the "
                    f"range of the kernels, e.g. a few particle diameters); got {cutoff!r}."
                )
            cutoff = float(cutoff)
        else:
            raise TypeError(
                "KernelField needs a FlatTorus (periodic box) or a Euclidean space; got "
                f"{type(manifold).__name__}."
            )
        pairs = num_species * num_species
        net = eqx.nn.MLP(
            1, pairs * num_kernels, width, depth=2, activation=jax.nn.silu, key=key, dtype=dtype
        )
        # A small initial field: the flow starts close to the identity map.
        last = net.layers[-1]
        net = eqx.tree_at(lambda n: n.layers[-1].weight, net, last.weight * 0.01)
        self.manifold = manifold
        self.num_species = int(num_species)
        self.cutoff = cutoff
        self.time_net = net

    @property
    def num_kernels(self) -> int:
        return self.time_net.out_size // (self.num_species * self.num_species)

    def _pairs(self, x: Float[Array, "n d"]) -> tuple[Array, Array, Array]:
        """Pair vectors `Delta_ij`, distances `r_ij` and the mask of distinct pairs."""
        n = x.shape[0]
        delta = jax.vmap(lambda xi: jax.vmap(lambda xj: self.manifold.log(xj, xi))(x))(x)
        distinct = ~jnp.eye(n, dtype=bool)
        squared = jnp.sum(delta * delta, axis=-1)
        positive = distinct & (squared > 0)
        r = jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1)), 0)
        return delta, r, distinct

    def _radial(
        self, t: Array, species: Array, r: Array, *, slope: bool
    ) -> tuple[Array, Array | None]:
        """`phi_{s_i s_j}(r_ij, t)` for the matrix of pair distances and, with `slope`, its
        derivative in `r` (from the same basis functions: a few more multiplications)."""
        dtype = r.dtype
        net = cast_floating(self.time_net, dtype)
        k = self.num_kernels
        s = self.num_species
        weights = net(jnp.reshape(t, (1,))).reshape(s, s, k)
        weights = 0.5 * (weights + jnp.swapaxes(weights, 0, 1))
        pair_weights = weights[species[:, None], species[None, :]]  # (n, n, K)
        centres = jnp.linspace(0, self.cutoff, k, dtype=dtype)[None, None, :]
        inverse_width = jnp.asarray(k / self.cutoff, dtype)
        u = r / jnp.asarray(self.cutoff, dtype)
        z = (r[..., None] - centres) * inverse_width
        weighted = pair_weights * jnp.exp(-0.5 * z * z)  # w_k b_k(r)
        radial = jnp.sum(weighted, axis=-1)
        inside = u < 1
        w = jnp.where(inside, 1 - u * u, 0)
        envelope = w * w * w  # (1 - u^2)^3: value, slope and curvature vanish at u = 1
        phi = envelope * radial
        if not slope:
            return phi, None
        # d/dr: b_k' = -z_k kappa b_k; e'(r) = -6 u (1 - u^2)^2 / r_c.
        d_radial = -inverse_width * jnp.sum(weighted * z, axis=-1)
        d_envelope = -6 * u * w * w * (inverse_width / k)
        return phi, d_envelope * radial + envelope * d_radial

    def _prepare(self, t, x, args) -> tuple[Array, Array]:
        if x.ndim != 2 or x.shape[1] != self.manifold.dim:
            raise ValueError(
                f"KernelField takes one configuration of shape (n, {self.manifold.dim}); got "
                f"shape {x.shape}."
            )
        species = check_species(args, x.shape[0], self.num_species)
        return jnp.asarray(t, x.dtype), species

    def __call__(
        self, t: Float[Array, ""] | float, x: Float[Array, "n d"], args: Int[Array, " n"]
    ) -> Float[Array, "n d"]:
        t, species = self._prepare(t, x, args)
        delta, r, distinct = self._pairs(x)
        phi = jnp.where(distinct, self._radial(t, species, r, slope=False)[0], 0)
        return jnp.sum(delta * phi[..., None], axis=1)

    def velocity_and_divergence(
        self, t: Float[Array, ""] | float, x: Float[Array, "n d"], args: Int[Array, " n"]
    ) -> tuple[Float[Array, "n d"], Float[Array, ""]]:
        t, species = self._prepare(t, x, args)
        delta, r, distinct = self._pairs(x)
        phi, slope = self._radial(t, species, r, slope=True)
        phi = jnp.where(distinct, phi, 0)
        v = jnp.sum(delta * phi[..., None], axis=1)
        terms = jnp.where(distinct, x.shape[1] * phi + r * slope, 0)
        return v, jnp.sum(terms)
