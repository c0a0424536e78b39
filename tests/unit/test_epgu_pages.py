"""The ЕПГУ emulator's pages: accounts grouped from the inbox, the notification's link made clickable."""

from __future__ import annotations

from datetime import UTC, datetime

from posog.emulators.epgu.pages import Segment, accounts, linkified


def _notification(key: str, last_name: str, hour: int) -> dict[str, object]:
    return {
        "recipient_key": key,
        "recipient": {"last_name": last_name, "first_name": "Иван", "middle_name": "Петрович"},
        "received_at": datetime(2026, 11, 20, hour, tzinfo=UTC),
    }


def test_accounts_are_grouped_newest_first_and_found_by_a_part_of_the_name() -> None:
    inbox = [_notification("a", "Иванов", 9), _notification("b", "Петров", 10), _notification("a", "Иванов", 11)]
    found = accounts(inbox)
    assert [(a.key, a.name, a.notifications, a.last_received) for a in found] == [
        ("a", "Иванов Иван Петрович", 2, "20.11.2026 14:00"),
        ("b", "Петров Иван Петрович", 1, "20.11.2026 13:00"),
    ]
    assert [a.key for a in accounts(inbox, "петров иван")] == ["b"]


def test_the_link_in_the_text_becomes_a_link() -> None:
    link = "https://lkp.test/lkp/s/abc"
    assert linkified(f"Оцените: {link}. Спасибо", link) == [
        Segment("Оцените: "),
        Segment(link, link=True),
        Segment(". Спасибо"),
    ]
    assert linkified("Без ссылки", link) == [Segment("Без ссылки")]
