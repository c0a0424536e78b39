"""The СМЭВ adapter's transports end to end: documents a provider's system (or a broken adapter)
delivers on the AMQP interface or through the web service's ``Get``, the worker that reads them, and
what the module answers through ``Send``/the out queue. Hostile documents never stop the worker: each
is refused with its reason, kept (sealed), answered once when it has a request's clientId."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from posog.module.smev.unmatched import SmevUnmatched
from tests.integration.smev_support import adapter, hostile_documents, smev_running
from tests.support import count, stack, wait_for

pytestmark = pytest.mark.integration

TRANSPORTS = [("embedded", "amqp"), ("production", "amqp"), ("embedded", "soap")]


@pytest.mark.parametrize(("backend", "transport"), TRANSPORTS)
async def test_hostile_documents_are_refused_kept_answered_once_and_never_stop_the_worker(
    backend: str, transport: str, tmp_path: Path
) -> None:
    async with stack(backend, tmp_path, smev_transport=transport, smev_poll_interval_s=0.05) as system:
        emulator = adapter(system)
        documents = hostile_documents()
        async with smev_running(system):
            await emulator.deliver([document for document, _ in documents.values()])
            # The same documents again (a broker's redelivery, an adapter's retry): nothing doubles.
            await emulator.deliver([document for document, _ in documents.values()])
            await wait_for(lambda: _kept(system, len(documents)), timeout=60, what="every document kept")
            answered = {cid for _, cid in documents.values() if cid}
            await wait_for(lambda: _answered(emulator, answered), timeout=30, what="the refusals answered")

        async with system.db.uow() as uow:
            rows = (await uow.session.execute(select(SmevUnmatched))).scalars().all()
        by_reason = {row.reason: row for row in rows}
        assert sorted(by_reason) == sorted(documents), "each document kept once, with its own reason"
        assert by_reason["unmatched"].correlation_id == "nobody-sent-this"
        assert by_reason["wrong_element"].detail == "{urn://x-other/passport/1.0}PassportRequest"
        assert by_reason["too_large"].payload is None
        assert by_reason["too_large"].size > 10 * 1024 * 1024
        for name, (document, _) in documents.items():
            row = by_reason[name]
            if row.payload is not None:  # sealed, and opens to the very document
                assert document not in row.payload
                assert row.pii_key_id is not None
                opened = system.cipher.open(row.pii_key_id, row.payload, context=f"smev:{row.raw_sha256}")
                if transport == "amqp":
                    assert opened == document
                else:  # the web service's Get answer that carried it
                    assert opened.startswith(b"<?xml") or opened.startswith(b"<")
        # Exactly one answer per refused request, naming the reason; none for what cannot be answered.
        assert set(emulator.answers) == answered
        for client_id in answered:
            (answer,) = emulator.answers[client_id]
            assert answer.kind == "rejects"
            assert answer.code == "UNKNOWN_REQUEST_DESCRIPTION"
            named = re.match(r"payload: (\w+) — ", answer.description)  # payload: <reason> — a Russian sentence
            assert named, answer.description
            reason = named.group(1)
            assert by_reason[reason].client_id == client_id
        assert by_reason["wrong_element"].answered_at is not None
        assert by_reason["unmatched"].answered_at is None


async def _kept(system: object, expected: int) -> bool:
    return await count(system, SmevUnmatched) >= expected  # type: ignore[arg-type]


async def _marked(system: object, expected: int) -> bool:
    return await count(system, SmevUnmatched, SmevUnmatched.answered_at.is_not(None)) >= expected  # type: ignore[arg-type]


async def _answered(emulator: object, client_ids: set[str]) -> bool:
    return client_ids <= set(emulator.answers)  # type: ignore[attr-defined]


class _Route:
    """A feature that recognises its own clientIds (``prefix…``) and records what it was given."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.taken: list[object] = []

    async def on_reply(self, reply: object) -> bool:
        ours = getattr(reply, "original_client_id", None) or getattr(reply, "reply_to_client_id", None)
        if not ours or not ours.startswith(self.prefix):
            return False
        self.taken.append(reply)
        return True


async def test_replies_go_to_the_route_that_claims_them_and_the_rest_are_kept(tmp_path: Path) -> None:
    from posog.emulators.smev_adapter.envelopes import response_document, status_document
    from posog.module.smev.envelope import InboundError, InboundResponse, InboundStatus

    async with stack("embedded", tmp_path, smev_transport="amqp") as system:
        assert system.smev is not None
        assert system.smev.dispatcher is not None
        geps, ias = _Route("geps-"), _Route("ias-")
        system.smev.dispatcher.register(geps)
        system.smev.dispatcher.register(ias)
        documents = [
            status_document(client_id="a-1", original_client_id="geps-1", details="Доставлено"),
            status_document(
                client_id="a-2", original_client_id="geps-2", error=("CLIENT", "NO_CITIZEN", "Нет получателя")
            ),
            response_document(client_id="a-3", reply_to_client_id="ias-7", status=("final", "Пакет принят", ())),
            status_document(client_id="a-4", original_client_id="nobody-9"),
        ]
        await system.smev.dispatcher.handle(documents)
        assert [type(r) for r in geps.taken] == [InboundStatus, InboundError]
        assert [type(r) for r in ias.taken] == [InboundResponse]
        async with system.db.uow() as uow:
            (kept,) = (await uow.session.execute(select(SmevUnmatched))).scalars().all()
        assert (kept.reason, kept.kind, kept.correlation_id) == ("unmatched", "status", "nobody-9")
