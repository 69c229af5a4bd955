"""The wrapped normal on a torus: a normal density summed over periodic images."""

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float


def _num_images(scale: float, lengths: tuple[float, ...]) -> int:
    """Periodic images `n = -K..K` that make the wrapped normal exact in float64: the first
    image left out is smaller than the nearest one by `exp(-K (K + 1) L^2 / (2 sigma^2))`,
    below 1e-17 when `K (K + 1) >= 80 sigma^2 / L^2`."""
    ratio = 80 * scale**2 / min(lengths) ** 2
    k = 1
    while k * (k + 1) < ratio:
        k += 1
    return k


def wrapped_normal_exponents(
    delta: Float[Array, "..."], variance: Float[ArrayLike, "..."], box: Float[Array, "..."],
    num_images: int,
) -> Float[Array, ""]:  # fmt: skip
    """`sum log sum_{|m| <= num_images} exp(-(delta + m L)^2 / (2 variance))` over the entries
    of `delta` (any representatives; `box` of the same rank, broadcasting against it;
    `variance` one for all entries or one per entry): the wrapped normal log-density without
    its normaliser `-1/2 sum log(2 pi variance)` over the entries."""
    delta = delta - box * jnp.round(delta / box)
    images = jnp.arange(-num_images, num_images + 1).astype(delta.dtype)
    shifted = delta[..., None] + images.reshape((1,) * delta.ndim + (-1,)) * box[..., None]
    log_terms = -0.5 * shifted * shifted / jnp.broadcast_to(variance, delta.shape)[..., None]
    return jnp.sum(jax.scipy.special.logsumexp(log_terms, axis=-1))


def wrapped_normal_log_prob(
    delta: Float[Array, "n d"], scale: float, box: Float[Array, "1 d"], num_images: int
) -> Float[Array, ""]:
    """`sum_{i,k} log sum_{|m| <= num_images} N(delta_ik + m L_k; 0, scale^2)`: the wrapped
    normal log-density of the displacements `delta` (any representatives)."""
    variance = scale**2
    const = 0.5 * math.log(2 * math.pi * variance)
    return wrapped_normal_exponents(delta, variance, box, num_images) - delta.size * const
