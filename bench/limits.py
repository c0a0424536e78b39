"""Raw limits: what the broker and the database can do on this machine with nothing of ПОС ОГ around,
measured with the same parameters (prefetch, batch sizes, message sizes, row widths) as the real
workers, so that a worker's rate divided by its limit is a figure a noisy machine does not move much."""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from datetime import date, timedelta
from typing import Any

import asyncpg

from bench.common import (
    AmqpMessage,
    BenchContext,
    BenchError,
    CpuUsage,
    Measurement,
    amqp_connection,
    cpu_meter,
    publish_confirmed,
    rabbit_names,
    scratch_database,
    workload,
)

SEAL_OVERHEAD = 12 + 16  # AES-GCM nonce + tag, as posog.core.pii seals


def notification_messages(ctx: BenchContext) -> list[AmqpMessage]:
    """One ГЭПС notification per fact, built by the module's own code (real text and size), shaped as
    the relay publishes them (JSON body, notification id, card_id/schema headers)."""
    if "notifications" not in ctx.cache:
        from posog.core.clock import MOSCOW, end_of_day
        from posog.module.contracts import Recipient
        from posog.module.notifications.geps import build_notification

        messages = []
        for fact in ctx.fact_dicts():
            citizen = fact["citizen"]
            service_date = date.fromisoformat(fact["service"]["date"])
            notification = build_notification(
                card_id=fact["card_id"],
                recipient=Recipient(
                    snils="".join(ch for ch in citizen["snils"] if ch.isdigit()),
                    last_name=citizen["last_name"],
                    first_name=citizen["first_name"],
                    middle_name=citizen.get("middle_name"),
                ),
                org_name=fact["organization"]["name"],
                service_name=fact["service"].get("name"),
                service_date=service_date,
                link=f"https://lkp.bench.invalid/lkp/s/{os.urandom(24).hex()[:32]}",
                expires_at=end_of_day(service_date + timedelta(days=30), MOSCOW),
            )
            messages.append(
                AmqpMessage(
                    notification.model_dump_json(by_alias=True).encode(),
                    notification.notification_id,
                    {"card_id": fact["card_id"], "schema": "geps.notification/1"},
                )
            )
        ctx.cache["notifications"] = messages
    messages: list[AmqpMessage] = ctx.cache["notifications"]
    return messages


# --- (a) bare consumer ---------------------------------------------------------------------------


@workload("bare-consume", kind="limit")
async def bare_consume(ctx: BenchContext) -> list[Measurement]:
    """aio-pika consumer that only acks the N fact messages (manual ack, the intake consumer's prefetch)."""
    settings = ctx.defaults()
    prefetch = max(settings.consumer_prefetch, settings.intake_batch_size)  # as IntakeConsumer computes it
    messages = ctx.fact_messages()
    total = len(messages)
    async with rabbit_names(ctx) as names, amqp_connection() as publishing, amqp_connection() as consuming:
        queue_name = names.queue("bare.consume")
        channel = await publishing.channel(publisher_confirms=True)
        await channel.declare_queue(queue_name, durable=True, arguments={"x-queue-type": "quorum"})
        ctx.step("bare-consume", f"publishing {total} fact messages (not timed)")
        await publish_confirmed(channel.default_exchange, queue_name, messages, batch=1000)

        ctx.step("bare-consume", "consuming")
        consumer_channel = await consuming.channel()
        await consumer_channel.set_qos(prefetch_count=prefetch)
        queue = await consumer_channel.declare_queue(queue_name, passive=True)
        acked = 0
        async with cpu_meter() as cpu:
            started = time.perf_counter()
            async with queue.iterator(no_ack=False) as iterator:
                async for message in iterator:
                    await message.ack()
                    acked += 1
                    if acked == total:
                        break
                    if acked % 1000 == 0:
                        ctx.progress = f"{acked}/{total} acked"
                seconds = time.perf_counter() - started
    return [
        Measurement(
            key="bare_consume",
            label="bare consume + ack",
            kind="limit",
            count=acked,
            seconds=seconds,
            unit="msgs/s",
            method=f"aio-pika iterator, ack each, prefetch {prefetch}, quorum queue",
            extra={"prefetch": prefetch, "cpu": cpu.as_dict()},
        )
    ]


@workload("bare-consume-batched", kind="limit")
async def bare_consume_batched(ctx: BenchContext) -> list[Measurement]:
    """The same aio-pika consumer acking once per intake batch (basic.ack multiple on the last tag)."""
    settings = ctx.defaults()
    prefetch = max(settings.consumer_prefetch, settings.intake_batch_size)
    batch = settings.intake_batch_size
    messages = ctx.fact_messages()
    total = len(messages)
    async with rabbit_names(ctx) as names, amqp_connection() as publishing, amqp_connection() as consuming:
        queue_name = names.queue("bare.consume.batched")
        channel = await publishing.channel(publisher_confirms=True)
        await channel.declare_queue(queue_name, durable=True, arguments={"x-queue-type": "quorum"})
        ctx.step("bare-consume-batched", f"publishing {total} fact messages (not timed)")
        await publish_confirmed(channel.default_exchange, queue_name, messages, batch=1000)

        ctx.step("bare-consume-batched", "consuming")
        consumer_channel = await consuming.channel()
        await consumer_channel.set_qos(prefetch_count=prefetch)
        queue = await consumer_channel.declare_queue(queue_name, passive=True)
        received = 0
        async with cpu_meter() as cpu:
            started = time.perf_counter()
            async with queue.iterator(no_ack=False) as iterator:
                async for message in iterator:
                    received += 1
                    if received % batch == 0 or received == total:
                        await message.ack(multiple=True)
                    if received == total:
                        break
            seconds = time.perf_counter() - started
    return [
        Measurement(
            key="bare_consume_batched",
            label="bare consume + ack per batch",
            kind="limit",
            count=received,
            seconds=seconds,
            unit="msgs/s",
            method=f"aio-pika iterator, basic.ack multiple every {batch}, prefetch {prefetch}, quorum queue",
            extra={"prefetch": prefetch, "batch": batch, "cpu": cpu.as_dict()},
        )
    ]


# --- (b) bare batched INSERT ---------------------------------------------------------------------


def _fact_rows(ctx: BenchContext) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Card, link and outbox rows as wide as intake writes them (same columns, same types, payloads
    of the real sizes), built before timing."""
    from posog.core.clock import utcnow

    now = utcnow()
    cards, links, outbox = [], [], []
    for fact, notification in zip(ctx.fact_dicts(), notification_messages(ctx), strict=True):
        org = fact["organization"]
        citizen = fact["citizen"]
        pii_size = len(json.dumps(citizen, ensure_ascii=False, sort_keys=True).encode()) + SEAL_OVERHEAD
        cards.append(
            {
                "id": str(uuid.uuid4()),
                "card_id": fact["card_id"],
                "message_id": fact["message_id"],
                "payload_hash": hashlib.sha256(fact["card_id"].encode()).hexdigest(),
                "survey_level": fact["survey_level"],
                "service_date": date.fromisoformat(fact["service"]["date"]),
                "service_name": fact["service"].get("name"),
                "service_code": fact["service"].get("code"),
                "org_name": org["name"],
                "org_address": org["address"],
                "inn": org["inn"],
                "ogrn": org["ogrn"],
                "kpp": org.get("kpp"),
                "type_code": org["type_code"],
                "region_code": org.get("region_code") or org["inn"][:2],
                "status": "linked",
                "pii_key_id": "dev1",
                "pii": os.urandom(pii_size),
                "snils_hash": hashlib.sha256(citizen["snils"].encode()).hexdigest(),
                "pii_purged_at": None,
                "created_at": now,
                "updated_at": now,
            }
        )
        links.append(
            {
                "id": str(uuid.uuid4()),
                "card_id": fact["card_id"],
                "token_hash": hashlib.sha256(os.urandom(24)).hexdigest(),
                "questionnaire_id": "00000000-0000-4000-8000-000000000001",
                "questionnaire_version": 1,
                "state": "issued",
                "expires_at": now + timedelta(days=30),
                "issued_at": now,
                "notified_at": None,
                "opened_at": None,
                "completed_at": None,
            }
        )
        outbox.append(
            {
                "message_id": notification.message_id,
                "topic": "geps.notification",
                "card_id": fact["card_id"],
                "pii_key_id": "dev1",
                "body": os.urandom(len(notification.body) + SEAL_OVERHEAD),
                "attempts": 0,
                "next_attempt_at": now,
                "sent_at": None,
                "last_error": None,
                "created_at": now,
            }
        )
    return cards, links, outbox


@workload("bare-insert", kind="limit")
async def bare_insert(ctx: BenchContext) -> list[Measurement]:
    """SQLAlchemy Core executemany (asyncpg) of card-wide rows, intake batch size per transaction."""
    from sqlalchemy import MetaData, Table, text
    from sqlalchemy.dialects.postgresql import insert

    from posog.core.db import make_engine
    from posog.module.intake.model import ServiceCard
    from posog.module.links.model import SurveyLink
    from posog.module.notifications.model import OutboxMessage

    settings = ctx.defaults()
    batch = settings.intake_batch_size
    cards, links, outbox = _fact_rows(ctx)
    total = len(cards)
    metadata = MetaData()
    scratch: dict[str, Table] = {}
    for model in (ServiceCard, SurveyLink, OutboxMessage):
        source: Table = model.__table__  # type: ignore[assignment]
        scratch[source.name] = source.to_metadata(metadata, name=f"bench_{source.name}")

    async with scratch_database(ctx) as database:
        engine = make_engine(database.url, pool_size=settings.db_pool_size)  # the application's engine setup
        watcher: asyncpg.Connection | None = None
        try:
            async with engine.begin() as connection:
                for source_name, table in scratch.items():
                    # Same columns, types, defaults, constraints and indexes as the real table.
                    await connection.execute(text(f'CREATE TABLE "{table.name}" (LIKE "{source_name}" INCLUDING ALL)'))

            async def insert_batches(tables_rows: list[tuple[Table, list[dict[str, Any]]]]) -> tuple[float, CpuUsage]:
                async with cpu_meter(watcher) as cpu:
                    started = time.perf_counter()
                    for start in range(0, total, batch):
                        async with engine.begin() as connection:  # one transaction per batch, as intake
                            for table, rows in tables_rows:
                                await connection.execute(insert(table), rows[start : start + batch])
                        ctx.progress = f"{min(start + batch, total)}/{total} rows"
                    seconds = time.perf_counter() - started
                return seconds, cpu

            watcher = await asyncpg.connect(database.dsn, timeout=10)  # finds the backends for cpu_meter
            ctx.step("bare-insert", f"inserting {total} card rows")
            cards_s, cards_cpu = await insert_batches([(scratch["module_service_cards"], cards)])
            async with engine.begin() as connection:
                await connection.execute(text(f'TRUNCATE "{scratch["module_service_cards"].name}"'))
            ctx.step("bare-insert", f"inserting {total} × (card + link + outbox) rows")
            triple_s, triple_cpu = await insert_batches(
                [
                    (scratch["module_service_cards"], cards),
                    (scratch["module_survey_links"], links),
                    (scratch["module_outbox"], outbox),
                ]
            )
            async with engine.connect() as connection:
                stored = await connection.scalar(text(f'SELECT count(*) FROM "{scratch["module_outbox"].name}"'))
            if stored != total:
                raise BenchError(f"bare insert stored {stored} outbox rows, expected {total}")
        finally:
            if watcher is not None:
                await watcher.close()
            await engine.dispose()
    method = f"SQLAlchemy Core executemany on asyncpg, {batch} rows per transaction"
    return [
        Measurement(
            key="bare_insert",
            label="bare INSERT, card rows",
            kind="limit",
            count=total,
            seconds=cards_s,
            unit="rows/s",
            method=method,
            extra={"batch": batch, "driver": "asyncpg via SQLAlchemy Core executemany", "cpu": cards_cpu.as_dict()},
        ),
        Measurement(
            key="bare_insert_fact",
            label="bare INSERT, card + link + outbox",
            kind="limit",
            count=total,
            seconds=triple_s,
            unit="facts/s",
            method=f"the same, 3 tables × {batch} rows per transaction",
            extra={"batch": batch, "rows_per_fact": 3, "cpu": triple_cpu.as_dict()},
        ),
    ]


# --- (c) bare publish with confirms --------------------------------------------------------------


@workload("bare-publish", kind="limit")
async def bare_publish(ctx: BenchContext) -> list[Measurement]:
    """aio-pika publish with confirms of N ГЭПС notifications, the relay's batch size at a time."""
    settings = ctx.defaults()
    batch = settings.relay_batch_size
    messages = notification_messages(ctx)
    total = len(messages)
    async with rabbit_names(ctx) as names, amqp_connection() as connection:
        exchange_name = names.exchange("bare.geps")
        queue_name = names.queue("bare.geps.epgu")
        admin = await connection.channel()
        exchange = await admin.declare_exchange(exchange_name, type="direct", durable=True)
        queue = await admin.declare_queue(queue_name, durable=True, arguments={"x-queue-type": "quorum"})
        await queue.bind(exchange, routing_key=settings.geps_routing_key)

        channel = await connection.channel(publisher_confirms=True)
        target = await channel.get_exchange(exchange_name, ensure=False)
        ctx.step("bare-publish", f"publishing {total} notifications with confirms")
        async with cpu_meter() as cpu:
            started = time.perf_counter()
            await publish_confirmed(target, settings.geps_routing_key, messages, batch=batch)
            seconds = time.perf_counter() - started
        depth = (await admin.declare_queue(queue_name, passive=True)).declaration_result.message_count
        if depth != total:
            raise BenchError(f"bare publish: {depth} messages in the queue, expected {total}")
    return [
        Measurement(
            key="bare_publish",
            label="bare publish + confirms",
            kind="limit",
            count=total,
            seconds=seconds,
            unit="msgs/s",
            method=f"aio-pika, persistent, {batch} in flight per confirm wait, quorum queue",
            extra={
                "batch": batch,
                "mean_body_bytes": sum(len(m.body) for m in messages) // max(total, 1),
                "cpu": cpu.as_dict(),
            },
        )
    ]
