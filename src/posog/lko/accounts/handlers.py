"""Use cases of cabinet accounts: create and disable users (the CLI), sign in, resolve the session of a
request, sign out. Each takes a unit of work and commits what it changes."""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import structlog
from sqlalchemy import ColumnElement, and_, case, delete, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from posog.core import ids, regions
from posog.core.db import UnitOfWork, new_uuid
from posog.core.retry import backoff
from posog.lko.accounts.model import (
    ROLES,
    CabinetPrincipal,
    CabinetSession,
    CabinetUser,
    LoginLock,
    LoginThrottle,
)
from posog.lko.accounts.passwords import hash_password, needs_rehash, password_problem, verify_password
from posog.lko.scope import Role
from posog.lko.uow import LkoUnitOfWork
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
    """How long sessions live and how password guessing is slowed (see :func:`sign_in`)."""

    lifetime: timedelta = timedelta(hours=12)
    idle: timedelta = timedelta(minutes=30)
    # Failures of one (login, client) pair, and of one client over every login, before each further
    # attempt under that key waits: 1 s, then twice as long per failure, at most ``delay_max``.
    pair_free_failures: int = 5
    client_free_failures: int = 20
    delay_max: timedelta = timedelta(seconds=60)
    forget: timedelta = timedelta(minutes=15)  # a pair's or a client's failures, after a quiet while
    # A login, from every client together: this many failures within ``lock_window`` lock it.
    lock_failures: int = 50
    lock_window: timedelta = timedelta(hours=24)
    lock_duration: timedelta = timedelta(hours=24)

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionPolicy:
        return cls(
            lifetime=timedelta(hours=settings.cabinet_session_hours),
            idle=timedelta(minutes=settings.cabinet_idle_minutes),
            pair_free_failures=settings.cabinet_login_max_failures,
            client_free_failures=settings.cabinet_login_client_max_failures,
            delay_max=timedelta(seconds=settings.cabinet_login_delay_max_s),
            forget=timedelta(minutes=settings.cabinet_login_forget_minutes),
            lock_failures=settings.cabinet_login_lock_failures,
            lock_window=timedelta(hours=settings.cabinet_login_lock_window_hours),
            lock_duration=timedelta(hours=settings.cabinet_login_lock_hours),
        )

    def delay(self, failures: int, free: int) -> timedelta | None:
        """How long the next attempt waits after ``failures`` failures of a key allowed ``free``."""
        if failures < free:
            return None
        # 1 s at the allowance, doubling, up to delay_max; exact (the page tells the wait in seconds)
        return backoff(failures - free + 1, base_s=1.0, cap_s=self.delay_max.total_seconds(), jitter=0)


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
    """Why a sign-in was refused: ``invalid`` (wrong login or password — which, is not said),
    ``throttled`` (this client or this (login, client) failed too often: wait ``retry_after_s``) or
    ``locked`` (the login is locked until ``locked_until``, or until an operator releases it)."""

    reason: Literal["invalid", "throttled", "locked"]
    retry_after_s: int = 0
    locked_until: datetime | None = None


_PAIR, _CLIENT, _LOGIN = "pair", "client", "login"
MAX_CLIENT = 64


async def sign_in(
    uow: LkoUnitOfWork, login: str, password: str, *, client: str, now: datetime, policy: SessionPolicy
) -> SignedIn | SignInRefused:
    """Check a login and password from ``client`` (its address) and open a session.

    A wrong login and a wrong password are refused alike, after verifying a hash either way (a dummy
    one for an unknown login), and counted alike under three keys: the (login, client) pair, the
    client over every login, the login over every client — logins that do not exist included, so
    the answers and their timing say nothing about accounts. Beyond a pair's or a client's free
    failures each attempt under that key waits (``throttled``, without checking the password: the
    right one waits too), 1 s and doubling up to ``policy.delay_max`` — someone else's guessing from
    another address never keeps a user out. Only ``policy.lock_failures`` failures of a login within
    ``policy.lock_window`` lock it, for ``policy.lock_duration`` or until ``posog users unlock``; each
    lock is recorded in ``lko_login_locks`` (the login and the time, never a password)."""
    session = uow.session
    key = normalize_login(login)[:100]
    client = client[:MAX_CLIENT]
    refused = await _throttled(uow, key, client, now=now)
    if refused is not None:
        log.info("lko.accounts.sign_in_throttled", reason=refused.reason, retry_after_s=refused.retry_after_s)
        return refused
    user = await session.scalar(select(CabinetUser).where(CabinetUser.login == key)) if key else None
    usable = user is not None and user.active
    matches = await verify_password(user.password_hash if usable and user is not None else None, password)
    if not matches or user is None:
        locked_until = await _record_failure(
            uow, key, client, now=now, policy=policy, user_id=user.id if user else None
        )
        await uow.commit()
        log.info("lko.accounts.sign_in_refused", locked=locked_until is not None)
        if locked_until is not None:
            return SignInRefused("locked", _seconds_until(locked_until, now), locked_until)
        return SignInRefused("invalid")
    # The right password from this client: its pair's delays end (the client's and the login's
    # counts go on: they are about everyone else's attempts).
    await session.execute(delete(LoginThrottle).where(*_key(_PAIR, key, client)))
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


def _key(kind: str, login: str, client: str) -> tuple[ColumnElement[bool], ...]:
    """The condition of one throttle row: a pair has both, a client no login, a login no client."""
    return (
        LoginThrottle.kind == kind,
        LoginThrottle.login == (login if kind != _CLIENT else ""),
        LoginThrottle.client == (client if kind != _LOGIN else ""),
    )


async def _throttled(uow: UnitOfWork, key: str, client: str, *, now: datetime) -> SignInRefused | None:
    """The refusal owed before any password is checked: the login locked, or this pair or this
    client waiting; else None."""
    rows = (
        await uow.session.execute(
            select(LoginThrottle.kind, LoginThrottle.blocked_until).where(
                or_(*(and_(*_key(kind, key, client)) for kind in (_PAIR, _CLIENT, _LOGIN))),
                LoginThrottle.blocked_until > now,
            )
        )
    ).all()
    waits = {kind: until for kind, until in rows if until is not None}
    if _LOGIN in waits:
        return SignInRefused("locked", _seconds_until(waits[_LOGIN], now), waits[_LOGIN])
    if waits:
        return SignInRefused("throttled", _seconds_until(max(waits.values()), now))
    return None


async def _record_failure(
    uow: LkoUnitOfWork, key: str, client: str, *, now: datetime, policy: SessionPolicy, user_id: str | None
) -> datetime | None:
    """Count a failed sign-in under its three keys, atomically each (rows are taken in one order —
    pair, client, login — so concurrent failures cannot deadlock); set the delays it earns; lock the
    login if this failure reaches the limit. Returns the lock's end when it does."""
    session = uow.session
    await _forget_stale(uow, now=now, policy=policy)
    locked_until = None
    for kind in (_PAIR, _CLIENT, _LOGIN):
        condition = _key(kind, key, client)
        login_of, client_of = (key if kind != _CLIENT else ""), (client if kind != _LOGIN else "")
        await uow.accounts.add_throttle_if_absent(
            {
                "kind": kind,
                "login": login_of,
                "client": client_of,
                "failures": 0,
                "window_started_at": now,
                "last_failure_at": now,
                "blocked_until": None,
            }
        )
        if kind == _LOGIN:  # a fixed window: failures since the window's first
            expired = LoginThrottle.window_started_at <= now - policy.lock_window
        else:  # forgotten after a quiet while
            expired = LoginThrottle.last_failure_at <= now - policy.forget
        failures = (
            await session.execute(
                update(LoginThrottle)
                .where(*condition)
                .values(
                    failures=case((expired, 1), else_=LoginThrottle.failures + 1),
                    window_started_at=case((expired, now), else_=LoginThrottle.window_started_at),
                    last_failure_at=now,
                )
                .returning(LoginThrottle.failures)
                .execution_options(synchronize_session=False)
            )
        ).scalar_one()
        if kind == _LOGIN:
            if failures >= policy.lock_failures:
                locked_until = await _lock(uow, key, failures, now=now, policy=policy, user_id=user_id)
            continue
        delay = policy.delay(failures, policy.pair_free_failures if kind == _PAIR else policy.client_free_failures)
        if delay is not None:
            until = now + delay
            await session.execute(
                update(LoginThrottle)
                .where(*condition)
                .values(
                    blocked_until=case(
                        (
                            or_(LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until < until),
                            until,
                        ),
                        else_=LoginThrottle.blocked_until,
                    )
                )
                .execution_options(synchronize_session=False)
            )
    return locked_until


async def _lock(
    uow: UnitOfWork, key: str, failures: int, *, now: datetime, policy: SessionPolicy, user_id: str | None
) -> datetime | None:
    """Lock the login (once, however many requests reach the limit together) and audit it."""
    session = uow.session
    locked_until = now + policy.lock_duration
    locked = await session.execute(
        update(LoginThrottle)
        .where(
            *_key(_LOGIN, key, ""),
            or_(LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until <= now),
        )
        .values(blocked_until=locked_until, failures=0, window_started_at=now)
        .returning(LoginThrottle.login)
        .execution_options(synchronize_session=False)
    )
    if locked.first() is None:
        return None
    lock = LoginLock(
        id=new_uuid(), login=key, locked_at=now, locked_until=locked_until, failures=failures, released_at=None
    )
    session.add(lock)
    # The login itself is in the audit record (lko_login_locks), not in the log: logins may be
    # e-mail addresses. The account's id is, when the login exists.
    log.warning(
        "lko.accounts.login_locked",
        lock_id=lock.id,
        user_id=user_id,
        failures=failures,
        locked_until=locked_until.isoformat(),
    )
    return locked_until


async def _forget_stale(uow: UnitOfWork, *, now: datetime, policy: SessionPolicy) -> None:
    """Remove some rows nobody waits on any more (a bounded batch, skipping rows other sign-ins hold)."""
    free = or_(LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until <= now)
    columns = (LoginThrottle.kind, LoginThrottle.login, LoginThrottle.client)
    stale = (
        select(*columns)
        .where(
            free,
            or_(
                and_(LoginThrottle.kind != _LOGIN, LoginThrottle.last_failure_at <= now - policy.forget),
                and_(LoginThrottle.kind == _LOGIN, LoginThrottle.last_failure_at <= now - policy.lock_window),
            ),
        )
        .limit(100)
        .with_for_update(skip_locked=True)
    )
    await uow.session.execute(
        delete(LoginThrottle).where(tuple_(*columns).in_(stale)).execution_options(synchronize_session=False)
    )


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


# --- Login locks (CLI) -----------------------------------------------------------------------------------


async def unlock_login(uow: UnitOfWork, login: str, *, now: datetime) -> bool:
    """Release the lock of ``login`` (and the delays of its pairs); the audit records who released
    it. Returns False when the login was not locked."""
    session = uow.session
    key = normalize_login(login)[:100]
    released = await session.execute(
        update(LoginThrottle)
        .where(*_key(_LOGIN, key, ""), LoginThrottle.blocked_until > now)
        .values(blocked_until=None, failures=0, window_started_at=now)
        .returning(LoginThrottle.login)
        .execution_options(synchronize_session=False)
    )
    was_locked = released.first() is not None
    await session.execute(delete(LoginThrottle).where(LoginThrottle.kind == _PAIR, LoginThrottle.login == key))
    locks = (
        await session.scalars(
            update(LoginLock)
            .where(LoginLock.login == key, LoginLock.released_at.is_(None), LoginLock.locked_until > now)
            .values(released_at=now, released_by="operator")
            .returning(LoginLock.id)
            .execution_options(synchronize_session=False)
        )
    ).all()
    await uow.commit()
    if was_locked:
        log.warning("lko.accounts.login_unlocked", lock_ids=list(locks), by="operator")
    return was_locked


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
