"""Go's view of template data: which Python values stand for which Go types.

Why this module exists: every other part of the engine (printing, comparing, calling functions,
walking fields) must agree on how a Python value maps to a Go type. Event data is JSON, which
Argo holds as `interface{}` with float64 numbers; values the template itself produces (literals,
`len`, `atoi`) are Go ints. This module holds that mapping and Go's notion of truth.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Final


class GoInt(int):
    """An int that Go types `int` (template literals, `len`, `atoi`...).

    Plain Python ints come from event data, i.e. JSON numbers, which Argo holds as float64.
    """

    __slots__ = ()


class _NoValue:
    """Go's invalid reflect.Value: what a missing map key yields. Prints as `<no value>`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<no value>"


class _Absent:
    """No piped-in final argument (Go's missingVal)."""

    __slots__ = ()


NO_VALUE: Final = _NoValue()
ABSENT: Final = _Absent()
INT64_MIN: Final = -(1 << 63)
INT64_MAX: Final = (1 << 63) - 1


def is_float64(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool | GoInt)


def as_float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def go_type(value: Any) -> str:
    """The Go type name that error messages show for a value."""
    if value is None or value is NO_VALUE:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, GoInt):
        return "int"
    if is_float64(value):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list | tuple):
        return "[]interface {}"
    if isinstance(value, dt.datetime):
        return "time.Time"
    return type(value).__name__


def truth(value: Any) -> bool:
    """Go template truth: empty strings, collections, zero numbers, nil and missing are false."""
    if value is None or value is NO_VALUE:
        return False
    if isinstance(value, str | list | tuple | dict):
        return len(value) > 0
    if isinstance(value, bool | int | float):
        return value != 0
    return True  # structs (time.Time) are always true in Go
