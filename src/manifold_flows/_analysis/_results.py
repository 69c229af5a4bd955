"""Result dataclasses of the analysis functions as plain, JSON-friendly dicts."""

import dataclasses
from typing import Any

import numpy as np


def plain_dict(result: Any) -> dict[str, Any]:
    """The fields of a result dataclass as a dict: arrays become nested lists, nested results
    their own dicts; fields named `*replicates` (bootstrap replicates) are left out."""
    out = {}
    for field in dataclasses.fields(result):
        if field.name.endswith("replicates"):
            continue
        value = getattr(result, field.name)
        if dataclasses.is_dataclass(value):
            value = plain_dict(value)
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        out[field.name] = value
    return out
