"""Read side of responses, always within a :class:`Scope` applied in SQL: a regional scope never sees
another region and an organisation scope never another ИНН, whatever filters the caller passes.

Pages are keyset pages on ``(submitted_at, id)`` with an opaque cursor: oldest first by default (a
feed: new responses appear at the end, so a reader resumes from its last cursor), newest first on
request (the cabinet)."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import ColumnElement, literal, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from posog.lko.contracts import ResponsePage, StoredResponse
from posog.lko.responses.model import SurveyResponse
from posog.lko.scope import Scope

DEFAULT_PAGE = 50
MAX_PAGE = 500


class InvalidCursor(ValueError):
    """The cursor was not produced by :func:`list_responses` with the same order."""


@dataclass(frozen=True)
class _Position:
    submitted_at: datetime
    id: str
    newest_first: bool


def scope_condition(scope: Scope) -> ColumnElement[bool]:
    """The rows ``scope`` may see, as a SQL condition."""
    if scope.role == "federal":
        return true()
    if scope.role == "regional":
        return SurveyResponse.region_code == scope.region_code
    return SurveyResponse.inn == scope.inn


async def list_responses(
    session: AsyncSession,
    scope: Scope,
    *,
    inn: str | None = None,
    region_code: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    type_code: str | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_PAGE,
    newest_first: bool = False,
) -> ResponsePage:
    """One page of the responses visible in ``scope`` that match the filters. ``date_from`` and
    ``date_to`` (inclusive) bound the service date — the period the rated services were provided in.
    Raises :class:`InvalidCursor` for a cursor that is not one of ours."""
    limit = max(1, min(limit, MAX_PAGE))
    conditions: list[ColumnElement[bool]] = [scope_condition(scope)]
    if inn is not None:
        conditions.append(SurveyResponse.inn == inn)
    if region_code is not None:
        conditions.append(SurveyResponse.region_code == region_code)
    if type_code is not None:
        conditions.append(SurveyResponse.type_code == type_code)
    if date_from is not None:
        conditions.append(SurveyResponse.service_date >= date_from)
    if date_to is not None:
        conditions.append(SurveyResponse.service_date <= date_to)
    if cursor is not None:
        conditions.append(_after(_decode(cursor, newest_first=newest_first)))
    if newest_first:
        order = (SurveyResponse.submitted_at.desc(), SurveyResponse.id.desc())
    else:
        order = (SurveyResponse.submitted_at.asc(), SurveyResponse.id.asc())
    rows = list(await session.scalars(select(SurveyResponse).where(*conditions).order_by(*order).limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = _encode(_Position(last.submitted_at, last.id, newest_first))
    return ResponsePage(items=[row.to_contract() for row in rows[:limit]], next_cursor=next_cursor)


async def get_response(session: AsyncSession, scope: Scope, response_id: str) -> StoredResponse | None:
    """One response, or None when it does not exist or lies outside ``scope`` (indistinguishably)."""
    try:
        canonical_id = str(uuid.UUID(response_id))
    except ValueError:
        return None
    row = await session.scalar(select(SurveyResponse).where(SurveyResponse.id == canonical_id, scope_condition(scope)))
    return None if row is None else row.to_contract()


def _after(position: _Position) -> ColumnElement[bool]:
    """Rows after the position in the list's order, as a row comparison ``(submitted_at, id) > (…, …)``:
    the same rows as ``submitted_at > t OR (submitted_at = t AND id > i)``, but an index range scan
    from the position on PostgreSQL, where the OR form scanned the index from its start and filtered —
    every page of the feed costing as much as everything before it."""
    key = tuple_(SurveyResponse.submitted_at, SurveyResponse.id)
    bound = tuple_(literal(position.submitted_at, SurveyResponse.submitted_at.type), literal(position.id))
    return key < bound if position.newest_first else key > bound


def _encode(position: _Position) -> str:
    raw = json.dumps(
        [position.submitted_at.isoformat(), position.id, "desc" if position.newest_first else "asc"],
        separators=(",", ":"),
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str, *, newest_first: bool) -> _Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, response_id, direction = json.loads(raw)
        submitted_at = datetime.fromisoformat(moment)
        canonical_id = str(uuid.UUID(response_id))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor("not a cursor of this list") from exc
    if submitted_at.tzinfo is None or direction != ("desc" if newest_first else "asc"):
        raise InvalidCursor("not a cursor of this list")
    return _Position(submitted_at, canonical_id, newest_first)
