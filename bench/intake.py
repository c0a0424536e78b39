"""Intake end to end on PostgreSQL + RabbitMQ (SPEC §3–§5): N pre-generated valid facts in the facts
queue of a fresh stack; timed (1) intake — from the start of consumption until every card, link and
outbox row is committed, (2) the outbox relay — draining the outbox to confirmed ГЭПС messages, and
(3) end to end — both workers at once on the same facts again, until every notification is confirmed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from bench.common import (
    BenchContext,
    BenchError,
    Measurement,
    Ratio,
    Stack,
    Target,
    cpu_meter,
    stop,
    system_stack,
    wait_until,
    workload,
)

TARGET_FACTS_PER_S = 5_000
TARGET_SHARE_OF_CONSUMER = 0.5

PROGRESS_SQL = """
SELECT (SELECT count(*) FROM module_service_cards) AS cards,
       (SELECT count(*) FROM module_rejected_facts) AS rejected,
       (SELECT count(*) FROM module_outbox WHERE sent_at IS NULL) AS unsent
"""
TOTALS_SQL = """
SELECT c.cards, c.linked, l.links, o.outbox, o.sent, r.rejected
FROM (SELECT count(*) AS cards, count(*) FILTER (WHERE status = 'linked') AS linked FROM module_service_cards) c,
     (SELECT count(*) AS links FROM module_survey_links) l,
     (SELECT count(*) AS outbox, count(sent_at) AS sent FROM module_outbox) o,
     (SELECT count(*) AS rejected FROM module_rejected_facts) r
"""
# Where a batch's time goes, for --profile (label, "file.py:function").
PROFILE_STEPS = (
    ("consumer loop (all of intake's own work)", "intake/consumer.py:run"),
    ("  batching deliveries: the pump (posog.core.bus.batches)", "core/bus.py:pump"),
    ("  IntakeHandler.handle (one transaction per batch)", "intake/handlers.py:handle"),
    ("    read_fact (limits, pydantic, checksums, cached region)", "intake/parsing.py:read_fact"),
    ("    fact_hash", "intake/handlers.py:fact_hash"),
    ("    questionnaires of the batch, before its transaction", "intake/handlers.py:_questionnaires"),
    ("      QuestionnaireCatalog.active (ЛКО, cached 5 s)", "links/catalog.py:active"),
    ("    _new_card (seal ПДн, issue link)", "intake/handlers.py:_new_card"),
    ("      issue_link (token, notification, seal)", "links/issuing.py:issue_link"),
    ("    insert_rows (COPY of cards, links, outbox)", "core/db.py:insert_rows"),
    ("    AsyncSession.execute (lookup of known cards)", "ext/asyncio/session.py:execute"),
    ("    commit", "core/db.py:commit"),
    ("  settling: rejects, then one basic.ack multiple", "intake/consumer.py:_settle"),
    ("aiormq connection reader (incoming frames)", "aiormq/connection.py:__reader"),
    ("delivery buffered (posog.core.rabbit._DeliveryStream)", "core/rabbit.py:_on_message"),
)
MODULE_TABLES = (
    "module_service_cards",
    "module_survey_links",
    "module_outbox",
    "module_rejected_facts",
    "module_fact_conflicts",
)


def _batch_histogram() -> tuple[float, float]:
    """(batches, seconds) observed so far by the intake consumer's batch histogram."""
    from posog.core import metrics

    count = total = 0.0
    for family in metrics.INTAKE_BATCH_SECONDS.collect():
        for sample in family.samples:
            if sample.name.endswith("_count"):
                count = sample.value
            elif sample.name.endswith("_sum"):
                total = sample.value
    return count, total


async def _publish_facts(ctx: BenchContext, stack: Stack) -> float:
    """Put the N facts into the facts queue through the bus (not timed as part of intake); returns
    the seconds publishing took."""
    from posog.core.bus import OutgoingMessage

    system = stack.system
    queue = system.settings.facts_queue
    messages = ctx.fact_messages()
    started = time.perf_counter()
    for start in range(0, len(messages), 1000):
        chunk = messages[start : start + 1000]
        await system.bus.publish("", queue, [OutgoingMessage(m.body, m.message_id) for m in chunk])
        ctx.progress = f"{start + len(chunk)}/{len(messages)} published"
    seconds = time.perf_counter() - started
    depth = await system.bus.queue_depth(queue)
    if depth != len(messages):
        raise BenchError(f"{depth} messages in {queue}, expected {len(messages)}")
    return seconds


class Counts:
    """Cheap progress queries on a connection of their own (every 0.1 s while waiting)."""

    def __init__(self, ctx: BenchContext, connection: asyncpg.Connection, expected: int) -> None:
        self._ctx = ctx
        self._connection = connection
        self._expected = expected

    async def totals(self) -> asyncpg.Record:
        return await self._connection.fetchrow(TOTALS_SQL)

    async def _no_rejections(self, rejected: int) -> None:
        """Every fact is valid: a rejection means intake is broken (e.g. quarantined with
        ``payload: processing_error``), and its timing would mean nothing. Fail at once."""
        if rejected:
            reasons = await self._connection.fetch(
                "SELECT DISTINCT reasons::text AS reasons FROM module_rejected_facts LIMIT 3"
            )
            raise BenchError(
                f"{rejected} valid fact(s) rejected by intake ({'; '.join(r['reasons'] for r in reasons)}):"
                " intake is failing, not slow — see the application's errors above"
            )

    async def intake_done(self) -> bool:
        row = await self._connection.fetchrow(PROGRESS_SQL)
        self._ctx.progress = f"{row['cards']} cards, {row['rejected']} rejected of {self._expected}"
        await self._no_rejections(int(row["rejected"]))
        return int(row["cards"]) >= self._expected

    async def outbox_drained(self) -> bool:
        unsent = await self._connection.fetchval("SELECT count(*) FROM module_outbox WHERE sent_at IS NULL")
        self._ctx.progress = f"{unsent} outbox rows unsent"
        return int(unsent) == 0

    async def all_notified(self) -> bool:
        row = await self._connection.fetchrow(PROGRESS_SQL)
        self._ctx.progress = f"{row['cards']} cards, {row['rejected']} rejected, {row['unsent']} unsent"
        await self._no_rejections(int(row["rejected"]))
        return int(row["cards"]) >= self._expected and int(row["unsent"]) == 0


def _check_totals(totals: asyncpg.Record, expected: int, *, sent: bool) -> None:
    if totals["cards"] + totals["rejected"] != expected:
        raise BenchError(f"{totals['cards']} cards + {totals['rejected']} rejected, expected {expected}")
    if not totals["links"] == totals["outbox"] == totals["linked"]:
        raise BenchError(f"{totals['links']} links and {totals['outbox']} outbox rows for {totals['linked']} cards")
    if sent and totals["sent"] != totals["outbox"]:
        raise BenchError(f"{totals['sent']} of {totals['outbox']} outbox rows sent")


async def _drain_consumer(consumer: Any, task: asyncio.Task[None], expected: int) -> None:
    """Stop the consumer only once it has acked everything, so nothing is redelivered later."""
    while consumer.processed < expected and not task.done():
        await asyncio.sleep(0.05)
    await stop(task)


@workload(
    "intake",
    limits=("bare-consume", "bare-consume-batched", "bare-insert", "bare-publish"),
    ratios=(
        Ratio("intake ÷ bare consume", "intake", "bare_consume", minimum=TARGET_SHARE_OF_CONSUMER, cpu_bound=True),
        Ratio("intake ÷ bare consume, ack per batch", "intake", "bare_consume_batched", cpu_bound=True),
        Ratio("intake ÷ bare INSERT (card-wide rows)", "intake", "bare_insert"),
        Ratio("intake ÷ bare INSERT (card + link + outbox)", "intake", "bare_insert_fact"),
        Ratio("relay ÷ bare publish", "relay", "bare_publish"),
    ),
    targets=(Target("intake rate", "intake", TARGET_FACTS_PER_S),),
)
async def intake(ctx: BenchContext) -> list[Measurement]:
    """Intake end to end: facts queue → committed cards, links, outbox; relay → confirmed ГЭПС."""
    messages = ctx.fact_messages()
    expected = len(messages)
    ctx.step("intake", "creating the stack (database, migrations, seed, topology)")
    async with system_stack(ctx) as stack:
        system = stack.system
        s = system.settings
        connection = await asyncpg.connect(stack.database.dsn, timeout=10)
        tasks: list[asyncio.Task[None]] = []
        try:
            counts = Counts(ctx, connection, expected)

            # (1) intake alone
            ctx.step("intake", f"publishing {expected} facts to {s.facts_queue} (not timed)")
            publish_s = await _publish_facts(ctx, stack)
            ctx.step("intake", "consuming")
            consumer = system.intake_consumer()
            batches_before, batch_seconds_before = _batch_histogram()
            async with cpu_meter(connection) as intake_cpu:
                with ctx.profiled("intake", PROFILE_STEPS):
                    started = time.perf_counter()
                    consuming = asyncio.create_task(consumer.run(), name="intake consumer")
                    tasks.append(consuming)
                    await wait_until(ctx, counts.intake_done, watch=[consuming])
                    intake_s = time.perf_counter() - started
            batches_after, batch_seconds_after = _batch_histogram()
            intake_totals = await counts.totals()
            _check_totals(intake_totals, expected, sent=False)
            batches = batches_after - batches_before
            prefetch = max(s.consumer_prefetch, s.intake_batch_size)
            profiled = " — under cProfile, slower" if ctx.profile else ""
            ctx.record(
                Measurement(
                    key="intake",
                    label="intake: queue → card+link+outbox committed",
                    kind="workload",
                    count=expected,
                    seconds=intake_s,
                    unit="facts/s",
                    method=(
                        f"IntakeConsumer: prefetch {prefetch}, batch {s.intake_batch_size}"
                        f" / {s.intake_batch_wait_ms} ms, pool {s.db_pool_size}{profiled}"
                    ),
                    extra={
                        "accepted": intake_totals["cards"],
                        "linked": intake_totals["linked"],
                        "rejected": intake_totals["rejected"],
                        "batches": int(batches),
                        "mean_batch_size": expected / batches if batches else None,
                        "mean_batch_seconds": (batch_seconds_after - batch_seconds_before) / batches
                        if batches
                        else None,
                        "setup_publish_msgs_per_s": expected / publish_s if publish_s else None,
                        "profiled": ctx.profile,
                        "cpu": intake_cpu.as_dict(),
                    },
                )
            )
            await _drain_consumer(consumer, consuming, expected)

            # (2) the relay alone, on the outbox intake left
            ctx.step("intake", f"relaying {intake_totals['outbox']} notifications")
            async with cpu_meter(connection) as relay_cpu:
                started = time.perf_counter()
                relaying = asyncio.create_task(system.relay.run(), name="outbox relay")
                tasks.append(relaying)
                await wait_until(ctx, counts.outbox_drained, watch=[relaying])
                relay_s = time.perf_counter() - started
            await stop(relaying)
            delivered = await system.bus.queue_depth(s.geps_inbox_queue)
            if delivered < intake_totals["outbox"]:
                raise BenchError(
                    f"{delivered} notifications in {s.geps_inbox_queue}, expected {intake_totals['outbox']}"
                )
            ctx.record(
                Measurement(
                    key="relay",
                    label="relay: outbox → confirmed ГЭПС publish",
                    kind="workload",
                    count=int(intake_totals["outbox"]),
                    seconds=relay_s,
                    unit="notifications/s",
                    method=f"OutboxRelay: batch {s.relay_batch_size}, idle sleep {s.relay_idle_sleep_ms} ms",
                    extra={"delivered_to_inbox_queue": delivered, "cpu": relay_cpu.as_dict()},
                )
            )

            # (3) end to end: both workers at once, on the same facts again
            ctx.step("intake", "end to end: resetting tables and queues, publishing again (not timed)")
            await connection.execute(f"TRUNCATE {', '.join(MODULE_TABLES)}")
            for queue in (s.facts_queue, s.geps_inbox_queue):
                await system.bus.purge(queue)  # type: ignore[attr-defined]
            await _publish_facts(ctx, stack)
            ctx.step("intake", "end to end: intake and relay together")
            consumer = system.intake_consumer()
            async with cpu_meter(connection) as e2e_cpu:
                started = time.perf_counter()
                consuming = asyncio.create_task(consumer.run(), name="intake consumer (end to end)")
                relaying = asyncio.create_task(system.relay.run(), name="outbox relay (end to end)")
                tasks += [consuming, relaying]
                await wait_until(ctx, counts.all_notified, watch=[consuming, relaying])
                e2e_s = time.perf_counter() - started
            e2e_totals = await counts.totals()
            _check_totals(e2e_totals, expected, sent=True)
            ctx.record(
                Measurement(
                    key="end_to_end",
                    label="end to end: intake ∥ relay",
                    kind="workload",
                    count=expected,
                    seconds=e2e_s,
                    unit="facts/s",
                    method="both workers in one process, until every notification is confirmed",
                    extra={
                        "sequential_facts_per_s": expected / (intake_s + relay_s),
                        "notifications": int(e2e_totals["sent"]),
                        "cpu": e2e_cpu.as_dict(),
                    },
                )
            )
            await _drain_consumer(consumer, consuming, expected)
        finally:
            for task in tasks:
                await stop(task)
            await connection.close()
    return []  # all recorded as they were measured


@workload(
    "intake-handler",
    limits=("bare-insert",),
    ratios=(Ratio("intake handler ÷ bare INSERT (card + link + outbox)", "intake_handler", "bare_insert_fact"),),
)
async def intake_handler(ctx: BenchContext) -> list[Measurement]:
    """IntakeHandler.handle alone (no broker): what intake costs besides consuming and acking."""
    from posog.module.intake.handlers import RawFact

    messages = ctx.fact_messages()
    ctx.step("intake-handler", "creating the stack (database, migrations, seed, topology)")
    async with system_stack(ctx) as stack:
        system = stack.system
        batch = system.settings.intake_batch_size
        raws = [RawFact(m.body, m.message_id) for m in messages]
        await system.catalog.known_types()  # as the consumer's first batch would have it warm
        connection = await asyncpg.connect(stack.database.dsn, timeout=10)
        try:
            ctx.step("intake-handler", f"handling {len(raws)} facts in batches of {batch}")
            async with cpu_meter(connection) as cpu:
                started = time.perf_counter()
                for start in range(0, len(raws), batch):
                    outcomes = await system.intake.handle(raws[start : start + batch])
                    if any(o.kind != "accepted" for o in outcomes):
                        raise BenchError(f"not accepted: {[o for o in outcomes if o.kind != 'accepted'][:3]}")
                    ctx.progress = f"{start + batch}/{len(raws)} handled"
                seconds = time.perf_counter() - started
            _check_totals(await Counts(ctx, connection, len(raws)).totals(), len(raws), sent=False)
        finally:
            await connection.close()
    return [
        Measurement(
            key="intake_handler",
            label="intake handler alone (no broker)",
            kind="workload",
            count=len(raws),
            seconds=seconds,
            unit="facts/s",
            method=f"IntakeHandler.handle, {batch} facts per call, one after another",
            extra={"cpu": cpu.as_dict()},
        )
    ]
