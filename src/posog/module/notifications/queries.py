"""Read side of the ГЭПС outbox."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from posog.module.notifications.model import OutboxMessage


async def sent_notifications(session: AsyncSession) -> int:
    """How many notifications the relay has handed to the bus (each once, whatever its rows)."""
    sent = await session.scalar(
        select(func.count(func.distinct(OutboxMessage.message_id))).where(OutboxMessage.sent_at.is_not(None))
    )
    return sent or 0
