"""`SingleDevice`: everything on JAX's default device (the default; no overhead)."""

import jax.numpy as jnp
import numpy as np

from .base import AbstractParallelism


class SingleDevice(AbstractParallelism):
    """Run every batch computation on one device, as plain JAX code.

    `map_batch` and `mean_over_batch` call the function on the whole batch; `shard_batch`
    and `replicate` do not move data. This is what every entry point uses when no
    parallelism is asked for, and it adds nothing to the computation.
    """

    @property
    def num_devices(self) -> int:
        return 1

    def check_batch(self, size, what):
        del size, what

    def shard_batch(self, x):
        return jnp.asarray(x)

    def replicate(self, tree):
        return tree

    def to_host(self, x):
        return np.asarray(x)

    def to_local(self, tree):
        return tree

    def map_batch(self, fn, shared, batched):
        return fn(shared, batched)

    def mean_over_batch(self, fn, shared, batched):
        return fn(shared, batched)
