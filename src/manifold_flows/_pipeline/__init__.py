"""End-to-end pipeline steps: sampling a trained run to files, evaluating samples, and the
one-call quickstart that chains data, training, sampling and evaluation."""

from .chunks import sample_paths as sample_paths
from .draw import system_energies as system_energies
from .evaluate import evaluate_runs as evaluate_runs
from .flow import flow_for_run as flow_for_run
from .quickstart import QuickstartResult as QuickstartResult, quickstart as quickstart
from .sample import SamplingError as SamplingError, sample_to_file as sample_to_file
from .summary import (
    format_number as format_number,
    format_summary as format_summary,
    format_value_error as format_value_error,
)
from .system import resolve_system as resolve_system

__all__ = [
    "QuickstartResult",
    "SamplingError",
    "evaluate_runs",
    "flow_for_run",
    "format_number",
    "format_summary",
    "format_value_error",
    "quickstart",
    "resolve_system",
    "sample_paths",
    "sample_to_file",
    "system_energies",
]
