"""The sprig functions Argo Events sensors use (strings, defaults, JSON, casts, dates, lists).

Why this module exists: Argo adds sprig to text/template, and sensors lean on it (`upper`,
`default`, `toJson`, `b64dec`...). These reproduce sprig's observable results, including its
quirks: `toJson` swallows errors, `int` of unparsable text is 0, `b64dec` returns Go's error
text, strings are sliced by UTF-8 bytes. `FUNCTIONS` is this module's part of the function table.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
import math
import re
import uuid
from collections.abc import Callable
from typing import Any, Final, NoReturn

from sensors.templates import decoding, errors, formatting, gotypes, time_layouts
from sensors.templates.signatures import Func, str_func

_GO_SPACE: Final = "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + (
    "\u2028\u2029\u202f\u205f\u3000")
_GO_DECIMAL_INT_RE: Final = re.compile(r"[+-]?[0-9]+")


def _strval(value: Any) -> str:
    return value if isinstance(value, str) else formatting.fmt_v(value)


def _strslice(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [_strval(item) for item in value if item is not None]
    return [] if value is None else [_strval(value)]


def _empty(value: Any) -> bool:
    return not gotypes.truth(value)


def _default(default: Any, *given: Any) -> Any:
    if not given or _empty(given[0]):
        return default
    return given[0]


def _coalesce(*values: Any) -> Any:
    return next((value for value in values if not _empty(value)), None)


def _title(text: str) -> str:
    # strings.Title: upper-case the first letter of each word; the rest is left alone.
    out: list[str] = []
    previous = " "
    for char in text:
        if _is_word_separator(previous):
            titled = char.title()
            out.append(titled if len(titled) == 1 else char)
        else:
            out.append(char)
        previous = char
    return "".join(out)


def _map_runes(text: str, convert: Callable[[str], str]) -> str:
    # Go maps rune by rune; Python's one-to-many mappings (ß -> SS) keep the original rune.
    if text.isascii():
        return convert(text)
    return "".join(mapped if len(mapped := convert(char)) == 1 else char for char in text)


def _is_word_separator(char: str) -> bool:
    if char.isascii():
        return not (char.isalnum() or char == "_")
    if char.isalpha() or char.isdigit():
        return False
    return char in _GO_SPACE


def _split_go(sep: str, text: str) -> list[str]:
    return list(text) if sep == "" else text.split(sep)


def _bytes_slice(text: str, start: int | None, end: int | None) -> str:
    return text.encode()[start:end].decode("utf-8", errors="replace")


def _substr(start: int, end: int, text: str) -> str:
    size = len(text.encode())
    if start < 0:
        _check_slice(0, end, size)
        return _bytes_slice(text, None, end)
    if end < 0 or end > size:
        _check_slice(start, size, size)
        return _bytes_slice(text, start, None)
    _check_slice(start, end, size)
    return _bytes_slice(text, start, end)


def _check_slice(start: int, end: int, size: int) -> None:
    if end < 0 or end > size:
        raise errors.CallError(f"runtime error: slice bounds out of range [:{end}] with length {size}")
    if start > end:
        raise errors.CallError(f"runtime error: slice bounds out of range [{start}:{end}]")


def _trunc(count: int, text: str) -> str:
    size = len(text.encode())
    if count < 0 and size + count > 0:
        return _bytes_slice(text, size + count, None)
    if count >= 0 and size > count:
        return _bytes_slice(text, None, count)
    return text


def _to_json(value: Any) -> str:
    try:
        return formatting.go_json(value, escape_html=True)
    except ValueError:
        return ""  # sprig toJson swallows the marshal error


def _to_raw_json(value: Any) -> str:
    try:
        return formatting.go_json(value, escape_html=False)
    except ValueError:
        return ""


def _from_json(text: str) -> Any:
    def reject_constant(name: str) -> NoReturn:
        raise ValueError(name)
    try:
        return json.loads(text, parse_constant=reject_constant)
    except ValueError:
        return None  # sprig fromJson returns nil on error


def _cast_int(value: Any) -> gotypes.GoInt:
    """spf13/cast ToInt, as sprig's `int` / `int64`: unparsable input is 0."""
    if isinstance(value, bool):
        return gotypes.GoInt(1 if value else 0)
    if isinstance(value, int | float):
        number = gotypes.as_float(value) if not isinstance(value, gotypes.GoInt) else value
        return gotypes.GoInt(int(number)) if math.isfinite(number) else gotypes.GoInt(0)
    if isinstance(value, str):
        parsed = decoding.parse_go_int(_trim_zero_decimal(value))
        return gotypes.GoInt(parsed if parsed is not None else 0)
    return gotypes.GoInt(0)


def _trim_zero_decimal(text: str) -> str:
    # cast drops a ".000" suffix before parsing ("7.0" -> 7, "7.5" stays unparsable).
    head, dot, tail = text.rpartition(".")
    if dot and tail and set(tail) == {"0"}:
        return head
    return text


def _cast_float(value: Any) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return gotypes.as_float(value)
    if isinstance(value, str):
        parsed = decoding.parse_go_float(value)
        return parsed if parsed is not None else 0.0
    return 0.0


def _atoi(text: str) -> gotypes.GoInt:
    if not _GO_DECIMAL_INT_RE.fullmatch(text):
        return gotypes.GoInt(0)
    return gotypes.GoInt(min(max(int(text), gotypes.INT64_MIN), gotypes.INT64_MAX))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _date(layout: str, value: Any) -> str:
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, gotypes.GoInt):
        moment = dt.datetime.fromtimestamp(int(value), dt.UTC)
    else:
        moment = _now()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return time_layouts.go_time_format(moment.astimezone(dt.UTC), layout)


def _dict(*pairs: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for index in range(0, len(pairs), 2):
        result[_strval(pairs[index])] = pairs[index + 1] if index + 1 < len(pairs) else ""
    return result


def _get(mapping: dict[str, Any] | None, key: str) -> Any:
    return (mapping or {}).get(key, "")


def _has_key(mapping: dict[str, Any] | None, key: str) -> bool:
    return key in (mapping or {})


def _keys(*mappings: dict[str, Any] | None) -> list[Any]:
    return [key for mapping in mappings for key in (mapping or {})]


def _first(value: Any) -> Any:
    return _list_end(value, "first", 0)


def _last(value: Any) -> Any:
    return _list_end(value, "last", -1)


def _list_end(value: Any, name: str, index: int) -> Any:
    if value is None:
        raise errors.CallError("runtime error: invalid memory address or nil pointer dereference")
    if not isinstance(value, list | tuple):
        kind = gotypes.go_type(value)
        kind = kind if kind in ("string", "int", "float64", "bool") else "map"
        raise errors.CallError(f"Cannot find {name} on type {kind}")
    return value[index] if value else None


def _sort_alpha(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return sorted(_strslice(value))
    return [_strval(value)]


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    # RE2 spellings Python writes differently.
    translated = pattern.replace("(?<", "(?P<").replace("(?P<=", "(?<=").replace("(?P<!", "(?<!")
    return re.compile(translated.replace("\\z", "\\Z"))


def _must_regex(pattern: str) -> re.Pattern[str]:
    try:
        return _regex(pattern)
    except re.error as exc:
        raise errors.CallError(f"regexp: Compile(`{pattern}`): error parsing regexp: {exc}") from exc


def _regex_match(pattern: str, text: str) -> bool:
    try:
        return _regex(pattern).search(text) is not None
    except re.error:
        return False  # sprig regexMatch ignores the compile error


def _regex_find(pattern: str, text: str) -> str:
    found = _must_regex(pattern).search(text)
    return found.group(0) if found else ""


_EXPAND_RE: Final = re.compile(r"\$(?:\$|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


def _regex_replace_all(pattern: str, text: str, replacement: str) -> str:
    compiled = _must_regex(pattern)
    return compiled.sub(lambda found: _expand(found, replacement), text)


def _expand(found: re.Match[str], template: str) -> str:
    # Go's Regexp.Expand: $1, $name, ${name}, $$; a group that does not exist expands to "".
    def group(ref: re.Match[str]) -> str:
        name = ref.group(1) or ref.group(2)
        if name is None:
            return "$"
        try:
            value = found.group(int(name)) if name.isdigit() else found.group(name)
        except IndexError:
            return ""
        return value or ""
    return _EXPAND_RE.sub(group, template)


# sprig names people may reach for; they get a clearer "not implemented" message.
NOT_IMPLEMENTED: Final = frozenset(
    "abbrev add add1 ago append camelcase cat ceil compact concat decryptAES deepCopy deepEqual dig dir "
    "div durationRound encryptAES env expandenv ext floor genPrivateKey has htmlDate include indent "
    "initial initials kebabcase kindIs kindOf max merge min mod mul nindent omit pick plural pluck "
    "prepend randAlpha randAlphaNum randNumeric regexFindAll regexSplit repeat required rest reverse "
    "round semver semverCompare set sha1sum sha512sum shuffle slice snakecase sub swapcase ternary "
    "toDate toPrettyJson toStrings tpl typeOf uniq unixEpoch unset untitle values without wrap".split())


FUNCTIONS: Final[dict[str, Func]] = {
    # sprig: strings
    "upper": str_func(lambda s: _map_runes(s, str.upper), 1),
    "lower": str_func(lambda s: _map_runes(s, str.lower), 1),
    "title": str_func(_title, 1),
    "trim": str_func(lambda s: s.strip(_GO_SPACE), 1),
    "nospace": str_func(lambda s: "".join(c for c in s if c not in _GO_SPACE), 1),
    "trimPrefix": str_func(lambda prefix, s: s.removeprefix(prefix), 2),
    "trimSuffix": str_func(lambda suffix, s: s.removesuffix(suffix), 2),
    "trimAll": str_func(lambda cutset, s: s.strip(cutset), 2),
    "replace": str_func(lambda old, new, s: s.replace(old, new), 3),
    "contains": str_func(lambda sub, s: sub in s, 2),
    "hasPrefix": str_func(lambda prefix, s: s.startswith(prefix), 2),
    "hasSuffix": str_func(lambda suffix, s: s.endswith(suffix), 2),
    "split": str_func(lambda sep, s: {f"_{i}": part for i, part in enumerate(_split_go(sep, s))}, 2),
    "splitList": str_func(_split_go, 2),
    "join": Func(lambda sep, items: sep.join(_strslice(items)), ("str", "any")),
    "quote": Func(lambda *a: " ".join(formatting.go_quote(_strval(x)) for x in a if x is not None), (), "any"),
    "squote": Func(lambda *a: " ".join(f"'{_strval(x)}'" for x in a if x is not None), (), "any"),
    "substr": Func(_substr, ("int", "int", "str")),
    "trunc": Func(_trunc, ("int", "str")),
    "b64enc": str_func(lambda s: base64.b64encode(s.encode()).decode(), 1),
    "b64dec": str_func(decoding.go_b64decode, 1),
    "sha256sum": str_func(lambda s: hashlib.sha256(s.encode()).hexdigest(), 1),
    "uuidv4": Func(lambda: str(uuid.uuid4())),
    "regexMatch": str_func(_regex_match, 2),
    "regexFind": str_func(_regex_find, 2),
    "regexReplaceAll": str_func(_regex_replace_all, 3),
    # sprig: defaults, conversion, encoding
    "default": Func(_default, ("any",), "any"),
    "empty": Func(_empty, ("any",)),
    "coalesce": Func(_coalesce, (), "any"),
    "toJson": Func(_to_json, ("any",)),
    "toRawJson": Func(_to_raw_json, ("any",)),
    "fromJson": str_func(_from_json, 1),
    "toString": Func(_strval, ("any",)),
    "int": Func(_cast_int, ("any",)),
    "int64": Func(_cast_int, ("any",)),
    "float64": Func(_cast_float, ("any",)),
    "atoi": str_func(_atoi, 1),
    # sprig: dates
    "now": Func(_now),
    "date": Func(_date, ("str", "any")),
    # sprig: lists and dicts
    "list": Func(lambda *items: list(items), (), "any"),
    "dict": Func(_dict, (), "any"),
    "get": Func(_get, ("map", "str")),
    "hasKey": Func(_has_key, ("map", "str")),
    "keys": Func(_keys, (), "map"),
    "first": Func(_first, ("any",)),
    "last": Func(_last, ("any",)),
    "sortAlpha": Func(_sort_alpha, ("any",)),
}
