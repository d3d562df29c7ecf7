"""Go text/template with the sprig functions Argo Events sensors use, in Python.

Why this module exists: Argo Events renders trigger `dataTemplate` / `contextTemplate` and the
data-filter `template` with Go's text/template plus sprig. A manifest that Argo accepts must load
unchanged here and render the same text. This is a re-implementation of the Go engine from its
observable behaviour (no Go code carried over): parsed once into a tree by `compile_template`,
rendered many times by `Template.render(data)`. Callers pass the root value themselves; Argo's
is `{"Input": payload}`.

Syntax supported: text and `{{ }}` actions, `{{-` / `-}}` trimming, `{{/* comments */}}`; `.`,
`$`, `.Input.a.b`, `$x.a`, `(pipeline).a`; pipelines `a | f x` (the piped value is the LAST
argument, as in Go); parenthesised sub-pipelines; "strings" with Go escapes, `raw` strings,
'c' characters, Go numbers, true/false/nil; `if`/`else if`/`else`, `range` (lists, maps in key
order, ints; `$v :=` and `$i, $v :=`; `else`; `break`/`continue`), `with`/`else with`;
variables `$x := ...` and `$x = ...`.

Functions: see SUPPORTED_FUNCTIONS. An unknown function is a compile-time TemplateError
(`function "foo" not defined`, as Go says at parse time) listing what is supported.

Go semantics kept on purpose, because Argo users see them:

* A missing map key renders `<no value>`; so does JSON null printed on its own. Inside a map or
  list null prints `<nil>`. A field of null is an exec error (`nil pointer evaluating ...`).
* JSON numbers are float64 in Argo. Here every Python `int`/`float` that comes from the data is
  treated as float64: `{{ .Input.iid }}` with 7 renders `7`, but 1000000 renders `1e+06`,
  because Go prints float64 with %v, which switches to exponent form from 1e6 (a real gotcha:
  `printf "%.0f"` or `int` gives digits; `toJson` keeps digits up to 1e21). Numbers written in
  the template and results of `len`, `atoi`, `int` are Go ints (GoInt) and print as digits.
* Because of that, `eq .Input.iid 7` is an exec error (float64 vs int: "incompatible types for
  comparison"); write `eq .Input.iid 7.0`. `printf "%d" .Input.iid` prints `%!d(float64=7)`.
* String functions take Go `string` parameters: `upper .Input.iid` (a number) or piping a missing
  value into `upper` is an exec error, exactly as in Go; `toString` converts first.
* `b64dec` of invalid base64 returns Go's error text (`illegal base64 data at input byte N`);
  Argo's filter tests rely on it. `default`/`empty`/`coalesce` use sprig emptiness.
* `substr`/`trunc`/`len` count bytes of the UTF-8 text, as Go does.
* `date`/`now` use UTC for Go's "Local" (a container's usual zone). `date` with a value that is
  not a time or a Go int formats the current time (sprig does the same for float64 input).

Not supported (compile-time TemplateError or documented difference): `define`, `template`,
`block`; methods on values (`now.Year`), `call`, `js`, `slice`, complex numbers; printf argument indexes
(`%[1]d`) and `*` widths; sprig functions outside SUPPORTED_FUNCTIONS. Regular expressions use
Python's `re`, close to but not exactly RE2. Time values print without Go's monotonic clock
suffix. Exec-error messages follow Go's wording but not always its exact type names.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import functools
import hashlib
import json
import math
import re
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, NoReturn


class TemplateError(ValueError):
    """The template cannot be compiled: a syntax error or an unknown function."""


class TemplateExecError(ValueError):
    """Rendering failed the way Go's text/template execution fails (Argo then falls back)."""


# --- values ----------------------------------------------------------------------------------


class _NoValue:
    """Go's invalid reflect.Value: what a missing map key yields. Prints as `<no value>`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<no value>"


class _Absent:
    """No piped-in final argument (Go's missingVal)."""

    __slots__ = ()


class GoInt(int):
    """An int that Go types `int` (template literals, `len`, `atoi`...).

    Plain Python ints come from event data, i.e. JSON numbers, which Argo holds as float64.
    """

    __slots__ = ()


_NO_VALUE: Final = _NoValue()
_ABSENT: Final = _Absent()
_TRIM_CHARS: Final = " \t\r\n"
_TRIM_SET: Final = frozenset(_TRIM_CHARS)
_GO_SPACE: Final = "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + (
    "\u2028\u2029\u202f\u205f\u3000")


def _is_float64(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool | GoInt)


def _go_type(value: Any) -> str:
    if value is None or value is _NO_VALUE:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, GoInt):
        return "int"
    if _is_float64(value):
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


def _truth(value: Any) -> bool:
    if value is None or value is _NO_VALUE:
        return False
    if isinstance(value, str | list | tuple | dict):
        return len(value) > 0
    if isinstance(value, bool | int | float):
        return value != 0
    return True  # structs (time.Time) are always true in Go


# --- number and value formatting (Go's fmt / strconv) ----------------------------------------


def _shortest_digits(value: float) -> tuple[str, int]:
    """Shortest round-trip digits of abs(value) and the decimal point position (0.DIGITS x 10^dp)."""
    sign_digits_exp = decimal.Decimal(repr(abs(value))).as_tuple()
    digits = "".join(map(str, sign_digits_exp.digits)).lstrip("0")
    exponent = int(sign_digits_exp.exponent)
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    return stripped, len(stripped) + exponent


def _special_float(value: float) -> str | None:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    return None


def _fixed(digits: str, point: int) -> str:
    if point <= 0:
        return "0." + "0" * -point + digits
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return f"{digits[:point]}.{digits[point:]}"


def _exponent(digits: str, point: int, min_exp_digits: int = 2) -> str:
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    exp = point - 1
    sign = "-" if exp < 0 else "+"
    return f"{mantissa}e{sign}{abs(exp):0{min_exp_digits}d}"


def _format_float_v(value: float) -> str:
    """Go `%v` of a float64 (shortest %g): exponent form below 1e-4 and from 1e6 up, e.g. `1e+06`."""
    special = _special_float(value)
    if special is not None:
        return special
    digits, point = _shortest_digits(value)
    sign = "-" if value < 0 else ""
    exp = point - 1
    if exp < -4 or exp >= 6:
        return sign + _exponent(digits, point)
    return sign + _fixed(digits, point)


def _format_float_json(value: float) -> str:
    """Go encoding/json float64: like %v but exponent only below 1e-6 or from 1e21, `e-7` not `e-07`."""
    special = _special_float(value)
    if special is not None:
        return special
    digits, point = _shortest_digits(value)
    sign = "-" if value < 0 else ""
    if abs(value) < 1e-6 or abs(value) >= 1e21:
        return sign + _exponent(digits, point, min_exp_digits=1)
    return sign + _fixed(digits, point)


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _fmt_v(value: Any) -> str:
    """Go `%v` (fmt.Sprint of one operand)."""
    if value is None or value is _NO_VALUE:
        return "<nil>"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, GoInt):
        return int.__repr__(value)
    if isinstance(value, int | float):
        return _format_float_v(_as_float(value))
    if isinstance(value, dict):
        items = " ".join(f"{_fmt_v(key)}:{_fmt_v(value[key])}" for key in sorted(value, key=str))
        return f"map[{items}]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(_fmt_v(item) for item in value) + "]"
    if isinstance(value, dt.datetime):
        return _go_time_format(value, "2006-01-02 15:04:05.999999999 -0700 MST")
    return str(value)


def _sprint(*args: Any) -> str:
    # fmt.Sprint adds a space between operands when neither is a string.
    parts: list[str] = []
    for index, arg in enumerate(args):
        if index and not isinstance(arg, str) and not isinstance(args[index - 1], str):
            parts.append(" ")
        parts.append(_fmt_v(arg))
    return "".join(parts)


def _sprintln(*args: Any) -> str:
    return " ".join(_fmt_v(arg) for arg in args) + "\n"


def _go_quote(text: str) -> str:
    """strconv.Quote."""
    named = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
             '"': '\\"', "\\": "\\\\"}
    out = ['"']
    for char in text:
        code = ord(char)
        if char in named:
            out.append(named[char])
        elif char.isprintable():
            out.append(char)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


# --- printf --------------------------------------------------------------------------------

_VERB_RE: Final = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d*))?(.?)", re.DOTALL)


def _sprintf(fmt: str, *args: Any) -> str:
    out: list[str] = []
    pos = 0
    used = 0
    for match in _VERB_RE.finditer(fmt):
        out.append(fmt[pos:match.start()])
        pos = match.end()
        flags, width, precision, verb = match.groups()
        if verb == "%":
            out.append("%")
        elif not verb:
            out.append("%!(NOVERB)")
        elif used >= len(args):
            out.append(f"%!{verb}(MISSING)")
        else:
            prec = int(precision) if precision else (0 if precision == "" else None)
            out.append(_pad(_format_verb(args[used], verb, flags, prec), flags, width, args[used]))
            used += 1
    out.append(fmt[pos:])
    if used < len(args):
        extra = ", ".join(_bad_operand(arg) for arg in args[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _bad_operand(value: Any) -> str:
    if value is None or value is _NO_VALUE:
        return "<nil>"
    return f"{_go_type(value)}={_fmt_v(value)}"


def _pad(text: str, flags: str, width: str, value: Any) -> str:
    if not width or len(text) >= int(width):
        return text
    size = int(width)
    if "-" in flags:
        return text.ljust(size)
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if "0" in flags and numeric and text[:1] in "+-":
        return text[0] + text[1:].rjust(size - 1, "0")
    return text.rjust(size, "0" if "0" in flags and numeric else " ")


def _format_verb(value: Any, verb: str, flags: str, prec: int | None) -> str:
    formatter = _VERB_FORMATTERS.get(verb)
    text = formatter(value, flags, prec) if formatter is not None else None
    if text is None:
        return f"%!{verb}({_bad_operand(value)})"
    return text


def _verb_v(value: Any, flags: str, prec: int | None) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and "+" in flags and value >= 0:
        return "+" + _fmt_v(value)
    return _fmt_v(value)


def _verb_s(value: Any, flags: str, prec: int | None) -> str | None:
    if isinstance(value, str):
        return value if prec is None else value[:prec]
    if isinstance(value, list | tuple | dict):
        return _fmt_v(value)
    return None


def _verb_q(value: Any, flags: str, prec: int | None) -> str | None:
    if isinstance(value, str):
        return _go_quote(value)
    if isinstance(value, GoInt):
        return "'" + _go_quote(chr(value))[1:-1].replace("'", "\\'").replace('\\"', '"') + "'"
    return None


def _verb_int(verb: str) -> Callable[[Any, str, int | None], str | None]:
    spec = {"d": "d", "x": "x", "X": "X", "o": "o", "b": "b"}[verb]

    def format_int(value: Any, flags: str, prec: int | None) -> str | None:
        if isinstance(value, GoInt):
            sign = "+" if "+" in flags else ""
            return format(int(value), sign + spec)
        if isinstance(value, str) and verb in "xX":
            return value.encode().hex() if verb == "x" else value.encode().hex().upper()
        return None
    return format_int


def _verb_float(verb: str) -> Callable[[Any, str, int | None], str | None]:
    def format_float(value: Any, flags: str, prec: int | None) -> str | None:
        if not _is_float64(value):
            return None
        number = _as_float(value)
        special = _special_float(number) if number != 0 else None
        if special is not None:
            return special
        sign = "+" if "+" in flags and number >= 0 else ""
        if verb in "gG" and prec is None:
            shortest = sign + _format_float_v(number)
            return shortest.upper() if verb == "G" else shortest
        return sign + format(number, f".{6 if prec is None else prec}{verb}")
    return format_float


def _verb_t(value: Any, flags: str, prec: int | None) -> str | None:
    return ("true" if value else "false") if isinstance(value, bool) else None


def _verb_c(value: Any, flags: str, prec: int | None) -> str | None:
    return chr(value) if isinstance(value, GoInt) else None


_VERB_FORMATTERS: Final[dict[str, Callable[[Any, str, int | None], str | None]]] = {
    "v": _verb_v, "s": _verb_s, "q": _verb_q, "t": _verb_t, "c": _verb_c,
    **{verb: _verb_int(verb) for verb in "dxXob"},
    **{verb: _verb_float(verb) for verb in "eEfFgG"},
}


# --- Go-compatible JSON (encoding/json) ------------------------------------------------------


def _go_json(value: Any, escape_html: bool) -> str:
    if value is None or value is _NO_VALUE:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, GoInt):
        return int.__repr__(value)
    if isinstance(value, int | float):
        number = _as_float(value)
        if math.isnan(number) or math.isinf(number):
            raise ValueError(f"json: unsupported value: {_fmt_v(number)}")
        return _format_float_json(number)
    if isinstance(value, str):
        return _go_json_string(value, escape_html)
    if isinstance(value, dict):
        items = (f"{_go_json_string(str(key), escape_html)}:{_go_json(value[key], escape_html)}"
                 for key in sorted(value, key=str))
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_go_json(item, escape_html) for item in value) + "]"
    if isinstance(value, dt.datetime):
        return '"' + _go_time_format(value, "2006-01-02T15:04:05.999999999Z07:00") + '"'
    raise ValueError(f"json: unsupported type: {_go_type(value)}")


def _go_json_string(text: str, escape_html: bool) -> str:
    encoded = json.dumps(text, ensure_ascii=False)
    # Go always escapes the JS line separators, and <, >, & unless HTML escaping is off.
    encoded = encoded.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    if escape_html:
        encoded = encoded.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return encoded


# --- Go time layouts ------------------------------------------------------------------------

_LAYOUT_CHUNKS: Final = (
    "January", "Jan", "Monday", "Mon", "MST", "01", "02", "03", "04", "05", "06", "002", "15", "1",
    "2006", "2", "__2", "_2", "3", "4", "5", "PM", "pm",
    "-070000", "-07:00:00", "-0700", "-07:00", "-07", "Z070000", "Z07:00:00", "Z0700", "Z07:00", "Z07",
)
_MONTHS: Final = ("January", "February", "March", "April", "May", "June", "July", "August",
                  "September", "October", "November", "December")
_WEEKDAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _layout_chunk(layout: str, i: int) -> str:
    """The Go layout element starting at layout[i], or "" (Go's nextStdChunk rules)."""
    if layout.startswith("_2006", i):
        return ""  # a literal "_" followed by the year
    for chunk in _LAYOUT_CHUNKS:
        if not layout.startswith(chunk, i):
            continue
        after = layout[i + len(chunk):i + len(chunk) + 1]
        if chunk in ("Jan", "Mon") and after.islower():
            continue
        return chunk
    return ""


def _fraction_chunk(layout: str, i: int) -> int:
    if layout[i] not in ".," or i + 1 >= len(layout) or layout[i + 1] not in "09":
        return 0
    end = i + 1
    while end < len(layout) and layout[end] == layout[i + 1]:
        end += 1
    if end < len(layout) and layout[end].isdigit():
        return 0
    return end - i


def _go_time_format(moment: dt.datetime, layout: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(layout):
        width = _fraction_chunk(layout, i)
        if width:
            out.append(_format_fraction(moment, layout[i:i + width]))
            i += width
            continue
        chunk = _layout_chunk(layout, i)
        if chunk:
            out.append(_format_chunk(moment, chunk))
            i += len(chunk)
        else:
            out.append(layout[i])
            i += 1
    return "".join(out)


def _format_fraction(moment: dt.datetime, chunk: str) -> str:
    digits = f"{moment.microsecond * 1000:09d}"[:len(chunk) - 1]
    if chunk[1] == "9":
        digits = digits.rstrip("0")
        if not digits:
            return ""
    return chunk[0] + digits


def _hour12(moment: dt.datetime) -> int:
    return moment.hour % 12 or 12


def _yday(moment: dt.datetime) -> int:
    return moment.timetuple().tm_yday


_CHUNK_FORMATTERS: Final[dict[str, Callable[[dt.datetime], str]]] = {
    "2006": lambda t: f"{t.year:04d}",
    "06": lambda t: f"{t.year % 100:02d}",
    "January": lambda t: _MONTHS[t.month - 1],
    "Jan": lambda t: _MONTHS[t.month - 1][:3],
    "01": lambda t: f"{t.month:02d}",
    "1": lambda t: str(t.month),
    "Monday": lambda t: _WEEKDAYS[t.weekday()],
    "Mon": lambda t: _WEEKDAYS[t.weekday()][:3],
    "02": lambda t: f"{t.day:02d}",
    "2": lambda t: str(t.day),
    "_2": lambda t: f"{t.day:>2}",
    "002": lambda t: f"{_yday(t):03d}",
    "__2": lambda t: f"{_yday(t):>3}",
    "15": lambda t: f"{t.hour:02d}",
    "3": lambda t: str(_hour12(t)),
    "03": lambda t: f"{_hour12(t):02d}",
    "4": lambda t: str(t.minute),
    "04": lambda t: f"{t.minute:02d}",
    "5": lambda t: str(t.second),
    "05": lambda t: f"{t.second:02d}",
    "PM": lambda t: "PM" if t.hour >= 12 else "AM",
    "pm": lambda t: "pm" if t.hour >= 12 else "am",
    "MST": lambda t: _zone_name(t),
}


def _format_chunk(moment: dt.datetime, chunk: str) -> str:
    if chunk[0] in "-Z":
        return _format_zone(moment, chunk)
    return _CHUNK_FORMATTERS[chunk](moment)


def _zone_offset(moment: dt.datetime) -> int:
    offset = moment.utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _zone_name(moment: dt.datetime) -> str:
    name = moment.tzname() or ""
    if name and not name.startswith(("UTC+", "UTC-")):
        return name
    return _format_zone(moment, "-0700")


def _format_zone(moment: dt.datetime, chunk: str) -> str:
    offset = _zone_offset(moment)
    if chunk[0] == "Z" and offset == 0:
        return "Z"
    sign = "-" if offset < 0 else "+"
    offset = abs(offset)
    hours, minutes, seconds = offset // 3600, offset // 60 % 60, offset % 60
    body = chunk[1:]
    parts = [f"{hours:02d}"]
    if body.startswith("07:00") or body.startswith("0700"):
        parts.append(f"{minutes:02d}")
    if body in ("070000", "07:00:00"):
        parts.append(f"{seconds:02d}")
    return sign + (":" if ":" in body else "").join(parts)


# --- Go strconv / base64 helpers used by sprig --------------------------------------------

_GO_INT_RE: Final = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|0[0-7_]*|[1-9][0-9_]*)")
_GO_DECIMAL_INT_RE: Final = re.compile(r"[+-]?[0-9]+")
_GO_FLOAT_RE: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1


def _parse_go_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64): base prefixes, leading-0 octal, underscores."""
    if not _GO_INT_RE.fullmatch(text) or "__" in text or text.endswith("_"):
        return None
    body = text.lstrip("+-")
    sign = -1 if text.startswith("-") else 1
    if len(body) > 1 and body[0] == "0" and body[1] not in "xXoObB":
        value = int(body.replace("_", ""), 8)
    else:
        value = int(body.replace("_", ""), 0) if body[:2].lower() in ("0x", "0o", "0b") else int(body)
    value *= sign
    return value if _INT64_MIN <= value <= _INT64_MAX else None


def _parse_go_float(text: str) -> float | None:
    if _GO_FLOAT_RE.fullmatch(text):
        return float(text)
    if text.lower().lstrip("+-") in ("inf", "infinity", "nan"):
        return float(text.lower().replace("infinity", "inf"))
    return None


_B64_VALUES: Final = {ord(c): i for i, c in enumerate(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def _go_b64decode(text: str) -> str:
    """base64.StdEncoding.DecodeString, returning Go's error text on bad input (as sprig does)."""
    src = text.encode()
    out = bytearray()
    pos = 0
    while pos < len(src):
        pos, chunk, error_at = _b64_quantum(src, pos)
        if error_at is not None:
            return f"illegal base64 data at input byte {error_at}"
        out += chunk
    return out.decode("utf-8", errors="replace")


def _skip_newlines(src: bytes, pos: int) -> int:
    while pos < len(src) and src[pos] in b"\r\n":
        pos += 1
    return pos


def _b64_quantum(src: bytes, pos: int) -> tuple[int, bytes, int | None]:
    # Mirrors Go's decodeQuantum so that the reported byte offset is the same.
    values = [0, 0, 0, 0]
    filled = 0
    while filled < 4:
        if pos == len(src):
            return pos, b"", (None if filled == 0 else pos - filled)
        byte = src[pos]
        pos += 1
        if byte in _B64_VALUES:
            values[filled] = _B64_VALUES[byte]
            filled += 1
        elif byte in b"\r\n":
            continue
        elif byte != ord("=") or filled < 2:
            return pos, b"", pos - 1
        else:
            return _b64_padding(src, pos, values, filled)
    number = values[0] << 18 | values[1] << 12 | values[2] << 6 | values[3]
    return pos, number.to_bytes(3, "big"), None


def _b64_padding(src: bytes, pos: int, values: list[int], filled: int) -> tuple[int, bytes, int | None]:
    if filled == 2:
        pos = _skip_newlines(src, pos)
        if pos == len(src):
            return pos, b"", len(src)
        if src[pos] != ord("="):
            return pos, b"", pos - 1
        pos += 1
    pos = _skip_newlines(src, pos)
    if pos < len(src):
        return pos, b"", pos
    number = values[0] << 18 | values[1] << 12 | values[2] << 6 | values[3]
    return pos, number.to_bytes(3, "big")[:filled - 1], None


# --- sprig functions -----------------------------------------------------------------------


class _CallError(Exception):
    """A function failed; Go reports it as `error calling NAME: MSG`."""


def _strval(value: Any) -> str:
    return value if isinstance(value, str) else _fmt_v(value)


def _strslice(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [_strval(item) for item in value if item is not None]
    return [] if value is None else [_strval(value)]


def _empty(value: Any) -> bool:
    return not _truth(value)


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
        raise _CallError(f"runtime error: slice bounds out of range [:{end}] with length {size}")
    if start > end:
        raise _CallError(f"runtime error: slice bounds out of range [{start}:{end}]")


def _trunc(count: int, text: str) -> str:
    size = len(text.encode())
    if count < 0 and size + count > 0:
        return _bytes_slice(text, size + count, None)
    if count >= 0 and size > count:
        return _bytes_slice(text, None, count)
    return text


def _to_json(value: Any) -> str:
    try:
        return _go_json(value, escape_html=True)
    except ValueError:
        return ""  # sprig toJson swallows the marshal error


def _to_raw_json(value: Any) -> str:
    try:
        return _go_json(value, escape_html=False)
    except ValueError:
        return ""


def _from_json(text: str) -> Any:
    def reject_constant(name: str) -> NoReturn:
        raise ValueError(name)
    try:
        return json.loads(text, parse_constant=reject_constant)
    except ValueError:
        return None  # sprig fromJson returns nil on error


def _cast_int(value: Any) -> GoInt:
    """spf13/cast ToInt, as sprig's `int` / `int64`: unparsable input is 0."""
    if isinstance(value, bool):
        return GoInt(1 if value else 0)
    if isinstance(value, int | float):
        number = _as_float(value) if not isinstance(value, GoInt) else value
        return GoInt(int(number)) if math.isfinite(number) else GoInt(0)
    if isinstance(value, str):
        parsed = _parse_go_int(_trim_zero_decimal(value))
        return GoInt(parsed if parsed is not None else 0)
    return GoInt(0)


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
        return _as_float(value)
    if isinstance(value, str):
        parsed = _parse_go_float(value)
        return parsed if parsed is not None else 0.0
    return 0.0


def _atoi(text: str) -> GoInt:
    if not _GO_DECIMAL_INT_RE.fullmatch(text):
        return GoInt(0)
    return GoInt(min(max(int(text), _INT64_MIN), _INT64_MAX))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _date(layout: str, value: Any) -> str:
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, GoInt):
        moment = dt.datetime.fromtimestamp(int(value), dt.UTC)
    else:
        moment = _now()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return _go_time_format(moment.astimezone(dt.UTC), layout)


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
        raise _CallError("runtime error: invalid memory address or nil pointer dereference")
    if not isinstance(value, list | tuple):
        kind = {"string": "string", "int": "int", "float64": "float64", "bool": "bool"}.get(_go_type(value), "map")
        raise _CallError(f"Cannot find {name} on type {kind}")
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
        raise _CallError(f"regexp: Compile(`{pattern}`): error parsing regexp: {exc}") from exc


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


def _html_escape(*args: Any) -> str:
    text = _sprint(*args) if len(args) != 1 or not isinstance(args[0], str) else args[0]
    for char, entity in (("&", "&amp;"), ("'", "&#39;"), ('"', "&#34;"), ("<", "&lt;"), (">", "&gt;")):
        text = text.replace(char, entity)
    return text


def _urlquery(*args: Any) -> str:
    text = _sprint(*args) if len(args) != 1 or not isinstance(args[0], str) else args[0]
    return urllib.parse.quote_plus(text, safe="")


# --- builtins (text/template) --------------------------------------------------------------


def _basic_kind(value: Any) -> str:
    if value is None or value is _NO_VALUE:
        return "invalid"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, GoInt):
        return "int"
    if _is_float64(value):
        return "float"
    if isinstance(value, str):
        return "string"
    return "other"


def _eq(first: Any, *others: Any) -> bool:
    if not others:
        raise _CallError("missing argument for comparison")
    first_kind = _basic_kind(first)
    for other in others:
        other_kind = _basic_kind(other)
        if first_kind != other_kind:
            if "invalid" not in (first_kind, other_kind):
                raise _CallError(f"incompatible types for comparison: {_go_type(first)} and {_go_type(other)}")
            continue
        if _equal_same_kind(first_kind, first, other):
            return True
    return False


def _equal_same_kind(kind: str, first: Any, other: Any) -> bool:
    if kind == "invalid":
        return True
    if kind == "float":
        return _as_float(first) == _as_float(other)
    if kind == "other" and isinstance(first, dict | list | tuple):
        raise _CallError(f"non-comparable type {_fmt_v(first)}: {_go_type(first)}")
    return bool(first == other)


def _ne(first: Any, second: Any) -> bool:
    return not _eq(first, second)


def _lt(first: Any, second: Any) -> bool:
    first_kind, second_kind = _basic_kind(first), _basic_kind(second)
    if first_kind in ("invalid", "other", "bool") or second_kind in ("invalid", "other", "bool"):
        raise _CallError("invalid type for comparison")
    if first_kind != second_kind:
        raise _CallError(f"incompatible types for comparison: {_go_type(first)} and {_go_type(second)}")
    if first_kind == "float":
        return _as_float(first) < _as_float(second)
    return bool(first < second)


def _le(first: Any, second: Any) -> bool:
    return _lt(first, second) or _eq(first, second)


def _gt(first: Any, second: Any) -> bool:
    return not _le(first, second)


def _ge(first: Any, second: Any) -> bool:
    return not _lt(first, second)


def _not(value: Any) -> bool:
    return not _truth(value)


def _length(value: Any) -> GoInt:
    if value is None or value is _NO_VALUE:
        raise _CallError("len of nil pointer")
    if isinstance(value, str):
        return GoInt(len(value.encode()))
    if isinstance(value, list | tuple | dict):
        return GoInt(len(value))
    raise _CallError(f"len of type {_go_type(value)}")


def _index(item: Any, *indexes: Any) -> Any:
    if item is None or item is _NO_VALUE:
        raise _CallError("index of untyped nil")
    for index in indexes:
        if item is None:
            raise _CallError("index of nil pointer")
        item = _index_one(item, index)
    return item


def _index_one(item: Any, index: Any) -> Any:
    if isinstance(item, list | tuple | str):
        position = _index_position(index, len(item.encode()) if isinstance(item, str) else len(item))
        return GoInt(item.encode()[position]) if isinstance(item, str) else item[position]
    if isinstance(item, dict):
        if index is None or index is _NO_VALUE:
            raise _CallError("value is nil; should be of type string")
        if not isinstance(index, str):
            raise _CallError(f"value has type {_go_type(index)}; should be string")
        return item.get(index)
    raise _CallError(f"can't index item of type {_go_type(item)}")


def _index_position(index: Any, size: int) -> int:
    if index is None or index is _NO_VALUE:
        raise _CallError("cannot index slice/array with nil")
    if not isinstance(index, GoInt):
        raise _CallError(f"cannot index slice/array with type {_go_type(index)}")
    if index < 0 or index > size:
        raise _CallError(f"index out of range: {int(index)}")
    if index == size:
        raise _CallError("reflect: slice index out of range")
    return int(index)


# --- function table ------------------------------------------------------------------------

# Parameter kinds, named after the Go parameter types that decide argument conversion:
# "any" interface{} (a missing value arrives as nil), "value" reflect.Value (builtins see missing
# values as they are), "str" string, "int" int, "map" map[string]interface{}.
_GO_KIND_NAMES: Final = {"str": "string", "int": "int", "map": "map[string]interface {}",
                         "any": "interface {}", "value": "reflect.Value", "bool": "bool"}


@dataclasses.dataclass(frozen=True, slots=True)
class _Func:
    call: Callable[..., Any]
    params: tuple[str, ...] = ()
    variadic: str | None = None

    def kind_at(self, index: int) -> str:
        if index < len(self.params):
            return self.params[index]
        assert self.variadic is not None
        return self.variadic


def _str_func(call: Callable[..., Any], arity: int) -> _Func:
    return _Func(call, ("str",) * arity)


_FUNCTIONS: Final[dict[str, _Func]] = {
    # text/template builtins
    "and": _Func(lambda *a: a[-1], ("value",), "value"),  # evaluated lazily in _eval_call
    "or": _Func(lambda *a: a[-1], ("value",), "value"),
    "not": _Func(_not, ("value",)),
    "len": _Func(_length, ("value",)),
    "index": _Func(_index, ("value",), "value"),
    "print": _Func(_sprint, (), "any"),
    "printf": _Func(_sprintf, ("str",), "any"),
    "println": _Func(_sprintln, (), "any"),
    "eq": _Func(_eq, ("value",), "value"),
    "ne": _Func(_ne, ("value", "value")),
    "lt": _Func(_lt, ("value", "value")),
    "le": _Func(_le, ("value", "value")),
    "gt": _Func(_gt, ("value", "value")),
    "ge": _Func(_ge, ("value", "value")),
    "html": _Func(_html_escape, (), "any"),
    "urlquery": _Func(_urlquery, (), "any"),
    # sprig: strings
    "upper": _str_func(lambda s: _map_runes(s, str.upper), 1),
    "lower": _str_func(lambda s: _map_runes(s, str.lower), 1),
    "title": _str_func(_title, 1),
    "trim": _str_func(lambda s: s.strip(_GO_SPACE), 1),
    "nospace": _str_func(lambda s: "".join(c for c in s if c not in _GO_SPACE), 1),
    "trimPrefix": _str_func(lambda prefix, s: s.removeprefix(prefix), 2),
    "trimSuffix": _str_func(lambda suffix, s: s.removesuffix(suffix), 2),
    "trimAll": _str_func(lambda cutset, s: s.strip(cutset), 2),
    "replace": _str_func(lambda old, new, s: s.replace(old, new), 3),
    "contains": _str_func(lambda sub, s: sub in s, 2),
    "hasPrefix": _str_func(lambda prefix, s: s.startswith(prefix), 2),
    "hasSuffix": _str_func(lambda suffix, s: s.endswith(suffix), 2),
    "split": _str_func(lambda sep, s: {f"_{i}": part for i, part in enumerate(_split_go(sep, s))}, 2),
    "splitList": _str_func(_split_go, 2),
    "join": _Func(lambda sep, items: sep.join(_strslice(items)), ("str", "any")),
    "quote": _Func(lambda *a: " ".join(_go_quote(_strval(x)) for x in a if x is not None), (), "any"),
    "squote": _Func(lambda *a: " ".join(f"'{_strval(x)}'" for x in a if x is not None), (), "any"),
    "substr": _Func(_substr, ("int", "int", "str")),
    "trunc": _Func(_trunc, ("int", "str")),
    "b64enc": _str_func(lambda s: base64.b64encode(s.encode()).decode(), 1),
    "b64dec": _str_func(_go_b64decode, 1),
    "sha256sum": _str_func(lambda s: hashlib.sha256(s.encode()).hexdigest(), 1),
    "uuidv4": _Func(lambda: str(uuid.uuid4())),
    "regexMatch": _str_func(_regex_match, 2),
    "regexFind": _str_func(_regex_find, 2),
    "regexReplaceAll": _str_func(_regex_replace_all, 3),
    # sprig: defaults, conversion, encoding
    "default": _Func(_default, ("any",), "any"),
    "empty": _Func(_empty, ("any",)),
    "coalesce": _Func(_coalesce, (), "any"),
    "toJson": _Func(_to_json, ("any",)),
    "toRawJson": _Func(_to_raw_json, ("any",)),
    "fromJson": _str_func(_from_json, 1),
    "toString": _Func(_strval, ("any",)),
    "int": _Func(_cast_int, ("any",)),
    "int64": _Func(_cast_int, ("any",)),
    "float64": _Func(_cast_float, ("any",)),
    "atoi": _str_func(_atoi, 1),
    # sprig: dates
    "now": _Func(_now),
    "date": _Func(_date, ("str", "any")),
    # sprig: lists and dicts
    "list": _Func(lambda *items: list(items), (), "any"),
    "dict": _Func(_dict, (), "any"),
    "get": _Func(_get, ("map", "str")),
    "hasKey": _Func(_has_key, ("map", "str")),
    "keys": _Func(_keys, (), "map"),
    "first": _Func(_first, ("any",)),
    "last": _Func(_last, ("any",)),
    "sortAlpha": _Func(_sort_alpha, ("any",)),
}

SUPPORTED_FUNCTIONS: Final[frozenset[str]] = frozenset(_FUNCTIONS)

# sprig names people may reach for; they get a clearer "not implemented" message.
_KNOWN_SPRIG: Final = frozenset(
    "abbrev add add1 ago append camelcase cat ceil compact concat decryptAES deepCopy deepEqual dig dir "
    "div durationRound encryptAES env expandenv ext floor genPrivateKey has htmlDate include indent "
    "initial initials kebabcase kindIs kindOf max merge min mod mul nindent omit pick plural pluck "
    "prepend randAlpha randAlphaNum randNumeric regexFindAll regexSplit repeat required rest reverse "
    "round semver semverCompare set sha1sum sha512sum shuffle slice snakecase sub swapcase ternary "
    "toDate toPrettyJson toStrings tpl typeOf uniq unixEpoch unset untitle values without wrap".split())


# --- lexer ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    pos: int
    spaced: bool = False  # whitespace precedes it inside an action (Go's itemSpace)


_KEYWORDS: Final = frozenset({"if", "else", "end", "range", "with", "define", "template", "block",
                              "break", "continue"})
_NUMBER_RE: Final = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]*\.?[0-9a-fA-F_]*(?:[pP][+-]?[0-9_]+)?|0[oObB][0-7_]+"
    r"|(?:[0-9_]+\.?[0-9_]*|\.[0-9_]+)(?:[eE][+-]?[0-9_]+)?)i?")
_TERMINATORS: Final = frozenset(" \t\r\n.,|:)(")
_PUNCTUATION: Final = {"(": "lparen", ")": "rparen", "|": "pipe", ",": "comma", "=": "assign"}


class _Lexer:
    """Splits the source into text and action tokens, applying `{{-`/`-}}` trimming."""

    def __init__(self, source: str) -> None:
        self.src = source
        self.pos = 0
        self.tokens: list[_Token] = []
        self.spaced = False
        self.depth = 0

    def run(self) -> list[_Token]:
        trim_next = False
        while True:
            start = self.src.find("{{", self.pos)
            text = self.src[self.pos:start if start >= 0 else len(self.src)]
            if trim_next:
                text = text.lstrip(_TRIM_CHARS)
            if start >= 0 and self._left_trim(start):
                text = text.rstrip(_TRIM_CHARS)
            if text:
                self.tokens.append(_Token("text", text, self.pos))
            if start < 0:
                self.tokens.append(_Token("eof", "", len(self.src)))
                return self.tokens
            trim_next = self._action(start)

    def _left_trim(self, start: int) -> bool:
        # `{{-3}}` is the number -3: only "{{- " (dash then white space) trims.
        return self.src.startswith("-", start + 2) and self.src[start + 3:start + 4] in _TRIM_SET

    def _right_trim(self, pos: int) -> bool:
        return self.src[pos:pos + 1] in _TRIM_SET and self.src.startswith("-}}", pos + 1)

    def _fail(self, message: str, pos: int | None = None) -> NoReturn:
        raise _parse_error(self.src, self.pos if pos is None else pos, message)

    def _action(self, start: int) -> bool:
        self.pos = start + (4 if self._left_trim(start) else 2)
        if self.src.startswith("/*", self.pos):
            return self._comment()
        self.tokens.append(_Token("ldelim", "{{", start))
        self.depth = 0
        return self._inside_action()

    def _comment(self) -> bool:
        end = self.src.find("*/", self.pos + 2)
        if end < 0:
            self._fail("unclosed comment")
        self.pos = end + 2
        trim = self._right_trim(self.pos)
        if trim:
            self.pos += 2
        if not self.src.startswith("}}", self.pos):
            self._fail("comment ends before closing delimiter")
        self.pos += 2
        return trim

    def _inside_action(self) -> bool:
        self.spaced = False
        while True:
            if self.pos >= len(self.src):
                self._fail("unclosed action")
            if self.src.startswith("}}", self.pos) or self._right_trim(self.pos):
                return self._close_action()
            char = self.src[self.pos]
            if char in _TRIM_CHARS:
                self.pos += 1
                self.spaced = True
                continue
            self._token(char)
            self.spaced = False

    def _close_action(self) -> bool:
        if self.depth > 0:
            self._fail("unclosed left paren")
        trim = not self.src.startswith("}}", self.pos)
        self.tokens.append(_Token("rdelim", "}}", self.pos, self.spaced))
        self.pos += 4 if trim else 2
        return trim

    def _emit(self, kind: str, end: int) -> None:
        self.tokens.append(_Token(kind, self.src[self.pos:end], self.pos, self.spaced))
        self.pos = end

    def _token(self, char: str) -> None:
        nxt = self.src[self.pos + 1:self.pos + 2]
        if char in _PUNCTUATION:
            self._paren_depth(char)
            self._emit(_PUNCTUATION[char], self.pos + 1)
        elif char == ":":
            if nxt != "=":
                self._fail("expected :=")
            self._emit("declare", self.pos + 2)
        elif char in "\"`'":
            self._quoted(char)
        elif char == "$":
            self._word("variable", self.pos + 1)
        elif char == "." and not nxt.isdigit():
            self._field_or_dot(nxt)
        elif char.isdigit() or (char in "+-." and (nxt.isdigit() or nxt == ".")):
            self._number()
        elif char.isalpha() or char == "_":
            self._identifier()
        else:
            self._fail(f"bad character {_go_char(char)}")

    def _paren_depth(self, char: str) -> None:
        if char == "(":
            self.depth += 1
        elif char == ")":
            self.depth -= 1
            if self.depth < 0:
                self._fail("unexpected right paren")

    def _scan_word(self, pos: int) -> int:
        while pos < len(self.src) and (self.src[pos].isalnum() or self.src[pos] == "_"):
            pos += 1
        return pos

    def _check_terminator(self, pos: int) -> None:
        if pos < len(self.src) and self.src[pos] not in _TERMINATORS and not self.src.startswith("}}", pos):
            self._fail(f"bad character {_go_char(self.src[pos])}", pos)

    def _word(self, kind: str, start: int) -> None:
        end = self._scan_word(start)
        self._check_terminator(end)
        self._emit(kind, end)

    def _field_or_dot(self, nxt: str) -> None:
        if nxt.isalpha() or nxt == "_":
            self._word("field", self.pos + 1)
            return
        self._check_terminator(self.pos + 1)
        self._emit("dot", self.pos + 1)

    def _identifier(self) -> None:
        end = self._scan_word(self.pos)
        self._check_terminator(end)
        word = self.src[self.pos:end]
        kind = "bool" if word in ("true", "false") else "nil" if word == "nil" else (
            "keyword" if word in _KEYWORDS else "ident")
        self._emit(kind, end)

    def _number(self) -> None:
        match = _NUMBER_RE.match(self.src, self.pos)
        end = match.end() if match else self.pos + 1
        if end < len(self.src) and (self.src[end].isalnum() or self.src[end] == "_"):
            self._fail(f"bad number syntax: {self.src[self.pos:end + 1]!r}")
        self._emit("number", end)

    def _quoted(self, quote: str) -> None:
        end = self.pos + 1
        while end < len(self.src) and self.src[end] != quote:
            if quote != "`" and self.src[end] == "\\":
                end += 1
            elif quote != "`" and self.src[end] == "\n":
                break
            end += 1
        if end >= len(self.src) or self.src[end] != quote:
            what = {"`": "raw quoted string", '"': "quoted string", "'": "character constant"}[quote]
            self._fail(f"unterminated {what}")
        self._emit({"`": "raw", '"': "string", "'": "char"}[quote], end + 1)


def _go_char(char: str) -> str:
    return f"U+{ord(char):04X} {char!r}"


def _parse_error(source: str, pos: int, message: str) -> TemplateError:
    line = source.count("\n", 0, pos) + 1
    return TemplateError(f"template: line {line}: {message}")


# --- tree ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Dot:
    pos: int

    def __str__(self) -> str:
        return "."


@dataclasses.dataclass(frozen=True, slots=True)
class _Nil:
    pos: int

    def __str__(self) -> str:
        return "nil"


@dataclasses.dataclass(frozen=True, slots=True)
class _Bool:
    pos: int
    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclasses.dataclass(frozen=True, slots=True)
class _String:
    pos: int
    text: str
    quoted: str

    def __str__(self) -> str:
        return self.quoted


@dataclasses.dataclass(frozen=True, slots=True)
class _Number:
    pos: int
    text: str
    int_value: int | None
    float_value: float | None
    float_syntax: bool  # Go: an untyped constant written with . e p is a float64

    def __str__(self) -> str:
        return self.text


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    pos: int
    names: tuple[str, ...]

    def __str__(self) -> str:
        return "".join(f".{name}" for name in self.names)


@dataclasses.dataclass(frozen=True, slots=True)
class _Variable:
    pos: int
    name: str
    fields: tuple[str, ...]

    def __str__(self) -> str:
        return self.name + "".join(f".{name}" for name in self.fields)


@dataclasses.dataclass(frozen=True, slots=True)
class _Ident:
    pos: int
    name: str
    func: _Func

    def __str__(self) -> str:
        return self.name


@dataclasses.dataclass(frozen=True, slots=True)
class _Chain:
    pos: int
    node: _Operand
    fields: tuple[str, ...]

    def __str__(self) -> str:
        inner = f"({self.node})" if isinstance(self.node, _Pipe) else str(self.node)
        return inner + "".join(f".{name}" for name in self.fields)


@dataclasses.dataclass(frozen=True, slots=True)
class _Command:
    pos: int
    args: tuple[_Operand, ...]

    def __str__(self) -> str:
        return " ".join(f"({arg})" if isinstance(arg, _Pipe) else str(arg) for arg in self.args)


@dataclasses.dataclass(frozen=True, slots=True)
class _Pipe:
    pos: int
    decl: tuple[str, ...]
    is_assign: bool
    cmds: tuple[_Command, ...]

    def __str__(self) -> str:
        head = ", ".join(self.decl) + (" = " if self.is_assign else " := ") if self.decl else ""
        return head + " | ".join(str(cmd) for cmd in self.cmds)


_Operand = _Dot | _Nil | _Bool | _String | _Number | _Field | _Variable | _Ident | _Chain | _Pipe


@dataclasses.dataclass(frozen=True, slots=True)
class _Text:
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class _Action:
    pipe: _Pipe


@dataclasses.dataclass(frozen=True, slots=True)
class _Control:
    keyword: str  # if | with | range
    pipe: _Pipe
    body: tuple[_Node, ...]
    else_body: tuple[_Node, ...] | None


@dataclasses.dataclass(frozen=True, slots=True)
class _Jump:
    keyword: str  # break | continue


_Node = _Text | _Action | _Control | _Jump


# --- parser --------------------------------------------------------------------------------

_OPERAND_KINDS: Final = frozenset({"bool", "char", "dot", "field", "ident", "number", "nil", "raw", "string",
                                   "variable", "lparen"})


class _Parser:
    """Go's text/template/parse rules, including the parse-time function and variable checks."""

    def __init__(self, source: str) -> None:
        self.src = source
        self.tokens = _Lexer(source).run()
        self.i = 0
        self.vars = ["$"]
        self.range_depth = 0

    def parse(self) -> tuple[_Node, ...]:
        nodes, stop = self._list()
        if stop != "eof":
            self._fail(f"unexpected {{{{{stop}}}}}", self.tokens[self.i - 1].pos)
        return nodes

    def _fail(self, message: str, pos: int | None = None) -> NoReturn:
        raise _parse_error(self.src, self._peek().pos if pos is None else pos, message)

    def _peek(self) -> _Token:
        return self.tokens[self.i]

    def _next(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def _expect(self, kind: str, context: str) -> _Token:
        token = self._next()
        if token.kind != kind:
            self._fail(f"unexpected {_describe(token)} in {context}", token.pos)
        return token

    def _list(self) -> tuple[tuple[_Node, ...], str]:
        nodes: list[_Node] = []
        while True:
            token = self._next()
            if token.kind == "eof":
                self.i -= 1  # leave EOF in place so that error positions can still peek at it
                return tuple(nodes), "eof"
            if token.kind == "text":
                nodes.append(_Text(token.text))
                continue
            peek = self._peek()
            if peek.kind == "keyword" and peek.text in ("end", "else"):
                self._next()
                if peek.text == "end":
                    self._expect("rdelim", "end")
                return tuple(nodes), peek.text
            nodes.append(self._action())

    def _action(self) -> _Node:
        token = self._peek()
        if token.kind != "keyword":
            return _Action(self._pipeline("command", "rdelim"))
        self._next()
        if token.text in ("if", "with", "range"):
            return self._control(token.text)
        if token.text in ("break", "continue"):
            return self._jump(token)
        self._fail(f"{{{{{token.text}}}}} is not supported (hookgate renders a single template)", token.pos)

    def _jump(self, token: _Token) -> _Jump:
        if self.range_depth == 0:
            self._fail(f"{{{{{token.text}}}}} outside {{{{range}}}}", token.pos)
        self._expect("rdelim", token.text)
        return _Jump(token.text)

    def _control(self, keyword: str) -> _Control:
        saved_vars = len(self.vars)
        pipe = self._pipeline(keyword, "rdelim")
        self.range_depth += keyword == "range"
        body, stop = self._list()
        self.range_depth -= keyword == "range"
        else_body = self._else_branch(keyword, stop) if stop == "else" else None
        if stop == "eof":
            self._fail("unexpected EOF")
        del self.vars[saved_vars:]
        return _Control(keyword, pipe, body, else_body)

    def _else_branch(self, keyword: str, stop: str) -> tuple[_Node, ...]:
        token = self._peek()
        if token.kind == "keyword" and token.text in ("if", "with"):
            if token.text != keyword or keyword == "range":
                self._fail(f"unexpected {token.text} in else", token.pos)
            self._next()  # {{else if x}} is {{else}}{{if x}}...{{end}} sharing the outer {{end}}
            return (self._control(keyword),)
        self._expect("rdelim", "else")
        body, stop = self._list()
        if stop != "end":
            self._fail(f"expected end; found {{{{{stop}}}}}")
        return body

    def _pipeline(self, context: str, end: str) -> _Pipe:
        pos = self._peek().pos
        decl, is_assign = self._declarations(context)
        cmds: list[_Command] = []
        while True:
            token = self._peek()
            if token.kind == end:
                if end == "rdelim":
                    self._next()
                break
            if token.kind not in _OPERAND_KINDS:
                self._fail(f"unexpected {_describe(token)} in {context}", token.pos)
            cmds.append(self._command())
        self._check_pipeline(cmds, context)
        return _Pipe(pos, tuple(decl), is_assign, tuple(cmds))

    def _declarations(self, context: str) -> tuple[list[str], bool]:
        decl: list[str] = []
        while self._peek().kind == "variable" and self.tokens[self.i + 1].kind in ("declare", "assign", "comma"):
            name = self._next().text
            sep = self._next()
            decl.append(name)
            self.vars.append(name)
            if sep.kind != "comma":
                return decl, sep.kind == "assign"
            if context != "range" or len(decl) >= 2:
                self._fail(f"too many declarations in {context}", sep.pos)
            if self._peek().kind != "variable":
                self._fail("range can only initialize variables")
        return decl, False

    def _check_pipeline(self, cmds: list[_Command], context: str) -> None:
        if not cmds:
            self._fail(f"missing value for {context}")
        for stage, cmd in enumerate(cmds[1:], start=2):
            if isinstance(cmd.args[0], _Bool | _Dot | _Nil | _Number | _String):
                self._fail(f"non executable command in pipeline stage {stage}", cmd.pos)

    def _command(self) -> _Command:
        pos = self._peek().pos
        args: list[_Operand] = [self._operand()]
        while True:
            token = self._peek()
            if token.kind in ("rdelim", "rparen"):
                break
            if token.kind == "pipe":
                self._next()
                break
            if not token.spaced or token.kind not in _OPERAND_KINDS:
                self._fail(f"unexpected {_describe(token)} in operand", token.pos)
            args.append(self._operand())
        return _Command(pos, tuple(args))

    def _operand(self) -> _Operand:
        node = self._term()
        fields: list[str] = []
        while self._peek().kind == "field" and not self._peek().spaced:
            fields.append(self._next().text[1:])
        if not fields:
            return node
        if isinstance(node, _Field):
            return _Field(node.pos, node.names + tuple(fields))
        if isinstance(node, _Variable):
            return _Variable(node.pos, node.name, node.fields + tuple(fields))
        if isinstance(node, _Bool | _String | _Number | _Nil | _Dot):
            self._fail(f"unexpected . after term {_go_quote(str(node))}", node.pos)
        return _Chain(node.pos, node, tuple(fields))

    def _term(self) -> _Operand:
        token = self._next()
        kind = token.kind
        if kind == "ident":
            return self._function(token)
        if kind == "variable":
            if token.text not in self.vars:
                self._fail(f'undefined variable "{token.text}"', token.pos)
            return _Variable(token.pos, token.text, ())
        if kind == "lparen":
            pipe = self._pipeline("parenthesized pipeline", "rparen")
            self._expect("rparen", "parenthesized pipeline")
            return pipe
        return self._literal(token)

    def _literal(self, token: _Token) -> _Operand:
        if token.kind == "dot":
            return _Dot(token.pos)
        if token.kind == "nil":
            return _Nil(token.pos)
        if token.kind == "bool":
            return _Bool(token.pos, token.text == "true")
        if token.kind == "field":
            return _Field(token.pos, (token.text[1:],))
        if token.kind in ("string", "raw"):
            return _String(token.pos, self._unquote(token), token.text)
        if token.kind in ("number", "char"):
            return self._number(token)
        self._fail(f"unexpected {_describe(token)} in operand", token.pos)

    def _function(self, token: _Token) -> _Ident:
        func = _FUNCTIONS.get(token.text)
        if func is None:
            self._fail(_unknown_function_message(token.text), token.pos)
        return _Ident(token.pos, token.text, func)

    def _unquote(self, token: _Token) -> str:
        if token.kind == "raw":
            return token.text[1:-1].replace("\r", "")
        try:
            return _go_unquote(token.text[1:-1], '"')
        except ValueError as exc:
            self._fail(str(exc), token.pos)

    def _number(self, token: _Token) -> _Number:
        if token.kind == "char":
            try:
                char = _go_unquote(token.text[1:-1], "'")
            except ValueError as exc:
                self._fail(str(exc), token.pos)
            if len(char) != 1:
                self._fail(f"malformed character constant: {token.text}", token.pos)
            return _Number(token.pos, token.text, ord(char), float(ord(char)), False)
        return _parse_number(token, self._fail)


def _describe(token: _Token) -> str:
    if token.kind == "eof":
        return "EOF"
    if token.kind in ("rdelim", "ldelim"):
        return f'"{token.text}"'
    return f"<{token.text}>"


def _unknown_function_message(name: str) -> str:
    supported = ", ".join(sorted(SUPPORTED_FUNCTIONS))
    note = " (a sprig function hookgate does not implement)" if name in _KNOWN_SPRIG else ""
    return f'function "{name}" not defined{note}; supported: {supported}'


def _parse_number(token: _Token, fail: Callable[[str, int], NoReturn]) -> _Number:
    text = token.text
    if text.endswith("i"):
        fail(f"complex number {text} is not supported", token.pos)
    int_value = _parse_go_int(text)
    float_value = _parse_number_float(text)
    if int_value is None and float_value is None:
        fail(f"illegal number syntax: {text!r}", token.pos)
    is_hex_int = text.lstrip("+-")[:2].lower() == "0x" and not re.search("[pP]", text)
    float_syntax = not is_hex_int and bool(re.search("[.eEpP]", text))
    if int_value is None and float_value is not None and not float_syntax:
        fail(f"integer overflow: {text!r}", token.pos)
    if int_value is None and float_value is not None and float_value.is_integer():
        int_value = int(float_value)
    return _Number(token.pos, text, int_value, float_value, float_syntax)


def _parse_number_float(text: str) -> float | None:
    clean = text.replace("_", "")
    try:
        if clean.lstrip("+-")[:2].lower() == "0x":
            return float.fromhex(clean) if re.search("[pP]", clean) else float(int(clean, 16))
        return float(clean)
    except ValueError:
        return None


_SIMPLE_ESCAPES: Final = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                          "\\": "\\"}


def _go_unquote(body: str, quote: str) -> str:
    """strconv.Unquote of the text between the quotes."""
    out = bytearray()
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out += char.encode()
            i += 1
            continue
        i = _unescape(body, i + 1, quote, out)
    return out.decode("utf-8", errors="replace")


def _unescape(body: str, i: int, quote: str, out: bytearray) -> int:
    char = body[i:i + 1]
    if char in _SIMPLE_ESCAPES:
        out += _SIMPLE_ESCAPES[char].encode()
        return i + 1
    if char == quote:
        out += char.encode()
        return i + 1
    widths = {"x": 2, "u": 4, "U": 8}
    if char in widths:
        digits = body[i + 1:i + 1 + widths[char]]
        if len(digits) != widths[char] or not all(c in "0123456789abcdefABCDEF" for c in digits):
            raise ValueError("invalid syntax")
        out += bytes([int(digits, 16)]) if char == "x" else chr(int(digits, 16)).encode()
        return i + 1 + widths[char]
    octal = body[i:i + 3]
    if len(octal) == 3 and all(c in "01234567" for c in octal) and int(octal, 8) < 256:
        out += bytes([int(octal, 8)])
        return i + 3
    raise ValueError("invalid syntax")


# --- execution -----------------------------------------------------------------------------


class _ExecFailure(Exception):
    def __init__(self, node: Any, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message


class _BreakLoop(Exception):
    pass


class _ContinueLoop(Exception):
    pass


class _State:
    __slots__ = ("out", "vars")

    def __init__(self, root: Any) -> None:
        self.out: list[str] = []
        self.vars: list[list[Any]] = [["$", root]]

    def lookup(self, node: _Variable) -> Any:
        for name, value in reversed(self.vars):
            if name == node.name:
                return value
        raise _ExecFailure(node, f"undefined variable: {node.name}")

    def assign(self, node: _Pipe, name: str, value: Any) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                return
        raise _ExecFailure(node, f"undefined variable: {name}")


def _walk(state: _State, dot: Any, nodes: Sequence[_Node]) -> None:
    for node in nodes:
        if isinstance(node, _Text):
            state.out.append(node.text)
        elif isinstance(node, _Action):
            value = _eval_pipeline(state, dot, node.pipe)
            if not node.pipe.decl:
                state.out.append("<no value>" if value is _NO_VALUE else _fmt_v(value))
        elif isinstance(node, _Control):
            _run_control(state, dot, node)
        else:
            raise _BreakLoop if node.keyword == "break" else _ContinueLoop


def _run_control(state: _State, dot: Any, node: _Control) -> None:
    mark = len(state.vars)
    try:
        value = _eval_pipeline(state, dot, node.pipe)
        if node.keyword == "range":
            _run_range(state, dot, node, value)
        elif _truth(value):
            _walk(state, value if node.keyword == "with" else dot, node.body)
        elif node.else_body is not None:
            _walk(state, dot, node.else_body)
    finally:
        del state.vars[mark:]


def _run_range(state: _State, dot: Any, node: _Control, value: Any) -> None:
    body_mark = len(state.vars)
    declared = len(node.pipe.decl)
    ran = False
    for key, element in _range_items(node, value):
        ran = True
        if declared:
            state.vars[body_mark - 1][1] = element
        if declared > 1:
            state.vars[body_mark - 2][1] = key
        try:
            _walk(state, element, node.body)
        except _BreakLoop:
            break
        except _ContinueLoop:
            continue
        finally:
            del state.vars[body_mark:]
    if not ran and node.else_body is not None:
        _walk(state, dot, node.else_body)


def _range_items(node: _Control, value: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(value, list | tuple):
        return ((GoInt(index), item) for index, item in enumerate(value))
    if isinstance(value, dict):
        return ((key, value[key]) for key in sorted(value, key=str))
    if isinstance(value, GoInt):
        return ((GoInt(index), GoInt(index)) for index in range(value))
    if value is None or value is _NO_VALUE:
        return iter(())
    raise _ExecFailure(node.pipe, f"range can't iterate over {_fmt_v(value)}")


def _eval_pipeline(state: _State, dot: Any, pipe: _Pipe) -> Any:
    value: Any = _ABSENT
    for cmd in pipe.cmds:
        value = _eval_command(state, dot, cmd, value)
        if value is None:
            value = _NO_VALUE  # Go digs a nil interface{} down to an invalid value
    for name in pipe.decl:
        if pipe.is_assign:
            state.assign(pipe, name, value)
        else:
            state.vars.append([name, value])
    return value


def _eval_command(state: _State, dot: Any, cmd: _Command, final: Any) -> Any:
    first = cmd.args[0]
    if isinstance(first, _Field):
        return _eval_fields(dot, first, first.names, cmd.args, final)
    if isinstance(first, _Ident):
        return _eval_call(state, dot, first, cmd.args[1:], final)
    if isinstance(first, _Variable):
        return _eval_variable(state, dot, first, cmd.args, final)
    if isinstance(first, _Chain):
        return _eval_chain(state, dot, first, cmd.args, final)
    _not_a_function(cmd.args, final)
    if isinstance(first, _Pipe):
        return _eval_pipeline(state, dot, first)
    return _eval_literal(dot, first)


def _not_a_function(args: Sequence[_Operand], final: Any) -> None:
    if len(args) > 1 or final is not _ABSENT:
        raise _ExecFailure(args[0], f"can't give argument to non-function {args[0]}")


def _eval_literal(dot: Any, node: _Operand) -> Any:
    if isinstance(node, _Dot):
        return dot
    if isinstance(node, _Bool):
        return node.value
    if isinstance(node, _String):
        return node.text
    if isinstance(node, _Number):
        return _ideal_constant(node)
    raise _ExecFailure(node, "nil is not a command")


def _ideal_constant(node: _Number) -> Any:
    if node.float_syntax or node.int_value is None:
        return node.float_value
    if not _INT64_MIN <= node.int_value <= _INT64_MAX:
        raise _ExecFailure(node, f"{node.text} overflows int")
    return GoInt(node.int_value)


def _eval_fields(receiver: Any, node: Any, names: tuple[str, ...], args: Sequence[Any], final: Any) -> Any:
    boxed = False
    for name in names[:-1]:
        receiver = _eval_field(node, name, receiver, boxed, has_args=False)
        boxed = True
    has_args = len(args) > 1 or final is not _ABSENT
    return _eval_field(node, names[-1], receiver, boxed, has_args)


def _eval_field(node: Any, name: str, receiver: Any, boxed: bool, has_args: bool) -> Any:
    if receiver is _NO_VALUE:
        return _NO_VALUE
    if receiver is None:
        raise _ExecFailure(node, f"nil pointer evaluating interface {{}}.{name}")
    if isinstance(receiver, dict):
        if has_args:
            raise _ExecFailure(node, f"{name} is not a method but has arguments")
        return receiver.get(name, _NO_VALUE)
    type_name = "interface {}" if boxed else _go_type(receiver)
    raise _ExecFailure(node, f"can't evaluate field {name} in type {type_name}")


def _eval_variable(state: _State, dot: Any, node: _Variable, args: Sequence[Any], final: Any) -> Any:
    value = state.lookup(node)
    if not node.fields:
        _not_a_function(args, final)
        return value
    return _eval_fields(value, node, node.fields, args, final)


def _eval_chain(state: _State, dot: Any, node: _Chain, args: Sequence[Any], final: Any) -> Any:
    if isinstance(node.node, _Nil):
        raise _ExecFailure(node, f"indirection through explicit nil in {node}")
    receiver = _eval_arg(state, dot, "value", node.node)
    return _eval_fields(receiver, node, node.fields, args, final)


def _eval_call(state: _State, dot: Any, node: _Ident, args: Sequence[_Operand], final: Any) -> Any:
    func = node.func
    count = len(args) + (final is not _ABSENT)
    if func.variadic is None and count != len(func.params):
        raise _ExecFailure(node, f"wrong number of args for {node.name}: want {len(func.params)} got {count}")
    if func.variadic is not None and count < len(func.params):
        raise _ExecFailure(node, f"wrong number of args for {node.name}: want at least {len(func.params)} "
                                 f"got {len(args)}")
    if node.name in ("and", "or"):
        return _eval_and_or(state, dot, node.name, args, final)
    values = [_eval_arg(state, dot, func.kind_at(index), arg) for index, arg in enumerate(args)]
    if final is not _ABSENT:
        values.append(_validate(node, final, func.kind_at(count - 1)))
    try:
        return func.call(*values)
    except _CallError as exc:
        raise _ExecFailure(node, f"error calling {node.name}: {exc}") from exc


def _eval_and_or(state: _State, dot: Any, name: str, args: Sequence[_Operand], final: Any) -> Any:
    # Go short-circuits: later arguments are not evaluated once the answer is known.
    value: Any = _NO_VALUE
    for arg in args:
        value = _eval_arg(state, dot, "value", arg)
        if _truth(value) == (name == "or"):
            return value
    return final if final is not _ABSENT else value


def _eval_arg(state: _State, dot: Any, kind: str, node: _Operand) -> Any:
    if isinstance(node, _Dot):
        return _validate(node, dot, kind)
    if isinstance(node, _Nil):
        if kind in ("any", "value", "map"):
            return None
        raise _ExecFailure(node, f"cannot assign nil to {_GO_KIND_NAMES[kind]}")
    if isinstance(node, _Field):
        return _validate(node, _eval_fields(dot, node, node.names, (node,), _ABSENT), kind)
    if isinstance(node, _Variable):
        return _validate(node, _eval_variable(state, dot, node, (node,), _ABSENT), kind)
    if isinstance(node, _Pipe):
        return _validate(node, _eval_pipeline(state, dot, node), kind)
    if isinstance(node, _Ident):
        return _validate(node, _eval_call(state, dot, node, (), _ABSENT), kind)
    if isinstance(node, _Chain):
        return _validate(node, _eval_chain(state, dot, node, (node,), _ABSENT), kind)
    return _literal_arg(node, kind)


def _literal_arg(node: _Operand, kind: str) -> Any:
    if kind in ("any", "value"):
        return _eval_literal(None, node)
    if kind == "str" and isinstance(node, _String):
        return node.text
    if kind == "int" and isinstance(node, _Number) and node.int_value is not None:
        return GoInt(node.int_value)
    if kind == "bool" and isinstance(node, _Bool):
        return node.value
    expected = {"str": "string", "int": "integer", "bool": "bool"}.get(kind)
    if expected is None:
        raise _ExecFailure(node, f"can't handle {node} for arg of type {_GO_KIND_NAMES[kind]}")
    raise _ExecFailure(node, f"expected {expected}; found {node}")


def _validate(node: Any, value: Any, kind: str) -> Any:
    """Go's validateType: convert a value for a parameter of the given kind, or fail like Go."""
    if kind == "value":
        return value
    if kind == "any":
        return None if value is _NO_VALUE else value
    if value is _NO_VALUE:
        if kind == "map":
            return None
        raise _ExecFailure(node, f"invalid value; expected {_GO_KIND_NAMES[kind]}")
    if _has_kind(value, kind):
        return value
    got = "interface {}" if value is None else _go_type(value)
    raise _ExecFailure(node, f"wrong type for value; expected {_GO_KIND_NAMES[kind]}; got {got}")


def _has_kind(value: Any, kind: str) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, GoInt)
    if kind == "map":
        return isinstance(value, dict)
    return isinstance(value, bool)


# --- public API ----------------------------------------------------------------------------


class Template:
    """A compiled template; `render` may be called any number of times, from any thread."""

    __slots__ = ("_nodes", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._nodes = _Parser(source).parse()

    def render(self, data: Any) -> str:
        state = _State(data)
        try:
            _walk(state, data, self._nodes)
        except _ExecFailure as failure:
            raise TemplateExecError(self._exec_message(failure)) from None
        except (_BreakLoop, _ContinueLoop):  # unreachable: the parser rejects them outside range
            raise TemplateExecError("template: break or continue outside range") from None
        return "".join(state.out)

    def _exec_message(self, failure: _ExecFailure) -> str:
        pos = getattr(failure.node, "pos", 0)
        line = self.source.count("\n", 0, pos) + 1
        column = pos - (self.source.rfind("\n", 0, pos) + 1)
        context = str(failure.node)
        if len(context) > 20:
            context = context[:20] + "..."
        return f"template: {line}:{column}: executing at <{context}>: {failure.message}"

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


@functools.lru_cache(maxsize=1024)
def compile_template(source: str) -> Template:
    """Parse a Go template once (cached by source text); raises TemplateError."""
    if not isinstance(source, str):
        raise TemplateError(f"template must be a string, got {type(source).__name__}")
    return Template(source)
