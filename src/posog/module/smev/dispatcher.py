"""One dispatcher for every document the СМЭВ adapter delivers (INTEGRATION.md §1–§4), whichever
transport brought it:

- a request whose business content is ``OgFactRequest`` (вид сведений ОГ) → intake, the whole batch's
  facts in one call (:class:`FactRequests`: the same handler and guarantees as the JSON path, the
  answer to the sender written in the fact's own transaction);
- a request of another вид сведений → refused (``payload: wrong_element``), answered with ``rejects``
  (``UNKNOWN_REQUEST_DESCRIPTION``) when it has a clientId, and kept;
- a response, status or error → the registered :class:`ReplyRoute` s in turn (each recognises its own
  clientIds: ГЭПС, ИАС, answers to senders); one none claims is logged (no personal data) and kept;
- a document that cannot be read (not XML, entities, too large, a wrong namespace, an unknown
  ``xsi:type``, not the schema) → refused with its reason, answered when it has a request's clientId,
  and kept.

"Kept" means a row of ``module_smev_unmatched`` with the document sealed; the same document twice is
one row. A refusal with a clientId is answered through the answers to senders
(:meth:`FactRequests.refuse`: an outbox row of ``module_smev_answers``, once per clientId) after the
row is committed, and the row marked answered: a crash in between answers on the redelivery."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from lxml import etree

from posog.core.clock import Clock
from posog.core.db import Database
from posog.core.pii import PiiCipher
from posog.module.contracts import FactProblem
from posog.module.smev.envelope import (
    EnvelopeError,
    InboundError,
    InboundRequest,
    InboundResponse,
    InboundStatus,
    parse_query_result,
)
from posog.module.smev.unmatched import (
    KEEP_AT_MOST,
    KIND_ERROR,
    KIND_REQUEST,
    KIND_RESPONSE,
    KIND_STATUS,
    KIND_UNREADABLE,
    SmevUnmatched,
)
from posog.module.smev.unmatched_repository import SmevRepository

log = structlog.get_logger(__name__)

OG_FACT_NS = "urn://x-artefacts-posog/og-fact/1.0.0"
OG_FACT_ROOT = f"{{{OG_FACT_NS}}}OgFactRequest"

Reply = InboundResponse | InboundStatus | InboundError


class ReplyRoute(Protocol):
    """A feature that sent requests through the adapter and takes what comes back about them."""

    async def on_reply(self, reply: Reply) -> bool:
        """True when the reply belongs to this feature (handled and committed); False to let the
        next route try. Called again for the same reply after a crash: must be idempotent."""
        ...


class FactRequests(Protocol):
    """Intake of ``OgFactRequest`` requests (:class:`posog.module.smev.facts.SmevFactIntake`): one
    transaction for the batch, the answer to each sender written in it; a request delivered again
    (same clientId) changes nothing and is not answered twice. Raises on a failure of what it depends on."""

    async def handle(self, requests: Sequence[InboundRequest], *, document_sizes: Sequence[int] | None = None) -> Any:
        """``document_sizes``: the length of each request's whole document (a bound on its element's)."""
        ...

    async def refuse(
        self, client_id: str | None, problems: Sequence[FactProblem], *, message_id: str | None = None
    ) -> bool:
        """Answer a request that does not reach intake with rejects naming ``problems`` (once per clientId)."""
        ...


WRONG_ELEMENT = "wrong_element"  # a request of another вид сведений


@dataclass(frozen=True)
class Kept:
    """A document to keep unhandled, with what could be read of it."""

    document: bytes
    kind: str
    reason: str
    detail: str | None = None
    client_id: str | None = None
    correlation_id: str | None = None
    smev_message_id: str | None = None


def _kind(reply: Reply) -> str:
    if isinstance(reply, InboundResponse):
        return KIND_RESPONSE
    return KIND_ERROR if isinstance(reply, InboundError) else KIND_STATUS


def _correlation(reply: Reply) -> str | None:
    return reply.reply_to_client_id if isinstance(reply, InboundResponse) else reply.original_client_id


def _short(value: str | None, length: int = 50) -> str | None:
    return value[:length] if value else None


class SmevDispatcher:
    """Routes inbound adapter documents (see the module's docstring). ``handle`` is what the worker
    calls with a batch; ``keep_unhandled`` keeps one that the worker could not get handled."""

    def __init__(
        self,
        db: Database,
        cipher: PiiCipher,
        clock: Clock,
        *,
        facts: FactRequests | None = None,
        routes: Sequence[ReplyRoute] = (),
        max_bytes: int = 1024 * 1024,
    ) -> None:
        self._db = db
        self._cipher = cipher
        self._clock = clock
        self._facts = facts
        self._routes: list[ReplyRoute] = list(routes)
        self._max_bytes = max_bytes

    def register(self, route: ReplyRoute) -> None:
        """Add a feature's route for replies (tried in registration order)."""
        self._routes.append(route)

    def use_facts(self, facts: FactRequests) -> None:
        self._facts = facts

    @property
    def routes(self) -> tuple[ReplyRoute, ...]:
        return tuple(self._routes)

    async def handle(self, documents: Sequence[bytes]) -> None:
        facts: list[InboundRequest] = []
        sizes: list[int] = []
        replies: list[tuple[bytes, Reply]] = []
        kept: list[Kept] = []
        for document in documents:
            try:
                inbound = parse_query_result(document, max_bytes=self._max_bytes)
            except EnvelopeError as error:
                kept.append(
                    Kept(
                        document,
                        KIND_UNREADABLE,
                        error.reason,
                        _short(error.detail, 500),
                        _short(error.client_id),
                        smev_message_id=error.message_id,
                    )
                )
                continue
            if isinstance(inbound, InboundRequest):
                if inbound.content.tag == OG_FACT_ROOT and self._facts is not None:
                    facts.append(inbound)
                    sizes.append(len(document))
                else:
                    name = etree.QName(inbound.content)
                    detail = f"{{{name.namespace or ''}}}{name.localname}"[:500]
                    kept.append(
                        Kept(
                            document,
                            KIND_REQUEST,
                            WRONG_ELEMENT,
                            detail,
                            _short(inbound.client_id),
                            smev_message_id=inbound.meta.message_id,
                        )
                    )
            else:
                replies.append((document, inbound))
        if facts:
            assert self._facts is not None
            await self._facts.handle(facts, document_sizes=sizes)
        for document, reply in replies:
            if not await self._route(reply):
                kept.append(
                    Kept(
                        document,
                        _kind(reply),
                        "unmatched",
                        None,
                        None,  # a reply is never answered
                        _short(_correlation(reply)),
                        reply.meta.message_id,
                    )
                )
        if kept:
            await self._keep(kept)

    async def _route(self, reply: Reply) -> bool:
        for route in self._routes:
            if await route.on_reply(reply):
                return True
        return False

    async def keep_unhandled(self, document: bytes, reason: str) -> None:
        """Keep ``document`` unhandled with ``reason``, answering its sender if it is a readable request."""
        client_id: str | None = None
        message_id: str | None = None
        kind = KIND_UNREADABLE
        try:
            inbound = parse_query_result(document, max_bytes=self._max_bytes)
        except EnvelopeError as error:
            client_id, message_id = error.client_id, error.message_id
        else:
            message_id = inbound.meta.message_id
            if isinstance(inbound, InboundRequest):
                kind, client_id = KIND_REQUEST, inbound.client_id
            else:
                kind = _kind(inbound)
        await self._keep([Kept(document, kind, reason, None, _short(client_id), smev_message_id=message_id)])

    async def _keep(self, kept: list[Kept]) -> None:
        now = self._clock()
        rows: list[dict[str, Any]] = []
        for item in kept:
            raw_sha256 = hashlib.sha256(item.document).hexdigest()
            key_id, sealed = (None, None)
            if len(item.document) <= KEEP_AT_MOST:
                key_id, sealed = self._cipher.seal(item.document, context=f"smev:{raw_sha256}")
            rows.append(
                {
                    "raw_sha256": raw_sha256,
                    "received_at": now,
                    "kind": item.kind,
                    "reason": item.reason,
                    "detail": item.detail,
                    "client_id": item.client_id,
                    "correlation_id": item.correlation_id,
                    "smev_message_id": _short(item.smev_message_id, 100),
                    "size": len(item.document),
                    "pii_key_id": key_id,
                    "payload": sealed,
                    "answered_at": None,
                }
            )
            log.warning(
                "smev.kept",
                kind=item.kind,
                reason=item.reason,
                client_id=item.client_id,
                correlation_id=item.correlation_id,
                smev_message_id=item.smev_message_id,
                size=len(item.document),
            )
        async with self._db.uow() as uow:
            repository = SmevRepository(uow.session)
            await repository.keep(rows)
            pending = await repository.unanswered([row["raw_sha256"] for row in rows])
            await uow.commit()
        if pending:
            await self._answer(pending)

    async def _answer(self, pending: list[SmevUnmatched]) -> None:
        if self._facts is None:
            log.error("smev.refusals_unanswered", documents=len(pending))  # a wiring error: no answers
            return
        for row in pending:
            problem = FactProblem("payload", row.reason)
            await self._facts.refuse(row.client_id, [problem], message_id=row.smev_message_id)
        async with self._db.uow() as uow:
            await SmevRepository(uow.session).mark_answered([row.id for row in pending], self._clock())
            await uow.commit()
