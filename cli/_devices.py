"""Options shared by `mflows train` and `mflows sample`: which devices, and multi-host runs."""

from typing import Annotated

import typer

DevicesOption = Annotated[
    str | None,
    typer.Option(
        "--devices",
        help="Devices to split each batch over: 'all' or a number (default: 1, or all with "
        "--distributed). The batch (train) or chunk (sample) size must be a multiple of it.",
    ),
]
DistributedOption = Annotated[
    bool,
    typer.Option(
        "--distributed",
        help="Join a multi-process (multi-host) run with jax.distributed.initialize; run the "
        "same command on every process. Settings from the three options below or from "
        "MFLOWS_COORDINATOR_ADDRESS / MFLOWS_NUM_PROCESSES / MFLOWS_PROCESS_ID (or Slurm/Open "
        "MPI auto-detection).",
    ),
]
CoordinatorOption = Annotated[
    str | None,
    typer.Option("--coordinator-address", help="host:port of process 0 (with --distributed)."),
]
NumProcessesOption = Annotated[
    int | None,
    typer.Option("--num-processes", help="Number of processes (with --distributed)."),
]
ProcessIdOption = Annotated[
    int | None,
    typer.Option("--process-id", help="Index of this process, from 0 (with --distributed)."),
]


def setup_devices(
    devices: str | None,
    distributed: bool,
    coordinator_address: str | None,
    num_processes: int | None,
    process_id: int | None,
):
    """Join the multi-process run if asked (before any JAX computation), then choose the
    parallelism strategy (`manifold_flows.make_parallelism`)."""
    from manifold_flows import initialize_distributed, make_parallelism, parse_devices

    from ._errors import UserError

    given = [coordinator_address, num_processes, process_id]
    if not distributed and any(v is not None for v in given):
        raise UserError(
            "--coordinator-address/--num-processes/--process-id need --distributed; add it to "
            "join a multi-process run."
        )
    count = parse_devices(devices)
    if count is None:
        count = "all" if distributed else 1
    if distributed:
        initialize_distributed(coordinator_address, num_processes, process_id)
        if count != "all":
            import jax

            if count != len(jax.devices()):
                raise UserError(
                    f"--devices {devices} with --distributed: every process takes part with all "
                    f"its devices ({len(jax.devices())} in all); use --devices all."
                )
    return make_parallelism(count)
