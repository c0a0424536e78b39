"""Read side of service cards: the change feed analytics consumes (no personal data ever selected), and
the rejected facts an operator lists (ids, reasons, counts).

A card changes after it is created: a waiting card gets its link or turns late (``updated_at`` of the
card), and the link moves on — notified, opened, completed, expired, revoked (``changed_at`` of the
link, kept by the ORM on every write). A card's position in the feed is its latest change, the greater
of the two. To read that order from indexes instead of sorting every card on every page, the feed is
the merge of two ordered streams, each card in exactly one of them at its position:

- cards whose own ``updated_at`` is their latest change (no link, or a link not changed since), in
  ``(updated_at, card_id)`` order;
- cards whose link changed after the card, in ``(changed_at, card_id)`` order of the link.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from posog.module.intake.model import CARD_LATE, CARD_WAITING, RejectedFact, ServiceCard
from posog.module.links.model import SurveyLink


@dataclass(frozen=True, order=True)
class FeedPosition:
    """A position in the cards feed: after the card ``card_id`` whose latest change was at ``changed_at``."""

    changed_at: datetime
    card_id: str


@dataclass(frozen=True)
class FeedCard:
    """One card of the feed: the anonymous part of the card and its link's progress."""

    card_id: str
    inn: str
    ogrn: str
    kpp: str | None
    org_name: str
    region_code: str
    type_code: str
    survey_level: str
    service_date: date
    created_at: datetime
    link_state: str
    notified: bool
    changed_at: datetime
    delivery_failed: bool = False
    frgu_service_id: str | None = None
    frgu_procedure_id: str | None = None
    frgu_authority_id: str | None = None

    @property
    def position(self) -> FeedPosition:
        return FeedPosition(self.changed_at, self.card_id)


_CARD_COLUMNS = (
    ServiceCard.card_id,
    ServiceCard.inn,
    ServiceCard.ogrn,
    ServiceCard.kpp,
    ServiceCard.org_name,
    ServiceCard.region_code,
    ServiceCard.type_code,
    ServiceCard.survey_level,
    ServiceCard.service_date,
    ServiceCard.created_at,
    ServiceCard.status,
    ServiceCard.updated_at,
    ServiceCard.frgu_service_id,
    ServiceCard.frgu_procedure_id,
    ServiceCard.frgu_authority_id,
    SurveyLink.state,
    SurveyLink.notified_at,
    SurveyLink.changed_at,
    SurveyLink.delivered_at,
    SurveyLink.delivery_failed_at,
)


def _after(column: Any, card_id: Any, since: FeedPosition | None) -> Any:
    # ``column >= t`` lets the index range start at t; the OR settles the ties on card_id.
    if since is None:
        return true()
    return and_(
        column >= since.changed_at,
        or_(column > since.changed_at, card_id > since.card_id),
    )


def _link_state(card_status: str, link_state: str | None) -> str:
    if link_state is not None:
        return link_state
    if card_status == CARD_WAITING:
        return "waiting"
    if card_status == CARD_LATE:
        return "late"
    return "none"


async def cards_changed_after(session: AsyncSession, since: FeedPosition | None, limit: int) -> list[FeedCard]:
    """Up to ``limit`` cards whose latest change is after ``since``, in feed order."""
    own = (
        select(*_CARD_COLUMNS)
        .select_from(ServiceCard)
        .outerjoin(SurveyLink, SurveyLink.card_id == ServiceCard.card_id)
        .where(
            _after(ServiceCard.updated_at, ServiceCard.card_id, since),
            or_(SurveyLink.changed_at.is_(None), SurveyLink.changed_at <= ServiceCard.updated_at),
        )
        .order_by(ServiceCard.updated_at, ServiceCard.card_id)
        .limit(limit)
    )
    by_link = (
        select(*_CARD_COLUMNS)
        .select_from(SurveyLink)
        .join(ServiceCard, ServiceCard.card_id == SurveyLink.card_id)
        .where(
            _after(SurveyLink.changed_at, SurveyLink.card_id, since),
            SurveyLink.changed_at > ServiceCard.updated_at,
        )
        .order_by(SurveyLink.changed_at, SurveyLink.card_id)
        .limit(limit)
    )
    found: list[FeedCard] = []
    for query in (own, by_link):
        for row in await session.execute(query):
            changed_at = row.updated_at if row.changed_at is None else max(row.updated_at, row.changed_at)
            found.append(
                FeedCard(
                    card_id=row.card_id,
                    inn=row.inn,
                    ogrn=row.ogrn,
                    kpp=row.kpp,
                    org_name=row.org_name,
                    region_code=row.region_code,
                    type_code=row.type_code,
                    survey_level=row.survey_level,
                    service_date=row.service_date,
                    created_at=row.created_at,
                    link_state=_link_state(row.status, row.state),
                    notified=row.notified_at is not None,
                    changed_at=changed_at,
                    # ЕПГУ could not deliver the ГЭПС notification (and no later status said it did);
                    # kept when the link expires, as ``notified`` is.
                    delivery_failed=row.delivery_failed_at is not None and row.delivered_at is None,
                    frgu_service_id=row.frgu_service_id,
                    frgu_procedure_id=row.frgu_procedure_id,
                    frgu_authority_id=row.frgu_authority_id,
                )
            )
    found.sort(key=lambda card: card.position)
    return found[:limit]


# --- Rejected facts (``posog facts …``): ids, reasons and counts; the sealed payload is opened only on demand.


async def rejected_facts(session: AsyncSession, *, status: str | None, limit: int) -> tuple[int, list[RejectedFact]]:
    """The total of rejected facts, and the newest ``limit`` of them (of ``status``, or all)."""
    query = select(RejectedFact).order_by(RejectedFact.received_at.desc()).limit(limit)
    if status is not None:
        query = query.where(RejectedFact.status == status)
    rows = list((await session.execute(query)).scalars().all())
    total = await session.scalar(select(func.count()).select_from(RejectedFact))
    return total or 0, rows


async def rejected_ids(session: AsyncSession, *, status: str, among: Sequence[str] | None = None) -> list[str]:
    """The ids of the rejected facts of ``status`` (only those ``among`` when given)."""
    query = select(RejectedFact.id).where(RejectedFact.status == status)
    if among is not None:
        query = query.where(RejectedFact.id.in_(among))
    return list((await session.scalars(query)).all())
