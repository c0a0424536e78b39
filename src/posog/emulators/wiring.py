"""The emulators as one process holds them: the ЕПГУ inbox (it consumes the ГЭПС notifications) and the
ИАС МКГУ stand-in; built by :func:`build_emulators` (called by ``posog.bootstrap``)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from posog.core.asgi import LateBoundApp
from posog.core.wiring import Job, Shared

if TYPE_CHECKING:
    from fastapi import FastAPI
    from lxml import etree

    from posog.emulators.epgu.inbox import EpguInbox
    from posog.emulators.epgu.smev import EpguOverSmev
    from posog.emulators.smev_adapter.adapter import SmevAdapterEmulator


class EmulatorsSystem:
    """The emulators' part of a process. ``ias_asgi`` is the ИАС МКГУ emulator (served under
    ``/emulators/ias``, and what the module sends to when ``POSOG_IAS_URL`` is not set)."""

    def __init__(self, shared: Shared, *, ias_asgi: LateBoundApp) -> None:
        self.shared = shared
        self.ias_asgi = ias_asgi
        # The СМЭВ adapter's emulator: its pages and SOAP web service (served under
        # ``/emulators/smev-adapter``, and the module's in-process adapter when the web-service transport
        # has no POSOG_SMEV_ADAPTER_URL), made when first used.
        self.smev_adapter_asgi = LateBoundApp("smev-adapter", build=self._smev_adapter_app)

    @cached_property
    def inbox(self) -> EpguInbox:
        from posog.emulators.epgu.inbox import EpguInbox

        return EpguInbox(self.shared.db, self.shared.cipher, self.shared.clock)

    @cached_property
    def smev_adapter(self) -> SmevAdapterEmulator:
        """The СМЭВ adapter's emulator: the AMQP interface's queues or the web service's own queue."""
        from posog.emulators.epgu.smev import GEPS_NS
        from posog.emulators.smev_adapter.adapter import SmevAdapterEmulator
        from posog.module.contracts import ias_documents

        s = self.shared.settings
        adapter = SmevAdapterEmulator(
            self.shared.bus,
            mode="soap" if s.smev_transport == "soap" else "amqp",
            in_queue=s.smev_in_queue,
            out_queue=s.smev_out_queue,
            it_system=s.smev_it_system,
            clock=self.shared.clock,
        )
        # ЕПГУ answers the ГЭПС requests with delivery statuses, queued for the module's inbound side.
        adapter.register_recipient(GEPS_NS, self.epgu_smev.answer_request)
        # ИАС МКГУ answers RatesRequest (a packet id) and PacketsRequest (statuses) as ResponseMessages.
        adapter.register_recipient(ias_documents.RATES_NS, self._ias_over_smev)
        return adapter

    async def _ias_over_smev(self, client_id: str, business: etree._Element) -> list[bytes]:
        """ИАС МКГУ behind the adapter: the emulator's business answer, or rejects for a document it
        cannot take, as the ``QueryResult`` the adapter delivers back."""
        import uuid

        from lxml import etree as lxml_etree

        from posog.emulators.ias.service import RequestRefused
        from posog.module.smev.envelope import InboundResponse, Reject, SmevMetadata, query_result

        service = self.ias_asgi.app.state.ias_service
        meta = SmevMetadata(message_id=str(uuid.uuid4()))
        reply_id = f"ias-reply-{uuid.uuid4().hex[:12]}"
        try:
            answer = await service.answer(lxml_etree.tostring(business))
        except RequestRefused as refused:
            reject = Reject("UNKNOWN_REQUEST_DESCRIPTION", f"{refused.reason}: {refused}"[:500])
            reply = InboundResponse(
                meta=meta,
                client_id=reply_id,
                reply_to_client_id=client_id,
                content=None,
                rejects=(reject,),
                status=None,
            )
        else:
            reply = InboundResponse(
                meta=meta,
                client_id=reply_id,
                reply_to_client_id=client_id,
                content=lxml_etree.fromstring(answer),
                rejects=(),
                status=None,
            )
        return [query_result(reply)]

    @cached_property
    def epgu_smev(self) -> EpguOverSmev:
        """ЕПГУ's side of ГЭПС through СМЭВ: delivered for a citizen with an account, a CLIENT error else."""
        from posog.emulators.epgu.smev import EpguOverSmev

        return EpguOverSmev(self.inbox, clock=self.shared.clock)

    def _smev_adapter_app(self) -> FastAPI:
        from posog.emulators.smev_adapter.api import create_app

        return create_app(self.smev_adapter)

    def web_app(self) -> FastAPI:
        """The emulators' pages (``/epgu/``) with the ИАС МКГУ emulator under ``/ias``."""
        from posog.emulators.epgu.pages import create_app

        app = create_app(self.inbox)
        app.mount("/ias", self.ias_asgi.app)
        app.mount("/smev-adapter", self.smev_adapter_asgi.app)  # the СМЭВ adapter: /emulators/smev-adapter/
        return app

    def workers(self) -> dict[str, Job]:
        """The emulators' workers by their ``posog worker`` names."""
        queue = self.shared.settings.geps_inbox_queue
        return {
            "epgu-inbox": lambda: self.inbox.consume(self.shared.bus, queue),
            # The embedded adapter takes the module's ClientMessages off the in-process out queue.
            "smev-adapter": lambda: self.smev_adapter.consume_out(),
        }

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
