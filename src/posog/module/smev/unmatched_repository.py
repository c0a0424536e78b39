"""The write side of ``module_smev_unmatched``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from posog.core.db import among, insert_ignoring
from posog.module.smev.unmatched import SmevUnmatched


class SmevRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._dialect = session.get_bind().dialect.name

    async def keep(self, rows: list[dict[str, Any]]) -> None:
        """Kept documents; the same document (by its hash) twice is one row."""
        if rows:
            await self._session.execute(insert_ignoring(self._dialect, SmevUnmatched, ["raw_sha256"]), rows)

    async def unanswered(self, hashes: Sequence[str]) -> list[SmevUnmatched]:
        """The kept documents among ``hashes`` that have a sender to answer and were not answered yet."""
        if not hashes:
            return []
        rows = await self._session.execute(
            select(SmevUnmatched).where(
                among(self._dialect, SmevUnmatched.raw_sha256, list(hashes)),
                SmevUnmatched.client_id.is_not(None),
                SmevUnmatched.answered_at.is_(None),
            )
        )
        return list(rows.scalars())

    async def mark_answered(self, ids: Sequence[str], now: datetime) -> None:
        if ids:
            await self._session.execute(
                update(SmevUnmatched).where(among(self._dialect, SmevUnmatched.id, list(ids))).values(answered_at=now)
            )
