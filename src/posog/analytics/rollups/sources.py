"""The two sources of analytics, both without personal data: the module's cards feed and ЛКО's
responses. Each turns a page into stored items and rollup deltas, idempotently (see ``consumer.py``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from posog.analytics.rollups.consumer import FeedPage
from posog.analytics.rollups.items import (
    Contribution,
    Deltas,
    card_contribution,
    criterion_ratings,
    response_contribution,
)
from posog.analytics.rollups.model import SOURCE_CARDS, SOURCE_RESPONSES, CardItem, ResponseItem
from posog.analytics.rollups.repository import (
    apply_deltas,
    cards_by_id,
    responses_by_id,
    upsert_items,
    upsert_organizations,
)
from posog.core.clock import as_utc
from posog.lko.contracts import QuestionnaireDocument, ResponsePage, StoredResponse
from posog.module.contracts import CardFeedItem, CardFeedPage

log = structlog.get_logger(__name__)


class CardsFeed(Protocol):
    """What analytics needs of the module (``ModuleClient`` has it)."""

    async def cards_feed(self, since: str | None = None, limit: int = 500) -> CardFeedPage: ...


class ResponsesFeed(Protocol):
    """What analytics needs of ЛКО (``LkoClient`` has it)."""

    async def responses_feed(self, cursor: str | None = None, limit: int = 500) -> ResponsePage: ...

    async def questionnaire_version(self, questionnaire_id: str, version: int) -> QuestionnaireDocument | None: ...


def _name_key(service_date: date, card_id: str, origin: str) -> str:
    # The greatest key wins, whatever the arrival order; for one card, the card's own name ("c" > "r").
    return f"{service_date.isoformat()}|{card_id[:100]}|{origin}"


def stored_card_contribution(card: CardItem) -> Contribution:
    return card_contribution(
        service_date=card.service_date,
        region_code=card.region_code,
        inn=card.inn,
        type_code=card.type_code,
        survey_level=card.survey_level,
        notified=card.notified,
        delivery_failed=card.delivery_failed,
    )


def stored_response_contribution(response: ResponseItem) -> Contribution:
    return response_contribution(
        service_date=response.service_date,
        region_code=response.region_code,
        inn=response.inn,
        type_code=response.type_code,
        survey_level=response.survey_level,
        ratings=[(str(criterion), int(value)) for criterion, value in response.ratings],
    )


def _card_row_contribution(card: Mapping[str, Any]) -> Contribution:
    """:func:`stored_card_contribution` of an item as a row (a stored one, or one about to be)."""
    return card_contribution(
        service_date=card["service_date"],
        region_code=card["region_code"],
        inn=card["inn"],
        type_code=card["type_code"],
        survey_level=card["survey_level"],
        notified=card["notified"],
        delivery_failed=card.get("delivery_failed", False),
    )


def _response_row_contribution(response: Mapping[str, Any]) -> Contribution:
    """:func:`stored_response_contribution` of an item as a row."""
    return response_contribution(
        service_date=response["service_date"],
        region_code=response["region_code"],
        inn=response["inn"],
        type_code=response["type_code"],
        survey_level=response["survey_level"],
        ratings=[(str(criterion), int(value)) for criterion, value in response["ratings"]],
    )


class CardsSource:
    """The module's cards feed."""

    name = SOURCE_CARDS

    def __init__(self, feed: CardsFeed) -> None:
        self._feed = feed

    async def fetch(self, cursor: str | None, limit: int) -> FeedPage[CardFeedItem]:
        page = await self._feed.cards_feed(cursor, limit)
        return FeedPage(page.items, page.next_cursor, page.has_more)

    def stamp(self, item: CardFeedItem) -> datetime:
        return as_utc(item.updated_at)

    async def prepare(self, items: Sequence[CardFeedItem]) -> None:
        return None

    async def apply(self, session: AsyncSession, items: Sequence[CardFeedItem]) -> int:
        latest: dict[str, CardFeedItem] = {}
        for item in items:
            seen = latest.get(item.card_id)
            if seen is None or seen.updated_at <= item.updated_at:
                latest[item.card_id] = item
        stored = await cards_by_id(session, sorted(latest))
        deltas = Deltas()
        rows: list[dict[str, Any]] = []
        for card_id in sorted(latest):
            item, old = latest[card_id], stored.get(card_id)
            updated_at = as_utc(item.updated_at)
            if old is not None and old["source_updated_at"] > updated_at:
                continue  # a stale page: the stored state is newer
            row = {
                "card_id": item.card_id,
                "inn": item.inn,
                "region_code": item.region_code,
                "type_code": item.type_code,
                "survey_level": item.survey_level,
                "service_date": item.service_date,
                "link_state": item.link_state,
                "notified": item.notified,
                "delivery_failed": item.delivery_failed,
                "source_updated_at": updated_at,
            }
            if old is not None and all(old[key] == value for key, value in row.items()):
                continue
            deltas.replace(None if old is None else _card_row_contribution(old), _card_row_contribution(row))
            rows.append(row)
        await upsert_items(session, CardItem, "card_id", rows)
        await apply_deltas(session, deltas)
        await upsert_organizations(
            session,
            (
                {
                    "inn": item.inn,
                    "org_name": item.org_name,
                    "region_code": item.region_code,
                    "name_key": _name_key(item.service_date, item.card_id, "c"),
                }
                for item in latest.values()
            ),
        )
        return len(rows)


class ResponsesSource:
    """ЛКО's stored responses, with their criterion ratings read through the pinned questionnaire
    version (fetched once per version: versions are immutable)."""

    name = SOURCE_RESPONSES

    def __init__(self, feed: ResponsesFeed) -> None:
        self._feed = feed
        self._versions: dict[tuple[str, int], QuestionnaireDocument | None] = {}

    async def fetch(self, cursor: str | None, limit: int) -> FeedPage[StoredResponse]:
        page = await self._feed.responses_feed(cursor, limit)
        return FeedPage(page.items, page.next_cursor, None)

    def stamp(self, item: StoredResponse) -> datetime:
        return as_utc(datetime.fromisoformat(item.submitted_at))

    async def prepare(self, items: Sequence[StoredResponse]) -> None:
        for item in items:
            key = (item.questionnaire_id, item.questionnaire_version)
            if key not in self._versions:
                document = await self._feed.questionnaire_version(*key)
                if document is None:
                    log.error("analytics.questionnaire_version_missing", questionnaire_id=key[0], version=key[1])
                self._versions[key] = document

    def _row(self, item: StoredResponse) -> dict[str, Any]:
        document = self._versions.get((item.questionnaire_id, item.questionnaire_version))
        ratings = [] if document is None else criterion_ratings(item.answers, document)
        return {
            "response_id": item.id,
            "card_id": item.card_id,
            "inn": item.inn,
            "region_code": item.region_code,
            "type_code": item.type_code,
            "survey_level": item.survey_level,
            "service_date": date.fromisoformat(item.service_date),
            "questionnaire_id": item.questionnaire_id,
            "questionnaire_version": item.questionnaire_version,
            "submitted_at": self.stamp(item),
            "ratings": [[criterion, value] for criterion, value in ratings],
        }

    async def apply(self, session: AsyncSession, items: Sequence[StoredResponse]) -> int:
        latest: dict[str, dict[str, Any]] = {}
        names: list[dict[str, str]] = []
        for item in items:
            try:
                row = self._row(item)
            except ValueError:
                # A malformed date would stop the feed for good; it is an upstream bug, reported, not counted.
                log.error("analytics.response_unreadable", response_id=item.id)
                continue
            latest[item.id] = row
            names.append(
                {
                    "inn": item.inn,
                    "org_name": item.org_name,
                    "region_code": item.region_code,
                    "name_key": _name_key(row["service_date"], item.card_id, "r"),
                }
            )
        stored = await responses_by_id(session, sorted(latest))
        deltas = Deltas()
        rows: list[dict[str, Any]] = []
        for response_id in sorted(latest):
            row, old = latest[response_id], stored.get(response_id)
            if old is not None and all(old[key] == value for key, value in row.items()):
                continue
            deltas.replace(None if old is None else _response_row_contribution(old), _response_row_contribution(row))
            rows.append(row)
        await upsert_items(session, ResponseItem, "response_id", rows)
        await apply_deltas(session, deltas)
        await upsert_organizations(session, names)
        return len(rows)
