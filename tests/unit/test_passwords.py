"""Passwords are hashed with Argon2id at the production parameters (argon2-cffi's RFC 9106 low-memory
profile: 64 MiB, 3 passes, 4 lanes). The rest of the suite hashes with the cheapest parameters (see
``tests/conftest.py``); this is the one test of the real ones."""

from __future__ import annotations

import pytest

from posog.lko.accounts import passwords
from tests.conftest import PRODUCTION_HASHER

PRODUCTION_PREFIX = "$argon2id$v=19$m=65536,t=3,p=4$"


async def test_production_parameters_hash_verify_and_flag_weaker_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap = await passwords.hash_password("правильный пароль")  # what the rest of the suite stores
    assert not cheap.startswith(PRODUCTION_PREFIX)

    monkeypatch.setattr(passwords, "_hasher", PRODUCTION_HASHER)
    stored = await passwords.hash_password("правильный пароль")
    assert stored.startswith(PRODUCTION_PREFIX)
    assert await passwords.verify_password(stored, "правильный пароль")
    assert not await passwords.verify_password(stored, "неправильный пароль")
    assert not passwords.needs_rehash(stored)
    # A hash made with weaker parameters is verified, and re-hashed at the next sign-in.
    assert await passwords.verify_password(cheap, "правильный пароль")
    assert passwords.needs_rehash(cheap)
