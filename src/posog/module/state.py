"""What the module's routes use, as ``create_app`` composed it (held by the app, read typed)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from posog.core.appstate import need
from posog.core.clientaddr import TrustedProxies
from posog.core.clock import Clock
from posog.core.db import Database
from posog.core.ratelimit import RateLimiter
from posog.module.links.catalog import QuestionnaireCatalog
from posog.module.links.release import WaitingCardsReleaser


@dataclass
class ModuleState:
    db: Database
    releaser: WaitingCardsReleaser
    catalog: QuestionnaireCatalog | None  # the link routes answer 503 without it
    clock: Clock
    # Failed link look-ups per client: shared by every module process through Redis when
    # POSOG_REDIS_URL is set, else counted by this process.
    link_attempts: RateLimiter
    trusted_proxies: TrustedProxies


def module_state(where: HTTPConnection | Starlette) -> ModuleState:
    return need(where, ModuleState)
