"""HSTS on the citizen's and the organisation's pages: sent in production (POSOG_HSTS_MAX_AGE_S, 0 turns it
off), never in the development or embedded mode, which serve plain http on 127.0.0.1."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from posog.core.db import Database
from posog.lko.api import create_app as create_lko_app
from posog.lko.client import LkoClient
from posog.lkp.app import create_app as create_lkp_app
from posog.module.client import ModuleClient
from posog.settings import Settings

HSTS = "strict-transport-security"


def _production(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "production",
        "database_url": "postgresql+asyncpg://posog@db.internal/posog",
        "amqp_url": "amqp://posog@mq.internal/",
        "redis_url": "redis://cache.internal:6379/0",
        "lkp_base_url": "https://opros.example.ru",
        "ias_vendor_id": "4242",  # production refuses to start without ИАС МКГУ's supplier id and pseudonym key
        "ias_user_key": "a-production-ias-user-key",
        "pii_keys": {"k1": base64.b64encode(b"p" * 32).decode()},
        "snils_hash_key": "a-production-snils-hash-key",
        "service_keys": {name: f"{name}-production-key" for name in ("module", "lko", "lkp", "analytics")},
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def _development(**overrides: Any) -> Settings:
    return Settings(_env_file=None, env="development", **overrides)  # type: ignore[call-arg]


async def _headers(settings: Settings) -> tuple[httpx.Headers, httpx.Headers]:
    unused = httpx.AsyncClient(base_url="http://unused.invalid")
    lkp = create_lkp_app(ModuleClient(unused), LkoClient(unused), settings)
    db = Database("sqlite+aiosqlite:///:memory:")
    lko = create_lko_app(db, settings)
    try:
        answers = []
        for app, path in ((lkp, "/healthz"), (lko, "/api/v1/org-types")):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
                answers.append((await http.get(path)).headers)
        return answers[0], answers[1]
    finally:
        await db.dispose()
        await unused.aclose()


async def test_production_pages_tell_browsers_to_use_only_https() -> None:
    for headers in await _headers(_production()):
        assert headers[HSTS] == "max-age=31536000; includeSubDomains"


async def test_the_max_age_is_configurable_and_zero_turns_it_off() -> None:
    for headers in await _headers(_production(hsts_max_age_s=600)):
        assert headers[HSTS] == "max-age=600; includeSubDomains"
    for headers in await _headers(_production(hsts_max_age_s=0)):
        assert HSTS not in headers
        assert headers["x-frame-options"] == "DENY"  # the other headers stay


@pytest.mark.parametrize("max_age", [None, 31_536_000])
async def test_never_over_the_plain_http_of_the_development_mode(max_age: int | None) -> None:
    settings = _development() if max_age is None else _development(hsts_max_age_s=max_age)
    for headers in await _headers(settings):
        assert HSTS not in headers
        assert headers["x-content-type-options"] == "nosniff"
