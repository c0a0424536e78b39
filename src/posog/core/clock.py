"""Time in one place, so tests can move it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MOSCOW = ZoneInfo("Europe/Moscow")

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def end_of_day(day: date, tz: ZoneInfo = MOSCOW) -> datetime:
    """The last second of ``day`` in ``tz`` (links expire at 23:59:59 Moscow time)."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=tz)


def today(clock: Clock, tz: ZoneInfo = MOSCOW) -> date:
    return clock().astimezone(tz).date()


def as_utc(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; we store UTC everywhere."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


__all__ = ["MOSCOW", "Clock", "as_utc", "end_of_day", "timedelta", "today", "utcnow"]
