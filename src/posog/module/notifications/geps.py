"""The ГЭПС notification text (SPEC §4): what the citizen reads in the Госуслуги inbox."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from posog.core.clock import MOSCOW
from posog.core.russian import russian_date
from posog.module.contracts import GepsNotification, Recipient

TITLE = "Оцените качество оказанной услуги"


def build_notification(
    *,
    card_id: str,
    recipient: Recipient,
    org_name: str,
    service_name: str | None,
    service_date: date,
    link: str,
    expires_at: datetime,
    frgu_service_id: str | None = None,
) -> GepsNotification:
    """The notification for one card; ``notification_id`` is fresh and lets ЕПГУ drop duplicates."""
    addressee = " ".join(part for part in (recipient.first_name, recipient.middle_name) if part)
    service = f"услугу «{service_name}»" if service_name else "государственную (муниципальную) услугу"
    deadline = russian_date(expires_at.astimezone(MOSCOW).date())
    text = (
        f"Здравствуйте, {addressee}! {russian_date(service_date)} вы получили {service} "
        f"в организации {org_name}. Пожалуйста, оцените качество её предоставления — это займёт "
        f"не больше двух минут: {link}. Опрос доступен до {deadline} включительно. "
        "Ссылка персональная, не передавайте её другим."
    )
    return GepsNotification(
        notification_id=str(uuid.uuid4()),
        card_id=card_id,
        recipient=recipient,
        title=TITLE,
        text=text,
        link=link,
        expires_at=expires_at.astimezone(MOSCOW).isoformat(),
        frgu_service_id=frgu_service_id,
    )
