"""Five-field cron schedules for `conditionsReset.byTime`, with robfig/cron v3 semantics.

Argo Events parses `byTime.cron` with ``cron.NewParser(Minute | Hour | Dom | Month | Dow)`` and runs
it in `byTime.timezone` (Go's local zone when empty), so the rules copied here are robfig's:

* fields: minute (0-59) hour (0-23) day-of-month (1-31) month (1-12 or JAN-DEC) day-of-week
  (0-6 or SUN-SAT; 7 is *not* Sunday); names are case-insensitive and allowed in ranges;
* each field is a comma list of ``*`` / ``?`` / ``N`` / ``N-M``, each optionally ``/step``;
  ``N/step`` means ``N-max/step``; empty list items are ignored;
* day matching: when the day-of-month *or* the day-of-week field starts with ``*`` / ``?``, both
  must match (AND); when both are restricted, either may match (OR, classic cron). A stepped star
  (``*/2``) counts as restricted, as in robfig;
* a ``TZ=Zone`` or ``CRON_TZ=Zone`` prefix overrides the timezone argument.

Beyond Argo: the macros ``@yearly @annually @monthly @weekly @daily @midnight @hourly`` are
accepted (Argo's parser lacks the Descriptor flag and rejects them); ``@every`` is not.
A spec that can never fire (``0 0 30 2 *``) is a `CronError` at compile time (robfig accepts it
and silently never fires). The default timezone is UTC (Argo uses the pod's local zone, which is
UTC in the usual container image).

Daylight saving time, chosen to match what robfig's field walk does: a wall-clock time that does
not exist on a spring-forward day is skipped (``30 2 * * *`` does not fire that day); a wall-clock
time that happens twice on a fall-back day fires at both instants. `next_after` is strictly after
`t`, `prev_before` strictly before; both return aware datetimes in `t`'s own timezone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: robfig gives up after five years; so do we (a compiled schedule always fires within that).
_SEARCH_DAYS = 5 * 366 + 1

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTH_NAMES = {n: i + 1 for i, n in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_DAY_NAMES = {n: i for i, n in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_INT = re.compile(r"[+-]?[0-9]+")  # what Go's strconv.Atoi accepts


class CronError(ValueError):
    """A cron spec or timezone that cannot be used, or a naive datetime given to a schedule."""


@dataclass(frozen=True, slots=True)
class _Bounds:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None


_FIELDS = (
    _Bounds("minute", 0, 59),
    _Bounds("hour", 0, 23),
    _Bounds("day-of-month", 1, 31),
    _Bounds("month", 1, 12, _MONTH_NAMES),
    _Bounds("day-of-week", 0, 6, _DAY_NAMES),
)


@dataclass(frozen=True, slots=True)
class _Field:
    values: frozenset[int]
    star: bool  # robfig's starBit: decides AND vs OR between day-of-month and day-of-week


@dataclass(frozen=True, slots=True)
class Schedule:
    source: str
    zone: tzinfo
    minutes: frozenset[int]
    hours: frozenset[int]
    dom: _Field
    months: frozenset[int]
    dow: _Field

    def next_after(self, t: datetime) -> datetime:
        """The first firing time strictly after `t`, in `t`'s timezone."""
        _require_aware(t)
        day = t.astimezone(self.zone).date()
        for _ in range(_SEARCH_DAYS):
            later = [i for i in self._instants(day) if i > t]
            if later:
                return min(later).astimezone(t.tzinfo)
            day += timedelta(days=1)
        raise CronError(f"cron {self.source!r} does not fire within five years after {t.isoformat()}")

    def prev_before(self, t: datetime) -> datetime:
        """The last firing time strictly before `t`, in `t`'s timezone."""
        _require_aware(t)
        day = t.astimezone(self.zone).date()
        for _ in range(_SEARCH_DAYS):
            earlier = [i for i in self._instants(day) if i < t]
            if earlier:
                return max(earlier).astimezone(t.tzinfo)
            day -= timedelta(days=1)
        raise CronError(f"cron {self.source!r} did not fire within five years before {t.isoformat()}")

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.dom.values
        dow = day.isoweekday() % 7 in self.dow.values  # isoweekday: Sunday is 7, cron's Sunday is 0
        if self.dom.star or self.dow.star:
            return dom and dow
        return dom or dow

    def _instants(self, day: date) -> Iterator[datetime]:
        """Every instant on local calendar day `day` at which the schedule fires."""
        if not self.matches_day(day):
            return
        for hour in sorted(self.hours):
            for minute in sorted(self.minutes):
                yield from _wall_instants(datetime.combine(day, time(hour, minute)), self.zone)


def _wall_instants(wall: datetime, zone: tzinfo) -> Iterator[datetime]:
    """The instants a naive wall-clock time denotes in `zone`: none in a DST gap, two in an overlap."""
    seen: set[datetime] = set()
    for fold in (0, 1):
        aware = wall.replace(tzinfo=zone, fold=fold)
        instant = aware.astimezone(UTC)
        # A time inside a spring-forward gap does not survive the round trip back to local time.
        if instant.astimezone(zone).replace(tzinfo=None) == wall and instant not in seen:
            seen.add(instant)
            yield instant


def _require_aware(t: datetime) -> None:
    if t.tzinfo is None or t.utcoffset() is None:
        raise CronError("cron schedules need timezone-aware datetimes")


def compile_cron(expr: str, timezone: str | None = None) -> Schedule:
    """Parse a 5-field spec (or a macro) evaluated in `timezone` (default UTC)."""
    spec, zone_name = _split_zone(expr.strip(), timezone)
    zone = _load_zone(zone_name)
    spec = _MACROS.get(spec, spec)
    if spec.startswith("@"):
        raise CronError(f"unsupported cron descriptor {spec!r} (supported: {', '.join(_MACROS)})")
    fields = spec.split()
    if len(fields) != len(_FIELDS):
        raise CronError(f"expected exactly 5 fields (minute hour day-of-month month day-of-week), "
                        f"found {len(fields)}: {expr!r}")
    minute, hour, dom, month, dow = (_parse_field(text, b) for text, b in zip(fields, _FIELDS, strict=True))
    schedule = Schedule(expr, zone, minute.values, hour.values, dom, month.values, dow)
    _require_some_day(schedule)
    return schedule


def _split_zone(spec: str, timezone: str | None) -> tuple[str, str | None]:
    # robfig: a leading TZ= / CRON_TZ= names the zone and wins over the configured location.
    for prefix in ("TZ=", "CRON_TZ="):
        if spec.startswith(prefix):
            zone, sep, rest = spec[len(prefix):].partition(" ")
            if not sep:
                raise CronError(f"cron {spec!r}: {prefix} must be followed by a space and the schedule")
            return rest.strip(), zone
    return spec, timezone


def _load_zone(name: str | None) -> tzinfo:
    if not name or name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise CronError(f"unknown timezone {name!r}: {e}") from None


def _parse_field(text: str, bounds: _Bounds) -> _Field:
    values: set[int] = set()
    star = False
    for item in (i for i in text.split(",") if i):
        item_values, item_star = _parse_range(item, bounds)
        values |= item_values
        star = star or item_star
    if not values:
        raise CronError(f"empty {bounds.name} field: {text!r}")
    return _Field(frozenset(values), star)


def _parse_range(item: str, b: _Bounds) -> tuple[set[int], bool]:
    range_text, *steps = item.split("/")
    if len(steps) > 1:
        raise CronError(f"too many slashes in {b.name} field: {item!r}")
    low_high = range_text.split("-")
    if len(low_high) > 2:
        raise CronError(f"too many hyphens in {b.name} field: {item!r}")
    star = low_high[0] in ("*", "?")
    if star:  # robfig ignores anything after "*-": "*-5" is "*"
        start, end = b.low, b.high
    else:
        start = _number(low_high[0], b)
        end = _number(low_high[1], b) if len(low_high) == 2 else start
    step = 1
    if steps:
        step = _number(steps[0], _Bounds(b.name, 0, 1 << 31))
        if len(low_high) == 1:  # "N/step" means "N-max/step"
            end = b.high
        star = star and step <= 1  # "*/2" is a restriction, not a star
    _check_range(item, start, end, step, b)
    return set(range(start, end + 1, step)), star


def _number(text: str, b: _Bounds) -> int:
    if b.names and text.lower() in b.names:
        return b.names[text.lower()]
    if not _INT.fullmatch(text):
        raise CronError(f"invalid {b.name} value {text!r}")
    value = int(text)
    if value < 0:
        raise CronError(f"negative {b.name} value {text!r}")
    return value


def _check_range(item: str, start: int, end: int, step: int, b: _Bounds) -> None:
    if start < b.low:
        raise CronError(f"{b.name} {item!r}: {start} is below the minimum {b.low}")
    if end > b.high:
        raise CronError(f"{b.name} {item!r}: {end} is above the maximum {b.high}")
    if start > end:
        raise CronError(f"{b.name} {item!r}: range start {start} is beyond its end {end}")
    if step == 0:
        raise CronError(f"{b.name} {item!r}: the step must be a positive number")


def _require_some_day(schedule: Schedule) -> None:
    # 2000-2004 holds every month length, Feb 29 included: a spec matching no day there never fires.
    day, last = date(2000, 1, 1), date(2004, 12, 31)
    while day <= last:
        if schedule.matches_day(day):
            return
        day += timedelta(days=1)
    raise CronError(f"cron {schedule.source!r} never fires (no calendar day matches)")
