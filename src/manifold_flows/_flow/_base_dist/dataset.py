"""A base distribution backed by a dataset at another temperature (unnormalised density)."""

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, PyTree

from ..._io import Dataset
from ..._manifold import FlatTorus, ParticleSpace
from .base import AbstractBase


class DatasetBase(AbstractBase):
    """Frames of a dataset sampled at temperature `T_base`, with the Boltzmann log-density

        log_prob(x) = -U(x) / T_base        (UNNORMALISED: log Z(T_base) is unknown).

    `sample` draws one stored frame uniformly at random, so the base is the Boltzmann
    distribution at `T_base` to the extent that the dataset is an equilibrium sample of it.
    Because the log-density lacks `-log Z(T_base)`, every log q built on this base is relative:
    importance weights and ESS are unaffected (self-normalised), but a log Z estimate is
    `log Z(T) - log Z(T_base)`, not absolute. The class is **not** an `AbstractNormalizedBase`,
    so `base.normalized` is `False` and downstream code reports log Z as relative.

    **Arguments:**

    - `dataset`: a `Dataset` (canonical: wrapped, species-sorted).
    - `energy`: the total potential energy `U(x, species)` of one configuration (an
      `AbstractEnergy` or any callable with that signature).
    - `temperature`: `T_base`. Defaults to `dataset.temperature`; if both are given they must
      agree (a dataset at another temperature than asked is an error).
    - `dtype`: floating dtype of the stored frames (default: JAX's default float).
    """

    space: ParticleSpace
    positions: Float[Array, "r n d"]
    species: Int[Array, " n"]
    energy: Callable
    temperature: float = eqx.field(static=True)

    def __init__(
        self,
        dataset: Dataset,
        energy: Callable,
        temperature: float | None = None,
        *,
        dtype=None,
    ):
        if not isinstance(dataset, Dataset):
            raise TypeError(f"DatasetBase needs a Dataset; got {type(dataset)}.")
        if not callable(energy):
            raise TypeError(
                f"DatasetBase needs `energy`, a callable U(x, species); got {type(energy)}."
            )
        if temperature is None:
            if dataset.temperature is None:
                raise ValueError(
                    "DatasetBase needs the base temperature: the dataset records none, so pass "
                    "temperature=T_base (the temperature the frames were generated at)."
                )
            temperature = dataset.temperature
        temperature = float(temperature)
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"DatasetBase temperature must be positive; got {temperature}.")
        if dataset.temperature is not None and not math.isclose(
            dataset.temperature, temperature, rel_tol=1e-9
        ):
            raise ValueError(
                f"DatasetBase: the dataset was generated at T={dataset.temperature} but "
                f"temperature={temperature} was asked; pass a dataset at T={temperature} or "
                "drop the temperature argument."
            )
        dtype = jnp.result_type(float) if dtype is None else jnp.dtype(dtype)
        self.space = ParticleSpace(FlatTorus(tuple(dataset.box)), dataset.num_particles)
        self.positions = jnp.asarray(dataset.positions, dtype=dtype)
        self.species = jnp.asarray(dataset.species)
        self.energy = energy
        self.temperature = temperature

    @property
    def num_frames(self) -> int:
        return self.positions.shape[0]

    def sample(self, key: PRNGKeyArray, args: PyTree) -> Float[Array, "n d"]:
        index = jax.random.randint(key, (), 0, self.num_frames)
        return self._check_args(self.positions[index], args)

    def log_prob(self, x: Float[ArrayLike, "n d"], args: PyTree) -> Float[Array, ""]:
        x = self._check_args(jnp.asarray(x), args)
        u = self.energy(x, self.species)
        return (-u / self.temperature).astype(x.dtype)

    def _check_args(self, x: Array, args: PyTree) -> Array:
        # For particle flows `args` is the species vector; it must be the dataset's, since the
        # energy is evaluated with the dataset's species.
        if isinstance(args, jax.Array | np.ndarray) and args.shape == self.species.shape:
            x = eqx.error_if(
                x,
                jnp.any(jnp.asarray(args) != self.species),
                "DatasetBase: the species vector passed in `args` differs from the dataset's; "
                "the flow and its base must describe the same particles.",
            )
        return x
