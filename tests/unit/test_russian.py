"""Russian dates, times and plurals (``posog.core.russian``): every month in the genitive, the Moscow
clock, and the places that show them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from posog.core import russian
from posog.core.russian import MONTHS_GENITIVE, moscow_date, moscow_time, numeric_date, plural, russian_date
from posog.lkp import forms

GENITIVE = [
    (1, "января"),
    (2, "февраля"),
    (3, "марта"),
    (4, "апреля"),
    (5, "мая"),
    (6, "июня"),
    (7, "июля"),
    (8, "августа"),
    (9, "сентября"),
    (10, "октября"),
    (11, "ноября"),
    (12, "декабря"),
]


@pytest.mark.parametrize(("month", "name"), GENITIVE)
def test_every_month_is_in_the_genitive(month: int, name: str) -> None:
    assert MONTHS_GENITIVE[month - 1] == name
    assert russian_date(date(2026, month, 1)) == f"1 {name} 2026 г."
    assert russian_date(date(2027, month, 28)) == f"28 {name} 2027 г."


def test_dates_in_words_and_in_figures() -> None:
    assert russian_date(date(2026, 11, 20)) == "20 ноября 2026 г."
    assert russian_date(date(2024, 2, 29)) == "29 февраля 2024 г.", "no leading zero before the day"
    assert russian_date(date(905, 3, 5)) == "5 марта 905 г."
    assert numeric_date(date(2026, 11, 20)) == "20.11.2026"
    assert numeric_date(date(2026, 1, 5)) == "05.01.2026", "leading zeros in figures"
    assert numeric_date(datetime(2026, 1, 5, 23, 59, tzinfo=UTC)) == "05.01.2026"


def test_moments_are_shown_on_the_moscow_clock() -> None:
    # 20:59:59 UTC is the last second of the Moscow day (UTC+3, no daylight saving).
    assert moscow_date(datetime(2026, 12, 20, 20, 59, 59, tzinfo=UTC)) == "20.12.2026"
    assert moscow_date(datetime(2026, 12, 20, 21, 0, tzinfo=UTC)) == "21.12.2026"
    assert moscow_time(datetime(2026, 12, 31, 21, 5, 9, tzinfo=UTC)) == "01.01.2027 00:05"
    assert moscow_time(datetime(2026, 7, 1, 9, 5, 9, tzinfo=UTC), seconds=True) == "01.07.2026 12:05:09"
    vladivostok = timezone(timedelta(hours=10))
    assert moscow_time(datetime(2026, 7, 1, 9, 5, tzinfo=vladivostok)) == "01.07.2026 02:05"


def test_a_naive_moment_is_utc_as_stored() -> None:
    assert moscow_time(datetime(2026, 7, 1, 9, 5, 9)) == "01.07.2026 12:05"
    assert moscow_date(datetime(2026, 7, 1, 22, 0)) == "02.07.2026"


@pytest.mark.parametrize(
    ("n", "word"),
    [
        (0, "символов"),
        (1, "символ"),
        (2, "символа"),
        (4, "символа"),
        (5, "символов"),
        (11, "символов"),
        (12, "символов"),
        (14, "символов"),
        (21, "символ"),
        (22, "символа"),
        (101, "символ"),
        (111, "символов"),
        (112, "символов"),
        (1000, "символов"),
        (2001, "символ"),
        (-1, "символ"),
        (-3, "символа"),
    ],
)
def test_the_plural_after_a_number(n: int, word: str) -> None:
    assert plural(n, "символ", "символа", "символов") == word


def test_the_survey_form_uses_the_one_plural() -> None:
    assert forms.plural is russian.plural
