"""What counts as an integer or a real number in an argument, the one definition every entry point's checks use
(generation, training, languages, metrics, sweeps): Python, numpy and 0-dimensional torch numbers, never booleans
(`True` is an `int` in Python, but `steps=True` is a mistake) nor strings (`"8"` is refused, not parsed)."""

import numbers

import torch


def is_integer(value) -> bool:
    """True for Python, numpy and 0-dimensional torch integers, never for booleans."""
    if isinstance(value, torch.Tensor):
        if value.ndim != 0 or value.dtype == torch.bool or value.is_floating_point() or value.is_complex():
            return False
        value = value.item()
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and type(value).__name__ != "bool_"


def is_real(value) -> bool:
    """True for a real number (finite or not) that is not a boolean or a string."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and type(value).__name__ != "bool_"


def check_integer(value, name: str, minimum: int | None = None) -> int:
    """`value` as an int when `is_integer(value)` and it is at least `minimum`; else a ValueError naming `name` and
    what it got. Booleans, floats and strings are refused, not truncated or parsed."""
    if not is_integer(value) or (minimum is not None and int(value) < minimum):
        bound = "an integer" if minimum is None else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {bound}, got {value!r}.")
    return int(value)


__all__ = ["check_integer", "is_integer", "is_real"]
