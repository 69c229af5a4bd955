"""Lennard-Jones smoothed by an even polynomial so that W, W' and W'' vanish at the cutoff (the
ternary 2D Kob-Andersen mixture of the eRSI paper)."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from .._manifold import FlatTorus
from ._images import check_images, warn_if_short_box
from ._params import check_torus, gather_pairs, infer_num_species, species_matrix
from .base import AbstractPairEnergy


def smoothing_coefficients(cutoff_ratio) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(C0, C2, C4)` such that `f(x) = x^-12 - x^-6 + C0 + C2 x^2 + C4 x^4` has
    `f(a) = f'(a) = f''(a) = 0` at `a = rc / sigma` (solved in closed form):

    `C0 = 10 a^-6 - 28 a^-12`, `C2 = 48 a^-14 - 15 a^-8`, `C4 = 6 a^-10 - 21 a^-16`.

    At `a = 2.5` these are the published constants 0.04049023795, -0.00970155098,
    0.00062012616.
    """
    a = np.asarray(cutoff_ratio, dtype=np.float64)
    c0 = 10.0 * a**-6 - 28.0 * a**-12
    c2 = 48.0 * a**-14 - 15.0 * a**-8
    c4 = 6.0 * a**-10 - 21.0 * a**-16
    return np.asarray(c0), np.asarray(c2), np.asarray(c4)


class SmoothedLennardJones(AbstractPairEnergy):
    """Polynomially smoothed Lennard-Jones:

    `W_ab(r) = 4 eps_ab [ (s/r)^12 - (s/r)^6 + C0 + C2 (r/s)^2 + C4 (r/s)^4 ]` for
    `r < rc_ab`, else 0, with `s = sigma_ab`.

    The coefficients are fixed per pair by the cutoff ratio `a = rc_ab / sigma_ab` so that
    `W`, `W'` and `W''` all vanish at `rc_ab` (see `smoothing_coefficients`); for `a = 2.5`
    they are the published C0 = 0.04049023795, C2 = -0.00970155098, C4 = 0.00062012616. With the
    ternary parameters of `get_system("ka3-n44")` this is the swap-friendly 2D Kob-Andersen
    mixture. Not the same model as `TruncatedShiftedLennardJones`: energies differ.

    **Arguments:**

    - `torus`: the periodic box (`FlatTorus`).
    - `epsilon`, `sigma`: `(S, S)` symmetric species-pair matrices, or scalars (default 1).
    - `cutoff`: `(S, S)` cutoffs rc_ab, or `None` for `2.5 * sigma`.
    - `images`: `"minimum"` or `"all"`; see `AbstractPairEnergy`.
    """

    torus: FlatTorus
    epsilon: Float[Array, "s s"]
    sigma: Float[Array, "s s"]
    cutoff: Float[Array, "s s"]
    c0: Float[Array, "s s"]
    c2: Float[Array, "s s"]
    c4: Float[Array, "s s"]
    num_species: int = eqx.field(static=True)
    images: str = eqx.field(static=True)
    largest_cutoff: float = eqx.field(static=True)

    def __init__(
        self,
        torus: FlatTorus,
        *,
        epsilon=1.0,
        sigma=1.0,
        cutoff=None,
        images: str = "minimum",
    ):
        self.torus = check_torus(torus)
        self.images = check_images(images)
        s = infer_num_species(sigma, epsilon, cutoff)
        sig = species_matrix("sigma", sigma, s)
        rc = 2.5 * sig if cutoff is None else species_matrix("cutoff", cutoff, s)
        c0, c2, c4 = smoothing_coefficients(rc / sig)
        self.num_species = s
        self.epsilon = jnp.asarray(species_matrix("epsilon", epsilon, s))
        self.sigma, self.cutoff = jnp.asarray(sig), jnp.asarray(rc)
        self.c0, self.c2, self.c4 = jnp.asarray(c0), jnp.asarray(c2), jnp.asarray(c4)
        self.largest_cutoff = float(np.max(rc))
        warn_if_short_box(torus.lengths, self.largest_cutoff, images, "SmoothedLennardJones")

    def pair_energy(
        self,
        r: Float[ArrayLike, "..."],
        si: Int[ArrayLike, "..."],
        sj: Int[ArrayLike, "..."],
    ) -> Float[Array, "..."]:
        r, eps, sig, rc, c0, c2, c4 = gather_pairs(
            r, si, sj, self.epsilon, self.sigma, self.cutoff, self.c0, self.c2, self.c4
        )
        q = (sig / r) ** 6
        y = (r / sig) ** 2
        w = 4.0 * eps * (q * (q - 1.0) + c0 + y * (c2 + y * c4))
        return jnp.where(r < rc, w, 0.0)

    def max_cutoff(self) -> float:
        return self.largest_cutoff
