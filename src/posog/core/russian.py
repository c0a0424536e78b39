"""Dates, times and counted words as a Russian reader reads them — one home for every system.

- :func:`russian_date` — a date in words, the month in the genitive: «20 ноября 2026 г.»;
- :func:`numeric_date` — a date in figures: «20.11.2026»;
- :func:`moscow_date`, :func:`moscow_time` — a moment as the Moscow clock shows it: «20.11.2026»,
  «20.11.2026 14:05» (with ``seconds=True`` «20.11.2026 14:05:09»);
- :func:`plural` — the form of a noun after a number: 1 символ, 2 символа, 5 символов.

Numbers are not formatted here: no page or export groups digits or writes a decimal comma today."""

from __future__ import annotations

from datetime import date, datetime

from posog.core.clock import MOSCOW, as_utc

# The months in the genitive case, as after a day's number.
MONTHS_GENITIVE: tuple[str, ...] = (
    "января", "февраля", "марта", "апреля", "мая", "июня",
    "июля", "августа", "сентября", "октября", "ноября", "декабря",
)  # fmt: skip


def russian_date(day: date) -> str:
    """«20 ноября 2026 г.»"""
    return f"{day.day} {MONTHS_GENITIVE[day.month - 1]} {day.year} г."


def numeric_date(day: date) -> str:
    """«20.11.2026»"""
    return f"{day:%d.%m.%Y}"


def moscow_date(moment: datetime) -> str:
    """The Moscow day of ``moment``: «20.11.2026». A naive moment is UTC, as stored."""
    return numeric_date(as_utc(moment).astimezone(MOSCOW))


def moscow_time(moment: datetime, *, seconds: bool = False) -> str:
    """``moment`` on the Moscow clock: «20.11.2026 14:05», or «20.11.2026 14:05:09» with ``seconds``.
    A naive moment is UTC, as stored."""
    local = as_utc(moment).astimezone(MOSCOW)
    return f"{numeric_date(local)} {local:%H:%M:%S}" if seconds else f"{numeric_date(local)} {local:%H:%M}"


def plural(n: int, one: str, few: str, many: str) -> str:
    """The Russian plural form for ``n`` (1 символ, 2 символа, 5 символов; 11 символов, 21 символ)."""
    n = abs(n)
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many
