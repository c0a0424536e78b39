"""What the ИАС export reads of the module's cards (its card read contract): per card, the service, the
ФРГУ ids (og.fact/1 ``service.frgu_service_id``, ``service.frgu_procedure_id``,
``organization.frgu_authority_id``, stored on the card), the region and the СНИЛС hash the pseudonym is
made from. No personal data is read: the hash is a keyed hash already.

The ФРГУ columns come with the envelope work of issue 15 (``frgu_service_id``, ``frgu_procedure_id``,
``frgu_authority_id`` on ``module_service_cards``); on a schema without them they read as absent, and
every rating is then listed as unsendable (``no_frgu_service``) rather than sent without them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from posog.module.intake.model import ServiceCard

FRGU_COLUMNS = ("frgu_service_id", "frgu_procedure_id", "frgu_authority_id")


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


def _frgu_columns() -> list[Any]:
    return [getattr(ServiceCard, name) for name in FRGU_COLUMNS if hasattr(ServiceCard, name)]


async def card_facts(session: AsyncSession, card_ids: Iterable[str], *, chunk: int = 500) -> dict[str, CardFacts]:
    """card id → :class:`CardFacts` of the cards that exist."""
    ids = sorted(set(card_ids))
    frgu = _frgu_columns()
    names = [column.key for column in frgu]
    found: dict[str, CardFacts] = {}
    for start in range(0, len(ids), chunk):
        rows = await session.execute(
            select(
                ServiceCard.card_id,
                ServiceCard.service_name,
                ServiceCard.service_code,
                ServiceCard.region_code,
                ServiceCard.snils_hash,
                *frgu,
            ).where(ServiceCard.card_id.in_(ids[start : start + chunk]))
        )
        for row in rows:
            extra = {
                name: (str(value).strip() or None) if value is not None else None
                for name, value in zip(names, row[5:], strict=True)
            }
            found[row[0]] = CardFacts(row[0], row[1], row[2], row[3], row[4], **extra)
    return found
