"""Checks of the arguments of the evaluation entry points (sweeps, searches, fits, cards): each raises a ValueError
that names the argument, what it got and what to pass, before any work.

Integers are Python or numpy/torch integers, never booleans, floats or strings (`int(2.5)` would silently be 2,
`int("8")` a string that slipped through); a list argument given as a bare string or number is refused rather than
iterated character by character; a name looked up among the names a table holds must be one of them.
"""

from ..value_checks import is_integer


def check_positive_int(name: str, value) -> int:
    """`value` as an int >= 1."""
    if not is_integer(value) or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def check_int(name: str, value) -> int:
    """`value` as an int (any sign), e.g. a seed."""
    if not is_integer(value):
        raise ValueError(f"{name} must be an integer, got {value!r}.")
    return int(value)


def check_list(name: str, values, example: str) -> list:
    """`values` as a non-empty list; a bare string or number is refused (it is not a list of them)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{name} must be a list, got {values!r}: pass e.g. {name}={example}.")
    values = list(values)
    if not values:
        raise ValueError(f"{name} must list at least one value, e.g. {name}={example}.")
    return values


def check_positive_ints(name: str, values) -> list[int]:
    """A non-empty list of positive integers (step counts, lengths)."""
    return [check_positive_int(f"every entry of {name}", value) for value in check_list(name, values, "[8, 16]")]


def check_names(name: str, values, example: str = '["confidence"]') -> list[str]:
    """A non-empty list of names (strategies, metrics)."""
    values = check_list(name, values, example)
    bad = [value for value in values if not isinstance(value, str)]
    if bad:
        raise ValueError(f"{name} must hold names (strings), got {bad!r}.")
    return values


def check_known(name: str, value, known, where: str = "the rows"):
    """`value` if it is among `known` (the values a table holds), else a ValueError listing them: a misspelled name
    must never select nothing."""
    known = sorted(set(known), key=repr)
    if value not in known:
        raise ValueError(f"Unknown {name} {value!r}: {where} hold {known}.")
    return value
