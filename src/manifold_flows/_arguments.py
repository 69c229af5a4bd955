"""How an error message names an argument: by its Python name, or by the command-line flag
that set it.

Library messages name what the caller passed: `num_chains must be an integer >= 1` for a
Python caller, `--chains must be an integer >= 1` for `mflows generate`. A message builds the
name with `argument(name)` (or `argument(name, value)` for a setting to pass, e.g.
`force=True`); a front end that calls the library under other names (the CLI) wraps the call
in `with argument_names({...}):`, mapping Python names to its own. No front end: Python names.
"""

import contextlib
import contextvars
import types
from collections.abc import Iterator, Mapping
from typing import Any

_NAMES: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "manifold_flows_argument_names", default=types.MappingProxyType({})
)
_NO_VALUE = object()


def argument(name: str, value: Any = _NO_VALUE) -> str:
    """The name of argument `name` as its caller wrote it; with `value`, the setting to pass
    (`force=True` in Python, `--force` on the command line; `--seed 3` for other values)."""
    flag = _NAMES.get().get(name)
    if value is _NO_VALUE:
        return name if flag is None else flag
    if flag is None:
        return f"{name}={value!r}"
    return flag if value is True else f"{flag} {value}"


@contextlib.contextmanager
def argument_names(names: Mapping[str, str]) -> Iterator[None]:
    """Within the block, messages name the arguments in `names` (Python name -> the caller's
    name, e.g. `{"num_chains": "--chains"}`) by the caller's names."""
    token = _NAMES.set({**_NAMES.get(), **names})
    try:
        yield
    finally:
        _NAMES.reset(token)
