"""Where flow-move proposals come from: a likelihood model drawing them in batches ahead of use,
or samples drawn earlier (a sample file of `mflows sample`).

Proposals do not depend on the chains' states, so they are drawn in large batches (vectorised,
or on an accelerator) before they are needed; the flow moves then only read them in order.
"""

import abc
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._flow import AbstractLikelihood
from .._flow.batch import sample


class ProposalsExhaustedError(RuntimeError):
    """A finite set of proposals (a sample file) has none left."""


class AbstractProposals(abc.ABC):
    """A stream of independent proposals `x ~ q` with their `log q(x)`, read in order by index
    (proposal `r` is the same whenever it is read, so a resumed run sees the same stream).

    Not an array container: a host-side reader. `seconds` counts the CPU seconds spent
    producing proposals in this process.
    """

    #: the `(n,)` sorted species vector of every proposal
    species: np.ndarray
    seconds: float

    @abc.abstractmethod
    def take(self, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Proposals `start .. start + count - 1`: positions `(count, n, d)` and log q
        `(count,)`. Raises `ProposalsExhaustedError` past the end of a finite stream."""

    @abc.abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """JSON settings that fix the stream (a resumed run must match them)."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """JSON description for the metadata."""

    @abc.abstractmethod
    def seconds_per_proposal(self) -> float | None:
        """CPU seconds one proposal costs (measured here, or recorded with a sample file)."""


class LikelihoodProposals(AbstractProposals):
    """Proposals drawn from a likelihood model in batches of `batch_size`: batch `b` uses the
    key `fold_in(key(seed), b)` (`manifold_flows.sample` with `chunk_size`), so proposal `r`
    depends only on `seed`, `batch_size` and `r`.

    **Arguments:**

    - `likelihood`: the model q.
    - `species`: the sorted `(n,)` species vector passed as `args`.
    - `seed`: seed of the stream.
    - `batch_size`: proposals drawn per call.
    - `chunk_size`: samples vmapped together inside a batch (`None`: the whole batch, the
      choice for an accelerator; 1: one solve after another, the choice for a CPU).
    - `dtype`: float dtype of the positions passed on (default: JAX's default float).
    """

    def __init__(
        self,
        likelihood: AbstractLikelihood,
        species: np.ndarray,
        *,
        seed: int = 0,
        batch_size: int = 64,
        chunk_size: int | None = 1,
    ):
        if not isinstance(likelihood, AbstractLikelihood):
            raise TypeError(f"`likelihood` must be an AbstractLikelihood; got {type(likelihood)}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}.")
        self.likelihood = likelihood
        self.species = np.asarray(species)
        self.seed = int(seed)
        self.batch_size = batch_size
        self.chunk_size = chunk_size
        self.seconds = 0.0
        self.drawn = 0
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _batch(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if index not in self._cache:
            tic = time.process_time()
            key = jax.random.fold_in(jax.random.key(self.seed), index)
            x, log_q = sample(
                self.likelihood,
                key,
                self.batch_size,
                jnp.asarray(self.species, jnp.int32),
                chunk_size=self.chunk_size,
            )
            self._cache = {index: (np.asarray(x, np.float64), np.asarray(log_q, np.float64))}
            self.seconds += time.process_time() - tic
            self.drawn += self.batch_size
        return self._cache[index]

    def take(self, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        xs, lqs = [], []
        r = start
        while r < start + count:
            b, offset = divmod(r, self.batch_size)
            x, lq = self._batch(b)
            stop = min(self.batch_size, offset + start + count - r)
            xs.append(x[offset:stop])
            lqs.append(lq[offset:stop])
            r += stop - offset
        return np.concatenate(xs), np.concatenate(lqs)

    def fingerprint(self) -> dict[str, Any]:
        return {"source": "likelihood", "seed": self.seed, "batch_size": self.batch_size}

    def describe(self) -> dict[str, Any]:
        return {
            **self.fingerprint(),
            "key_derivation": "batch b uses jax.random.fold_in(jax.random.key(seed), b)",
            "drawn_this_process": self.drawn,
        }

    def seconds_per_proposal(self) -> float | None:
        return self.seconds / self.drawn if self.drawn else None


class ArrayProposals(AbstractProposals):
    """Proposals drawn earlier (e.g. the sample file of `mflows sample`), read in order; each
    is handed out once (`FlowMoves` reads every index once), and reading past the end raises
    `ProposalsExhaustedError`.

    **Arguments:**

    - `positions`: `(R, n, d)` samples of q (species `species`).
    - `log_q`: `(R,)` their log-densities.
    - `species`: the sorted `(n,)` species vector.
    - `seconds_per_proposal`: what one sample cost to draw (for the cost accounting).
    - `source`: a description (e.g. the file path) for the metadata.
    """

    def __init__(
        self,
        positions: np.ndarray,
        log_q: np.ndarray,
        species: np.ndarray,
        *,
        seconds_per_proposal: float | None = None,
        source: str = "arrays",
    ):
        positions = np.asarray(positions, np.float64)
        log_q = np.asarray(log_q, np.float64)
        if positions.ndim != 3 or log_q.shape != positions.shape[:1]:
            raise ValueError(
                f"proposals need positions (R, n, d) and log_q (R,); got {positions.shape} and "
                f"{log_q.shape}."
            )
        self.positions = positions
        self.log_q = log_q
        self.species = np.asarray(species)
        self.seconds = 0.0
        self._per = seconds_per_proposal
        self.source = source

    @property
    def available(self) -> int:
        return self.positions.shape[0]

    def take(self, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        if start + count > self.available:
            raise ProposalsExhaustedError(
                f"the {self.available} proposals of {self.source} are used up (a flow block "
                f"needs proposals {start}..{start + count - 1}; each is used once); draw more "
                "samples, or make flow moves rarer."
            )
        return self.positions[start : start + count], self.log_q[start : start + count]

    def fingerprint(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "count": self.available,
            "log_q_sum": float(np.sum(self.log_q[np.isfinite(self.log_q)])),
        }

    def describe(self) -> dict[str, Any]:
        return {**self.fingerprint(), "seconds_per_proposal": self._per}

    def seconds_per_proposal(self) -> float | None:
        return self._per
