"""Monte Carlo for clusters in Euclidean space with the centre of mass removed (DW4, LJ13).

The engine of `run_monte_carlo` is written for periodic boxes (`ParticleSystem`: wrapped
positions, swaps, cell lists of a torus), so clusters get this separate, small path. It reuses
the engine's acceptance rules (`AbstractAcceptance`) and its diagnostics
(`integrated_autocorrelation_time`, `mean_with_error`).

Why a displacement move followed by re-centring samples the right distribution: the energy
`U` of an `AbstractClusterEnergy` is translation invariant. A single-particle Gaussian
displacement with Metropolis acceptance is reversible in `R^(n d)` with respect to the
(unnormalisable) measure `exp(-U(x) / T) dx`, and its kernel commutes with translations. So the
image of the chain under the projector `P` (subtract the mean over particles) is itself a
Markov chain on `ZeroCenterOfMass`, reversible with respect to the image measure, which is
`exp(-U(y) / T)` times the `(n - 1) d`-dimensional volume of the subspace: the Boltzmann
density of the cluster with its centre of mass removed. Re-centring after every sweep only
picks the representative of the translation class (it changes no energy and no acceptance).
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._energy.cluster_base import AbstractClusterEnergy
from .acceptance import AbstractAcceptance, Metropolis
from .diagnostics import integrated_autocorrelation_time, mean_with_error


@dataclasses.dataclass(frozen=True)
class ClusterMCResult:
    """Samples of a cluster Monte Carlo run.

    **Fields:**

    - `positions`: `(num_chains, num_samples, n, d)`, each with zero centre of mass.
    - `energies`: total energies `U`, `(num_chains, num_samples)`.
    - `acceptance_rate`: the fraction of accepted displacements over the sampling phase.
    - `tau_energy`: integrated autocorrelation time of the energy, in samples.
    - `mean_energy`, `mean_energy_error`: the energy averaged over chains, and its standard
      error from the scatter of the chain means (the chains are independent).
    - `metadata`: temperature, step, sweeps and seed (JSON-serialisable).
    """

    positions: np.ndarray
    energies: np.ndarray
    acceptance_rate: float
    tau_energy: float
    mean_energy: float
    mean_energy_error: float
    metadata: dict

    def flat_positions(self) -> np.ndarray:
        """All samples as one array `(num_chains * num_samples, n, d)`."""
        return self.positions.reshape(-1, *self.positions.shape[2:])

    def flat_energies(self) -> np.ndarray:
        """All energies as one array `(num_chains * num_samples,)`."""
        return self.energies.reshape(-1)


def grid_configuration(num_particles: int, dim: int, spacing: float) -> np.ndarray:
    """`n` points on a cubic grid of the given spacing, centre of mass at the origin: a
    starting configuration without overlaps."""
    side = math.ceil(num_particles ** (1.0 / dim))
    axes = np.meshgrid(*([np.arange(side)] * dim), indexing="ij")
    points = np.stack([a.reshape(-1) for a in axes], axis=1)[:num_particles] * float(spacing)
    return points - points.mean(axis=0)


def _sweep(
    energy: AbstractClusterEnergy,
    acceptance: AbstractAcceptance,
    x: Float[Array, "n d"],
    key: PRNGKeyArray,
    temperature: Array,
    step: Array,
) -> tuple[Array, Array]:
    """`n` single-particle displacement moves (particle chosen at random each time), then
    re-centring. Returns the new configuration and the number of accepted moves."""
    n, d = x.shape

    def move(carry, k):
        y, accepted = carry
        k_index, k_step, k_accept = jax.random.split(k, 3)
        i = jax.random.randint(k_index, (), 0, n)
        proposed = y.at[i].add(step * jax.random.normal(k_step, (d,), y.dtype))
        delta = energy.particle_energy(proposed, i) - energy.particle_energy(y, i)
        log_u = jnp.log(jax.random.uniform(k_accept, (), y.dtype, minval=jnp.finfo(y.dtype).tiny))
        accept = log_u <= acceptance.log_probability(delta, temperature)
        return (jnp.where(accept, proposed, y), accepted + accept.astype(jnp.int32)), None

    (x, accepted), _ = jax.lax.scan(move, (x, jnp.zeros((), jnp.int32)), jax.random.split(key, n))
    return x - jnp.mean(x, axis=0, keepdims=True), accepted


def _run_block(energy, acceptance, x, key, temperature, step, num_samples, sweeps_per_sample):
    """Vectorised over chains: `num_samples` samples, `sweeps_per_sample` sweeps apart."""
    species = jnp.zeros(x.shape[1], jnp.int32)

    def one_chain(y, k):
        def sample(carry, k_sample):
            z, accepted = carry

            def sweep(c, k_sweep):
                z_new, a = _sweep(energy, acceptance, c[0], k_sweep, temperature, step)
                return (z_new, c[1] + a), None

            (z, accepted), _ = jax.lax.scan(
                sweep, (z, accepted), jax.random.split(k_sample, sweeps_per_sample)
            )
            return (z, accepted), (z, energy(z, species))

        (y, accepted), (samples, energies) = jax.lax.scan(
            sample, (y, jnp.zeros((), jnp.int32)), jax.random.split(k, num_samples)
        )
        return y, accepted, samples, energies

    keys = jax.random.split(key, x.shape[0])
    return jax.jit(jax.vmap(one_chain))(x, keys)


def cluster_monte_carlo(
    energy: AbstractClusterEnergy,
    *,
    temperature: float,
    num_particles: int,
    num_chains: int,
    num_samples: int,
    sweeps_per_sample: int,
    burn_in_sweeps: int,
    displacement: float,
    key: PRNGKeyArray,
    initial: np.ndarray | None = None,
    spacing: float = 1.0,
    acceptance: AbstractAcceptance | None = None,
) -> ClusterMCResult:
    """Sample the Boltzmann distribution `exp(-U / T)` of a cluster on `ZeroCenterOfMass`.

    Each chain starts from `initial` (or a cubic grid of the given `spacing`), runs
    `burn_in_sweeps` sweeps that are discarded, then records `num_samples` configurations
    `sweeps_per_sample` sweeps apart. A sweep is `n` single-particle Gaussian displacements of
    standard deviation `displacement` per axis, accepted by `acceptance` (Metropolis by
    default), followed by re-centring (why that is exact: see the module docstring).

    **Arguments:**

    - `energy`: an `AbstractClusterEnergy` (e.g. `get_cluster_system("dw4").energy`).
    - `temperature`: `T > 0`.
    - `num_particles`: `n`.
    - `num_chains`, `num_samples`, `sweeps_per_sample`, `burn_in_sweeps`: the run's size.
    - `displacement`: the step (positive).
    - `key`: PRNG key.
    - `initial`: starting configuration(s), `(n, d)` or `(num_chains, n, d)`.
    - `spacing`: the grid spacing of the default start.
    - `acceptance`: an `AbstractAcceptance` (default `Metropolis()`).

    **Returns:**

    A `ClusterMCResult`.
    """
    if not isinstance(energy, AbstractClusterEnergy):
        raise TypeError(
            "cluster_monte_carlo needs an AbstractClusterEnergy (DoubleWellPair, "
            f"LennardJonesCluster); got {type(energy).__name__}. Periodic systems use "
            "run_monte_carlo."
        )
    for name, value in (
        ("num_particles", num_particles),
        ("num_chains", num_chains),
        ("num_samples", num_samples),
        ("sweeps_per_sample", sweeps_per_sample),
    ):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(
                f"cluster_monte_carlo: `{name}` must be a positive integer; got {value!r}."
            )
    if (
        isinstance(burn_in_sweeps, bool)
        or int(burn_in_sweeps) != burn_in_sweeps
        or burn_in_sweeps < 0
    ):
        raise ValueError(
            "cluster_monte_carlo: `burn_in_sweeps` must be an integer >= 0; got "
            f"{burn_in_sweeps!r}."
        )
    for name, value in (("temperature", temperature), ("displacement", displacement)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"cluster_monte_carlo: `{name}` must be positive; got {value!r}.")
    acceptance = Metropolis() if acceptance is None else acceptance
    n, d = int(num_particles), energy.dim
    if initial is None:
        initial = grid_configuration(n, d, spacing)
    initial = np.asarray(initial, dtype=float)
    if initial.shape == (n, d):
        initial = np.broadcast_to(initial, (num_chains, n, d))
    if initial.shape != (num_chains, n, d):
        raise ValueError(
            f"cluster_monte_carlo: `initial` must have shape ({n}, {d}) or ({num_chains}, {n}, "
            f"{d}); got {initial.shape}."
        )
    x = jnp.asarray(initial - initial.mean(axis=1, keepdims=True))
    t = jnp.asarray(temperature, x.dtype)
    step = jnp.asarray(displacement, x.dtype)
    burn_key, run_key = jax.random.split(key)
    if burn_in_sweeps:
        x, _, _, _ = _run_block(energy, acceptance, x, burn_key, t, step, 1, int(burn_in_sweeps))
    _, accepted, samples, energies = _run_block(
        energy, acceptance, x, run_key, t, step, int(num_samples), int(sweeps_per_sample)
    )
    energies = np.asarray(energies, dtype=np.float64)
    moves = num_chains * num_samples * sweeps_per_sample * n
    tau = integrated_autocorrelation_time(energies)
    mean, error = mean_with_error(energies.mean(axis=1))
    return ClusterMCResult(
        positions=np.asarray(samples, dtype=np.float64),
        energies=energies,
        acceptance_rate=float(np.sum(np.asarray(accepted))) / moves,
        tau_energy=float(tau.tau),
        mean_energy=mean,
        mean_energy_error=error,
        metadata={
            "temperature": float(temperature),
            "displacement": float(displacement),
            "num_chains": int(num_chains),
            "num_samples": int(num_samples),
            "sweeps_per_sample": int(sweeps_per_sample),
            "burn_in_sweeps": int(burn_in_sweeps),
            "acceptance": type(acceptance).__name__,
        },
    )
