"""Use cases of cabinet accounts: create and disable users (the CLI), sign in, resolve the session of a
request, sign out. Each takes a unit of work and commits what it changes."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import structlog
from sqlalchemy import case, delete, select, update
from sqlalchemy.exc import IntegrityError

from posog.core import ids, regions
from posog.core.db import UnitOfWork, new_uuid
from posog.lko.accounts.model import ROLES, CabinetPrincipal, CabinetSession, CabinetUser, LoginThrottle
from posog.lko.accounts.passwords import hash_password, needs_rehash, password_problem, verify_password
from posog.lko.questionnaires.repository import insert_ignoring_conflicts
from posog.lko.scope import Role
from posog.settings import Settings

log = structlog.get_logger(__name__)

LOGIN_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@\-]{2,99}$")
MAX_FULL_NAME = 300
# A session's last-seen time is written at most this often (not on every page).
_TOUCH_EVERY = timedelta(seconds=60)


class AccountError(Exception):
    """A request about accounts that cannot be done; ``message`` is Russian, for the operator."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def normalize_login(login: str) -> str:
    """Logins are case-insensitive and trimmed."""
    return login.strip().casefold()


def hash_session_id(session_id: str) -> str:
    """What is stored of a session id: its SHA-256."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SessionPolicy:
    """How long sessions live and how hard password guessing is throttled."""

    lifetime: timedelta = timedelta(hours=12)
    idle: timedelta = timedelta(minutes=30)
    max_failures: int = 5
    lockout: timedelta = timedelta(minutes=15)

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionPolicy:
        return cls(
            lifetime=timedelta(hours=settings.cabinet_session_hours),
            idle=timedelta(minutes=settings.cabinet_idle_minutes),
            max_failures=settings.cabinet_login_max_failures,
            lockout=timedelta(minutes=settings.cabinet_login_lockout_minutes),
        )


# --- Accounts (CLI) ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewUser:
    login: str
    password: str
    role: str
    full_name: str | None = None
    region_code: str | None = None
    inn: str | None = None


async def create_user(uow: UnitOfWork, command: NewUser, *, now: datetime) -> str:
    """Create an active account; returns its id. Raises :class:`AccountError` with the reason."""
    login = normalize_login(command.login)
    if not LOGIN_PATTERN.match(login):
        raise AccountError(
            "Логин: от 3 до 100 символов — латинские буквы, цифры, «.», «_», «-», «@»; начинается с буквы или цифры"
        )
    if command.role not in ROLES:
        raise AccountError(f"Роль «{command.role}» неизвестна; допустимые: {', '.join(ROLES)}")
    role: Role = command.role  # type: ignore[assignment]
    region_code = (command.region_code or "").strip() or None
    inn = (command.inn or "").strip() or None
    if role == "regional":
        if region_code is None or not regions.is_region_code(region_code):
            raise AccountError("Региональному оператору нужен код региона (две цифры, например 77)")
    elif region_code is not None:
        raise AccountError("Код региона задаётся только региональному оператору")
    if role == "organization":
        try:
            inn = ids.validate_inn(inn or "")
        except ids.IdError as exc:
            raise AccountError(f"Пользователю организации нужен корректный ИНН ({exc.reason})") from None
    elif inn is not None:
        raise AccountError("ИНН задаётся только пользователю организации")
    problem = password_problem(command.password)
    if problem:
        raise AccountError(problem)
    full_name = (command.full_name or "").strip() or login
    if len(full_name) > MAX_FULL_NAME:
        raise AccountError(f"Имя пользователя длиннее {MAX_FULL_NAME} символов")
    user = CabinetUser(
        id=new_uuid(),
        login=login,
        password_hash=await hash_password(command.password),
        role=role,
        region_code=region_code,
        inn=inn,
        full_name=full_name,
        active=True,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(user)
    try:
        await uow.session.flush()
    except IntegrityError:
        raise AccountError(f"Пользователь с логином «{login}» уже существует") from None
    await uow.commit()
    log.info("lko.accounts.user_created", user_id=user.id, role=role)
    return user.id


async def disable_user(uow: UnitOfWork, login: str, *, now: datetime) -> None:
    """Disable an account and end its sessions. Raises :class:`AccountError` if there is no such login."""
    user = await uow.session.scalar(select(CabinetUser).where(CabinetUser.login == normalize_login(login)))
    if user is None:
        raise AccountError(f"Пользователя с логином «{normalize_login(login)}» нет")
    user.active = False
    user.updated_at = now
    await uow.session.execute(delete(CabinetSession).where(CabinetSession.user_id == user.id))
    await uow.commit()
    log.info("lko.accounts.user_disabled", user_id=user.id)


# --- Sign-in and sessions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedIn:
    session_id: str  # the cookie's value; only its hash is stored
    principal: CabinetPrincipal


@dataclass(frozen=True)
class SignInRefused:
    reason: Literal["invalid", "locked"]
    retry_after_minutes: int = 0


async def sign_in(
    uow: UnitOfWork, login: str, password: str, *, now: datetime, policy: SessionPolicy
) -> SignedIn | SignInRefused:
    """Check a login and password and open a session. A wrong login and a wrong password are refused
    alike, after verifying a hash either way; too many failures for one login lock it for a while."""
    session = uow.session
    key = normalize_login(login)[:100]
    throttle = await session.get(LoginThrottle, key)
    if throttle is not None and throttle.locked_until is not None and throttle.locked_until > now:
        return SignInRefused("locked", _minutes_until(throttle.locked_until, now))
    user = await session.scalar(select(CabinetUser).where(CabinetUser.login == key)) if key else None
    usable = user is not None and user.active
    matches = await verify_password(user.password_hash if usable and user is not None else None, password)
    if not matches or user is None:
        locked_until = await _record_failure(uow, key, now=now, policy=policy)
        await uow.commit()
        log.info("lko.accounts.sign_in_refused", locked=locked_until is not None)
        if locked_until is not None:
            return SignInRefused("locked", _minutes_until(locked_until, now))
        return SignInRefused("invalid")
    if throttle is not None:
        await session.delete(throttle)
    if needs_rehash(user.password_hash):
        user.password_hash = await hash_password(password)
    user.last_login_at = now
    await session.execute(delete(CabinetSession).where(CabinetSession.expires_at <= now))
    session_id = secrets.token_urlsafe(32)
    stored = CabinetSession(
        id_hash=hash_session_id(session_id),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + policy.lifetime,
    )
    session.add(stored)
    await uow.commit()
    log.info("lko.accounts.signed_in", user_id=user.id, role=user.role)
    return SignedIn(session_id, _principal(user, stored))


async def _record_failure(uow: UnitOfWork, key: str, *, now: datetime, policy: SessionPolicy) -> datetime | None:
    """Count a failed sign-in for ``key`` atomically; returns the lock's end if this failure locks it."""
    session = uow.session
    window_start = now - policy.lockout
    await session.execute(
        delete(LoginThrottle).where(
            LoginThrottle.window_started_at < window_start,
            (LoginThrottle.locked_until.is_(None)) | (LoginThrottle.locked_until < now),
            LoginThrottle.login != key,
        )
    )
    table = LoginThrottle.__table__
    await session.execute(
        insert_ignoring_conflicts(
            session.get_bind().dialect.name,
            table,  # type: ignore[arg-type]
            [{"login": key, "failures": 0, "window_started_at": now, "locked_until": None}],
        )
    )
    expired = LoginThrottle.window_started_at < window_start
    failures = (
        await session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.login == key)
            .values(
                failures=case((expired, 1), else_=LoginThrottle.failures + 1),
                window_started_at=case((expired, now), else_=LoginThrottle.window_started_at),
            )
            .returning(LoginThrottle.failures)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one()
    if failures < policy.max_failures:
        return None
    locked_until = now + policy.lockout
    await session.execute(
        update(LoginThrottle)
        .where(LoginThrottle.login == key)
        .values(failures=0, window_started_at=now, locked_until=locked_until)
        .execution_options(synchronize_session=False)
    )
    return locked_until


def _minutes_until(moment: datetime, now: datetime) -> int:
    return max(1, int((moment - now).total_seconds() + 59) // 60)


async def resolve_session(
    uow: UnitOfWork, session_id: str, *, now: datetime, policy: SessionPolicy
) -> CabinetPrincipal | None:
    """The principal of a session cookie, or None when the session is unknown, expired, idle too long
    or its user disabled (such a session is ended)."""
    session = uow.session
    stored = await session.get(CabinetSession, hash_session_id(session_id))
    if stored is None:
        return None
    user = await session.get(CabinetUser, stored.user_id)
    if user is None or not user.active or stored.expires_at <= now or stored.last_seen_at + policy.idle <= now:
        await session.delete(stored)
        await uow.commit()
        return None
    if now - stored.last_seen_at >= _TOUCH_EVERY:
        stored.last_seen_at = now
        await uow.commit()
    return _principal(user, stored)


async def sign_out(uow: UnitOfWork, session_id: str) -> None:
    """End the session (idempotent)."""
    await uow.session.execute(delete(CabinetSession).where(CabinetSession.id_hash == hash_session_id(session_id)))
    await uow.commit()


def _principal(user: CabinetUser, stored: CabinetSession) -> CabinetPrincipal:
    role: Role = user.role  # type: ignore[assignment]
    return CabinetPrincipal(
        user_id=user.id,
        login=user.login,
        full_name=user.full_name,
        role=role,
        region_code=user.region_code,
        inn=user.inn,
        csrf_token=stored.csrf_token,
        session_hash=stored.id_hash,
    )
