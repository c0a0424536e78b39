"""What the ИАС export reads of the module's cards (its card read contract): per card, the service, the
ФРГУ ids (og.fact/1 ``service.frgu_service_id``, ``service.frgu_procedure_id``,
``organization.frgu_authority_id``, stored on the card), the region and the СНИЛС hash the pseudonym is
made from. No personal data is read: the hash is a keyed hash already."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from posog.module.intake.model import ServiceCard


@dataclass(frozen=True)
class CardFacts:
    card_id: str
    service_name: str | None
    service_code: str | None
    region_code: str
    snils_hash: str | None
    frgu_service_id: str | None = None
    frgu_procedure_id: str | None = None
    frgu_authority_id: str | None = None


async def card_facts(session: AsyncSession, card_ids: Iterable[str], *, chunk: int = 500) -> dict[str, CardFacts]:
    """card id → :class:`CardFacts` of the cards that exist."""
    ids = sorted(set(card_ids))
    found: dict[str, CardFacts] = {}
    for start in range(0, len(ids), chunk):
        rows = await session.execute(
            select(
                ServiceCard.card_id,
                ServiceCard.service_name,
                ServiceCard.service_code,
                ServiceCard.region_code,
                ServiceCard.snils_hash,
                ServiceCard.frgu_service_id,
                ServiceCard.frgu_procedure_id,
                ServiceCard.frgu_authority_id,
            ).where(ServiceCard.card_id.in_(ids[start : start + chunk]))
        )
        for row in rows:
            found[row[0]] = CardFacts(*row[:5], *(_id(value) for value in row[5:]))
    return found


def _id(value: str | None) -> str | None:
    return (value.strip() or None) if value is not None else None
