"""The intake entry point of the СМЭВ channel: fact requests that came in the adapter's envelopes reach
the same :class:`~posog.module.intake.handlers.IntakeHandler` as the JSON channel — the same
validation, dedupe by ``card_id`` and content hash, one transaction per batch — and every outcome is
answered to the request's ``clientId`` in that transaction (:mod:`posog.module.smev.answers`).

The transport's consumer (``posog worker smev``) parses each delivery with
:func:`posog.module.smev.envelope.parse_query_result`, hands the ``OgFactRequest`` requests of a batch
to :meth:`SmevFactIntake.handle` and the requests it cannot take — an unreadable envelope that still
has a clientId, business XML of another вид сведений — to :meth:`SmevFactIntake.refuse`, which answers
them with rejects (once per clientId). Everything an :class:`IntakeHandler` offers beyond ``handle``
(``quarantine``, ``note_attempt``, ``dead_letter_only``) takes the :func:`raw_fact` of a request."""

from __future__ import annotations

from collections.abc import Sequence

from posog.core.clock import Clock
from posog.core.db import Database
from posog.module.contracts import FactProblem
from posog.module.intake.handlers import IntakeHandler, Outcome, RawFact, safe_message_id
from posog.module.smev.answers import answer_row, rejects_answer
from posog.module.smev.envelope import EnvelopeError, InboundRequest
from posog.module.smev.ogfact import is_og_fact
from posog.module.smev.repository import AnswerRepository

# How much larger than its whole document a business element can be once serialised on its own
# (UTF-8): an escape is at most 6 bytes for 1 (``"`` in an attribute → ``&quot;``; ``&`` of a CDATA
# section → ``&amp;``), a character at most 3 bytes in UTF-8 for 1 of a single-byte encoding, and
# the namespace declarations copied from its ancestors are in the document too. 8 leaves room; the
# unit tests check it on the worst of these.
SERIALISED_GROWTH = 8


def raw_fact(request: InboundRequest, document_size: int | None = None) -> RawFact:
    """The intake message of an OgFactRequest request: the element as parsed (its bytes, for the
    sealed records of rejections and conflicts, made only when needed), the СМЭВ MessageID as the
    fact's ``message_id`` (the request's clientId when the adapter gave none), the clientId to answer
    to. Given the length of the document it came in, the element's size is bounded by it
    (:data:`SERIALISED_GROWTH`), so the usual fact is checked against intake's size limit without
    being serialised."""
    return RawFact(
        message_id=request.meta.message_id or request.client_id,
        element=request.content,
        reply_to=request.client_id or None,
        size_bound=None if document_size is None else document_size * SERIALISED_GROWTH,
    )


def envelope_problem(error: EnvelopeError) -> FactProblem:
    """An unreadable envelope as the one problem its answer names (``payload: unknown_type`` …)."""
    return FactProblem("payload", error.reason)


WRONG_ELEMENT = FactProblem("payload", "wrong_element")


class SmevFactIntake:
    """The use case behind the СМЭВ consumer for fact requests."""

    def __init__(self, handler: IntakeHandler, db: Database, clock: Clock) -> None:
        self.handler = handler
        self._db = db
        self._clock = clock

    async def handle(
        self, requests: Sequence[InboundRequest], *, document_sizes: Sequence[int] | None = None
    ) -> list[Outcome]:
        """Apply a batch of OgFactRequest requests in one transaction, answering each to its clientId
        (a clientId answered before — the broker's redelivery — gets no second answer). One outcome
        per request, in order. A request of another вид сведений in the batch is an error of the
        caller (route it to :meth:`refuse`). ``document_sizes``: the length of each request's whole
        document, when known (see :func:`raw_fact`)."""
        for request in requests:
            if not is_og_fact(request.content):
                raise ValueError("not an OgFactRequest: route it to refuse()")
        if document_sizes is None:
            return await self.handler.handle([raw_fact(request) for request in requests])
        return await self.handler.handle(
            [raw_fact(request, size) for request, size in zip(requests, document_sizes, strict=True)]
        )

    async def refuse(
        self, client_id: str | None, problems: Sequence[FactProblem], *, message_id: str | None = None
    ) -> bool:
        """Answer a request that does not reach intake with rejects naming ``problems`` (see
        :func:`envelope_problem`, :data:`WRONG_ELEMENT`). Once per clientId; False when there is no
        clientId to answer or it was answered already."""
        if not client_id or len(client_id) > 50 or not problems:
            return False
        row = answer_row(
            client_id,
            kind="rejected",
            answer=rejects_answer(problems),
            now=self._clock(),
            request_message_id=safe_message_id(message_id),
        )
        async with self._db.uow() as uow:
            repository = AnswerRepository(uow.session)
            if await repository.answered(client_id):
                return False
            await repository.add_one(row)
            await uow.commit()
        return True
