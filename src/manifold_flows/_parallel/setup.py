"""Choosing the devices of a run, and joining several processes into one JAX runtime."""

import os

import jax

from .base import AbstractParallelism
from .data_parallel import DataParallel
from .single import SingleDevice

#: Environment variables read by `initialize_distributed` when an argument is not given.
ENV_COORDINATOR = "MFLOWS_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "MFLOWS_NUM_PROCESSES"
ENV_PROCESS_ID = "MFLOWS_PROCESS_ID"


def parse_devices(value: str | int | None) -> str | int | None:
    """Read a `--devices` value: `"all"`, a positive integer (as text or int) or `None`."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    text = str(value).strip().lower()
    if text == "all":
        return "all"
    try:
        return int(text)
    except ValueError:
        raise ValueError(
            f"devices must be 'all' or a positive number of devices; got {value!r} (e.g. "
            "--devices all or --devices 2)."
        ) from None


def make_parallelism(devices: str | int | None = None) -> AbstractParallelism:
    """The parallelism strategy for a number of devices.

    **Arguments:**

    - `devices`: `None` or `1` (one device, the default), `"all"` (every device of every
      process, `jax.devices()`) or a number `k` (the first `k` of them).

    **Returns:**

    `SingleDevice()` when one device is used (no overhead at all), else `DataParallel` over
    the chosen devices.

    **Raises:**

    `ValueError` when `devices` is not `"all"` or a positive integer, asks for more devices
    than exist, or asks for a subset of the devices in a multi-process run (each process must
    take part with all its devices).
    """
    devices = parse_devices(devices)
    available = jax.devices()
    if devices is None:
        return SingleDevice()
    if devices == "all":
        chosen = available
    else:
        if devices < 1:
            raise ValueError(f"devices must be 'all' or a positive integer; got {devices}.")
        if devices > len(available):
            kinds = sorted({d.platform for d in available})
            raise ValueError(
                f"devices={devices} asks for more devices than JAX sees ({len(available)} "
                f"{'/'.join(kinds)} device(s)); use --devices all or at most {len(available)} "
                "(on CPU, XLA_FLAGS=--xla_force_host_platform_device_count=K makes K devices)."
            )
        if jax.process_count() > 1 and devices != len(available):
            raise ValueError(
                f"devices={devices} takes a subset of the {len(available)} devices of a "
                f"{jax.process_count()}-process run; use --devices all (every process must "
                "take part with all its devices)."
            )
        chosen = available[:devices]
    if len(chosen) == 1 and jax.process_count() == 1:
        return SingleDevice()
    return DataParallel(chosen)


def is_main_process() -> bool:
    """Whether this process writes files (process 0; always true in a one-process run)."""
    return jax.process_index() == 0


def _from_env(value, name: str, cast):
    if value is not None:
        return value
    text = os.environ.get(name)
    if text is None or text.strip() == "":
        return None
    try:
        return cast(text.strip())
    except ValueError:
        raise ValueError(
            f"environment variable {name}={text!r} is not a valid {cast.__name__}; fix or unset it."
        ) from None


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Join this process to a multi-process (multi-host) JAX run: `jax.distributed.initialize`.

    Call it once per process, first thing, before any JAX computation; every process then sees
    the devices of all processes in `jax.devices()`, and `make_parallelism("all")` splits
    batches over all of them. Arguments left out are read from the environment variables
    `MFLOWS_COORDINATOR_ADDRESS` (`host:port` of process 0), `MFLOWS_NUM_PROCESSES` and
    `MFLOWS_PROCESS_ID`; if all three are absent, JAX detects them itself on clusters it
    knows (Slurm, Open MPI, Cloud TPU).

    **Arguments:**

    - `coordinator_address`: `host:port` where process 0 listens (reachable by all).
    - `num_processes`: the number of processes in the run.
    - `process_id`: this process's index, `0 <= process_id < num_processes`.

    **Raises:**

    `ValueError` when the settings are incomplete or inconsistent, `RuntimeError` (from JAX)
    when JAX already ran a computation in this process.
    """
    coordinator_address = _from_env(coordinator_address, ENV_COORDINATOR, str)
    num_processes = _from_env(num_processes, ENV_NUM_PROCESSES, int)
    process_id = _from_env(process_id, ENV_PROCESS_ID, int)
    given = {
        "coordinator address": coordinator_address,
        "number of processes": num_processes,
        "process id": process_id,
    }
    missing = [name for name, v in given.items() if v is None]
    if missing and len(missing) < len(given):
        raise ValueError(
            f"distributed run: the {', '.join(missing)} is not set; give all three "
            f"(--coordinator-address/--num-processes/--process-id or {ENV_COORDINATOR}, "
            f"{ENV_NUM_PROCESSES}, {ENV_PROCESS_ID}) or none (Slurm/Open MPI auto-detection)."
        )
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"num_processes must be >= 1; got {num_processes}.")
    if process_id is not None and not 0 <= process_id < num_processes:
        raise ValueError(
            f"process_id must lie in [0, {num_processes}) for {num_processes} processes; got "
            f"{process_id}."
        )
    if jax.distributed.is_initialized():
        return
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
    )
