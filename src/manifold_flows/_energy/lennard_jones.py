"""Lennard-Jones pair potentials with a cutoff: plain (truncated) and truncated-and-shifted."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from .._manifold import FlatTorus
from ._images import check_images, warn_if_short_box
from ._params import check_torus, gather_pairs, infer_num_species, species_matrix
from .base import AbstractPairEnergy


def _lj(r: Array, eps: Array, sig: Array) -> Array:
    """`4 eps [(sig/r)^12 - (sig/r)^6]`, written as `4 eps q (q - 1)` with `q = (sig/r)^6` so that
    `r == 0` gives `+inf` rather than `inf - inf = NaN`."""
    q = (sig / r) ** 6
    return 4.0 * eps * q * (q - 1.0)


def _lj_parameters(epsilon, sigma, cutoff):
    s = infer_num_species(sigma, epsilon, cutoff)
    sig = species_matrix("sigma", sigma, s)
    rc = 2.5 * sig if cutoff is None else species_matrix("cutoff", cutoff, s)
    return s, species_matrix("epsilon", epsilon, s), sig, rc


class LennardJones(AbstractPairEnergy):
    """The Lennard-Jones potential truncated at a cutoff ("plain" LJ):

    `W_ab(r) = 4 eps_ab [ (sigma_ab/r)^12 - (sigma_ab/r)^6 ] - shift_ab` for `r < rc_ab`, else 0,

    with `shift_ab = 0` by default (**truncated, not shifted**: W jumps by
    `-4 eps [(sigma/rc)^12 - (sigma/rc)^6]` at the cutoff, which a Monte Carlo simulation
    tolerates but the energy is not continuous). `shift=True` makes `W(rc) = 0`, i.e. the
    same potential as `TruncatedShiftedLennardJones`. A cutoff is always applied: a periodic
    box needs a finite range.

    **Arguments:**

    - `torus`: the periodic box (`FlatTorus`).
    - `epsilon`, `sigma`: `(S, S)` symmetric species-pair matrices, or scalars (default 1: a
      one-species fluid in reduced units).
    - `cutoff`: `(S, S)` cutoffs rc_ab, or `None` for `2.5 * sigma`.
    - `shift`: subtract `W(rc)` so the potential is continuous (default `False`).
    - `images`: `"minimum"` or `"all"`; see `AbstractPairEnergy`.
    """

    torus: FlatTorus
    epsilon: Float[Array, "s s"]
    sigma: Float[Array, "s s"]
    cutoff: Float[Array, "s s"]
    num_species: int = eqx.field(static=True)
    images: str = eqx.field(static=True)
    shift: bool = eqx.field(static=True)
    largest_cutoff: float = eqx.field(static=True)

    def __init__(
        self,
        torus: FlatTorus,
        *,
        epsilon=1.0,
        sigma=1.0,
        cutoff=None,
        shift: bool = False,
        images: str = "minimum",
    ):
        self.torus = check_torus(torus)
        self.images = check_images(images)
        s, eps, sig, rc = _lj_parameters(epsilon, sigma, cutoff)
        self.num_species = s
        self.epsilon, self.sigma, self.cutoff = jnp.asarray(eps), jnp.asarray(sig), jnp.asarray(rc)
        self.shift = bool(shift)
        self.largest_cutoff = float(np.max(rc))
        warn_if_short_box(torus.lengths, self.largest_cutoff, images, "LennardJones")

    def pair_energy(
        self,
        r: Float[ArrayLike, "..."],
        si: Int[ArrayLike, "..."],
        sj: Int[ArrayLike, "..."],
    ) -> Float[Array, "..."]:
        r, eps, sig, rc = gather_pairs(r, si, sj, self.epsilon, self.sigma, self.cutoff)
        w = _lj(r, eps, sig)
        if self.shift:
            w = w - _lj(rc, eps, sig)
        return jnp.where(r < rc, w, 0.0)

    def max_cutoff(self) -> float:
        return self.largest_cutoff


class TruncatedShiftedLennardJones(AbstractPairEnergy):
    """The Lennard-Jones potential truncated at `rc` and shifted so that `W(rc) = 0`:

    `W_ab(r) = 4 eps_ab [ (s/r)^12 - (s/r)^6 - (s/rc)^12 + (s/rc)^6 ]` for `r < rc_ab`, else 0,

    with `s = sigma_ab`. With `eps = [[1, 1.5], [1.5, 0.5]]`, `sigma = [[1, 0.8], [0.8, 0.88]]`
    and `rc = 2.5 sigma` it is the classic binary Kob-Andersen mixture. (Its first derivative
    still jumps at rc; `SmoothedLennardJones` is the smooth variant, a different model.)

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
        s, eps, sig, rc = _lj_parameters(epsilon, sigma, cutoff)
        self.num_species = s
        self.epsilon, self.sigma, self.cutoff = jnp.asarray(eps), jnp.asarray(sig), jnp.asarray(rc)
        self.largest_cutoff = float(np.max(rc))
        warn_if_short_box(
            torus.lengths, self.largest_cutoff, images, "TruncatedShiftedLennardJones"
        )

    def pair_energy(
        self,
        r: Float[ArrayLike, "..."],
        si: Int[ArrayLike, "..."],
        sj: Int[ArrayLike, "..."],
    ) -> Float[Array, "..."]:
        r, eps, sig, rc = gather_pairs(r, si, sj, self.epsilon, self.sigma, self.cutoff)
        w = _lj(r, eps, sig) - _lj(rc, eps, sig)
        return jnp.where(r < rc, w, 0.0)

    def max_cutoff(self) -> float:
        return self.largest_cutoff
