"""Initial configurations for Monte Carlo chains: random and free of hard overlaps."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from .._energy import AbstractPairEnergy


def contact_distances(energy: AbstractPairEnergy, max_pair_energy: float) -> np.ndarray:
    """For each species pair `(a, b)`, the distance below which the pair energy exceeds
    `max_pair_energy` (found by bisection on the repulsive core; `0` for a potential that never
    reaches it). Shape `(S, S)`."""
    s = energy.num_species
    rc = float(energy.max_cutoff())
    a, b = np.meshgrid(np.arange(s), np.arange(s), indexing="ij")
    a = jnp.asarray(a.reshape(-1), dtype=jnp.int32)
    b = jnp.asarray(b.reshape(-1), dtype=jnp.int32)
    dtype = jnp.result_type(float)

    def w(r):
        return np.asarray(energy.pair_energy(jnp.asarray(r, dtype=dtype), a, b))

    lo = np.full(a.shape, 1e-6 * rc)
    hi = np.full(a.shape, rc)
    above = w(lo) > max_pair_energy
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        up = w(mid) > max_pair_energy
        lo = np.where(up, mid, lo)
        hi = np.where(up, hi, mid)
    return np.where(above, hi, 0.0).reshape(s, s)


def random_configurations(
    energy: AbstractPairEnergy,
    species: np.ndarray,
    num_configurations: int,
    *,
    key: PRNGKeyArray,
    max_pair_energy: float = 1e3,
    max_attempts: int = 2000,
) -> np.ndarray:
    """Random configurations without hard overlaps, by random sequential insertion.

    Particles are inserted one at a time (in random order) at uniform positions, rejecting a
    position closer than the contact distance to a particle already placed, the contact
    distance being where the pair energy reaches `max_pair_energy`. Every pair energy of the
    result is therefore at most `max_pair_energy`: the configuration is finite but not relaxed
    (equilibration, optionally annealed from a high temperature, relaxes it). If a dense
    system cannot be filled, the criterion is softened (tenfold higher energy) and the
    insertion retried.

    **Arguments:**

    - `energy`: the pair energy (its box and potentials).
    - `species`: `(n,)` integer labels.
    - `num_configurations`: how many independent configurations.
    - `key`: PRNG key.
    - `max_pair_energy`: the largest pair energy allowed at insertion.
    - `max_attempts`: insertion attempts per particle before the criterion is softened.

    **Returns:**

    Float64 NumPy array `(num_configurations, n, d)`, wrapped into the box.
    """
    species = np.asarray(species)
    n = species.shape[0]
    box = np.asarray(energy.torus.lengths, dtype=np.float64)
    seed = np.asarray(jax.random.key_data(key)).reshape(-1).astype(np.uint64)
    rng = np.random.default_rng(seed)
    out = np.empty((num_configurations, n, box.shape[0]))
    threshold = float(max_pair_energy)
    for c in range(num_configurations):
        for _ in range(12):
            config = _insert(rng, species, box, contact_distances(energy, threshold), max_attempts)
            if config is not None:
                out[c] = config
                break
            threshold *= 10.0
        else:
            raise ValueError(
                f"could not place {n} particles in the box {tuple(box)} without overlaps; the "
                "density is too high for the potentials: lower the density (or enlarge the box)."
            )
    return out


def _insert(
    rng: np.random.Generator,
    species: np.ndarray,
    box: np.ndarray,
    contact: np.ndarray,
    max_attempts: int,
) -> np.ndarray | None:
    n, d = species.shape[0], box.shape[0]
    batch = 64
    placed = np.empty((n, d))
    placed_species = np.empty(n, dtype=np.int64)
    count = 0
    for p in rng.permutation(n):
        s = species[p]
        for _ in range(math.ceil(max_attempts / batch)):
            cand = rng.uniform(size=(batch, d)) * box
            if count == 0:
                choice = cand[0]
                break
            delta = cand[:, None, :] - placed[None, :count, :]
            delta -= box * np.round(delta / box)
            dist = np.sqrt(np.sum(delta**2, axis=-1))
            ok = np.all(dist >= contact[s, placed_species[:count]][None, :], axis=1)
            if np.any(ok):
                choice = cand[int(np.argmax(ok))]
                break
        else:
            return None
        placed[count] = choice
        placed_species[count] = s
        count += 1
    return _reorder(placed, placed_species, species)


def _reorder(placed: np.ndarray, placed_species: np.ndarray, species: np.ndarray) -> np.ndarray:
    """Positions ordered so that particle `k` has label `species[k]` (labels are a multiset, so
    match them species by species)."""
    out = np.empty_like(placed)
    for s in np.unique(species):
        out[species == s] = placed[placed_species == s]
    return out
