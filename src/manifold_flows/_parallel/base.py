"""The parallelism interface: how a batch computation is spread over devices."""

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
import numpy as np
from jaxtyping import Array, ArrayLike, PyTree, Shaped

#: Name of the mesh axis the batch is split along (`PartitionSpec(BATCH_AXIS)`).
BATCH_AXIS = "batch"


class AbstractParallelism(eqx.Module):
    """A strategy for running batch computations on one or several devices.

    Data parallelism splits the leading (batch) axis of the data over the devices and keeps
    one full copy of the parameters on every device. The computations written against this
    interface give the same numbers, up to the order of floating-point reductions, whatever
    the number of devices: every random draw is a function of the sample's index, never of
    the device it runs on.

    Contract:

    - `num_devices` devices take part; a batch must split evenly over them (`check_batch`).
    - `shard_batch(x)` puts a batch on the devices split along axis 0; `replicate(tree)` puts
      one full copy of every array of `tree` on every device; `to_host(x)` brings a (possibly
      split) array back to this process as NumPy and `to_local(tree)` turns every array of
      `tree` back into an ordinary one-device array.
    - `map_batch(fn, shared, batched)` evaluates `fn(shared, batched)` where `fn` maps a batch
      to per-example outputs (leading axis = batch); the result equals `fn(shared, batched)`
      on the whole batch.
    - `mean_over_batch(fn, shared, batched)` evaluates `fn`, which returns a pytree of
      *means over its batch*, and returns the means over the whole batch; with equal shards
      this equals `fn(shared, batched)` on the whole batch (the gradient of a mean loss is a
      mean, so gradients may be averaged this way).

    `map_batch` and `mean_over_batch` may be called inside `jax.jit`.
    """

    @property
    @abc.abstractmethod
    def num_devices(self) -> int:
        """How many devices share the batch."""

    @abc.abstractmethod
    def check_batch(self, size: int, what: str) -> None:
        """Raise `ValueError` (naming `what`, its value and the fix) unless a batch of `size`
        splits evenly over the devices."""

    @abc.abstractmethod
    def shard_batch(self, x: Shaped[ArrayLike, "batch ..."]) -> Shaped[Array, "batch ..."]:
        """Put the batch `x` on the devices, split along its leading axis.

        **Arguments:**

        - `x`: the whole batch (in a multi-process run, every process passes the same array).

        **Returns:**

        The batch as a JAX array (split over the devices when there are several).
        """

    @abc.abstractmethod
    def replicate(self, tree: PyTree) -> PyTree:
        """Put a full copy of every array leaf of `tree` on every device (other leaves are
        returned unchanged)."""

    @abc.abstractmethod
    def to_host(self, x: Shaped[ArrayLike, "..."]) -> np.ndarray:
        """The whole array `x` as a NumPy array on this process (gathered across processes
        in a multi-process run)."""

    @abc.abstractmethod
    def to_local(self, tree: PyTree) -> PyTree:
        """Every array leaf of `tree` (replicated or split) as an ordinary array on this
        process's default device, e.g. to hand trained weights to one-device code."""

    @abc.abstractmethod
    def map_batch(
        self, fn: Callable[[Any, Any], PyTree], shared: PyTree, batched: PyTree
    ) -> PyTree:
        """Apply a per-example computation to a batch, each device on its part.

        **Arguments:**

        - `fn`: `fn(shared, batched) -> outputs`, every output with a leading batch axis of
          the length of `batched`'s leading axis. It must treat examples independently.
        - `shared`: data every device needs in full (parameters, keys, species); may hold
          non-array leaves.
        - `batched`: a pytree of arrays with a common leading batch axis.

        **Returns:**

        The outputs of `fn` on the whole batch (split over the devices along axis 0).
        """

    @abc.abstractmethod
    def mean_over_batch(
        self, fn: Callable[[Any, Any], PyTree], shared: PyTree, batched: PyTree
    ) -> PyTree:
        """Average a batch-mean computation over the devices.

        **Arguments:**

        - `fn`: `fn(shared, batched) -> means`, a pytree of arrays, each a mean over the
          examples of `batched` (a loss, or its gradient).
        - `shared`, `batched`: as in `map_batch`.

        **Returns:**

        The means over the whole batch, one full copy on every device.
        """
