"""Integer arguments checked the same way everywhere: ints (and numpy ints) only, never bools."""

from __future__ import annotations

import operator

__all__ = ["as_int"]


def as_int(name: str, value, *, expected: str = "an int") -> int:
    """``value`` as a Python int, or TypeError naming ``name`` (bool is refused: True is not a size)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be {expected}, not {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be {expected}, not {type(value).__name__}") from None
