"""Go's time.Format: a reference-time layout ("2006-01-02 15:04:05") applied to a datetime.

Why this module exists: sprig `date` takes a Go layout, and Go prints time values (`%v`, JSON)
through fixed layouts. Layout elements are found with Go's nextStdChunk rules, so text that only
looks like a layout element stays literal exactly where Go keeps it literal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Final

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


def go_time_format(moment: dt.datetime, layout: str) -> str:
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
