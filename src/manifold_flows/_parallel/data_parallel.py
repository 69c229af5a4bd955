"""`DataParallel`: the batch split over a 1-D mesh of devices, parameters replicated."""

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .base import BATCH_AXIS, AbstractParallelism


class DataParallel(AbstractParallelism):
    """Data parallelism over a 1-D `jax.sharding.Mesh` whose one axis is named `"batch"`.

    Batches are split along their leading axis (`NamedSharding(mesh, PartitionSpec("batch"))`),
    parameters and optimiser state are replicated (`PartitionSpec()`). `map_batch` and
    `mean_over_batch` run the per-device function with `jax.shard_map`: each device works on
    its own examples, and `mean_over_batch` averages the results with one all-reduce
    (`jax.lax.pmean`), which is how gradients are combined. Keep host callbacks out of the
    per-device function: on a mesh of CPU devices a `jax.pure_callback` there can deadlock
    (JAX stages its inputs on CPU device 0, itself busy with its part); `train_step` solves
    the coupling's assignment on the host between two compiled functions for that reason.

    The mesh may span several processes (hosts) after `initialize_distributed`: the program is
    then run by every process, every process passes the same global batch to `shard_batch`
    (each keeps its own devices' part), and `to_host` gathers split results on every process.

    **Fields:**

    - `mesh`: the mesh (hashable, so a jitted function compiles once per mesh).
    """

    mesh: Mesh = eqx.field(static=True)

    def __init__(self, devices: Sequence[jax.Device] | None = None):
        """**Arguments:**

        - `devices`: the devices to use, in mesh order (default: every device of every
          process, `jax.devices()`). At least one.
        """
        devices = list(jax.devices() if devices is None else devices)
        if not devices:
            raise ValueError("DataParallel needs at least one device; got an empty list.")
        if len({id(d) for d in devices}) != len(devices):
            raise ValueError(f"DataParallel got a device twice in {devices}; list each once.")
        self.mesh = Mesh(np.asarray(devices, dtype=object), (BATCH_AXIS,))

    @property
    def num_devices(self) -> int:
        return int(self.mesh.devices.size)

    @property
    def batch_sharding(self) -> NamedSharding:
        """Arrays split along their leading axis over the mesh."""
        return NamedSharding(self.mesh, PartitionSpec(BATCH_AXIS))

    @property
    def replicated_sharding(self) -> NamedSharding:
        """One full copy on every device of the mesh."""
        return NamedSharding(self.mesh, PartitionSpec())

    def check_batch(self, size, what):
        if int(size) % self.num_devices:
            n = self.num_devices
            lower, upper = (int(size) // n) * n, -(-int(size) // n) * n
            options = f"{lower} or {upper}" if lower > 0 else f"{upper}"
            raise ValueError(
                f"{what} = {size} does not split evenly over {n} devices; use a multiple of "
                f"{n} (e.g. {options}) or fewer devices (--devices)."
            )

    def shard_batch(self, x):
        self.check_batch(np.shape(x)[0], "the batch size")
        return _place(x, self.batch_sharding)

    def replicate(self, tree):
        sharding = self.replicated_sharding
        return jax.tree.map(lambda a: _place(a, sharding) if eqx.is_array(a) else a, tree)

    def to_host(self, x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    def to_local(self, tree):
        return jax.tree.map(lambda a: _local(a, self.to_host) if eqx.is_array(a) else a, tree)

    def map_batch(self, fn, shared, batched):
        arrays, static = eqx.partition(shared, eqx.is_array)

        def local(arrays, batched):
            return fn(eqx.combine(arrays, static), batched)

        return self._shard_map(local, PartitionSpec(BATCH_AXIS))(arrays, batched)

    def mean_over_batch(self, fn, shared, batched):
        arrays, static = eqx.partition(shared, eqx.is_array)

        def local(arrays, batched):
            means = fn(eqx.combine(arrays, static), batched)
            return jax.tree.map(lambda v: jax.lax.pmean(v, BATCH_AXIS), means)

        return self._shard_map(local, PartitionSpec())(arrays, batched)

    def _shard_map(self, local, out_spec):
        # check_vma=False: diffrax's adaptive loops are not annotated for the
        # varying-manual-axes checker; the outputs' specs are ensured by
        # construction (per-example outputs stay split, means are all-reduced).
        return jax.shard_map(
            local,
            mesh=self.mesh,
            in_specs=(PartitionSpec(), PartitionSpec(BATCH_AXIS)),
            out_specs=out_spec,
            check_vma=False,
        )


def _is_key(x) -> bool:
    return jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _local(x, to_host) -> jax.Array:
    if _is_key(x):
        data = jax.random.key_data(x)
        return jax.random.wrap_key_data(jnp.asarray(to_host(data)), impl=jax.random.key_impl(x))
    return jnp.asarray(to_host(x))


def _place(x, sharding: NamedSharding) -> jax.Array:
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    # Several processes: each one builds the parts that live on its own devices from the
    # global value, which every process holds.
    if _is_key(x):
        data = _place(jax.random.key_data(x), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
