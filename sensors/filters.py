"""Dependency filters with Argo Events' semantics (pkg/sensors/dependencies/filter.go).

One public entry, `compile_dependency(dep).evaluate(event) -> Verdict`, over one function per
filter kind; every filter gives a `FilterResult` whose `reason` says, in words, what was found and
what it was compared with. Everything (paths, regexes, templates, CEL, numbers, time zones) is
compiled once, at load time.

The rules, as Argo Events applies them:

- Order: exprs, then data, then context, then time. A dependency without `filters` passes.
- `filtersLogicalOperator` "" / "and": the first expr or data error stops everything (later groups
  are not evaluated) and the event does not pass; otherwise all groups must pass. "or": errors are
  collected (joined with " / ") and the event passes when a configured group passes. Argo's
  `filterEvent` can return "passed, with an error" in or-mode, but its `Filter` turns any error
  into "not passed" and the listener only sees that: so here `matched` is False whenever `error`
  is set, while the per-filter results still show which group passed.
- Groups (`dataLogicalOperator`, `exprLogicalOperator`): "and" stops at the first filter that does
  not pass (no error) or errors ("<kind> filter error (<msg>)"); "or" stops at the first filter
  that passes (earlier errors dropped) and otherwise fails with "<kind> filter errors [m1 / m2]".
- Event data `None`: expr and data filters pass (Argo skips them).
- A missing path is an error, `path '<p>' does not exist`; JSON null exists.
- Data filter `value`s are OR-ed. `string`: each value is an UNANCHORED Go regex matched against
  the text of the value found (objects and arrays as their JSON text, so `pull_request` matches the
  header list `["pull_request"]`, and `labeled` matches `unlabeled`); `=` / "" pass on a match,
  `!=` passes when ANY value does not match, other comparators never pass. `number`: the values are
  parsed as Go's strconv.ParseFloat (a bad one is an error when reached), the event value as
  gjson's Float() (a non-numeric string is 0); all six comparators, `!=` any-of as above.
  `bool`: Go's ParseBool; the comparator is ignored. Any other type is an error when reached.
  `template` (Go template, `.Input` = the value found as text) runs first; an empty output or
  `<no value>` is an error.
- Context: exact equality of the non-empty `type`, `subject`, `source`, `datacontenttype`.
- Time: `[start, stop)` on the CloudEvent time's calendar day in `timezone` (default UTC), wrapping
  past midnight when stop < start.

What Argo's admission validation rejects is a load-time `FilterCompileError` here, with Argo's
message (empty data values, an expr without fields, an empty context filter, a malformed time,
an unknown time zone, start == stop). A data value that Argo only fails on when it reaches it (a
bad number, bool or regex, an unknown type) stays a run-time error, and `DependencyFilter.warnings`
names it at load time.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import operator
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.envelope import CloudEvent
from sensors import exprs, paths, templates
from sensors.models import ContextFilter, DataFilter, EventDependency, ExprFilter, TimeFilter

Kind = Literal["data", "expr", "context", "time"]
FieldPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class FilterResult:
    kind: str  # "data" | "expr" | "context" | "time"
    spec: str  # the filter in words
    passed: bool
    reason: str  # what was found and what it was compared with
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    matched: bool
    filters: tuple[FilterResult, ...]  # one per configured filter, in evaluation order
    error: str | None  # Argo-formatted error(s)


class FilterCompileError(ValueError):
    """A filter that cannot load; `path` is relative to the dependency."""

    def __init__(self, path: FieldPath, message: str) -> None:
        super().__init__(f"{dotted(path)}: {message}")
        self.path = path
        self.message = message


def dotted(path: FieldPath) -> str:
    """`("filters", "exprs", 0, "expr")` → `filters.exprs[0].expr`."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


@dataclass(frozen=True, slots=True)
class _Outcome:
    passed: bool
    reason: str
    error: str | None = None  # Argo's words for the error
    or_error: str | None = None  # Argo's words in an "or" group, where they differ


class _Check(Protocol):
    spec: str

    def check(self, data: Any) -> _Outcome: ...


# --- showing values ------------------------------------------------------------------------------


_quote = json.encoder.encode_basestring  # JSON string quoting, non-ASCII kept; C-fast (reasons are hot)


def _q(text: str, limit: int = 120) -> str:
    shown: str = _quote(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + '..."'


def _show(value: Any, limit: int = 120) -> str:
    if isinstance(value, str):
        return _q(value, limit)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _num(value) if isinstance(value, float) else str(value)
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _num(value: float) -> str:
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _missing_reason(source: str, lookup: paths.Lookup) -> str:
    if lookup.missing is None:
        return f"path `{source}` does not exist in the event"
    if lookup.at is None:  # a JMESPath-form path: no segment to blame
        return f"path `{source}` finds nothing in the event"
    where = f"under `{lookup.at}`" if lookup.at else "at the top of the event data"
    return f"path `{source}` does not exist: segment `{lookup.missing}` missing {where}"


def _missing(source: str, lookup: paths.Lookup) -> _Outcome:
    return _Outcome(False, _missing_reason(source, lookup), f"path '{source}' does not exist")


# --- Go parsing of filter values -----------------------------------------------------------------

_GO_FLOAT = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)", re.IGNORECASE)
_GO_HEX_FLOAT = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?\d+")
_GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
             "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}


def parse_go_float(text: str) -> float:
    """Go's strconv.ParseFloat(text, 64); ValueError carries Go's message."""
    if _GO_FLOAT.fullmatch(text):
        value = float(text)
    elif _GO_HEX_FLOAT.fullmatch(text):
        value = float.fromhex(text)
    else:
        raise ValueError(f"strconv.ParseFloat: parsing {_go_quote(text)}: invalid syntax")
    if math.isinf(value) and "inf" not in text.lower():
        raise ValueError(f"strconv.ParseFloat: parsing {_go_quote(text)}: value out of range")
    return value


def parse_go_bool(text: str) -> bool:
    """Go's strconv.ParseBool; ValueError carries Go's message."""
    if text not in _GO_BOOLS:
        raise ValueError(f"strconv.ParseBool: parsing {_go_quote(text)}: invalid syntax")
    return _GO_BOOLS[text]


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- data filters --------------------------------------------------------------------------------

_NUMBER_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "": operator.eq, "=": operator.eq, "!=": operator.ne, ">": operator.gt, ">=": operator.ge,
    "<": operator.lt, "<=": operator.le,
}


class _DataCheck:
    """One `filters.data[]` entry."""

    __slots__ = ("comparator", "parsed", "path", "source", "spec", "template", "template_source", "type",
                 "values")

    def __init__(self, f: DataFilter, where: FieldPath, warnings: list[str]) -> None:
        _validate_data(f, where)
        self.source = f.path
        self.path = _compile_path(f.path, (*where, "path"))
        self.type, self.comparator, self.values = f.type, f.comparator, tuple(f.value)
        self.template_source = f.template
        self.template = _compile_template(f.template, (*where, "template")) if f.template else None
        self.parsed = _parse_values(f, where, warnings)
        self.spec = sys.intern(_data_spec(f))  # alike Sensors describe alike filters: kept once

    def check(self, data: Any) -> _Outcome:
        found = self.path.lookup(data)
        if not found.found:
            return _missing(self.source, found)
        if self.template is None:
            return self.match(found.value, _show(found.value))
        return self.templated(found.value)

    def templated(self, value: Any) -> _Outcome:
        assert self.template is not None
        try:
            out = self.template.render({"Input": paths.gjson_string(value)})
        except templates.TemplateExecError as e:
            return _Outcome(False, f"template {self.template_source!r} failed on {_show(value)}: {e}", str(e))
        if out in ("", "<no value>"):
            return _Outcome(
                False, f"template {self.template_source!r} gave {out!r} for {_show(value)}",
                f"template '{self.template_source}' evaluated to empty string or no value",
                f"template evaluated to empty string or no value: '{self.template_source}'")
        # Argo re-reads the output as a JSON string: the filter sees `out` as a string value.
        return self.match(out, f"{_q(out)} (the template's output for {_show(value)})")

    def match(self, value: Any, shown: str) -> _Outcome:
        if self.type == "string":
            return self.match_string(paths.gjson_string(value), value, shown)
        if self.type == "number":
            return self.match_number(value, shown)
        if self.type == "bool":
            return self.match_bool(value, shown)
        return _Outcome(False, f"type {self.type!r} is not string, number or bool",
                        f"unsupported JSON type '{self.type}'")

    def match_string(self, text: str, value: Any, shown: str) -> _Outcome:
        found = f"found {shown}{_as_text(value, text)}"
        negate = self.comparator == "!="
        for raw, regex in zip(self.values, self.parsed, strict=True):
            if isinstance(regex, str):
                return _Outcome(False, f"{found}; value {_q(raw)} is not a valid regular expression", regex)
            if self.comparator not in ("", "=", "!="):
                continue  # Argo compiles the regex, then never matches with <, >, <= or >=
            if (regex.search(text) is not None) != negate:
                return _Outcome(True, _string_pass(found, raw, regex, text, negate, len(self.values)))
        return _Outcome(False, self.string_fail(found, text))

    def string_fail(self, found: str, text: str) -> str:
        if self.comparator not in ("", "=", "!="):
            return f"{found}; comparator {self.comparator!r} never matches a string in Argo Events"
        values = ", ".join(_q(v) for v in self.values)
        if self.comparator != "!=":
            return f"{found}, which does not match {values}" if len(self.values) == 1 else \
                f"{found}, which matches none of {values}"
        inside = [_unanchored(v, r, text) for v, r in zip(self.values, self.parsed, strict=True)]
        note = "".join(f"; {i}" for i in inside if i)
        if len(self.values) == 1:
            return f"{found}, which matches {values}{note}"
        return f"{found}, which matches every one of {values}{note} (with !=, Argo Events passes " \
               "only when some value does not match)"

    def match_number(self, value: Any, shown: str) -> _Outcome:
        event = paths.gjson_float(value)
        found = f"found {shown}{_as_number(value, event)}"
        compare = _NUMBER_COMPARE[self.comparator]
        symbol = self.comparator or "="
        for raw, number in zip(self.values, self.parsed, strict=True):
            if isinstance(number, str):
                return _Outcome(False, f"{found}; value {_q(raw)} is not a number", number)
            if compare(event, number):
                return _Outcome(True, f"{found}; {_num(event)} {symbol} {raw}{_any_of(self, symbol)}")
        alternatives = f" or {symbol} ".join(self.values)
        return _Outcome(False, f"{found}; {_num(event)} {symbol} {alternatives} is false")

    def match_bool(self, value: Any, shown: str) -> _Outcome:
        event = paths.gjson_bool(value)
        found = f"found {shown}{'' if isinstance(value, bool) else f' (read as {str(event).lower()})'}"
        ignored = "" if self.comparator in ("", "=") else \
            f" (comparator {self.comparator!r} is ignored for bool, as in Argo Events)"
        for raw, wanted in zip(self.values, self.parsed, strict=True):
            if isinstance(wanted, str):
                return _Outcome(False, f"{found}; value {_q(raw)} is not a bool", wanted)
            if wanted == event:
                return _Outcome(True, f"{found}, which is {raw}{ignored}")
        return _Outcome(False, f"{found}, which is not {' or '.join(self.values)}{ignored}")


def _validate_data(f: DataFilter, where: FieldPath) -> None:
    # Argo's admission validation (pkg/reconciler/sensor/validate.go), with its words.
    if not f.path or not f.type or not f.value:
        raise FilterCompileError(where, "one of data filters is not valid (type, path and value must be not empty)")
    for i, value in enumerate(f.value):
        if value == "":
            raise FilterCompileError((*where, "value", i), "one of data filters is not valid (value must be not empty)")


def _parse_values(f: DataFilter, where: FieldPath, warnings: list[str]) -> tuple[Any, ...]:
    parse: Callable[[str], Any] | None = {
        "string": exprs.compile_go_regex, "number": parse_go_float, "bool": parse_go_bool,
    }.get(f.type)
    if parse is None:
        warnings.append(f"{dotted((*where, 'type'))}: unsupported JSON type '{f.type}' (use string, number "
                        "or bool); Argo Events fails this filter with an error whenever it is evaluated")
        return tuple(f.value)
    parsed: list[Any] = []
    for i, value in enumerate(f.value):
        try:
            parsed.append(parse(value))
        except ValueError as e:  # RegexError is a ValueError too
            parsed.append(str(e))
            warnings.append(f"{dotted((*where, 'value', i))}: {e}; Argo Events fails this filter with "
                            "an error when it reaches this value")
    return tuple(parsed)


def _string_pass(found: str, raw: str, regex: exprs.Matcher, text: str, negate: bool, count: int) -> str:
    if negate:
        note = " (with !=, Argo Events passes when any one value does not match)" if count > 1 else ""
        return f"{found}, which does not match {_q(raw)}{note}"
    unanchored = _unanchored(raw, regex, text)
    return f"{found}; {unanchored}" if unanchored else f"{found}, which matches {_q(raw)}"


def _unanchored(raw: str, regex: Any, text: str) -> str:
    if isinstance(regex, str) or regex.search(text) is None or regex.fullmatch(text) is not None:
        return ""
    return f"unanchored regex: {_short(raw)} matches inside {_short(text)}"


def _short(text: str, limit: int = 80) -> str:
    return "'" + (text if len(text) <= limit else text[: limit - 3] + "...") + "'"


def _as_text(value: Any, text: str) -> str:
    if isinstance(value, str):
        return ""
    if value is None:
        return ' (null, matched as "")'
    if isinstance(value, dict | list):
        return f" (JSON {'object' if isinstance(value, dict) else 'array'}, matched as its text {_short(text)})"
    return f" (matched as {_q(text)})"


def _as_number(value: Any, event: float) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return ""
    if isinstance(value, str) and _is_go_float(value):
        return f" (read as {_num(event)})"
    return f" (not a number: Argo Events reads it as {_num(event)})"


def _is_go_float(text: str) -> bool:
    try:
        parse_go_float(text)
    except ValueError:
        return False
    return True


def _any_of(check: _DataCheck, symbol: str) -> str:
    if symbol == "!=" and len(check.values) > 1:
        return " (with !=, Argo Events passes when the value differs from any one of them)"
    return ""


def _data_spec(f: DataFilter) -> str:
    subject = f"template {f.template!r} of {f.path}" if f.template else f.path
    symbol = f.comparator or "="
    if f.type == "string":
        values = [_q(v) for v in f.value]
        if symbol == "=":
            return f"{subject} matches {' or '.join(values)} (string, unanchored regex)"
        if symbol == "!=":
            return f"{subject} does not match {' or does not match '.join(values)} (string, unanchored regex)"
        return f"{subject} {symbol} {' or '.join(values)} (string: {symbol} never matches in Argo Events)"
    if f.type == "number":
        return f"{subject} {symbol} {f' or {symbol} '.join(f.value)} (number)"
    if f.type == "bool":
        ignored = "" if symbol == "=" else f"; comparator {symbol} ignored"
        return f"{subject} is {' or '.join(f.value)} (bool{ignored})"
    return f"{subject} {symbol} {' or '.join(f.value)} (type {f.type!r}: unsupported)"


def _compile_path(source: str, where: FieldPath) -> paths.CompiledPath:
    try:
        return paths.compile_path(source)
    except paths.PathError as e:
        raise FilterCompileError(where, str(e)) from None


def _compile_template(source: str, where: FieldPath) -> templates.Template:
    try:
        return templates.compile_template(source)
    except templates.TemplateError as e:
        raise FilterCompileError(where, str(e)) from None


# --- expr filters --------------------------------------------------------------------------------


class _ExprCheck:
    """One `filters.exprs[]` entry."""

    __slots__ = ("expr", "fields", "spec")

    def __init__(self, f: ExprFilter, where: FieldPath, warnings: list[str]) -> None:
        _validate_expr(f, where)
        self.fields = tuple((p.name, p.path, _compile_path(p.path, (*where, "fields", i, "path")))
                            for i, p in enumerate(f.fields))
        try:
            self.expr = exprs.compile_expr(f.expr, fields=[name for name, _, _ in self.fields])
        except exprs.ExprError as e:
            raise FilterCompileError((*where, "expr"), str(e)) from None
        unbound = self.expr.unbound_names()
        if unbound:
            warnings.append(f"{dotted((*where, 'expr'))}: reads {', '.join(unbound)}, which no field binds; "
                            "the filter fails with an error whenever the evaluation needs it")
        self.spec = sys.intern(_expr_spec(self.expr, self.fields))

    def check(self, data: Any) -> _Outcome:
        bindings: dict[str, Any] = {}
        for name, source, path in self.fields:
            found = path.lookup(data)
            if not found.found:
                return _missing(source, found)
            bindings[name] = found.value
        shown = ", ".join(f"{name}={_show(value)}" for name, value in bindings.items())
        try:
            passed = self.expr.evaluate(bindings)
        except exprs.ExprError as e:
            return _Outcome(False, f"with {shown}: {e}", str(e))
        return _Outcome(passed, f"with {shown}: {'true' if passed else 'not true'}")


def _validate_expr(f: ExprFilter, where: FieldPath) -> None:
    if not f.expr or not f.fields:
        raise FilterCompileError(where, "one of expr filters is not valid (expr and fields must be not empty)")
    for i, p in enumerate(f.fields):
        if not p.name or not p.path:
            raise FilterCompileError((*where, "fields", i),
                                     "one of expr filters is not valid (path and name in a field must be not empty)")


def _expr_spec(expr: exprs.CompiledExpr, fields: Sequence[tuple[str, str, Any]]) -> str:
    cel = "" if expr.cel.strip() == expr.source.strip() else f" (CEL: {expr.cel.strip()})"
    bound = ", ".join(f"{name} = {source}" for name, source, _ in fields)
    return f"{expr.source.strip()}{cel} with {bound}"


# --- context filter ------------------------------------------------------------------------------

_CONTEXT_KEYS = ("type", "subject", "source", "datacontenttype")
_IGNORED_CONTEXT_KEYS = ("id", "specversion", "time", "dataschema")


class _ContextCheck:
    __slots__ = ("expected", "spec")

    def __init__(self, f: ContextFilter, where: FieldPath, warnings: list[str]) -> None:
        self.expected = tuple((k, getattr(f, k)) for k in _CONTEXT_KEYS if getattr(f, k))
        if not self.expected:
            raise FilterCompileError(where, "no fields specified in ctx filter (aka all events will be discarded)")
        ignored = [k for k in _IGNORED_CONTEXT_KEYS if getattr(f, k)]
        if ignored:
            warnings.append(f"{dotted(where)}: ignored field(s) {', '.join(ignored)}: as in Argo Events, only "
                            "type, subject, source and datacontenttype are compared")
        self.spec = "event " + " and ".join(f"{k} is {_q(v)}" for k, v in self.expected)

    def check(self, event: CloudEvent) -> _Outcome:
        wrong = [(k, v, getattr(event, k)) for k, v in self.expected if getattr(event, k) != v]
        if wrong:
            return _Outcome(False, "; ".join(f"event {k} is {_q(a)}, not {_q(v)}" for k, v, a in wrong))
        return _Outcome(True, "event " + " and ".join(f"{k} is {_q(v)}" for k, v in self.expected))


# --- time filter ---------------------------------------------------------------------------------

_GO_LAYOUT = "2006-01-02 15:04:05"


class _GoTimeError(ValueError):
    pass


class _TimeCheck:
    __slots__ = ("spec", "start", "stop", "window", "zone", "zone_name")

    def __init__(self, f: TimeFilter, where: FieldPath) -> None:
        self.zone_name = f.timezone or "UTC"
        self.zone = _zone(f.timezone, (*where, "timezone"))
        today = dt.datetime.now(dt.UTC).astimezone(self.zone).date().isoformat()  # as Argo validates
        self.start = _clock(f.start, today, (*where, "start"))
        self.stop = _clock(f.stop, today, (*where, "stop"))
        if self.start == self.stop:
            # Argo's message, unbalanced quote included.
            raise FilterCompileError(where, f"invalid event time filter: stop '{f.stop}' is equal to start '{f.start}")
        self.window = f"[{f.start}, {f.stop}) {self.zone_name}"
        self.spec = f"event time in {self.window}" + (" (wraps past midnight)" if self.stop < self.start else "")

    def check(self, when: dt.datetime) -> _Outcome:
        when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
        local = when.astimezone(self.zone)
        start = dt.datetime.combine(local.date(), self.start, tzinfo=self.zone).timestamp()
        stop = dt.datetime.combine(local.date(), self.stop, tzinfo=self.zone).timestamp()
        t = when.timestamp()
        inside = start <= t < stop if start < stop else (t >= start or t < stop)
        shown = f"{local:%H:%M:%S} {self.zone_name} on {local:%Y-%m-%d}"
        return _Outcome(inside, f"event time {shown} is {'inside' if inside else 'outside'} {self.window}")


def _zone(name: str | None, where: FieldPath) -> dt.tzinfo:
    if not name or name in ("UTC", "Local"):  # a Sensor pod's Local is UTC unless TZ is set
        return dt.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise FilterCompileError(where, f"invalid timezone '{name}': unknown time zone {name}") from None


def _clock(text: str, today: str, where: FieldPath) -> dt.time:
    try:
        return _parse_go_clock(text)
    except _GoTimeError as e:
        value = _go_quote(f"{today} {text}")
        element, layout_element, message = e.args
        if message:
            raise FilterCompileError(where, f"parsing time {value}{message}") from None
        raise FilterCompileError(where, f"parsing time {value} as \"{_GO_LAYOUT}\": cannot parse "
                                        f"{_go_quote(element)} as \"{layout_element}\"") from None


def _parse_go_clock(text: str) -> dt.time:
    """The `15:04:05` half of Go's time.Parse("2006-01-02 15:04:05", ...), with its errors."""
    rest = text.lstrip(" ")  # a space in Go's layout consumes any run of spaces
    hour, rest = _go_number(rest, "15", fixed=False, limit=24, unit="hour")
    rest = _go_skip(rest, ":")
    minute, rest = _go_number(rest, "04", fixed=True, limit=60, unit="minute")
    rest = _go_skip(rest, ":")
    second, rest = _go_number(rest, "05", fixed=True, limit=60, unit="second")
    micros = 0
    if len(rest) >= 2 and rest[0] in ".," and rest[1].isdigit():  # Go accepts fractional seconds
        digits = re.match(r"\d+", rest[1:])
        assert digits is not None
        micros = int((digits.group() + "000000")[:6])
        rest = rest[1 + digits.end():]
    if rest:
        raise _GoTimeError(rest, "", f": extra text: {_go_quote(rest)}")
    return dt.time(hour, minute, second, micros)


def _go_number(text: str, layout: str, *, fixed: bool, limit: int, unit: str) -> tuple[int, str]:
    if not text[:1].isdigit() or (fixed and not text[1:2].isdigit()):
        raise _GoTimeError(text, layout, "")
    width = 2 if text[1:2].isdigit() else 1
    number = int(text[:width])
    if number >= limit:
        raise _GoTimeError(text, layout, f": {unit} out of range")
    return number, text[width:]


def _go_skip(text: str, prefix: str) -> str:
    if not text.startswith(prefix):
        raise _GoTimeError(text, prefix, "")
    return text[len(prefix):]


# --- groups and the dependency -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _GroupResult:
    passed: bool
    error: str | None
    results: list[FilterResult]


def _run_group(kind: Kind, checks: Sequence[_Check], operator_: str, data: Any) -> _GroupResult:
    """Argo's filterData / filterExpr loop over one group."""
    either = operator_ == "or"
    results: list[FilterResult] = []
    errors: list[str] = []
    for i, check in enumerate(checks):
        outcome = check.check(data)
        error = (outcome.or_error or outcome.error) if either else outcome.error
        results.append(FilterResult(kind, check.spec, outcome.passed and error is None, outcome.reason, error))
        rest = checks[i + 1:]
        if error is not None and not either:
            why = f"an earlier {kind} filter failed with an error ({kind}LogicalOperator and)"
            return _GroupResult(False, f"{kind} filter error ({error})", results + _skipped(kind, rest, why))
        if error is not None:
            errors.append(error)
        elif outcome.passed and either:
            why = f"an earlier {kind} filter passed ({kind}LogicalOperator or)"
            return _GroupResult(True, None, results + _skipped(kind, rest, why))
        elif not outcome.passed and not either:
            why = f"an earlier {kind} filter did not pass ({kind}LogicalOperator and)"
            return _GroupResult(False, None, results + _skipped(kind, rest, why))
    if not either:
        return _GroupResult(True, None, results)
    return _GroupResult(False, f"{kind} filter errors [{' / '.join(errors)}]" if errors else None, results)


def _skipped(kind: str, checks: Sequence[_Check], why: str) -> list[FilterResult]:
    return [FilterResult(kind, c.spec, False, f"not evaluated: {why}") for c in checks]


def _no_data(kind: Kind, checks: Sequence[_Check]) -> _GroupResult:
    why = f"the event has no data: Argo Events lets it through {kind} filters"
    return _GroupResult(True, None, [FilterResult(kind, c.spec, True, why) for c in checks])


class DependencyFilter:
    """A dependency's filters, compiled; `evaluate` is cheap and has no side effects."""

    __slots__ = ("_configured", "_context", "_data", "_data_op", "_either", "_expr_op", "_exprs", "_kinds",
                 "_time", "dependency", "warnings")

    def __init__(self, dependency: EventDependency) -> None:
        self.dependency = dependency
        warnings: list[str] = []
        f = dependency.filters
        self._configured = f is not None
        self._either = dependency.filtersLogicalOperator == "or"
        self._exprs = None if f is None or f.exprs is None else \
            [_ExprCheck(e, ("filters", "exprs", i), warnings) for i, e in enumerate(f.exprs)]
        self._data = None if f is None or f.data is None else \
            [_DataCheck(d, ("filters", "data", i), warnings) for i, d in enumerate(f.data)]
        self._context = None if f is None or f.context is None else \
            _ContextCheck(f.context, ("filters", "context"), warnings)
        self._time = None if f is None or f.time is None else _TimeCheck(f.time, ("filters", "time"))
        self._expr_op = f.exprLogicalOperator if f else ""
        self._data_op = f.dataLogicalOperator if f else ""
        self._kinds: tuple[tuple[str, Sequence[Any]], ...] = (
            ("expr", self._exprs or []), ("data", self._data or []),
            ("context", [self._context] if self._context else []), ("time", [self._time] if self._time else []))
        self.warnings = tuple(warnings)

    def evaluate(self, event: CloudEvent) -> Verdict:
        if not self._configured:
            return Verdict(True, (), None)  # Argo calls no filter at all
        stages = (self._stage_exprs, self._stage_data, self._stage_context, self._stage_time)
        results: list[FilterResult] = []
        errors: list[str] = []
        passes: list[bool] = []
        for i, stage in enumerate(stages):
            group = stage(event)
            results.extend(group.results)
            if group.error is not None and not self._either:
                why = "an earlier filter failed with an error (filtersLogicalOperator and)"
                for kind, checks in self._kinds[i + 1:]:
                    results.extend(_skipped(kind, checks, why))
                return Verdict(False, tuple(results), group.error)
            if group.error is not None:
                errors.append(group.error)
            passes.append(group.passed)
        return self._verdict(passes, results, errors)

    def _verdict(self, passes: list[bool], results: list[FilterResult], errors: list[str]) -> Verdict:
        if not self._either:
            return Verdict(all(passes), tuple(results), None)
        configured = (self._exprs is not None, self._data is not None, self._context is not None,
                      self._time is not None)
        passed = any(p and c for p, c in zip(passes, configured, strict=True))
        error = " / ".join(errors) or None
        return Verdict(passed and error is None, tuple(results), error)  # Argo's Filter(): error → false

    def _stage_exprs(self, event: CloudEvent) -> _GroupResult:
        if self._exprs is None:
            return _GroupResult(True, None, [])
        if event.data is None:
            return _no_data("expr", self._exprs)
        return _run_group("expr", self._exprs, self._expr_op, event.data)

    def _stage_data(self, event: CloudEvent) -> _GroupResult:
        if not self._data:
            return _GroupResult(True, None, [])  # Argo: len(filters) == 0 passes
        if event.data is None:
            return _no_data("data", self._data)
        return _run_group("data", self._data, self._data_op, event.data)

    def _stage_context(self, event: CloudEvent) -> _GroupResult:
        if self._context is None:
            return _GroupResult(True, None, [])
        outcome = self._context.check(event)
        return _GroupResult(outcome.passed, None, [FilterResult("context", self._context.spec, outcome.passed,
                                                                 outcome.reason)])

    def _stage_time(self, event: CloudEvent) -> _GroupResult:
        if self._time is None:
            return _GroupResult(True, None, [])
        outcome = self._time.check(event.time)
        return _GroupResult(outcome.passed, None, [FilterResult("time", self._time.spec, outcome.passed,
                                                                outcome.reason)])


def compile_dependency(dep: EventDependency) -> DependencyFilter:
    """Compile a dependency's filters; `FilterCompileError` names the field that cannot load."""
    return DependencyFilter(dep)
