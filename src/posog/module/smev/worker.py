"""``posog worker smev``: the inbound side of the СМЭВ adapter. Documents arrive on the adapter's AMQP
interface (:class:`SmevConsumer`: the in queue, batches, ack after commit) or are fetched from its
web service (:class:`SoapPoller`: ``Get`` until the queue is empty, then a pause; each fetched batch
committed to the durable spool before it is dispatched), and go to the
:class:`~posog.module.smev.dispatcher.SmevDispatcher` in batches.

Nothing a document holds can stop the worker (:class:`InboundProcessor`): a failure of what the
dispatcher depends on (the database, ЛКО, the adapter for an answer) is waited out and the same
documents are tried again, unacknowledged; any other exception sends the batch through one document at
a time, and the document that still fails is kept unhandled (``processing_error``) in
``module_smev_unmatched``. A document returned by the broker more than ``delivery_limit`` times (it
killed its worker each time) is kept unhandled (``delivery_limit``) without being handled again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

import structlog

from posog.core.bus import BusError, IncomingMessage, MessageBus, ack_batch
from posog.core.consumer import BatchConsumer, delivery_count
from posog.core.heap import freeze_heap, thaw_heap
from posog.core.retry import worker_delay
from posog.module.intake.consumer import TRANSIENT_ERRORS
from posog.module.smev.soap import AdapterFault, SoapAdapterClient
from posog.module.smev.spool import InboundSpool, Spooled

log = structlog.get_logger(__name__)

ISOLATE_AFTER_FAILURES = 3

T = TypeVar("T")


class InboundHandler(Protocol):
    """What the worker hands documents to (the dispatcher). Each call commits what it did."""

    async def handle(self, documents: Sequence[bytes]) -> None:
        """Route every document (raises on a failure; dependency failures are TRANSIENT_ERRORS)."""

    async def keep_unhandled(self, document: bytes, reason: str) -> None:
        """Keep a document that cannot be handled (``processing_error``, ``delivery_limit``)."""


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, AdapterFault):  # answering a sender through the adapter failed
        return not exc.permanent
    return isinstance(exc, (*TRANSIENT_ERRORS, BusError))


class InboundProcessor:
    """Hands documents to the dispatcher until they are handled or kept; never raises for a document."""

    def __init__(self, handler: InboundHandler, *, max_backoff_s: float = 30.0) -> None:
        self._handler = handler
        self._max_backoff_s = max_backoff_s
        self.processed = 0

    async def process(self, documents: Sequence[bytes]) -> bool:
        """True when every document was handled or kept; False when one could not even be kept (the
        caller dead-letters it)."""
        failures = 0
        while True:
            try:
                await self._handler.handle(documents)
                self.processed += len(documents)
                return True
            except Exception as exc:
                if not _transient(exc):
                    log.error("smev.batch_failed_isolating", size=len(documents), error=exc.__class__.__name__)
                    return all([await self._alone(document) for document in documents])
                failures += 1
                await self._pause(len(documents), failures, exc)
                if failures >= ISOLATE_AFTER_FAILURES and len(documents) > 1:
                    return all([await self._alone(document) for document in documents])

    async def _alone(self, document: bytes) -> bool:
        failures = 0
        while True:
            try:
                await self._handler.handle([document])
                self.processed += 1
                return True
            except Exception as exc:
                if not _transient(exc):
                    log.error("smev.document_failed", error=exc.__class__.__name__)
                    return await self.keep(document, "processing_error")
                failures += 1
                await self._pause(1, failures, exc)

    async def keep(self, document: bytes, reason: str) -> bool:
        failures = 0
        while True:
            try:
                await self._handler.keep_unhandled(document, reason)
                self.processed += 1
                return True
            except Exception as exc:
                if not _transient(exc):
                    log.error("smev.keep_failed", reason=reason, error=exc.__class__.__name__)
                    return False
                failures += 1
                await self._pause(1, failures, exc)

    async def _pause(self, size: int, failures: int, exc: BaseException) -> None:
        pause = worker_delay(failures, cap_s=self._max_backoff_s)
        log.error("smev.batch_retry", size=size, error=exc.__class__.__name__, retry_in_s=round(pause, 2))
        await asyncio.sleep(pause)


class SmevConsumer(BatchConsumer):
    """The adapter's AMQP interface, inbound: ``QueryResult`` documents from the in queue, in batches,
    acknowledged after the dispatcher committed them. A document returned by the broker (its worker
    died holding it) is handled alone, or kept unhandled once returned more than ``delivery_limit``
    times."""

    name = "smev.amqp"

    def __init__(
        self,
        bus: MessageBus,
        processor: InboundProcessor,
        *,
        queue: str,
        prefetch: int,
        batch_size: int,
        batch_wait_s: float,
        delivery_limit: int = 5,
    ) -> None:
        super().__init__(bus, queue=queue, prefetch=prefetch, batch_size=batch_size, batch_wait_s=batch_wait_s)
        self._processor = processor
        self._delivery_limit = delivery_limit

    @property
    def processed(self) -> int:
        return self._processor.processed

    async def returned(self, message: IncomingMessage) -> None:
        if delivery_count(message) > self._delivery_limit:
            log.error("smev.delivery_limit", delivery_count=delivery_count(message))
            ok = await self._processor.keep(message.body, "delivery_limit")
        else:
            ok = await self._processor.process([message.body])
        await (message.ack() if ok else message.reject())

    async def fresh(self, messages: list[IncomingMessage]) -> None:
        if await self._processor.process([m.body for m in messages]):
            await ack_batch(messages)
            return
        for message in messages:  # one could not be kept: settle them one at a time, dead-lettering that one
            ok = await self._processor.process([message.body])
            await (message.ack() if ok else message.reject())


class SoapPoller:
    """The adapter's web service, inbound: ``Get`` until the queue is empty (up to ``batch_size``
    documents a batch), the batch to the dispatcher, and a pause of ``idle_s`` once the queue is empty.

    ``Get`` takes a document off the adapter's queue (the WSDL has no acknowledgement), so each fetched
    document is written to the durable spool (:class:`~posog.module.smev.spool.InboundSpool`, sealed)
    and committed as soon as ``Get`` returned it, before the batch is dispatched; the batch's rows are
    deleted once the dispatcher committed it. Each
    round (so first of all on start) drains what the spool holds — documents fetched by a process that
    died — oldest first, before asking the adapter: a document drained again is handled alone, kept
    unhandled (``delivery_limit``) once handed over more than ``delivery_limit`` times, and one that can
    be neither handled nor kept waits in the spool (a growing pause), never retried in a hot loop."""

    def __init__(
        self,
        client: SoapAdapterClient,
        processor: InboundProcessor,
        spool: InboundSpool,
        *,
        batch_size: int,
        idle_s: float,
        max_backoff_s: float = 30.0,
        delivery_limit: int = 5,
    ) -> None:
        self._client = client
        self._processor = processor
        self._spool = spool
        self._batch_size = batch_size
        self._idle_s = idle_s
        self._max_backoff_s = max_backoff_s
        self._delivery_limit = delivery_limit
        # A test's hook between the spool's commit and the dispatch (where a crash used to lose the batch).
        self.after_spooled: Callable[[list[int]], Awaitable[None]] | None = None

    @property
    def processed(self) -> int:
        return self._processor.processed

    async def run(self) -> None:
        log.info("smev.soap.started", batch=self._batch_size)
        freeze_heap()
        try:
            while True:
                await self.poll_once()
        finally:
            thaw_heap()

    async def poll_once(self) -> int:
        """One round: the spool's due documents if it holds any, else fetch, spool and handle a batch, or
        pause when there was nothing. How many it handled."""
        drained = await self._retry("smev.soap.spool_read_failed", lambda: self._spool.take_due(self._batch_size))
        if drained:
            await self._drain(drained)
            return len(drained)
        batch, ids = await self._fetch()
        if not batch:
            await asyncio.sleep(self._idle_s)
            return 0
        if self.after_spooled is not None:
            await self.after_spooled(ids)
        if await self._processor.process(batch):
            await self._done(ids)
        else:  # one could not even be kept: one by one, that one stays in the spool for later
            for spooled_id, document in zip(ids, batch, strict=True):
                await self._alone(Spooled(spooled_id, document, 1))
        return len(batch)

    async def _fetch(self) -> tuple[list[bytes], list[int]]:
        """Up to a batch from ``Get``, each document committed to the spool as soon as it came (the
        adapter forgot it when it answered): the documents and their spool ids."""
        batch: list[bytes] = []
        ids: list[int] = []
        failures = 0
        while len(batch) < self._batch_size:
            try:
                document = await self._client.get()
            except AdapterFault as exc:
                if exc.answer is not None:  # taken off the adapter's queue, unreadable: refused and kept
                    await self._spooled(exc.answer, batch, ids)
                    continue
                if batch:
                    break  # handle what was fetched first; the adapter is asked again next round
                failures += 1
                pause = worker_delay(failures, cap_s=self._max_backoff_s)
                log.error("smev.soap.get_failed", kind=exc.kind, code=exc.code, retry_in_s=round(pause, 2))
                await asyncio.sleep(pause)
                continue
            if document is None:
                break
            await self._spooled(document, batch, ids)
        return batch, ids

    async def _spooled(self, document: bytes, batch: list[bytes], ids: list[int]) -> None:
        stored = await self._retry("smev.soap.spool_write_failed", lambda: self._spool.put([document]))
        batch.append(document)
        ids.extend(stored)

    async def _drain(self, drained: list[Spooled]) -> None:
        log.warning("smev.soap.spool_drained", documents=len(drained))
        over = [item for item in drained if item.attempts > self._delivery_limit]
        again = [item for item in drained if item.attempts <= self._delivery_limit]
        for item in over:
            log.error("smev.delivery_limit", delivery_count=item.attempts)
            if await self._processor.keep(item.document, "delivery_limit"):
                await self._done([item.id])
            else:
                await self._postpone(item)
        first = [item for item in again if item.attempts <= 2]  # its process died once: as a batch
        if len(first) == 1:
            await self._alone(first[0])
        elif first:
            if await self._processor.process([item.document for item in first]):
                await self._done([item.id for item in first])
            else:
                for item in first:
                    await self._alone(item)
        for item in again:
            if item.attempts > 2:  # handed over before and still here: alone
                await self._alone(item)

    async def _alone(self, item: Spooled) -> None:
        if await self._processor.process([item.document]):
            await self._done([item.id])
        else:
            log.error("smev.soap.document_left_in_spool", size=len(item.document), attempts=item.attempts)
            await self._postpone(item)

    async def _done(self, ids: Sequence[int]) -> None:
        await self._retry("smev.soap.spool_delete_failed", lambda: self._spool.done(ids))

    async def _postpone(self, item: Spooled) -> None:
        await self._retry("smev.soap.spool_write_failed", lambda: self._spool.postpone(item.id, item.attempts))

    async def _retry(self, event: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call`` until it succeeds: the spool's database may be away for a while; the documents wait."""
        failures = 0
        while True:
            try:
                return await call()
            except Exception as exc:
                failures += 1
                pause = worker_delay(failures, cap_s=self._max_backoff_s)
                log.error(event, error=exc.__class__.__name__, retry_in_s=round(pause, 2))
                await asyncio.sleep(pause)
