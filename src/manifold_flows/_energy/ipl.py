"""Inverse-power-law soft spheres (the binary "IPL"/"BHHP" soft disks of the eRSI paper)."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from .._manifold import FlatTorus
from ._images import check_images, warn_if_short_box
from ._params import check_torus, gather_pairs, infer_num_species, species_matrix
from .base import AbstractPairEnergy


class InversePowerLaw(AbstractPairEnergy):
    """Purely repulsive inverse-power-law pair potential, shifted to vanish at the cutoff:

    `W_ab(r) = eps_ab [ (sigma_ab / r)^p - (sigma_ab / rc_ab)^p ]` for `r < rc_ab`, else `0`.

    With `p = 12`, `sigma = [[1.0, 1.2], [1.2, 1.4]]`, `eps = 1`, `rc = 2.5 sigma` this is the
    binary soft-disk mixture ("IPL", "BHHP") of the eRSI paper. Works in any dimension.

    **Arguments:**

    - `torus`: the periodic box (`FlatTorus`).
    - `sigma`: `(S, S)` symmetric matrix of particle diameters sigma_ab (or a scalar for one
      species).
    - `epsilon`: `(S, S)` symmetric energy scales eps_ab, or a scalar for all pairs (default 1).
    - `cutoff`: `(S, S)` cutoffs rc_ab, or `None` for `2.5 * sigma`.
    - `exponent`: the power `p` (default 12), a positive integer.
    - `images`: `"minimum"` (nearest image only) or `"all"` (every periodic image within the
      cutoff); see `AbstractPairEnergy`. Warns with `ImageConventionWarning` when half the box
      is shorter than a cutoff.
    """

    torus: FlatTorus
    epsilon: Float[Array, "s s"]
    sigma: Float[Array, "s s"]
    cutoff: Float[Array, "s s"]
    num_species: int = eqx.field(static=True)
    images: str = eqx.field(static=True)
    exponent: int = eqx.field(static=True)
    largest_cutoff: float = eqx.field(static=True)

    def __init__(
        self,
        torus: FlatTorus,
        *,
        sigma,
        epsilon=1.0,
        cutoff=None,
        exponent: int = 12,
        images: str = "minimum",
    ):
        self.torus = check_torus(torus)
        self.images = check_images(images)
        s = infer_num_species(sigma, epsilon, cutoff)
        sig = species_matrix("sigma", sigma, s)
        rc = 2.5 * sig if cutoff is None else species_matrix("cutoff", cutoff, s)
        if int(exponent) != exponent or exponent < 1:
            raise ValueError(f"`exponent` must be a positive integer; got {exponent!r}.")
        self.num_species = s
        self.exponent = int(exponent)
        self.epsilon = jnp.asarray(species_matrix("epsilon", epsilon, s))
        self.sigma = jnp.asarray(sig)
        self.cutoff = jnp.asarray(rc)
        self.largest_cutoff = float(np.max(rc))
        warn_if_short_box(torus.lengths, self.largest_cutoff, images, "InversePowerLaw")

    def pair_energy(
        self,
        r: Float[ArrayLike, "..."],
        si: Int[ArrayLike, "..."],
        sj: Int[ArrayLike, "..."],
    ) -> Float[Array, "..."]:
        r, eps, sig, rc = gather_pairs(r, si, sj, self.epsilon, self.sigma, self.cutoff)
        p = self.exponent
        w = eps * ((sig / r) ** p - (sig / rc) ** p)
        return jnp.where(r < rc, w, 0.0)

    def max_cutoff(self) -> float:
        return self.largest_cutoff
