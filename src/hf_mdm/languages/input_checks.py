"""Checks of the arguments of the languages' public entry points (constructors, `sample`, `dataset`, `posterior`,
`entropy_rate`, the oracle's forward): each raises a ValueError that names the argument and what it got, before any
work. A count given as 2.5, True or "3" is refused rather than truncated or parsed; a 0/1 mask holding 2 or 0.5 is
refused rather than read as True.
"""

import math

import torch

from ..value_checks import is_real


def check_integer_ids(values: torch.Tensor, name: str, kind: str) -> torch.LongTensor:
    """`values` as a LongTensor, or a ValueError when its dtype is not an integer one (float ids would be truncated,
    booleans read as ids 0 and 1)."""
    if values.is_floating_point() or values.is_complex() or values.dtype == torch.bool:
        raise ValueError(f"{name} must be integer {kind}, got dtype {values.dtype}.")
    return values.long()


def check_positive_real(value, name: str) -> float:
    """`value` as a float if it is a finite real number > 0 (not a boolean or a string), else a ValueError."""
    if not (is_real(value) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
    return float(value)


def check_mask(values, name: str, shape: torch.Size) -> torch.BoolTensor:
    """`values` as a bool tensor of `shape`: booleans, or numbers that are all 0 or 1 (2 or 0.5 is refused, not read
    as True)."""
    values = torch.as_tensor(values)
    if values.shape != shape:
        raise ValueError(f"{name} must have shape {tuple(shape)} like the symbols, got {tuple(values.shape)}.")
    if values.dtype != torch.bool:
        if values.is_complex() or not bool(((values == 0) | (values == 1)).all()):
            raise ValueError(
                f"{name} must hold booleans (or 0 and 1 only), got values {values.unique()[:5].tolist()}."
            )
        values = values.bool()
    return values
