"""The ГЭПС outbox's write side on a unit of work (``uow.outbox``): notifications written in the same
transaction as the links they announce. Delivering them is the relay's (:mod:`.relay`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from posog.core.db import Repository, insert_rows
from posog.module.notifications.model import OutboxMessage


class OutboxRepository(Repository):
    async def add(self, rows: Sequence[dict[str, Any]]) -> None:
        """New notifications (rows built by :func:`~posog.module.links.issuing.issue_link`): one
        statement (COPY on PostgreSQL)."""
        await insert_rows(self.session, OutboxMessage.__table__, rows)  # type: ignore[arg-type]
