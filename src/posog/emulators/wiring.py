"""The emulators as one process holds them: the ЕПГУ inbox (it consumes the ГЭПС notifications) and the
ИАС МКГУ stand-in; built by :func:`build_emulators` (called by ``posog.bootstrap``)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from posog.core.asgi import LateBoundApp
from posog.core.wiring import Job, Shared

if TYPE_CHECKING:
    from fastapi import FastAPI

    from posog.emulators.epgu.inbox import EpguInbox


class EmulatorsSystem:
    """The emulators' part of a process. ``ias_asgi`` is the ИАС МКГУ emulator (served under
    ``/emulators/ias``, and what the module sends to when ``POSOG_IAS_URL`` is not set)."""

    def __init__(self, shared: Shared, *, ias_asgi: LateBoundApp) -> None:
        self.shared = shared
        self.ias_asgi = ias_asgi

    @cached_property
    def inbox(self) -> EpguInbox:
        from posog.emulators.epgu.inbox import EpguInbox

        return EpguInbox(self.shared.db, self.shared.cipher, self.shared.clock)

    def web_app(self) -> FastAPI:
        """The emulators' pages (``/epgu/``) with the ИАС МКГУ emulator under ``/ias``."""
        from posog.emulators.epgu.pages import create_app

        app = create_app(self.inbox)
        app.mount("/ias", self.ias_asgi.app)
        return app

    def workers(self) -> dict[str, Job]:
        """The emulators' workers by their ``posog worker`` names."""
        queue = self.shared.settings.geps_inbox_queue
        return {"epgu-inbox": lambda: self.inbox.consume(self.shared.bus, queue)}

    async def aclose(self) -> None:
        return None


def build_emulators(shared: Shared) -> EmulatorsSystem:
    """The emulators' part; the ИАС МКГУ emulator is made when first served or first sent to (the
    module sends to it in-process when ``POSOG_IAS_URL`` is not set: only the export does)."""

    def ias() -> FastAPI:
        from posog.emulators.ias.api import create_app
        from posog.emulators.ias.model import IasStore

        return create_app(IasStore(shared.db, shared.clock))

    return EmulatorsSystem(shared, ias_asgi=LateBoundApp("ias", build=ias))
