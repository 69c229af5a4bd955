"""Build a coupling from configuration values (config files and the CLI)."""

from .._manifold import AbstractManifold
from .base import AbstractCoupling
from .independent import IndependentCoupling
from .species_ot import AuctionOTCoupling, SpeciesOTCoupling

#: The names `build_coupling` accepts.
COUPLING_NAMES: tuple[str, ...] = ("independent", "species_ot", "species_ot_auction")


def build_coupling(
    name: str, manifold: AbstractManifold | None = None, *, point_group: bool = False
) -> AbstractCoupling:
    """Build a coupling by name: `"independent"`, `"species_ot"` (per-species Hungarian
    pairing on the squared distance of `manifold`, solved on the host; `point_group=True` also
    minimises over the box point group, which needs a `FlatTorus`) or `"species_ot_auction"`
    (the same pairing solved on the device by an auction, `AuctionOTCoupling`: for GPUs).
    Unknown names raise `ValueError`."""
    if name not in COUPLING_NAMES:
        raise ValueError(
            f"unknown coupling name {name!r}; valid names are: {', '.join(COUPLING_NAMES)}."
        )
    if name == "independent":
        if point_group:
            raise ValueError(
                "coupling 'independent' does not search the point group; set point_group = "
                "false or use 'species_ot' or 'species_ot_auction'."
            )
        return IndependentCoupling()
    if manifold is None:
        raise ValueError(f"coupling {name!r} needs the manifold whose distance is the cost.")
    if name == "species_ot_auction":
        return AuctionOTCoupling(manifold, point_group=point_group or None)
    return SpeciesOTCoupling(manifold, point_group=point_group or None)
