"""The outcome of one law check, shared by the manifold and group-action checkers."""

import math
from typing import NamedTuple


class LawResult(NamedTuple):
    """The outcome of one law check.

    - `name`: the law.
    - `passed`: whether `error <= tolerance` (a non-finite error fails).
    - `error`: the largest deviation found, in the units of the compared quantity (for the
      statistical laws: the largest |z-score|).
    - `tolerance`: the bound the error was compared with.
    """

    name: str
    passed: bool
    error: float
    tolerance: float


def law_result(name: str, error, tolerance) -> LawResult:
    """Build a `LawResult`: passed when `error` is finite and at most `tolerance`."""
    error = float(error)
    tolerance = float(tolerance)
    return LawResult(name, bool(math.isfinite(error) and error <= tolerance), error, tolerance)


def format_law(result: LawResult) -> str:
    """One line: `PASS name: error 1.2e-16 <= tolerance 1e-10`."""
    verdict = "PASS" if result.passed else "FAIL"
    relation = "<=" if result.passed else ">"
    return (
        f"{verdict} {result.name}: error {result.error:.3g} {relation} tolerance "
        f"{result.tolerance:.3g}"
    )
