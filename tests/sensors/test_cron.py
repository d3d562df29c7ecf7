"""Cron schedules for conditionsReset: robfig/cron field rules, timezones and DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from sensors.cron import CronError, compile_cron

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def ny(*parts: int, fold: int = 0) -> datetime:
    return datetime(*parts, tzinfo=NY, fold=fold)  # type: ignore[misc]


@pytest.mark.parametrize(("expr", "tz", "after", "expected"), [
    pytest.param("*/15 * * * *", None, utc(2024, 5, 1, 10, 7), utc(2024, 5, 1, 10, 15), id="step"),
    pytest.param("0 * * * *", None, utc(2024, 5, 1, 10, 0), utc(2024, 5, 1, 11, 0), id="strictly-after"),
    pytest.param("0 * * * *", None, utc(2024, 5, 1, 10, 0, 0, 1), utc(2024, 5, 1, 11, 0), id="sub-second"),
    # 2024-05-04 is a Saturday.
    pytest.param("0 9 * * MON-FRI", None, utc(2024, 5, 4, 12), utc(2024, 5, 6, 9), id="weekday-names"),
    pytest.param("0 0 * * sun", None, utc(2024, 5, 1), utc(2024, 5, 5), id="lowercase-name"),
    pytest.param("0 0 1 JAN *", None, utc(2024, 5, 1), utc(2025, 1, 1), id="month-name"),
    pytest.param("5/20 * * * *", None, utc(2024, 5, 1, 10, 26), utc(2024, 5, 1, 10, 45), id="n-slash-step"),
    pytest.param("1,,3 * * * *", None, utc(2024, 5, 1, 10, 2), utc(2024, 5, 1, 10, 3), id="empty-list-item"),
    # Both day fields restricted: either matches (Friday 2024-01-05 comes before the 13th).
    pytest.param("0 0 13 * 5", None, utc(2024, 1, 1), utc(2024, 1, 5), id="dom-dow-or"),
    # Day-of-week is a star: day-of-month alone decides.
    pytest.param("0 0 13 * *", None, utc(2024, 1, 1), utc(2024, 1, 13), id="dom-with-star-dow"),
    # A stepped star counts as restricted (robfig clears the star bit): OR with Monday the 8th.
    pytest.param("0 0 */10 * 1", None, utc(2024, 1, 2), utc(2024, 1, 8), id="stepped-star-or"),
    pytest.param("0 0 29 2 *", None, utc(2024, 3, 1), utc(2028, 2, 29), id="leap-day"),
    pytest.param("@hourly", None, utc(2024, 5, 1, 10, 30), utc(2024, 5, 1, 11), id="hourly"),
    pytest.param("@daily", None, utc(2024, 5, 1, 10), utc(2024, 5, 2), id="daily"),
    pytest.param("@midnight", None, utc(2024, 5, 1, 10), utc(2024, 5, 2), id="midnight"),
    pytest.param("@weekly", None, utc(2024, 5, 1), utc(2024, 5, 5), id="weekly-sunday"),
    pytest.param("@monthly", None, utc(2024, 5, 1, 0, 1), utc(2024, 6, 1), id="monthly"),
    pytest.param("@yearly", None, utc(2024, 5, 1), utc(2025, 1, 1), id="yearly"),
    pytest.param("0 9 * * *", "Europe/Berlin", utc(2024, 7, 1, 12), utc(2024, 7, 2, 7), id="zone-summer"),
    pytest.param("0 9 * * *", "Europe/Berlin", utc(2024, 1, 1, 12), utc(2024, 1, 2, 8), id="zone-winter"),
    pytest.param("TZ=Asia/Tokyo 0 9 * * *", "Europe/Berlin", utc(2024, 5, 1), utc(2024, 5, 2, 0),
                 id="tz-prefix-wins"),
    # 2024-03-10 02:30 does not exist in New York: skipped, as robfig does.
    pytest.param("30 2 * * *", "America/New_York", ny(2024, 3, 9, 12), ny(2024, 3, 11, 2, 30),
                 id="dst-gap-skipped"),
    # 2024-11-03 01:30 happens twice in New York: both instants fire.
    pytest.param("30 1 * * *", "America/New_York", ny(2024, 11, 3, 1, 0), ny(2024, 11, 3, 1, 30),
                 id="dst-overlap-first"),
    pytest.param("30 1 * * *", "America/New_York", ny(2024, 11, 3, 1, 30), ny(2024, 11, 3, 1, 30, fold=1),
                 id="dst-overlap-second"),
])
def test_next_after(expr: str, tz: str | None, after: datetime, expected: datetime) -> None:
    result = compile_cron(expr, tz).next_after(after)
    # Compared in UTC: equal tzinfos would make Python ignore `fold` (the DST overlap cases).
    assert result.astimezone(UTC) == expected.astimezone(UTC)
    assert result.tzinfo is after.tzinfo  # answered in the caller's timezone


@pytest.mark.parametrize(("expr", "tz", "before", "expected"), [
    pytest.param("0 * * * *", None, utc(2024, 5, 1, 10), utc(2024, 5, 1, 9), id="strictly-before"),
    pytest.param("0 * * * *", None, utc(2024, 5, 1, 10, 30), utc(2024, 5, 1, 10), id="same-hour"),
    pytest.param("*/5 * * * *", None, utc(2024, 5, 1, 10, 7, 30), utc(2024, 5, 1, 10, 5), id="step"),
    pytest.param("0 0 * * *", "Europe/Berlin", utc(2024, 5, 1, 12), utc(2024, 4, 30, 22), id="zone"),
    pytest.param("0 0 1 * *", None, utc(2024, 3, 15), utc(2024, 3, 1), id="monthly"),
    pytest.param("0 0 * * MON", None, utc(2024, 5, 1), utc(2024, 4, 29), id="weekday"),
    pytest.param("30 1 * * *", "America/New_York", ny(2024, 11, 3, 3), ny(2024, 11, 3, 1, 30, fold=1),
                 id="dst-overlap-latest"),
])
def test_prev_before(expr: str, tz: str | None, before: datetime, expected: datetime) -> None:
    assert compile_cron(expr, tz).prev_before(before).astimezone(UTC) == expected.astimezone(UTC)


def test_result_keeps_a_fixed_offset_timezone() -> None:
    plus5 = timezone(timedelta(hours=5))
    result = compile_cron("0 12 * * *").next_after(datetime(2024, 5, 1, 18, tzinfo=plus5))
    assert (result, result.utcoffset()) == (utc(2024, 5, 2, 12), timedelta(hours=5))


@pytest.mark.parametrize(("expr", "tz", "message"), [
    pytest.param("* * * *", None, "expected exactly 5 fields", id="four-fields"),
    pytest.param("0 * * * * *", None, "expected exactly 5 fields", id="six-fields"),
    pytest.param("60 * * * *", None, "above the maximum 59", id="minute-range"),
    pytest.param("* 24 * * *", None, "above the maximum 23", id="hour-range"),
    pytest.param("* * 0 * *", None, "below the minimum 1", id="dom-zero"),
    pytest.param("* * * 13 *", None, "above the maximum 12", id="month-range"),
    pytest.param("* * * * 7", None, "above the maximum 6", id="dow-seven"),
    pytest.param("5-1 * * * *", None, "beyond its end", id="reversed-range"),
    pytest.param("*/0 * * * *", None, "positive", id="zero-step"),
    pytest.param("1-2-3 * * * *", None, "too many hyphens", id="hyphens"),
    pytest.param("1/2/3 * * * *", None, "too many slashes", id="slashes"),
    pytest.param("x * * * *", None, "invalid minute value 'x'", id="not-a-number"),
    pytest.param("* * * JAN-FOO *", None, "invalid month value 'FOO'", id="bad-name"),
    pytest.param("* * * * JAN", None, "invalid day-of-week value 'JAN'", id="name-of-other-field"),
    pytest.param("@every 1h", None, "unsupported cron descriptor", id="every"),
    pytest.param("@reboot", None, "unsupported cron descriptor", id="reboot"),
    pytest.param("0 0 30 2 *", None, "never fires", id="never"),
    pytest.param("0 0 * * *", "Mars/Olympus", "unknown timezone", id="bad-zone"),
    pytest.param("TZ=Europe/Berlin", None, "must be followed by", id="tz-without-spec"),
])
def test_compile_errors(expr: str, tz: str | None, message: str) -> None:
    with pytest.raises(CronError, match=message):
        compile_cron(expr, tz)


@pytest.mark.parametrize("method", ["next_after", "prev_before"])
def test_naive_datetime_rejected(method: str) -> None:
    with pytest.raises(CronError, match="timezone-aware"):
        getattr(compile_cron("* * * * *"), method)(datetime(2024, 5, 1))
