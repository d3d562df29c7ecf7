"""Paths into event data: the gjson syntax Argo Events users write, plus plain JMESPath.

Why this module exists: Argo Events reads `dataKey`, filter `path` and `fields[].path` with
tidwall/gjson. A manifest that Argo accepts must load unchanged here, so every gjson form that
people write is accepted, compiled once, and reported as the equivalent JMESPath text (the
project's path language) for explanations. A full JMESPath expression is accepted as well.

Which syntax a path is read in (first rule that applies wins):

1. It starts with `jmespath:` -> the rest is JMESPath.
2. It contains `#(` (a gjson query such as `labels.#(name=="bug")`) -> gjson.
3. A segment starts with `@` and a letter (a gjson modifier: `@reverse`, `a.@this`) -> gjson
   (and rejected: modifiers are not supported). JMESPath never writes `@` before a name.
4. After dropping every backslash escape (`\\.`, `\\*` ...), it contains one of
   ``[ ] | ( ) { } & ' ` " ! = < > ,`` -> JMESPath.
5. Otherwise -> gjson.

Rules 2-5 never misread what Argo users write: gjson paths are keys joined by dots, with `#`,
`*`, `?`, `-` and `\\.`; none of those characters is in rule 4. JMESPath needs one of the rule-4
characters for anything beyond `a.b.c`, and a bare `a.b.c` means the same in both languages,
except `a.*`: gjson (Argo) meaning wins, use `jmespath:` for a projection.

gjson semantics kept (tidwall/gjson v1.19 as used by Argo Events):

* `a.b` walks objects; JSON `null` EXISTS (found, value None).
* A numeric segment indexes an array (`commits.0.id`) and is a plain key on an object
  (`{"0": ...}`); out of range or negative -> missing.
* `#` -> array length; `#.x` -> `x` of every element, elements without `x` are skipped (the
  result is a list, possibly empty). On an object `#` is the literal key "#".
* `\\.` escapes a dot (any character can be escaped); hyphens and mixed case are plain keys.
* `*` / `?` in a segment glob on key names: the first key (in document order) that matches.
  Globs never match array elements.
* `#(path op value)` returns the first array element whose `path` compares true, `#(...)#` all of
  them; ops `== = != < <= > >=`, or no op for "exists". `%` / `!%` / `~` are rejected.
* Not supported (PathError): modifiers (`@reverse`), multipaths (`{a,b}`), pipes (`|`) and
  JSON-lines (`..`) in gjson form.

`CompiledPath.expression` is the JMESPath equivalent. It is exact for keys, indexes, `#`, `#.x`
and queries at the top level; for key globs it shows the glob as a quoted key, and a numeric
segment is shown as an index even where the data makes it an object key. Evaluation of gjson
paths uses a precompiled walker (a few microseconds), never the JMESPath text.

JMESPath-form paths are evaluated with `jmespath`. There a `null` result cannot be told from a
missing one, so a JMESPath null counts as missing (found=False). For chains of plain fields and
indexes the missing segment is still located; otherwise `missing` is the whole expression and
`at` is None.

Value conversions mirror gjson's `Result.String()`, `.Float()` and `.Bool()`, which Argo's data
filters apply to the extracted value.
"""

from __future__ import annotations

import dataclasses
import decimal
import functools
import json
import math
import re
from collections.abc import Callable
from typing import Any, Final

import jmespath
from jmespath import exceptions as jmespath_exceptions


class PathError(ValueError):
    """A path that cannot be compiled; the message names the path."""


@dataclasses.dataclass(frozen=True, slots=True)
class Lookup:
    """The result of a lookup. `at` is "" when the very first segment is missing."""

    found: bool
    value: Any = None
    missing: str | None = None
    at: str | None = None


class _Missing:
    __slots__ = ()


_MISSING: Final = _Missing()
_JMESPATH_PREFIX: Final = "jmespath:"
_JMESPATH_ONLY_CHARS: Final = frozenset("[]|(){}&'`\"!=<>,")
_MODIFIER_RE: Final = re.compile(r"(?:^|\.)@[A-Za-z]")
_ESCAPE_RE: Final = re.compile(r"\\.", re.DOTALL)
_IDENT_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_QUERY_OPS: Final = ("==", "!=", "<=", ">=", "=", "<", ">")
_SUPPORTED_QUERY_OPS: Final = frozenset({"", "=", "!=", "<=", ">=", "<", ">"})

_Step = Callable[[Any], Any]


class CompiledPath:
    """A path compiled once; `lookup` may be called any number of times."""

    __slots__ = ("expression", "source")

    def __init__(self, source: str, expression: str) -> None:
        self.source = source
        self.expression = expression

    def lookup(self, data: Any) -> Lookup:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"CompiledPath({self.source!r} -> {self.expression!r})"


@functools.lru_cache(maxsize=4096)
def compile_path(path: str) -> CompiledPath:
    """Compile a gjson or JMESPath path (see the module docstring for the rule)."""
    if not isinstance(path, str):
        raise PathError(f"path must be a string, got {path!r}")
    if not path.strip():
        raise PathError(f"empty path {path!r}")
    if path.startswith(_JMESPATH_PREFIX):
        return _JmesPath(path, path[len(_JMESPATH_PREFIX):].strip())
    if _reads_as_jmespath(path):
        return _JmesPath(path, path)
    return _GjsonPath(path)


def _reads_as_jmespath(path: str) -> bool:
    if "#(" in path or _MODIFIER_RE.search(path):
        return False
    return not _JMESPATH_ONLY_CHARS.isdisjoint(_ESCAPE_RE.sub("", path))


# --- gjson: parsing -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Segment:
    source: str  # as written, escapes included
    key: str  # unescaped
    glob: re.Pattern[str] | None = None
    query: _Query | None = None
    query_all: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class _Query:
    subpath: tuple[_Step, ...]
    subpath_source: str
    op: str  # "" means "exists"
    literal: str  # gjson compares against the literal text, quotes removed
    quoted: bool


def _split_segments(path: str) -> list[_Segment]:
    segments: list[_Segment] = []
    i = 0
    while True:
        segment, i = _read_segment(path, i)
        segments.append(segment)
        if i >= len(path):
            return segments
        i += 1  # the dot


def _read_segment(path: str, start: int) -> tuple[_Segment, int]:
    if path.startswith(("#(", "#["), start):
        return _read_query_segment(path, start)
    end, key, pattern = _scan_key(path, start)
    if end == start:
        raise PathError(f"path {path!r} has an empty segment at offset {start}")
    glob = re.compile(pattern, re.DOTALL) if pattern is not None else None
    return _Segment(source=path[start:end], key=key, glob=glob), end


def _scan_key(path: str, start: int) -> tuple[int, str, str | None]:
    """Read one key up to the next unescaped dot: (end, unescaped key, glob regex or None)."""
    key: list[str] = []
    pattern: list[str] = []
    is_glob = False
    i = start
    while i < len(path) and path[i] != ".":
        char = path[i]
        if char == "\\":
            i += 1
            if i >= len(path):
                raise PathError(f"path {path!r} ends with a lone backslash")
            key.append(path[i])
            pattern.append(re.escape(path[i]))
        elif char in "*?":
            is_glob = True
            pattern.append(".*" if char == "*" else ".")
        else:
            _reject_unsupported_char(path, char, i == start)
            key.append(char)
            pattern.append(re.escape(char))
        i += 1
    return i, "".join(key), "".join(pattern) if is_glob else None


def _reject_unsupported_char(path: str, char: str, at_start: bool) -> None:
    if char == "@" and at_start:
        raise PathError(f"path {path!r}: gjson modifiers (@...) are not supported; use JMESPath")
    if char == "|":
        raise PathError(f"path {path!r}: gjson pipes (|) are not supported; use JMESPath")
    if char in "[{" and at_start:
        raise PathError(f"path {path!r}: gjson multipaths are not supported; use JMESPath")


def _read_query_segment(path: str, start: int) -> tuple[_Segment, int]:
    close = _find_query_end(path, start)
    inner = path[start + 2:close]
    end = close + 1
    query_all = path.startswith("#", end)
    if query_all:
        end += 1
    if end < len(path) and path[end] != ".":
        raise PathError(f"path {path!r}: expected '.' after the query at offset {end}")
    segment = _Segment(source=path[start:end], key=path[start:end], query=_parse_query(path, inner),
                       query_all=query_all)
    return segment, end


def _find_query_end(path: str, start: int) -> int:
    depth = 0
    i = start + 1
    while i < len(path):
        char = path[i]
        if char == "\\":
            i += 1
        elif char == '"':
            i = _skip_string(path, i)
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise PathError(f"path {path!r}: unclosed query starting at offset {start}")


def _skip_string(path: str, i: int) -> int:
    i += 1
    while i < len(path) and path[i] != '"':
        i += 2 if path[i] == "\\" else 1
    return i


def _parse_query(path: str, inner: str) -> _Query:
    split = _split_condition(inner)
    if split is None:
        subpath_source, op, literal = inner.strip(), "", ""
    else:
        subpath_source, op, literal = split
    if literal.startswith("~") or op in ("%", "!%"):
        raise PathError(f"path {path!r}: gjson query operators % !% and ~ are not supported")
    if op not in _SUPPORTED_QUERY_OPS:
        raise PathError(f"path {path!r}: unknown query operator {op!r}")
    quoted = literal.startswith('"')
    if quoted:
        try:
            literal = json.loads(literal)
        except ValueError as exc:
            raise PathError(f"path {path!r}: bad string in query: {literal}") from exc
    steps = _build_steps(_split_segments(subpath_source)) if subpath_source else ()
    return _Query(subpath=steps, subpath_source=subpath_source, op=op, literal=literal, quoted=quoted)


def _split_condition(inner: str) -> tuple[str, str, str] | None:
    depth = 0
    i = 0
    while i < len(inner):
        char = inner[i]
        if char == "\\":
            i += 1
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif depth == 0 and char in "!=<>%":
            return inner[:i].strip(), *_split_operator(inner[i:])
        i += 1
    return None


def _split_operator(text: str) -> tuple[str, str]:
    for op in (*_QUERY_OPS, "!%", "%"):
        if text.startswith(op):
            return ("=" if op == "==" else op), text[len(op):].strip()
    return text[0], text[1:].strip()


# --- gjson: walking -------------------------------------------------------------------------


def _build_steps(segments: list[_Segment]) -> tuple[_Step, ...]:
    steps: list[_Step] = []
    for index, segment in enumerate(segments):
        rest = segments[index + 1:]
        if segment.query is not None:
            # `#(...)#` projects the rest of the path over every match, like `#.`.
            steps.append(_query_step(segment, _build_steps(rest) if segment.query_all else ()))
            if segment.query_all:
                return tuple(steps)
        elif segment.source == "#" and rest:
            steps.append(_map_step(_build_steps(rest)))
            return tuple(steps)
        else:
            steps.append(_simple_step(segment))
    return tuple(steps)


def _simple_step(segment: _Segment) -> _Step:
    if segment.glob is not None:
        return functools.partial(_glob_step, segment.glob)
    if segment.source == "#":
        return _length_step
    if segment.key.isascii() and segment.key.isdigit():
        return functools.partial(_index_or_key_step, segment.key, int(segment.key))
    return functools.partial(_key_step, segment.key)


def _key_step(key: str, value: Any) -> Any:
    if isinstance(value, dict):
        return value.get(key, _MISSING)
    return _MISSING


def _index_or_key_step(key: str, index: int, value: Any) -> Any:
    if isinstance(value, list):
        return value[index] if index < len(value) else _MISSING
    return _key_step(key, value)


def _glob_step(glob: re.Pattern[str], value: Any) -> Any:
    if isinstance(value, dict):
        for key, item in value.items():
            if glob.fullmatch(key):
                return item
    return _MISSING


def _length_step(value: Any) -> Any:
    if isinstance(value, list):
        return len(value)
    return _key_step("#", value)


def _map_step(rest: tuple[_Step, ...]) -> _Step:
    def step(value: Any) -> Any:
        if isinstance(value, list):
            return [found for item in value if (found := _walk(rest, item)) is not _MISSING]
        # On an object gjson reads `#` as the literal key "#".
        return _walk_from(_key_step("#", value), rest)
    return step


def _query_step(segment: _Segment, rest: tuple[_Step, ...]) -> _Step:
    query = segment.query
    assert query is not None

    def step(value: Any) -> Any:
        if not isinstance(value, list):
            return _MISSING
        matches = (item for item in value if _query_matches(query, _walk(query.subpath, item)))
        if not segment.query_all:
            return next(matches, _MISSING)
        return [found for item in matches if (found := _walk(rest, item)) is not _MISSING]
    return step


def _walk(steps: tuple[_Step, ...], value: Any) -> Any:
    for step in steps:
        value = step(value)
        if value is _MISSING:
            return _MISSING
    return value


def _walk_from(value: Any, steps: tuple[_Step, ...]) -> Any:
    return _MISSING if value is _MISSING else _walk(steps, value)


def _query_matches(query: _Query, value: Any) -> bool:
    if value is _MISSING:
        return False
    if not query.op:
        return True
    if isinstance(value, bool):
        return _bool_matches(query.op, query.literal, value)
    if isinstance(value, str):
        return _compare(query.op, value, query.literal)
    if isinstance(value, int | float):
        return _compare(query.op, float(value), _parse_go_float(query.literal))
    return False


def _bool_matches(op: str, literal: str, value: bool) -> bool:
    # gjson compares booleans by literal text, with true ordered above false.
    text = "true" if value else "false"
    other = "false" if value else "true"
    table = {"=": literal == text, "!=": literal != text}
    if value:
        table.update({">": literal == other, ">=": True})
    else:
        table.update({"<": literal == other, "<=": True})
    return table.get(op, False)


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


class _GjsonPath(CompiledPath):
    __slots__ = ("_keys", "_sources", "_steps")

    def __init__(self, source: str) -> None:
        segments = _split_segments(source)
        super().__init__(source, _render(segments))
        self._steps = _build_steps(segments)
        self._sources = tuple(segment.source for segment in segments)
        self._keys = _plain_keys(segments)

    def lookup(self, data: Any) -> Lookup:
        if self._keys is not None:
            return self._lookup_keys(self._keys, data)
        value = data
        for position, step in enumerate(self._steps):
            value = step(value)
            if value is _MISSING:
                return self._missing(position)
        return Lookup(True, value)

    def _lookup_keys(self, keys: tuple[str, ...], data: Any) -> Lookup:
        # The common case (`body.object_attributes.state`) without any call per segment.
        value = data
        for position, key in enumerate(keys):
            if value.__class__ is not dict:
                if not isinstance(value, dict):
                    return self._missing(position)
            value = value.get(key, _MISSING)
            if value is _MISSING:
                return self._missing(position)
        return Lookup(True, value)

    def _missing(self, position: int) -> Lookup:
        return Lookup(False, None, self._sources[position], ".".join(self._sources[:position]))


def _plain_keys(segments: list[_Segment]) -> tuple[str, ...] | None:
    for segment in segments:
        plain = segment.glob is None and segment.query is None and segment.source != "#"
        if not plain or (segment.key.isascii() and segment.key.isdigit()):
            return None
    return tuple(segment.key for segment in segments)


# --- gjson -> JMESPath text -----------------------------------------------------------------


def _render(segments: list[_Segment]) -> str:
    text = ""
    for index, segment in enumerate(segments):
        rest = segments[index + 1:]
        if segment.query is not None:
            text = _render_query(text, segment, rest)
            return text
        if segment.source == "#":
            if rest:
                return _join(text + "[*]" if text else "[*]", _render(rest))
            return f"length({text or '@'})"
        text = _join(text, _render_key(segment))
    return text


def _render_key(segment: _Segment) -> str:
    if segment.glob is None and segment.key.isascii() and segment.key.isdigit():
        return f"[{int(segment.key)}]"
    return _ident(segment.source if segment.glob is not None else segment.key)


def _render_query(text: str, segment: _Segment, rest: list[_Segment]) -> str:
    query = segment.query
    assert query is not None
    subject = _render(_split_segments(query.subpath_source)) if query.subpath_source else "@"
    condition = subject if not query.op else f"{subject} {_jmes_op(query.op)} {_jmes_literal(query)}"
    filtered = f"{text}[?{condition}]"
    if not segment.query_all:
        filtered += " | [0]"
    return _join(filtered, _render(rest)) if rest else filtered


def _jmes_op(op: str) -> str:
    return "==" if op == "=" else op


def _jmes_literal(query: _Query) -> str:
    if not query.quoted and query.literal in ("true", "false", "null"):
        return f"`{query.literal}`"
    if not query.quoted and _GO_DECIMAL_RE.fullmatch(query.literal):
        return f"`{query.literal}`"
    escaped = query.literal.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _ident(name: str) -> str:
    if _IDENT_RE.fullmatch(name):
        return name
    return json.dumps(name, ensure_ascii=False)


def _join(base: str, part: str) -> str:
    if not base:
        return part
    if part.startswith("["):
        return base + part
    return f"{base}.{part}"


# --- JMESPath form --------------------------------------------------------------------------

_Chain = tuple[tuple[str, str | int], ...]


class _JmesPath(CompiledPath):
    __slots__ = ("_chain", "_parsed")

    def __init__(self, source: str, expression: str) -> None:
        super().__init__(source, expression)
        try:
            self._parsed = jmespath.compile(expression)
        except jmespath_exceptions.JMESPathError as exc:
            raise PathError(f"invalid JMESPath expression in path {source!r}: {exc}") from exc
        self._chain = _chain_of(self._parsed.parsed)

    def lookup(self, data: Any) -> Lookup:
        try:
            value = self._parsed.search(data)
        except jmespath_exceptions.JMESPathError:
            # A runtime type error (e.g. length() of a number) means the value is not there.
            return Lookup(False, None, self.expression, None)
        if value is not None:
            return Lookup(True, value)
        return self._locate_missing(data)

    def _locate_missing(self, data: Any) -> Lookup:
        if self._chain is None:
            return Lookup(False, None, self.expression, None)
        value = data
        for position, (display, key) in enumerate(self._chain):
            value = _chain_step(value, key)
            if value is None:
                return Lookup(False, None, display, _chain_text(self._chain[:position]))
        return Lookup(False, None, self.expression, None)


def _chain_step(value: Any, key: str | int) -> Any:
    if isinstance(key, int):
        return value[key] if isinstance(value, list) and -len(value) <= key < len(value) else None
    return value.get(key) if isinstance(value, dict) else None


def _chain_of(node: dict[str, Any]) -> _Chain | None:
    kind = node.get("type")
    if kind == "field":
        return ((_ident(node["value"]), node["value"]),)
    if kind == "index":
        return ((f"[{node['value']}]", int(node["value"])),)
    if kind in ("subexpression", "index_expression"):
        parts = [_chain_of(child) for child in node["children"]]
        if any(part is None for part in parts):
            return None
        return tuple(item for part in parts if part is not None for item in part)
    return None


def _chain_text(chain: _Chain) -> str:
    text = ""
    for display, _key in chain:
        text = _join(text, display)
    return text


# --- gjson Result conversions -----------------------------------------------------------------

_GO_DECIMAL_RE: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_GO_HEX_FLOAT_RE: Final = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F_]+\.?[0-9a-fA-F_]*|\.[0-9a-fA-F_]+)[pP][+-]?\d+")
_GO_SPECIAL_FLOATS: Final = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "infinity": math.inf,
                             "+infinity": math.inf, "-infinity": -math.inf, "nan": math.nan}


def gjson_string(value: Any) -> str:
    """gjson `Result.String()`: the text Argo's string filters match their regexes against."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _format_float_f(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def gjson_float(value: Any) -> float:
    """gjson `Result.Float()`: numbers, numeric strings, true -> 1; everything else -> 0."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return _parse_go_float(value)
    return 0.0


def gjson_bool(value: Any) -> bool:
    """gjson `Result.Bool()`: true; strings via Go ParseBool of the lower-case text; number != 0."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value.lower() in ("1", "t", "true")
    return False


def _parse_go_float(text: str) -> float:
    # strconv.ParseFloat syntax, not Python's (no spaces, no underscores in decimals).
    if _GO_DECIMAL_RE.fullmatch(text):
        return float(text)
    if _GO_HEX_FLOAT_RE.fullmatch(text):
        return float.fromhex(text.replace("_", ""))
    return _GO_SPECIAL_FLOATS.get(text.lower(), 0.0)


def _format_float_f(value: float) -> str:
    """Go `strconv.FormatFloat(v, 'f', -1, 64)`: shortest round-trip digits, never an exponent."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = format(decimal.Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
