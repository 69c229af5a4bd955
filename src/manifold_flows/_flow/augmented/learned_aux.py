"""A learned auxiliary target: a wrapped normal per particle and axis whose centre and width
follow the particle's neighbourhood."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .conditioner import LocalConditioner
from .spline import wrap
from .wrapped_normal import _num_images, wrapped_normal_exponents

#: `mu` is bounded by `MAX_SHIFT * scale`, `log(sigma / scale)` by `MAX_LOG_WIDTH` (both smooth
#: bounds, `tanh`), so that no parameter value makes the density degenerate.
MAX_SHIFT = 2.0
MAX_LOG_WIDTH = 2.0


class LearnedAux(eqx.Module):
    """`r(a | x) = prod_{i,k} WN(a_ik - x_ik - mu_ik(x); sigma_ik(x))`, the wrapped normal of
    width `sigma_ik` centred at `x_ik + mu_ik` (modulo `L_k`), normalised for every `x`.

    `mu` and `sigma` come from a `LocalConditioner` on `x` with two outputs per axis, read
    from its unsymmetrised pair `G(v), G(-v)`: `mu = MAX_SHIFT scale tanh((G_0(v) -
    G_0(-v)) / 4)` is odd under a reflection of the axis, `log(sigma / scale) = MAX_LOG_WIDTH
    tanh((G_1(v) + G_1(-v)) / 4)` even. So `r` is invariant under torus translations,
    permutations within a species and the point group of the box, as the flow is, and the
    aux-corrected `log q~ = log q(x, a) - log r(a | x)` keeps those symmetries. The last
    layer starts at zero: an untrained `LearnedAux` is the fixed wrapped normal of width
    `scale`, so it can be added to a trained flow without changing its density.

    Any normalised `r` keeps the importance weights exact; one close to the flow's own
    conditional `q(a | x)` makes `log q~` a less noisy estimate of `log q(x)`. Trained with
    the flow, its parameters follow the gradient of the same loss.

    **Arguments:**

    - `num_species`, `cutoff`, `width`, `channels`, `num_rbf`: of its `LocalConditioner`.
    - `scale`: the width `sigma` at `mu = 0` and the unit of `mu`.
    - `box`: the box lengths (for the number of periodic images).
    - `dtype`, `key`: parameter dtype and PRNG key.
    """

    conditioner: LocalConditioner
    scale: float = eqx.field(static=True)
    num_images: int = eqx.field(static=True)

    def __init__(
        self,
        num_species: int,
        cutoff: float,
        *,
        scale: float,
        box: tuple[float, ...],
        width: int = 32,
        channels: int = 8,
        num_rbf: int = 16,
        dtype=None,
        key: PRNGKeyArray,
    ):
        self.conditioner = LocalConditioner(
            num_species,
            cutoff,
            width=width,
            channels=channels,
            num_rbf=num_rbf,
            init_scale=0.0,
            out_size=2,
            dtype=dtype,
            key=key,
        )
        self.scale = float(scale)
        self.num_images = _num_images(self.scale * math.exp(MAX_LOG_WIDTH), tuple(box))

    def centre_and_width(
        self,
        x: Float[Array, "n d"],
        species: Int[Array, " n"],
        neighbours: Int[Array, "n m"],
        box: Float[Array, " d"],
    ) -> tuple[Float[Array, "n d"], Float[Array, "n d"]]:
        """`(mu, sigma)` per particle and axis."""
        plus, minus = self.conditioner.axis_pair(x, species, neighbours, box)
        shift = MAX_SHIFT * self.scale * jnp.tanh(0.25 * (plus[..., 0] - minus[..., 0]))
        log_width = MAX_LOG_WIDTH * jnp.tanh(0.25 * (plus[..., 1] + minus[..., 1]))
        return shift, self.scale * jnp.exp(log_width)

    def log_prob(
        self,
        a: Float[Array, "n d"],
        x: Float[Array, "n d"],
        species: Int[Array, " n"],
        neighbours: Int[Array, "n m"],
        box: Float[Array, " d"],
    ) -> Float[Array, ""]:
        """`log r(a | x)`."""
        shift, sigma = self.centre_and_width(x, species, neighbours, box)
        delta = a - x - shift
        exponents = wrapped_normal_exponents(delta, sigma * sigma, box[None, :], self.num_images)
        return exponents - jnp.sum(jnp.log(sigma)) - delta.size * 0.5 * math.log(2 * math.pi)

    def sample(
        self,
        key: PRNGKeyArray,
        x: Float[Array, "n d"],
        species: Int[Array, " n"],
        neighbours: Int[Array, "n m"],
        box: Float[Array, " d"],
    ) -> Float[Array, "n d"]:
        """`a ~ r(. | x)`, reparameterised (differentiable in the parameters)."""
        shift, sigma = self.centre_and_width(x, species, neighbours, box)
        noise = jax.random.normal(key, x.shape, dtype=x.dtype)
        return wrap(x + shift + sigma * noise, box[None, :])
