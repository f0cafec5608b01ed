"""Argument checks shared by kernels, layers, models and data (imports nothing from lindy).

Every check returns the value it accepted (normalised) or raises ``ValueError`` with a message that names
the argument, what was expected, and what was given, e.g. ``d_state must be a positive int, got 0``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

__all__ = [
    "check_positive_int",
    "check_count",
    "check_seed",
    "check_finite_number",
    "check_fraction",
    "check_choice",
    "check_bool",
    "is_int",
]


def is_int(value: Any) -> bool:
    """True for a Python/NumPy integer that is not a bool (``True`` is not a length)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return type(value).__module__ == "numpy" and hasattr(value, "dtype") and value.dtype.kind in "iu"


def check_positive_int(name: str, value: Any) -> int:
    """``value`` as an int >= 1, or a ValueError naming ``name``."""
    if not is_int(value) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_count(name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum`` (a number of examples, steps, workers...), or a ValueError."""
    if not is_int(value) or value < minimum:
        what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def check_seed(name: str, value: Any) -> int:
    """``value`` as an int >= 0 (what every random generator of lindy's data sets accepts), else a
    ValueError naming ``name``."""
    return check_count(name, value, minimum=0)


def check_finite_number(
    name: str, value: Any, *, positive: bool = False, low: float | None = None, high: float | None = None
) -> float:
    """``value`` as a finite float, optionally > 0 and within [low, high]; else a ValueError naming it."""
    numeric = is_int(value) or (isinstance(value, float) and not isinstance(value, bool))
    if not numeric:
        numeric = type(value).__module__ == "numpy" and getattr(value, "dtype", None) is not None
        numeric = numeric and value.dtype.kind == "f"
    if not numeric or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    value = float(value)
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}")
    return value


def check_choice(name: str, value: Any, choices: Iterable) -> Any:
    """``value`` if it is one of ``choices``, else a ValueError listing them."""
    choices = tuple(choices)
    if isinstance(value, (list, dict, set)) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_fraction(name: str, value: Any, *, zero: bool = False) -> float:
    """``value`` as a float in (0, 1), or [0, 1) with ``zero``; else a ValueError naming ``name``."""
    low = "[0" if zero else "(0"
    try:
        value = check_finite_number(name, value)
    except ValueError:
        raise ValueError(f"{name} must be a number in {low}, 1), got {value!r}") from None
    if not (0.0 <= value < 1.0 if zero else 0.0 < value < 1.0):
        raise ValueError(f"{name} must be in {low}, 1), got {value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is a bool (``"false"`` or ``0`` is a typo that must not quietly mean true/false)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value
