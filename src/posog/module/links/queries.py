"""Read side of survey links: a link with the card it rates, found by the hash of its token. (On
PostgreSQL the hot path finds and opens it in one statement: :mod:`posog.module.links.repository`.)"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from posog.module.intake.model import ServiceCard
from posog.module.links.model import SurveyLink


@dataclass(frozen=True)
class LinkWithCard:
    """A link and the anonymous part of its card (never the sealed personal data)."""

    link_id: str
    state: str
    expires_at: datetime
    questionnaire_id: str
    questionnaire_version: int
    response_id: str | None
    card_id: str
    survey_level: str
    service_date: date
    service_name: str | None
    org_name: str
    org_address: str
    inn: str
    ogrn: str
    kpp: str | None
    type_code: str
    region_code: str


async def find_link(session: AsyncSession, token_hash: str) -> LinkWithCard | None:
    """The link whose token hashes to ``token_hash``, with its card: one lookup by a unique index
    (whatever the token looked like, so unknown and malformed tokens cost the same)."""
    query = (
        select(
            SurveyLink.id.label("link_id"),
            SurveyLink.state,
            SurveyLink.expires_at,
            SurveyLink.questionnaire_id,
            SurveyLink.questionnaire_version,
            SurveyLink.response_id,
            ServiceCard.card_id,
            ServiceCard.survey_level,
            ServiceCard.service_date,
            ServiceCard.service_name,
            ServiceCard.org_name,
            ServiceCard.org_address,
            ServiceCard.inn,
            ServiceCard.ogrn,
            ServiceCard.kpp,
            ServiceCard.type_code,
            ServiceCard.region_code,
        )
        .join(ServiceCard, ServiceCard.card_id == SurveyLink.card_id)
        .where(SurveyLink.token_hash == token_hash)
    )
    row = (await session.execute(query)).first()
    return None if row is None else LinkWithCard(**row._mapping)
