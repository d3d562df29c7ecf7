"""The functions Go's text/template itself defines: comparisons, `len`, `index`, `print`...

Why this module exists: these builtins follow reflect-level rules that sprig functions do not
(they see missing values as they are, compare only like basic kinds, index by Go int), so they
live apart from sprig. `and`/`or` are listed here but short-circuited by the executor.
"""

from __future__ import annotations

import urllib.parse
from typing import Any, Final

from sensors.templates import errors, formatting, gotypes
from sensors.templates.signatures import Func


def _html_escape(*args: Any) -> str:
    text = formatting.sprint(*args) if len(args) != 1 or not isinstance(args[0], str) else args[0]
    for char, entity in (("&", "&amp;"), ("'", "&#39;"), ('"', "&#34;"), ("<", "&lt;"), (">", "&gt;")):
        text = text.replace(char, entity)
    return text


def _urlquery(*args: Any) -> str:
    text = formatting.sprint(*args) if len(args) != 1 or not isinstance(args[0], str) else args[0]
    return urllib.parse.quote_plus(text, safe="")


def _basic_kind(value: Any) -> str:
    if value is None or value is gotypes.NO_VALUE:
        return "invalid"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, gotypes.GoInt):
        return "int"
    if gotypes.is_float64(value):
        return "float"
    if isinstance(value, str):
        return "string"
    return "other"


def _eq(first: Any, *others: Any) -> bool:
    if not others:
        raise errors.CallError("missing argument for comparison")
    first_kind = _basic_kind(first)
    for other in others:
        other_kind = _basic_kind(other)
        if first_kind != other_kind:
            if "invalid" not in (first_kind, other_kind):
                raise _incompatible(first, other)
            continue
        if _equal_same_kind(first_kind, first, other):
            return True
    return False


def _incompatible(first: Any, other: Any) -> errors.CallError:
    return errors.CallError(f"incompatible types for comparison: {gotypes.go_type(first)} and {gotypes.go_type(other)}")


def _equal_same_kind(kind: str, first: Any, other: Any) -> bool:
    if kind == "invalid":
        return True
    if kind == "float":
        return gotypes.as_float(first) == gotypes.as_float(other)
    if kind == "other" and isinstance(first, dict | list | tuple):
        raise errors.CallError(f"non-comparable type {formatting.fmt_v(first)}: {gotypes.go_type(first)}")
    return bool(first == other)


def _ne(first: Any, second: Any) -> bool:
    return not _eq(first, second)


def _lt(first: Any, second: Any) -> bool:
    first_kind, second_kind = _basic_kind(first), _basic_kind(second)
    if first_kind in ("invalid", "other", "bool") or second_kind in ("invalid", "other", "bool"):
        raise errors.CallError("invalid type for comparison")
    if first_kind != second_kind:
        raise _incompatible(first, second)
    if first_kind == "float":
        return gotypes.as_float(first) < gotypes.as_float(second)
    return bool(first < second)


def _le(first: Any, second: Any) -> bool:
    return _lt(first, second) or _eq(first, second)


def _gt(first: Any, second: Any) -> bool:
    return not _le(first, second)


def _ge(first: Any, second: Any) -> bool:
    return not _lt(first, second)


def _not(value: Any) -> bool:
    return not gotypes.truth(value)


def _length(value: Any) -> gotypes.GoInt:
    if value is None or value is gotypes.NO_VALUE:
        raise errors.CallError("len of nil pointer")
    if isinstance(value, str):
        return gotypes.GoInt(len(value.encode()))
    if isinstance(value, list | tuple | dict):
        return gotypes.GoInt(len(value))
    raise errors.CallError(f"len of type {gotypes.go_type(value)}")


def _index(item: Any, *indexes: Any) -> Any:
    if item is None or item is gotypes.NO_VALUE:
        raise errors.CallError("index of untyped nil")
    for index in indexes:
        if item is None:
            raise errors.CallError("index of nil pointer")
        item = _index_one(item, index)
    return item


def _index_one(item: Any, index: Any) -> Any:
    if isinstance(item, list | tuple | str):
        position = _index_position(index, len(item.encode()) if isinstance(item, str) else len(item))
        return gotypes.GoInt(item.encode()[position]) if isinstance(item, str) else item[position]
    if isinstance(item, dict):
        if index is None or index is gotypes.NO_VALUE:
            raise errors.CallError("value is nil; should be of type string")
        if not isinstance(index, str):
            raise errors.CallError(f"value has type {gotypes.go_type(index)}; should be string")
        return item.get(index)
    raise errors.CallError(f"can't index item of type {gotypes.go_type(item)}")


def _index_position(index: Any, size: int) -> int:
    if index is None or index is gotypes.NO_VALUE:
        raise errors.CallError("cannot index slice/array with nil")
    if not isinstance(index, gotypes.GoInt):
        raise errors.CallError(f"cannot index slice/array with type {gotypes.go_type(index)}")
    if index < 0 or index > size:
        raise errors.CallError(f"index out of range: {int(index)}")
    if index == size:
        raise errors.CallError("reflect: slice index out of range")
    return int(index)


FUNCTIONS: Final[dict[str, Func]] = {
    # The executor evaluates `and`/`or` lazily itself; `call` is only a placeholder.
    "and": Func(lambda *a: a[-1], ("value",), "value"),
    "or": Func(lambda *a: a[-1], ("value",), "value"),
    "not": Func(_not, ("value",)),
    "len": Func(_length, ("value",)),
    "index": Func(_index, ("value",), "value"),
    "print": Func(formatting.sprint, (), "any"),
    "printf": Func(formatting.sprintf, ("str",), "any"),
    "println": Func(formatting.sprintln, (), "any"),
    "eq": Func(_eq, ("value",), "value"),
    "ne": Func(_ne, ("value", "value")),
    "lt": Func(_lt, ("value", "value")),
    "le": Func(_le, ("value", "value")),
    "gt": Func(_gt, ("value", "value")),
    "ge": Func(_ge, ("value", "value")),
    "html": Func(_html_escape, (), "any"),
    "urlquery": Func(_urlquery, (), "any"),
}
