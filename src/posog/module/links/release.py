"""Releasing waiting cards: when ЛКО publishes a questionnaire for (type, level), the cards that
waited for one get their links and notifications (or are marked late if their period has ended)."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from sqlalchemy import insert, select

from posog.core.clock import Clock
from posog.core.db import Database
from posog.core.pii import PiiCipher
from posog.lko.contracts import SurveyLevel
from posog.module.contracts import Recipient
from posog.module.intake.model import CARD_LATE, CARD_LINKED, CARD_WAITING, ServiceCard
from posog.module.links.catalog import QuestionnaireCatalog
from posog.module.links.issuing import CardForLink, issue_link
from posog.module.links.model import SurveyLink
from posog.module.notifications.model import OutboxMessage

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ReleaseCounts:
    issued: int
    late: int


class WaitingCardsReleaser:
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
        self._catalog.forget(type_code, level)
        questionnaire = await self._catalog.active(type_code, level)
        if questionnaire is None:
            return ReleaseCounts(0, 0)
        issued = late = 0
        while True:
            now = self._clock()
            async with self._db.uow() as uow:
                cards = (
                    (
                        await uow.session.execute(
                            select(ServiceCard)
                            .where(
                                ServiceCard.type_code == type_code,
                                ServiceCard.survey_level == level,
                                ServiceCard.status == CARD_WAITING,
                            )
                            .order_by(ServiceCard.created_at)
                            .limit(self._batch_size)
                            .with_for_update(skip_locked=True)
                        )
                    )
                    .scalars()
                    .all()
                )
                if not cards:
                    break
                links, outbox = [], []
                for card in cards:
                    link = None
                    if card.pii is not None and card.pii_key_id is not None:
                        citizen = self._cipher.open_json(card.pii_key_id, card.pii, context=card.card_id)
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
                            lkp_base_url=self._lkp_base_url,
                            cipher=self._cipher,
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
                if links:
                    await uow.session.execute(insert(SurveyLink), links)
                    await uow.session.execute(insert(OutboxMessage), outbox)
                await uow.commit()
        log.info("links.released", type_code=type_code, level=level, issued=issued, late=late)
        return ReleaseCounts(issued, late)


__all__ = ["ReleaseCounts", "WaitingCardsReleaser"]
