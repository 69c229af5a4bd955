from .auction import auction_assignment as auction_assignment
from .base import (
    AbstractCoupling as AbstractCoupling,
    AbstractHostCoupling as AbstractHostCoupling,
    transport_cost as transport_cost,
)
from .build import COUPLING_NAMES as COUPLING_NAMES, build_coupling as build_coupling
from .independent import IndependentCoupling as IndependentCoupling
from .species_ot import (
    AuctionOTCoupling as AuctionOTCoupling,
    SpeciesOTCoupling as SpeciesOTCoupling,
)

__all__ = [
    "COUPLING_NAMES",
    "AbstractCoupling",
    "AbstractHostCoupling",
    "AuctionOTCoupling",
    "IndependentCoupling",
    "SpeciesOTCoupling",
    "auction_assignment",
    "build_coupling",
    "transport_cost",
]
