"""Shared trace-time checks of the group actions (private)."""

from jaxtyping import Array

from .._manifold import FlatTorus


def check_torus(torus: object, owner: str) -> FlatTorus:
    """Return `torus` if it is a `FlatTorus`, else raise a `TypeError` naming `owner`."""
    if not isinstance(torus, FlatTorus):
        raise TypeError(
            f"{owner} acts on a periodic box: pass a FlatTorus as `torus` (e.g. "
            f"FlatTorus(4.472136, dim=2)); got {type(torus).__name__}."
        )
    return torus


def check_dim(dim: object, owner: str) -> int:
    """Return `dim` as an int if it is a positive integer, else raise a `ValueError`."""
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"{owner} needs a positive integer dimension `dim`; got dim={dim!r}.")
    return dim


def check_configuration(x: Array, dim: int, where: str) -> None:
    """Raise a `ValueError` unless `x` is one configuration of shape `(n, dim)`."""
    if x.ndim != 2 or x.shape[1] != dim:
        hint = " (a batch? map over it with jax.vmap)" if x.ndim == 3 else ""
        raise ValueError(
            f"{where}: `x` must be one configuration of shape (n, {dim}) (one row of {dim} "
            f"coordinates per particle); got shape {x.shape}{hint}."
        )
