"""How Go prints values: fmt's `%v`, Sprint, Sprintf verbs, strconv.Quote and encoding/json.

Why this module exists: what a template renders is decided by how Go formats each value, not by
Python's str(): float64 switches to exponent form from 1e6 (`1e+06`), maps print as
`map[k:v]` in key order, printf reports misuse inline (`%!d(float64=7)`), and encoding/json
escapes `<>&`. Every function here turns a value into the exact text Go would produce.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import re
from collections.abc import Callable
from typing import Any, Final

from sensors.templates import gotypes, time_layouts

# --- floats (strconv.FormatFloat) -------------------------------------------------------------

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


# --- %v and Sprint ------------------------------------------------------------------------------


def fmt_v(value: Any) -> str:
    """Go `%v` (fmt.Sprint of one operand)."""
    if value is None or value is gotypes.NO_VALUE:
        return "<nil>"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, gotypes.GoInt):
        return int.__repr__(value)
    if isinstance(value, int | float):
        return _format_float_v(gotypes.as_float(value))
    if isinstance(value, dict):
        items = " ".join(f"{fmt_v(key)}:{fmt_v(value[key])}" for key in sorted(value, key=str))
        return f"map[{items}]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(fmt_v(item) for item in value) + "]"
    if isinstance(value, dt.datetime):
        return time_layouts.go_time_format(value, "2006-01-02 15:04:05.999999999 -0700 MST")
    return str(value)


def sprint(*args: Any) -> str:
    # fmt.Sprint adds a space between operands when neither is a string.
    parts: list[str] = []
    for index, arg in enumerate(args):
        if index and not isinstance(arg, str) and not isinstance(args[index - 1], str):
            parts.append(" ")
        parts.append(fmt_v(arg))
    return "".join(parts)


def sprintln(*args: Any) -> str:
    return " ".join(fmt_v(arg) for arg in args) + "\n"


def go_quote(text: str) -> str:
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


# --- Sprintf ------------------------------------------------------------------------------------

_VERB_RE: Final = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d*))?(.?)", re.DOTALL)


def sprintf(fmt: str, *args: Any) -> str:
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
    if value is None or value is gotypes.NO_VALUE:
        return "<nil>"
    return f"{gotypes.go_type(value)}={fmt_v(value)}"


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
        return "+" + fmt_v(value)
    return fmt_v(value)


def _verb_s(value: Any, flags: str, prec: int | None) -> str | None:
    if isinstance(value, str):
        return value if prec is None else value[:prec]
    if isinstance(value, list | tuple | dict):
        return fmt_v(value)
    return None


def _verb_q(value: Any, flags: str, prec: int | None) -> str | None:
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, gotypes.GoInt):
        return "'" + go_quote(chr(value))[1:-1].replace("'", "\\'").replace('\\"', '"') + "'"
    return None


def _verb_int(verb: str) -> Callable[[Any, str, int | None], str | None]:
    def format_int(value: Any, flags: str, prec: int | None) -> str | None:
        if isinstance(value, gotypes.GoInt):
            sign = "+" if "+" in flags else ""
            return format(int(value), sign + verb)
        if isinstance(value, str) and verb in "xX":
            return value.encode().hex() if verb == "x" else value.encode().hex().upper()
        return None
    return format_int


def _verb_float(verb: str) -> Callable[[Any, str, int | None], str | None]:
    def format_float(value: Any, flags: str, prec: int | None) -> str | None:
        if not gotypes.is_float64(value):
            return None
        number = gotypes.as_float(value)
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
    return chr(value) if isinstance(value, gotypes.GoInt) else None


_VERB_FORMATTERS: Final[dict[str, Callable[[Any, str, int | None], str | None]]] = {
    "v": _verb_v, "s": _verb_s, "q": _verb_q, "t": _verb_t, "c": _verb_c,
    **{verb: _verb_int(verb) for verb in "dxXob"},
    **{verb: _verb_float(verb) for verb in "eEfFgG"},
}


# --- encoding/json ------------------------------------------------------------------------------


def go_json(value: Any, escape_html: bool) -> str:
    """json.Marshal (escape_html=True, as sprig toJson) or an Encoder with SetEscapeHTML(false)."""
    if value is None or value is gotypes.NO_VALUE:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, gotypes.GoInt):
        return int.__repr__(value)
    if isinstance(value, int | float):
        number = gotypes.as_float(value)
        if math.isnan(number) or math.isinf(number):
            raise ValueError(f"json: unsupported value: {fmt_v(number)}")
        return _format_float_json(number)
    if isinstance(value, str):
        return _go_json_string(value, escape_html)
    if isinstance(value, dict):
        items = (f"{_go_json_string(str(key), escape_html)}:{go_json(value[key], escape_html)}"
                 for key in sorted(value, key=str))
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(go_json(item, escape_html) for item in value) + "]"
    if isinstance(value, dt.datetime):
        return '"' + time_layouts.go_time_format(value, "2006-01-02T15:04:05.999999999Z07:00") + '"'
    raise ValueError(f"json: unsupported type: {gotypes.go_type(value)}")


def _go_json_string(text: str, escape_html: bool) -> str:
    encoded = json.dumps(text, ensure_ascii=False)
    # Go always escapes the JS line separators, and <, >, & unless HTML escaping is off.
    encoded = encoded.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    if escape_html:
        encoded = encoded.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return encoded
