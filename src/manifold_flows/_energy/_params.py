"""Validation of species-pair parameter matrices (epsilon_ab, sigma_ab, rc_ab)."""

import jax.numpy as jnp
import numpy as np

from .._manifold import FlatTorus


def species_matrix(name: str, value, num_species: int | None = None) -> np.ndarray:
    """A symmetric, positive, finite `(S, S)` float64 matrix from `value`.

    `value` is an `(S, S)` nested sequence/array, or a scalar (the same value for every pair,
    which needs `num_species`). Raises `ValueError` naming `name` otherwise.
    """
    m = np.asarray(value, dtype=np.float64)
    if m.ndim == 0:
        if num_species is None:
            raise ValueError(
                f"`{name}` is a scalar but the number of species is unknown; pass an (S, S) "
                "matrix with one entry per species pair."
            )
        m = np.full((num_species, num_species), float(m))
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise ValueError(
            f"`{name}` must be a square (S, S) matrix, one entry per species pair; got shape "
            f"{m.shape}."
        )
    if num_species is not None and m.shape[0] != num_species:
        raise ValueError(
            f"`{name}` has shape {m.shape} but there are {num_species} species; pass a "
            f"({num_species}, {num_species}) matrix."
        )
    if not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise ValueError(f"every entry of `{name}` must be positive and finite; got {m.tolist()}.")
    if not np.allclose(m, m.T, rtol=1e-12, atol=0.0):
        raise ValueError(
            f"`{name}` must be symmetric (W_ab == W_ba); got {m.tolist()}. Fill both "
            "off-diagonal entries with the same value."
        )
    return 0.5 * (m + m.T)


def check_torus(torus) -> FlatTorus:
    """The periodic box of a pair energy must be a `FlatTorus`."""
    if not isinstance(torus, FlatTorus):
        raise TypeError(
            f"`torus` must be a FlatTorus (the periodic box); got {type(torus).__name__}. Build "
            "one with FlatTorus(L, dim=d) or FlatTorus((Lx, Ly))."
        )
    return torus


def infer_num_species(*values) -> int:
    """The number of species implied by the parameter values (1 if all are scalars)."""
    sizes = {np.shape(v)[0] for v in values if v is not None and np.ndim(v) > 0}
    if len(sizes) > 1:
        raise ValueError(
            "the species-pair parameter matrices disagree on the number of species "
            f"({sorted(sizes)}); pass (S, S) matrices of one size S."
        )
    return sizes.pop() if sizes else 1


#: Up to this many species, `gather_pairs` picks `m[si, sj]` by selects on `sj` (which XLA
#: fuses into the arithmetic of the potential) rather than by a gather.
SELECT_MAX_SPECIES = 8


def gather_pairs(r, si, sj, *matrices):
    """Broadcast `r`, `si`, `sj` together and look up `matrix[si, sj]` for each matrix.

    The lookup gathers the rows `matrix[si]` (cheap when `si` is one label, as in the energy
    row of one particle) and picks the entry of each `sj` by `S - 1` elementwise selects. On
    CPU this is several times cheaper than a gather per pair: a Monte Carlo move spends most of
    its time here. (Labels outside `[0, S)` are not checked here; `check_configuration` does.)

    **Returns:**

    `(r, m_1[si, sj], m_2[si, sj], ...)`, all of the common shape and in the dtype of `r`.
    """
    r = jnp.asarray(r)
    if not jnp.issubdtype(r.dtype, jnp.floating):
        raise TypeError(f"distances `r` must be floating point; got dtype {r.dtype}.")
    si = jnp.asarray(si)
    sj = jnp.asarray(sj)
    for name, s in (("si", si), ("sj", sj)):
        if not jnp.issubdtype(s.dtype, jnp.integer):
            raise TypeError(f"species labels `{name}` must be integers; got dtype {s.dtype}.")
    shape = jnp.broadcast_shapes(r.shape, si.shape, sj.shape)
    si = si.astype(jnp.int32)
    sj = sj.astype(jnp.int32)
    looked_up = []
    for m in matrices:
        m = jnp.asarray(m).astype(r.dtype)
        num = m.shape[1]
        if num > SELECT_MAX_SPECIES:
            value = m[si, sj]
        else:
            rows = m[si]  # si.shape + (S,)
            value = rows[..., num - 1]
            for b in range(num - 2, -1, -1):
                value = jnp.where(sj == b, rows[..., b], value)
        looked_up.append(jnp.broadcast_to(value, shape))
    return (jnp.broadcast_to(r, shape), *looked_up)
