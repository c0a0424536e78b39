"""The ЕПГУ emulator's inbox keeps serving when one stored notification cannot be opened (a key rotated
out of the stand's settings): that one is left out and logged, the others are shown."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import update

from posog.emulators.epgu.model import InboxNotification
from posog.emulators.epgu.pages import create_app
from posog.module.contracts import GepsNotification, Recipient
from tests.conftest import remember_citizen
from tests.support import stack


def _notification(n: int) -> bytes:
    citizen = {"snils": f"112-233-445 {n:02d}", "last_name": "Сидорова", "first_name": f"Анна{n}"}
    remember_citizen(citizen | {"birth_date": "1970-01-01"})
    return (
        GepsNotification(
            notification_id=f"00000000-0000-4000-8000-00000000000{n}",
            card_id=f"MFC-77-2026-00000000{n}",
            recipient=Recipient(**citizen),
            title="Оцените качество оказанной услуги",
            text="Пройдите опрос: https://lkp.test/lkp/s/abcdefghijklmnopqrstuvwxyz",
            link="https://lkp.test/lkp/s/abcdefghijklmnopqrstuvwxyz",
            expires_at="2026-12-20T20:59:59+00:00",
        )
        .model_dump_json(by_alias=True)
        .encode()
    )


async def test_an_unreadable_notification_does_not_take_the_inbox_down(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system:
        assert await system.inbox.receive([_notification(1), _notification(2)]) == [True, True]
        async with system.db.uow() as uow:
            await uow.session.execute(
                update(InboxNotification)
                .where(InboxNotification.card_id == "MFC-77-2026-000000002")
                .values(pii_key_id="rotated-out")
            )
            await uow.commit()
        app = create_app(system.inbox)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emulators") as http:
            page = await http.get("/epgu/")
            assert page.status_code == 200
            assert "Анна1" in page.text
            assert "Анна2" not in page.text
            listed = (await http.get("/epgu/api/notifications")).json()
        assert [item["card_id"] for item in listed["items"]] == ["MFC-77-2026-000000001"]
