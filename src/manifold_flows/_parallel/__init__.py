"""Running training and sampling on several devices and hosts (data parallelism)."""

from .base import BATCH_AXIS as BATCH_AXIS, AbstractParallelism as AbstractParallelism
from .data_parallel import DataParallel as DataParallel
from .setup import (
    initialize_distributed as initialize_distributed,
    is_main_process as is_main_process,
    make_parallelism as make_parallelism,
    parse_devices as parse_devices,
)
from .single import SingleDevice as SingleDevice

__all__ = [
    "BATCH_AXIS",
    "AbstractParallelism",
    "DataParallel",
    "SingleDevice",
    "initialize_distributed",
    "is_main_process",
    "make_parallelism",
    "parse_devices",
]
