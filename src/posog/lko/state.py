"""What ЛКО's routes and pages use, as ``create_app`` composed it (held by the app, read typed). Its
``module`` and ``analytics`` are bound late by ``bootstrap`` (the systems are built in turn) and may be
missing; the rest is fixed when the app is made."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi.templating import Jinja2Templates
from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from posog.analytics.client import AnalyticsClient
from posog.core.appstate import need
from posog.core.clientaddr import TrustedProxies
from posog.core.clock import Clock
from posog.core.db import Database
from posog.lko.accounts.handlers import SessionPolicy
from posog.lko.questionnaires.announcements import AnnouncementRelay
from posog.lko.responses.handlers import CompletionRecovery
from posog.module.client import ModuleClient
from posog.settings import Settings


@dataclass
class LkoState:
    db: Database
    settings: Settings
    clock: Clock
    session_policy: SessionPolicy
    trusted_proxies: TrustedProxies  # whose X-Forwarded-For is believed
    announcements: AnnouncementRelay
    module: ModuleClient | None = None  # how ЛКО calls the module (announcements, completions)
    analytics: AnalyticsClient | None = None  # the cabinet's reports ask analytics with it
    templates: Jinja2Templates | None = None  # the cabinet's pages (install_pages)
    recovery: CompletionRecovery | None = None  # completions the module missed, re-sent (nudged by submissions)


def lko_state(where: HTTPConnection | Starlette) -> LkoState:
    return need(where, LkoState)
