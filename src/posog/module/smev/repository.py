"""The answers' statements on a unit of work: the write side of ``module_smev_answers``, with the
dialect's differences (``COPY`` on asyncpg through intake's bulk writer, ``= ANY``, ``ON CONFLICT``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from posog.core.db import among, insert_ignoring, insert_rows
from posog.module.smev.model import SmevAnswer


class AnswerRepository:
    """The answers' statements on one unit of work."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._dialect = session.get_bind().dialect.name

    async def add(self, rows: Sequence[dict[str, Any]]) -> None:
        """A batch's answer rows, in one statement (``COPY`` on PostgreSQL, as intake writes its cards);
        a request clientId already answered (or twice among ``rows``) keeps its first answer. Two
        workers answering the same clientId at once: one statement fails with an IntegrityError, and
        intake's race retry runs the batch again, which then finds the answer."""
        unique = list({row["reply_to_client_id"]: row for row in reversed(rows)}.values())[::-1]
        if not unique:
            return
        known = await self.answered_among([row["reply_to_client_id"] for row in unique])
        fresh = [row for row in unique if row["reply_to_client_id"] not in known]
        await insert_rows(self._session, SmevAnswer.__table__, fresh)  # type: ignore[arg-type]

    async def add_one(self, row: dict[str, Any]) -> None:
        """One answer row, left out if its request clientId is answered already (no race error)."""
        await self._session.execute(insert_ignoring(self._dialect, SmevAnswer, ["reply_to_client_id"]), [row])

    async def answered_among(self, reply_to: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(reply_to), 500):
            rows = await self._session.scalars(
                select(SmevAnswer.reply_to_client_id).where(
                    among(self._dialect, SmevAnswer.reply_to_client_id, list(reply_to[start : start + 500]))
                )
            )
            found.update(rows)
        return found

    async def answered(self, reply_to: str) -> bool:
        found = await self._session.scalar(select(SmevAnswer.id).where(SmevAnswer.reply_to_client_id == reply_to))
        return found is not None

    async def by_client_id(self, client_id: str) -> SmevAnswer | None:
        return (await self._session.execute(select(SmevAnswer).where(SmevAnswer.client_id == client_id))).scalar()
