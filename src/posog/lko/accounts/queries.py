"""Read side of cabinet accounts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from posog.lko.accounts.model import CabinetUser, LoginLock


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


@dataclass(frozen=True)
class LockSummary:
    login: str
    locked_at: datetime
    locked_until: datetime
    failures: int
    released_at: datetime | None
    released_by: str | None

    def state(self, now: datetime) -> str:
        """``active``, ``released`` (by an operator) or ``expired`` (by time)."""
        if self.released_at is not None:
            return "released"
        return "active" if self.locked_until > now else "expired"


async def list_login_locks(session: AsyncSession, *, login: str | None = None, limit: int = 100) -> list[LockSummary]:
    """The audit of login locks, newest first (of one login, if given)."""
    query = select(LoginLock).order_by(LoginLock.locked_at.desc(), LoginLock.id).limit(limit)
    if login is not None:
        query = query.where(LoginLock.login == login)
    return [
        LockSummary(
            login=lock.login,
            locked_at=lock.locked_at,
            locked_until=lock.locked_until,
            failures=lock.failures,
            released_at=lock.released_at,
            released_by=lock.released_by,
        )
        for lock in await session.scalars(query)
    ]
