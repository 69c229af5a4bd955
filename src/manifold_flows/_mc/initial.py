"""Initial configurations for Monte Carlo chains: random and free of hard overlaps."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from .._energy import AbstractPairEnergy


def contact_distances(energy: AbstractPairEnergy, max_pair_energy: float) -> np.ndarray:
    """For each species pair `(a, b)`, the distance below which the pair energy exceeds
    `max_pair_energy` (to 0.2 % on a geometric grid; `0` for a potential that never reaches
    it). Shape `(S, S)`."""
    s = energy.num_species
    rc = float(energy.max_cutoff())
    r = np.geomspace(1e-4 * rc, rc, 4096)
    a, b = np.meshgrid(np.arange(s), np.arange(s), indexing="ij")
    w = np.asarray(
        _pair_table(
            energy,
            jnp.asarray(r, dtype=jnp.result_type(float)),
            jnp.asarray(a.reshape(-1), dtype=jnp.int32),
            jnp.asarray(b.reshape(-1), dtype=jnp.int32),
        )
    )  # (S*S, grid)
    above = w > max_pair_energy
    # the core: the leading run of grid points above the threshold
    core = np.cumprod(above, axis=1).sum(axis=1)
    dist = np.where(core > 0, r[np.minimum(core, r.size - 1)], 0.0)
    return dist.reshape(s, s)


@eqx.filter_jit
def _pair_table(energy: AbstractPairEnergy, r, a, b):
    return energy.pair_energy(r[None, :], a[:, None], b[:, None])


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
    contacts: dict[float, np.ndarray] = {}
    for c in range(num_configurations):
        for _ in range(12):
            if threshold not in contacts:
                contacts[threshold] = contact_distances(energy, threshold)
            config = _insert(rng, species, box, contacts[threshold], max_attempts)
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
