"""Write side of the organisation-type directory on a unit of work (``uow.org_types``). Nothing here
commits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from posog.core.db import Repository
from posog.lko.org_types.model import OrgTypeEntry


class OrgTypeRepository(Repository):
    async def get(self, code: str) -> OrgTypeEntry | None:
        return await self.session.get(OrgTypeEntry, code)

    async def add_if_absent(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert the types whose codes are not in the directory yet; existing ones stay as they are
        (``ON CONFLICT DO NOTHING``: processes seeding at once never fail)."""
        if rows:
            await self.session.execute(self.insert_ignoring(OrgTypeEntry), list(rows))
