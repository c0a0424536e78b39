"""Read side of cabinet accounts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from posog.lko.accounts.model import CabinetUser


@dataclass(frozen=True)
class UserSummary:
    login: str
    full_name: str
    role: str
    region_code: str | None
    inn: str | None
    active: bool
    created_at: datetime
    last_login_at: datetime | None


async def list_users(session: AsyncSession) -> list[UserSummary]:
    """Every account, by login; no password hashes."""
    users = await session.scalars(select(CabinetUser).order_by(CabinetUser.login))
    return [
        UserSummary(
            login=u.login,
            full_name=u.full_name,
            role=u.role,
            region_code=u.region_code,
            inn=u.inn,
            active=u.active,
            created_at=u.created_at,
            last_login_at=u.last_login_at,
        )
        for u in users
    ]
