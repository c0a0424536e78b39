"""Write side of cabinet accounts on a unit of work (``uow.accounts``). Nothing here commits."""

from __future__ import annotations

from typing import Any

from posog.core.db import Repository
from posog.lko.accounts.model import LoginThrottle


class AccountRepository(Repository):
    async def add_throttle_if_absent(self, row: dict[str, Any]) -> None:
        """A sign-in throttle counter, unless one exists under its key (``ON CONFLICT DO NOTHING``:
        concurrent failures never fail on it)."""
        await self.session.execute(self.insert_ignoring(LoginThrottle).values([row]))  # type: ignore[attr-defined]
