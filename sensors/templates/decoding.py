"""Go's text decoders: strconv.ParseInt / ParseFloat / Unquote and base64.StdEncoding.

Why this module exists: the parser reads template literals ("strings", 'c', 0x1F) and sprig
converts strings (`int`, `float64`, `b64dec`) with these Go rules, and both must accept and
reject exactly what Go does, down to the byte offset Go reports for bad base64.
"""

from __future__ import annotations

import re
from typing import Final

from sensors.templates import gotypes

_GO_INT_RE: Final = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|0[0-7_]*|[1-9][0-9_]*)")
_GO_FLOAT_RE: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def parse_go_int(text: str) -> int | None:
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
    return value if gotypes.INT64_MIN <= value <= gotypes.INT64_MAX else None


def parse_go_float(text: str) -> float | None:
    if _GO_FLOAT_RE.fullmatch(text):
        return float(text)
    if text.lower().lstrip("+-") in ("inf", "infinity", "nan"):
        return float(text.lower().replace("infinity", "inf"))
    return None


_SIMPLE_ESCAPES: Final = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                          "\\": "\\"}


def go_unquote(body: str, quote: str) -> str:
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


_B64_VALUES: Final = {ord(c): i for i, c in enumerate(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def go_b64decode(text: str) -> str:
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
