"""``GET /api/v1/cards/feed`` — the service cards analytics consumes (SPEC §1, §8): organisation,
region, type, level, dates and the link's progress, never the citizen.

The cursor is opaque to callers: a base64url JSON of the position (latest change, card id) of the last
card returned. Positions are keyset positions, so a page never repeats or skips a card that was
committed before the page was read. A card committed *later* with an earlier position (a transaction
that took its timestamp before another's but committed after it) lands behind a cursor already handed
out; the consumer re-reads an overlap window to catch it (see ``posog.analytics.rollups.consumer``)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, cast

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from posog.core.appstate import need
from posog.core.clock import as_utc
from posog.core.db import Database
from posog.core.http import SERVICE_ERRORS, error_responses
from posog.core.service_auth import require_service
from posog.module.contracts import CardFeedItem, CardFeedPage, FeedLinkState, SurveyLevel
from posog.module.intake.queries import FeedPosition, cards_changed_after

MAX_LIMIT = 1000

router = APIRouter(tags=["cards"])


def encode_cursor(position: FeedPosition) -> str:
    raw = json.dumps({"t": position.changed_at.isoformat(), "c": position.card_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> FeedPosition:
    """The position a cursor stands for; ValueError when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
        changed_at = as_utc(datetime.fromisoformat(value["t"]))
        card_id = value["c"]
    except (ValueError, binascii.Error, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError("bad cursor") from exc
    if not isinstance(card_id, str) or not card_id or len(card_id) > 100:
        raise ValueError("bad cursor")
    return FeedPosition(changed_at, card_id)


@router.get(
    "/cards/feed",
    response_model=CardFeedPage,
    responses=error_responses(*SERVICE_ERRORS),
    dependencies=[Depends(require_service("cards:read"))],
)
async def cards_feed(
    request: Request,
    since: Annotated[str | None, Query(max_length=400, description="Курсор из next_cursor предыдущей страницы")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 500,
) -> Response:
    """Cards changed after ``since`` in the order of their latest change, each with its current state.
    No personal data: the citizen's ФИО, СНИЛС and birth date never leave the module."""
    position = None
    if since:
        try:
            position = decode_cursor(since)
        except ValueError:
            raise HTTPException(
                status_code=422,
                detail={"code": "bad_cursor", "message": "Некорректный курсор ленты карточек"},
            ) from None
    db = need(request, Database)
    async with db.uow() as uow:
        cards = await cards_changed_after(uow.session, position, limit + 1)
    has_more = len(cards) > limit
    cards = cards[:limit]
    items = [
        CardFeedItem(
            card_id=card.card_id,
            inn=card.inn,
            ogrn=card.ogrn,
            kpp=card.kpp,
            org_name=card.org_name,
            region_code=card.region_code,
            type_code=card.type_code,
            survey_level=cast(SurveyLevel, card.survey_level),
            service_date=card.service_date,
            created_at=card.created_at,
            link_state=cast(FeedLinkState, card.link_state),
            notified=card.notified,
            updated_at=card.changed_at,
            delivery_failed=card.delivery_failed,
            frgu_service_id=card.frgu_service_id,
            frgu_procedure_id=card.frgu_procedure_id,
            frgu_authority_id=card.frgu_authority_id,
        )
        for card in cards
    ]
    next_cursor = encode_cursor(cards[-1].position) if cards else since
    # The page as pydantic serialises it, directly: FastAPI would validate all its items again first
    # (this is analytics' feed — 500 cards a page). The OpenAPI document keeps ``response_model``.
    page = CardFeedPage(items=items, next_cursor=next_cursor, has_more=has_more)
    return Response(page.model_dump_json(), media_type="application/json")
