"""Running Alembic migrations from the application (``posog db upgrade``, the demo, the tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parents[3]


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["url"] = url
    return config


async def upgrade(url: str, revision: str = "heads") -> None:
    """Bring the schema at ``url`` to ``revision``. Alembic's env runs its own event loop, so it runs
    in a worker thread."""
    await asyncio.to_thread(command.upgrade, alembic_config(url), revision)
