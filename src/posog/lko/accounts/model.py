"""The ``lko_users``, ``lko_sessions``, ``lko_login_throttle`` and ``lko_login_locks`` tables, and the
signed-in principal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import get_args

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, true
from sqlalchemy.orm import Mapped, mapped_column

from posog.core.db import Base, UTCDateTime, UUIDStr
from posog.lko.scope import ROLE_NAMES, Role, Scope

ROLES: tuple[str, ...] = get_args(Role)


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


class CabinetUser(Base):
    """A person who signs in to the cabinet. The role fixes what they see: a regional operator is
    bound to one region, an organisation user to one ИНН. Disabled, never deleted."""

    __tablename__ = "lko_users"
    __table_args__ = (
        CheckConstraint(f"role IN ({_quoted(ROLES)})", name="role"),
        CheckConstraint("role <> 'regional' OR region_code IS NOT NULL", name="regional_has_region"),
        CheckConstraint("role <> 'organization' OR inn IS NOT NULL", name="organization_has_inn"),
    )

    id: Mapped[str] = mapped_column(UUIDStr(), primary_key=True)
    login: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    region_code: Mapped[str | None] = mapped_column(String(2))
    inn: Mapped[str | None] = mapped_column(String(12))
    full_name: Mapped[str] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CabinetSession(Base):
    """A signed-in browser. Only the SHA-256 of the session id (the cookie's value) is stored, so a
    leaked table does not let anyone in. ``csrf_token`` is the synchronizer token of its forms."""

    __tablename__ = "lko_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        UUIDStr(), ForeignKey("lko_users.id", ondelete="CASCADE", name="fk_lko_sessions_user_id"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class LoginThrottle(Base):
    """Failed sign-ins counted under one key — a (login, client) pair, a client over every login
    (``login`` empty), or a login over every client (``client`` empty) — and until when attempts
    under it wait. Logins are counted whether they exist or not, so the throttle tells nothing about
    accounts. A ``login`` row's ``blocked_until`` is the login's lock (see :class:`LoginLock`)."""

    __tablename__ = "lko_login_throttle"
    __table_args__ = (CheckConstraint("kind IN ('pair', 'client', 'login')", name="kind"),)

    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    login: Mapped[str] = mapped_column(String(100), primary_key=True)
    client: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LoginLock(Base):
    """The audit of a login's locks: when, after how many failures, until when, and whether an
    operator released it earlier (``posog users unlock``). Never a password."""

    __tablename__ = "lko_login_locks"

    id: Mapped[str] = mapped_column(UUIDStr(), primary_key=True)
    login: Mapped[str] = mapped_column(String(100), index=True)
    locked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime] = mapped_column(UTCDateTime())
    failures: Mapped[int] = mapped_column(Integer)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    released_by: Mapped[str | None] = mapped_column(String(20))


@dataclass(frozen=True)
class CabinetPrincipal:
    """The signed-in user of one request, with what the role allows."""

    user_id: str
    login: str
    full_name: str
    role: Role
    region_code: str | None
    inn: str | None
    csrf_token: str
    session_hash: str

    @property
    def scope(self) -> Scope:
        """What this user may see (every query of responses takes it)."""
        return Scope(self.role, region_code=self.region_code, inn=self.inn)

    @property
    def role_name(self) -> str:
        return ROLE_NAMES[self.role]

    @property
    def can_view_directory(self) -> bool:
        return self.role in ("federal", "regional")

    @property
    def can_edit_directory(self) -> bool:
        return self.role == "federal"

    @property
    def can_view_questionnaires(self) -> bool:
        return self.role in ("federal", "regional")

    @property
    def can_manage_questionnaires(self) -> bool:
        """Questionnaires have no region: a regional-level questionnaire applies in every region, so
        only the federal operator manages them; regional operators read them."""
        return self.role == "federal"
