"""The hook through which `run_monte_carlo` runs moves beyond the local ones (e.g. flow moves).

`run_monte_carlo` advances its chains with `advance` (local sweeps inside one jitted scan).
An `AbstractExtraMoves` replaces that call by its own, which may interleave other moves with
the local sweeps, and adds their acceptance counts as extra move types. It keeps whatever
state its moves need between calls (host arrays) and hands it to the checkpoint, so a resumed
run continues exactly.
"""

import abc
from typing import Any

import numpy as np
from jaxtyping import Array, Bool, Float

from .._energy import AbstractPairEnergy
from .acceptance import AbstractAcceptance
from .advance import AdvanceOutput, KernelSettings
from .state import SamplerState


class AbstractExtraMoves(abc.ABC):
    """Moves interleaved with the local sweeps of `run_monte_carlo` (a host-side driver, not
    an array container).

    Contract: `advance` has the signature and meaning of `manifold_flows.advance` (run
    `len(temperatures)` sweeps, the inactive ones doing nothing, then reset the running energy
    to the exact one), with the extra moves inserted between sweeps; each extra move must leave
    the Boltzmann law at the sweep's temperature invariant. Its `AdvanceOutput.accepted` /
    `attempted` carry one more column per name in `names`, after the local move types.
    """

    #: names of the extra move types (acceptance tables, progress, metadata)
    names: tuple[str, ...]

    @abc.abstractmethod
    def advance(
        self,
        energy: AbstractPairEnergy,
        acceptance: AbstractAcceptance,
        sampler: SamplerState,
        temperatures: Float[Array, " s"],
        active: Bool[Array, " s"],
        tune: Bool[Array, ""],
        settings: KernelSettings,
    ) -> tuple[SamplerState, AdvanceOutput]:
        """`advance` with the extra moves interleaved (see the class docstring)."""

    @abc.abstractmethod
    def state_arrays(self) -> dict[str, np.ndarray]:
        """The driver's state after the current call, saved with every checkpoint block."""

    @abc.abstractmethod
    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore the state saved by `state_arrays` (when a run resumes)."""

    @abc.abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """JSON settings a resumed run must match."""

    @abc.abstractmethod
    def metadata(self) -> dict[str, Any]:
        """JSON description of the moves and their costs, stored in the dataset metadata."""
