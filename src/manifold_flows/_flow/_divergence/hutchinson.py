"""Hutchinson's stochastic trace estimator, with the probe fixed along a trajectory."""

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, Shaped

from ..._manifold import AbstractManifold
from .base import AbstractStochasticDivergence, PointField, is_flat_embedded

_DISTRIBUTIONS = ("rademacher", "gaussian")


class HutchinsonDivergence(AbstractStochasticDivergence):
    """Unbiased divergence estimate `mean_p z_p^T P J P z_p` from a few random probes.

    The probes `z_p` (shape `(num_probes, *point_shape)`, entries Rademacher +-1 or standard
    Gaussian, so `E[z z^T] = I`) are drawn once per trajectory by `init_probe` and reused at
    every step. On an embedded manifold the probes are projected onto the tangent space at
    each evaluation (`E[P z z^T P] = P`, so the estimate is unbiased for `tr(P J) =
    div v`). Each probe costs one forward-mode pass (vmapped over probes after a single
    `jax.linearize`).

    The estimate is unbiased for the divergence, hence for log q, but `exp(log q)` is not:
    never use it for importance weights (use `ExactDivergence`).

    **Arguments:**

    - `num_probes`: number of probes averaged at every evaluation.
    - `distribution`: `"rademacher"` (lower variance) or `"gaussian"`.
    """

    num_probes: int = eqx.field(static=True)
    distribution: Literal["rademacher", "gaussian"] = eqx.field(static=True)

    def __init__(
        self,
        num_probes: int = 1,
        distribution: str = "rademacher",
    ):
        if int(num_probes) != num_probes or num_probes < 1:
            raise ValueError(
                f"HutchinsonDivergence(num_probes=...) must be a positive integer; got "
                f"{num_probes!r}."
            )
        if distribution not in _DISTRIBUTIONS:
            raise ValueError(
                f"HutchinsonDivergence(distribution=...) must be one of {_DISTRIBUTIONS}; got "
                f"{distribution!r}."
            )
        self.num_probes = int(num_probes)
        self.distribution = distribution

    def init_probe(
        self, key: PRNGKeyArray | None, space: AbstractManifold, x: Shaped[Array, "..."]
    ) -> Shaped[Array, "p ..."]:
        if key is None:
            raise ValueError(
                "HutchinsonDivergence draws a random probe per trajectory and needs a PRNG "
                "key: pass `key=jax.random.key(...)` (or use ExactDivergence)."
            )
        shape = (self.num_probes, *x.shape)
        if self.distribution == "rademacher":
            return jax.random.rademacher(key, shape, dtype=x.dtype)
        return jax.random.normal(key, shape, dtype=x.dtype)

    def __call__(
        self,
        fn: PointField,
        x: Shaped[Array, "..."],
        probe: Shaped[Array, "p ..."],
        space: AbstractManifold,
    ) -> tuple[Shaped[Array, "..."], Float[Array, ""]]:
        if probe is None or probe.shape != (self.num_probes, *x.shape):
            raise ValueError(
                f"HutchinsonDivergence expected a probe of shape {(self.num_probes, *x.shape)} "
                f"from init_probe; got {None if probe is None else probe.shape}."
            )
        v, jvp_fn = jax.linearize(fn, x)
        if not is_flat_embedded(space):
            on_manifold = space.project(x)
            probe = jax.vmap(lambda z: space.project_tangent(on_manifold, z))(probe)
        jz = jax.vmap(jvp_fn)(probe)
        per_probe = jnp.sum((probe * jz).reshape(self.num_probes, -1), axis=1)
        return v, jnp.mean(per_probe)
