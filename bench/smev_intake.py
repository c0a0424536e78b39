"""Intake through the СМЭВ adapter's envelope (issue 15) beside the JSON intake (``bench/intake.py``):
the same N facts as ``OgFactRequest`` in ``QueryResult`` documents on the adapter's in queue, read by
the СМЭВ worker (``posog worker smev``: the dispatcher, the envelope, the same intake handler), timed
from the start of consumption until every card, link, notification and answer to its sender is
committed. Target: at least 0.8 of the JSON intake's rate."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg

from bench.common import (
    BenchContext,
    BenchError,
    Measurement,
    Ratio,
    cpu_meter,
    stop,
    system_stack,
    wait_until,
    workload,
)

TARGET_SHARE_OF_JSON = 0.8

# Where a batch's time goes, for --profile (label, "file.py:function").
PROFILE_STEPS = (
    ("СМЭВ consumer loop", "smev/worker.py:_consume"),
    ("  SmevDispatcher.handle", "smev/dispatcher.py:handle"),
    ("    parse_query_result (envelope)", "smev/envelope.py:parse_query_result"),
    ("    SmevFactIntake.handle", "smev/facts.py:handle"),
    ("      IntakeHandler.handle", "intake/handlers.py:handle"),
    ("        read_og_fact", "smev/ogfact.py:read_og_fact"),
    ("        insert_rows (COPY)", "core/db.py:insert_rows"),
    ("        commit", "core/db.py:commit"),
    ("  ack_batch", "core/bus.py:ack_batch"),
)
PROGRESS_SQL = """
SELECT (SELECT count(*) FROM module_service_cards) AS cards,
       (SELECT count(*) FROM module_rejected_facts) AS rejected,
       (SELECT count(*) FROM module_smev_unmatched) AS kept,
       (SELECT count(*) FROM module_smev_answers) AS answers
"""


def _envelopes(ctx: BenchContext) -> list[tuple[bytes, str]]:
    """The bench's facts as a provider's system sends them through the adapter (not timed)."""
    from posog.emulators.smev_adapter.envelopes import request_document
    from posog.emulators.smev_adapter.facts import og_fact_xml

    return [
        (request_document(og_fact_xml(fact), client_id=f"bench-{i}", message_id=fact["message_id"]), fact["message_id"])
        for i, fact in enumerate(ctx.fact_dicts())
    ]


@workload(
    "smev-intake",
    ratios=(
        Ratio(
            "intake via СМЭВ adapter envelope ÷ JSON intake",
            "smev_intake",
            "intake",
            minimum=TARGET_SHARE_OF_JSON,
            cpu_bound=True,
        ),
    ),
)
async def smev_intake(ctx: BenchContext) -> list[Measurement]:
    """QueryResult envelopes in the adapter's in queue → committed cards, links, outbox and answers."""
    from posog.core.bus import OutgoingMessage

    ctx.step("smev-intake", "building the envelopes (not timed)")
    envelopes = _envelopes(ctx)
    expected = len(envelopes)
    ctx.step("smev-intake", "creating the stack (database, migrations, seed, topology)")
    prefix = f"bench.smev.{uuid.uuid4().hex[:8]}"
    names = {
        "smev_in_queue": f"{prefix}.in",
        "smev_out_queue": f"{prefix}.out",
        "smev_in_dead_letter_exchange": f"{prefix}.in.dlx",
        "smev_in_dead_letter_queue": f"{prefix}.in.dead",
    }
    async with system_stack(ctx, smev_transport="amqp", **names) as stack:
        # Deleted with the stack's own queues and exchanges, whatever happens.
        stack.names.queues.extend([names["smev_in_queue"], names["smev_out_queue"], names["smev_in_dead_letter_queue"]])
        stack.names.exchanges.append(names["smev_in_dead_letter_exchange"])
        system = stack.system
        s = system.settings
        assert system.smev is not None
        connection = await asyncpg.connect(stack.database.dsn, timeout=10)
        worker_task: asyncio.Task[None] | None = None
        try:
            ctx.step("smev-intake", f"publishing {expected} envelopes to {s.smev_in_queue} (not timed)")
            for start in range(0, expected, 1000):
                chunk = envelopes[start : start + 1000]
                messages = [OutgoingMessage(body, mid, content_type="application/xml") for body, mid in chunk]
                await system.bus.publish("", s.smev_in_queue, messages)
            depth = await system.bus.queue_depth(s.smev_in_queue)
            if depth != expected:
                raise BenchError(f"{depth} envelopes in {s.smev_in_queue}, expected {expected}")

            async def done() -> bool:
                row = await connection.fetchrow(PROGRESS_SQL)
                ctx.progress = f"{row['cards']} cards, {row['answers']} answers of {expected}"
                if row["rejected"] or row["kept"]:
                    raise BenchError(f"{row['rejected']} rejected, {row['kept']} refused envelopes: intake is failing")
                return int(row["cards"]) >= expected and int(row["answers"]) >= expected

            worker = system.smev.worker()
            async with cpu_meter(connection) as cpu:
                with ctx.profiled("smev-intake", PROFILE_STEPS):
                    started = time.perf_counter()
                    worker_task = asyncio.create_task(worker.run(), name="smev worker")
                    await wait_until(ctx, done, watch=[worker_task])
                    seconds = time.perf_counter() - started
            while worker.processed < expected and not worker_task.done():
                await asyncio.sleep(0.05)  # every envelope acked before stopping: nothing redelivered
        finally:
            await stop(worker_task)
            await connection.close()
    return [
        Measurement(
            key="smev_intake",
            label="intake via СМЭВ adapter: QueryResult → card+link+outbox+answer",
            kind="workload",
            count=expected,
            seconds=seconds,
            unit="facts/s",
            method=(
                f"SmevConsumer → SmevDispatcher → intake: prefetch {max(s.consumer_prefetch, s.intake_batch_size)},"
                f" batch {s.intake_batch_size} / {s.intake_batch_wait_ms} ms"
            ),
            extra={"cpu": cpu.as_dict()},
        )
    ]
