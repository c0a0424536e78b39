"""Releasing waiting cards: when ЛКО publishes a questionnaire for (type, level), the cards that
waited for one get their links and notifications (or are marked late if their period has ended)."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from posog.core.clock import Clock
from posog.core.db import Database
from posog.core.pii import PiiCipher
from posog.lko.contracts import SurveyLevel
from posog.module.contracts import Recipient
from posog.module.intake.model import CARD_LATE, CARD_LINKED
from posog.module.links.catalog import QuestionnaireCatalog
from posog.module.links.issuing import CardForLink, issue_link
from posog.module.uow import ModuleUnitOfWork

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ReleaseCounts:
    issued: int
    late: int


@dataclass(frozen=True)
class ReleaseWaitingCards:
    """ЛКО published a questionnaire for (``type_code``, ``level``): the cards waiting for one get it."""

    type_code: str
    level: SurveyLevel


async def release_waiting_cards(
    command: ReleaseWaitingCards,
    uow: ModuleUnitOfWork,
    *,
    catalog: QuestionnaireCatalog,
    cipher: PiiCipher,
    clock: Clock,
    lkp_base_url: str,
    batch_size: int = 500,
) -> ReleaseCounts:
    """Issue a link and its notification for every card waiting for (type, level) — or mark it late
    when its survey period has already ended — in batches, each its own transaction. Nothing happens
    when ЛКО has no active questionnaire for them (the catalog asks ЛКО afresh, before any transaction)."""
    catalog.forget(command.type_code, command.level)
    questionnaire = await catalog.active(command.type_code, command.level)
    if questionnaire is None:
        return ReleaseCounts(0, 0)
    issued = late = 0
    while True:
        now = clock()
        cards = await uow.cards.waiting(command.type_code, command.level, limit=batch_size)
        if not cards:
            break
        links, outbox = [], []
        for card in cards:
            link = None
            if card.pii is not None and card.pii_key_id is not None:
                citizen = cipher.open_json(card.pii_key_id, card.pii, context=card.card_id)
                link = issue_link(
                    CardForLink(
                        card_id=card.card_id,
                        service_date=card.service_date,
                        service_name=card.service_name,
                        org_name=card.org_name,
                        recipient=Recipient(
                            snils=citizen["snils"],
                            last_name=citizen["last_name"],
                            first_name=citizen["first_name"],
                            middle_name=citizen.get("middle_name"),
                        ),
                        frgu_service_id=card.frgu_service_id,
                    ),
                    questionnaire,
                    now=now,
                    lkp_base_url=lkp_base_url,
                    cipher=cipher,
                )
            if link is None:
                card.status = CARD_LATE
                late += 1
            else:
                card.status = CARD_LINKED
                links.append(link.link_row)
                outbox.append(link.outbox_row)
                issued += 1
            card.updated_at = now
        await uow.links.add(links)
        await uow.outbox.add(outbox)
        await uow.commit()
    log.info("links.released", type_code=command.type_code, level=command.level, issued=issued, late=late)
    return ReleaseCounts(issued, late)


class WaitingCardsReleaser:
    """:func:`release_waiting_cards` with what the module was built with (the announcement route's)."""

    def __init__(
        self,
        db: Database,
        catalog: QuestionnaireCatalog,
        cipher: PiiCipher,
        clock: Clock,
        *,
        lkp_base_url: str,
        batch_size: int = 500,
    ) -> None:
        self._db = db
        self._catalog = catalog
        self._cipher = cipher
        self._clock = clock
        self._lkp_base_url = lkp_base_url
        self._batch_size = batch_size

    async def release(self, type_code: str, level: SurveyLevel) -> ReleaseCounts:
        """Issue links for every card waiting for (type, level), in batches, each its own transaction."""
        async with ModuleUnitOfWork(self._db) as uow:
            return await release_waiting_cards(
                ReleaseWaitingCards(type_code, level),
                uow,
                catalog=self._catalog,
                cipher=self._cipher,
                clock=self._clock,
                lkp_base_url=self._lkp_base_url,
                batch_size=self._batch_size,
            )


__all__ = ["ReleaseCounts", "ReleaseWaitingCards", "WaitingCardsReleaser", "release_waiting_cards"]
