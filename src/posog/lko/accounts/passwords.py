"""Password hashing with Argon2id (argon2-cffi). Verification is CPU-bound, so it runs in a thread."""

from __future__ import annotations

import asyncio
import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256


@functools.cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    # Verified against when the login is unknown, so an unknown login costs as much as a wrong password.
    return _hasher().hash("posog-dummy-password-never-matches")


def password_problem(password: str) -> str | None:
    """Why ``password`` is not acceptable for an account (Russian), or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Пароль должен быть не короче {MIN_PASSWORD_LENGTH} символов"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"Пароль должен быть не длиннее {MAX_PASSWORD_LENGTH} символов"
    if password.strip() != password:
        return "Пароль не должен начинаться или заканчиваться пробелом"
    return None


async def hash_password(password: str) -> str:
    """The Argon2id hash of ``password``."""
    return await asyncio.to_thread(_hasher().hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; with None, a dummy hash is verified (and fails),
    so the time taken does not tell whether the login exists."""
    if len(password) > MAX_PASSWORD_LENGTH:  # no account has one; still spend the time
        password_hash, password = None, password[:MAX_PASSWORD_LENGTH]
    return await asyncio.to_thread(_verify, password_hash, password)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher().verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with weaker parameters than today's."""
    return _hasher().check_needs_rehash(password_hash)
