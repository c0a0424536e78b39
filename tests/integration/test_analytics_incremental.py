"""Rollups are incremental and exactly once (SPEC §8): after any interleaving of new cards, notifications,
responses, polls, rebuilds and cursor resets, the incremental tables equal (1) what the sources say,
computed independently from the module's and ЛКО's own tables, (2) a rebuild from the stored items and
(3) a full re-pull from the sources with the cursors reset; replaying the feeds never double-counts;
two workers polling at once count each item once."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select

from posog.analytics.rollups.model import FeedCursor
from posog.analytics.rollups.pipeline import AnalyticsPipeline
from posog.bootstrap import System
from posog.lko.client import LkoClient
from posog.lko.responses.model import SurveyResponse
from posog.module.client import ModuleClient
from posog.module.intake.model import ServiceCard
from posog.module.links.model import SurveyLink
from posog.module.notifications.deliveries import DeliveryReport, GepsDeliveries
from posog.module.notifications.model import OutboxMessage
from tests.integration.analytics_fixture import (
    TODAY,
    Fixture,
    analytics_stack,
    card_item,
    ingest,
    notify_all,
    respond,
    response_item,
    rollups,
    tokens,
)
from tests.support import BACKENDS

pytestmark = pytest.mark.integration

SEEDS = (11, 12, 13)
CRITERIA = {"q1": "service_time", "q2": "queue_time", "q3": "staff", "q4": "comfort", "q5": "information"}


async def from_the_sources(system: System) -> dict[str, list[tuple[str, ...]]]:
    """The rollups as they should be, computed here from the module's and ЛКО's tables."""
    counts: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    ratings: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0] * 5)
    async with system.db.uow() as uow:
        cards = await uow.session.execute(
            select(
                ServiceCard, SurveyLink.notified_at, SurveyLink.delivery_failed_at, SurveyLink.delivered_at
            ).outerjoin(SurveyLink, SurveyLink.card_id == ServiceCard.card_id)
        )
        for card, notified_at, delivery_failed_at, delivered_at in cards:
            grain = (card.service_date, card.region_code, card.inn, card.type_code, card.survey_level)
            counts[grain][0] += 1
            counts[grain][1] += notified_at is not None
            # ЕПГУ could not deliver the ГЭПС notification, and no later status said it did.
            counts[grain][3] += delivery_failed_at is not None and delivered_at is None
        for response in await uow.session.scalars(select(SurveyResponse)):
            grain = (
                response.service_date,
                response.region_code,
                response.inn,
                response.type_code,
                response.survey_level,
            )
            counts[grain][2] += 1
            for question, criterion in CRITERIA.items():
                ratings[(*grain, criterion)][response.answers[question] - 1] += 1
    return with_months(
        {
            "analytics_rollups": sorted(tuple(str(v) for v in (*grain, *c)) for grain, c in counts.items()),
            "analytics_criterion_rollups": sorted(
                tuple(str(v) for v in (*key, sum(n), sum(k * x for k, x in enumerate(n, start=1)), *n))
                for key, n in ratings.items()
            ),
        }
    )


def with_months(days: dict[str, list[tuple[str, ...]]]) -> dict[str, list[tuple[str, ...]]]:
    """The day-grain tables (as text rows) and the month-grain tables they sum to: the month is the
    day's first of the month; per organisation, and without the ИНН; the measures added up."""

    def summed(rows: list[tuple[str, ...]], key_width: int, *, keep_inn: bool) -> list[tuple[str, ...]]:
        months: dict[tuple[str, ...], list[int]] = {}
        for row in rows:
            day, region, inn, *rest = row[:key_width]
            key = (f"{day[:7]}-01", region, *([inn] if keep_inn else []), *rest)
            measures = months.setdefault(key, [0] * (len(row) - key_width))
            for index, value in enumerate(row[key_width:]):
                measures[index] += int(value)
        return sorted(tuple([*key, *(str(v) for v in measures)]) for key, measures in months.items())

    return {
        **days,
        "analytics_org_month_rollups": summed(days["analytics_rollups"], 5, keep_inn=True),
        "analytics_org_month_criterion_rollups": summed(days["analytics_criterion_rollups"], 6, keep_inn=True),
        "analytics_month_rollups": summed(days["analytics_rollups"], 5, keep_inn=False),
        "analytics_month_criterion_rollups": summed(days["analytics_criterion_rollups"], 6, keep_inn=False),
    }


async def as_text(system: System) -> dict[str, list[tuple[str, ...]]]:
    return {
        table: sorted(tuple(str(v) for v in row) for row in rows) for table, rows in (await rollups(system)).items()
    }


async def reset_cursors(system: System) -> None:
    """Forget where the feeds were: the next poll replays them from the beginning."""
    async with system.db.uow() as uow:
        await uow.session.execute(delete(FeedCursor))
        await uow.commit()


class Scenario:
    """A random interleaving of what happens in production, for one seed."""

    def __init__(self, system: System, seed: int) -> None:
        self.system = system
        self.rng = random.Random(seed)
        self.fixture = Fixture.new(seed)
        self.answered: set[str] = set()

    async def new_cards(self) -> None:
        facts = []
        for _ in range(self.rng.randint(1, 4)):
            org = self.rng.choice("ABCD")
            # Mostly within the survey period; sometimes too old for a link (a late card).
            age = self.rng.choice([0, 1, 2, 3, 6, 9, 14, 20, 27, 34])
            facts.append(self.fixture.fact(org, TODAY - timedelta(days=age)))
        await ingest(self.system, facts)

    async def responses(self) -> None:
        links = await tokens(self.system)
        open_cards = sorted(set(links) - self.answered)
        for card_id in self.rng.sample(open_cards, min(len(open_cards), self.rng.randint(1, 3))):
            await respond(self.system, links[card_id], [self.rng.randint(1, 5) for _ in range(5)])
            self.answered.add(card_id)

    async def delivery_statuses(self) -> None:
        """ЕПГУ's word on a few sent notifications: delivered, or failed for good (some delivered later)."""
        deliveries = GepsDeliveries(self.system.db, self.system.clock, max_attempts=3, retry_base_s=0.5, retry_cap_s=1)
        async with self.system.db.uow() as uow:
            sent = sorted((await uow.session.scalars(select(OutboxMessage.message_id))).all())
        for notification_id in self.rng.sample(sent, min(len(sent), self.rng.randint(1, 3))):
            kind = self.rng.choice(["delivered", "failed", "failed"])
            await deliveries.record(notification_id, DeliveryReport(kind, "CLIENT: RECIPIENT_NOT_FOUND"))  # type: ignore[arg-type]

    async def run(self, steps: int) -> None:
        actions = {
            "cards": self.new_cards,
            "notify": lambda: notify_all(self.system),
            "responses": self.responses,
            "poll": self.system.analytics.pipeline.poll_once,
            "rebuild": self.system.analytics.pipeline.rebuild,
            "replay": lambda: reset_cursors(self.system),
            "deliveries": self.delivery_statuses,
        }
        weights = {"cards": 5, "notify": 3, "responses": 4, "poll": 4, "rebuild": 1, "replay": 1, "deliveries": 2}
        for _ in range(steps):
            action = self.rng.choices(list(weights), weights=list(weights.values()))[0]
            await actions[action]()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", SEEDS)
async def test_incremental_equals_sources_rebuild_and_repull(backend: str, seed: int, tmp_path: Path) -> None:
    async with analytics_stack(backend, tmp_path) as system:
        scenario = Scenario(system, seed)
        await scenario.run(24)
        await scenario.new_cards()  # whatever the draw, some of everything
        await notify_all(system)
        await scenario.delivery_statuses()  # whatever the draw, some failed deliveries
        await scenario.responses()
        await system.analytics.pipeline.poll_once()

        incremental = await as_text(system)
        assert incremental["analytics_rollups"]
        assert incremental["analytics_criterion_rollups"]
        assert incremental == await from_the_sources(system)

        await system.analytics.pipeline.rebuild()
        assert await as_text(system) == incremental

        await system.analytics.pipeline.repull()
        assert await as_text(system) == incremental


@pytest.mark.parametrize("backend", BACKENDS)
async def test_replaying_the_feeds_does_not_double_count(backend: str, tmp_path: Path) -> None:
    async with analytics_stack(backend, tmp_path) as system:
        scenario = Scenario(system, 21)
        for _ in range(3):
            await scenario.new_cards()
        await system.analytics.pipeline.poll_once()  # cards with issued links
        await notify_all(system)
        await system.analytics.pipeline.poll_once()  # the same cards, notified: their counts move once
        await scenario.responses()
        first = await system.analytics.pipeline.poll_once()  # completed links, responses
        assert all(result.changed for result in first)
        settled = await as_text(system)

        # Polling again re-reads the overlap window (everything here: it is all recent) — no change.
        again = await system.analytics.pipeline.poll_once()
        assert [result.items for result in again] == [result.items for result in first]
        assert [result.changed for result in again] == [0, 0]
        # From the very beginning, twice.
        for _ in range(2):
            await reset_cursors(system)
            replayed = await system.analytics.pipeline.poll_once()
            assert [result.changed for result in replayed] == [0, 0]
        assert await as_text(system) == settled == await from_the_sources(system)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_two_workers_polling_at_once_count_each_item_once(backend: str, tmp_path: Path) -> None:
    async with analytics_stack(backend, tmp_path, analytics_page_size=3) as system:
        scenario = Scenario(system, 31)
        for _ in range(4):
            await scenario.new_cards()
        await notify_all(system)
        await scenario.responses()
        s = system.settings
        other = AnalyticsPipeline(
            system.db,
            system.clock,
            ModuleClient(system.module_http_for_analytics),
            LkoClient(system.lko_http_for_analytics),
            overlap_s=s.analytics_feed_overlap_s,
            page_size=2,
            poll_interval_s=s.analytics_poll_interval_s,
            batch_items=3,  # pages of 2 applied three items at a time: batches end within pages
        )
        for _ in range(2):
            await asyncio.gather(
                system.analytics.pipeline.poll_once(), other.poll_once(), system.analytics.pipeline.poll_once()
            )
            await scenario.new_cards()
            await notify_all(system)
            await scenario.responses()
        await asyncio.gather(system.analytics.pipeline.poll_once(), other.poll_once())
        assert await as_text(system) == await from_the_sources(system)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_rebuild_sums_any_stored_items_as_the_deltas_do(backend: str, tmp_path: Path) -> None:
    """PostgreSQL rebuilds in SQL, SQLite in Python: both equal the items' arithmetic (Deltas), also for
    items the feeds do not make today — a criterion outside the built-in five, one rated twice."""
    from datetime import date

    from sqlalchemy import insert

    from posog.analytics.rollups.items import Deltas
    from posog.analytics.rollups.model import CardItem, ResponseItem
    from posog.analytics.rollups.sources import stored_card_contribution, stored_response_contribution

    rng = random.Random(41)
    failures = random.Random(42)
    criteria = ["service_time", "queue_time", "staff", "comfort", "information"]
    cards, responses = [], []
    for n in range(300):
        grain = {
            "inn": rng.choice(["7703012345", "1655012345", "5012345678"]),
            "region_code": rng.choice(["77", "16"]),
            "type_code": rng.choice(["mfc", "school"]),
            "survey_level": rng.choice(["federal", "regional"]),
            "service_date": date(2026, 11, rng.randint(1, 5)),
        }
        notified = rng.random() < 0.8
        failed = notified and failures.random() < 0.2  # a failed ГЭПС delivery (its own draw)
        cards.append(card_item(f"C-{n}", grain, notified=notified, delivery_failed=failed))
        if rng.random() < 0.5:
            ratings = [[c, rng.randint(1, 5)] for c in rng.sample(criteria, rng.randint(0, 5))]
            if rng.random() < 0.1:
                ratings.append(["courtesy", rng.randint(1, 5)])  # not a built-in criterion
            if ratings and rng.random() < 0.1:
                ratings.append([ratings[0][0], rng.randint(1, 5)])  # the same criterion twice
            responses.append(response_item(f"C-{n}", grain, ratings))
    async with analytics_stack(backend, tmp_path) as system:
        async with system.db.uow() as uow:
            await uow.session.execute(insert(CardItem), cards)
            await uow.session.execute(insert(ResponseItem), responses)
            await uow.commit()
        result = await system.analytics.pipeline.rebuild()

        deltas = Deltas()
        for card in cards:
            deltas.add(stored_card_contribution(CardItem(**card)))
        for response in responses:
            deltas.add(stored_response_contribution(ResponseItem(**response)))
        expected = with_months(
            {
                "analytics_rollups": sorted(tuple(str(v) for v in row.values()) for row in deltas.count_rows()),
                "analytics_criterion_rollups": sorted(
                    tuple(str(v) for v in row.values()) for row in deltas.criterion_rows()
                ),
            }
        )
        assert await as_text(system) == expected
        assert any(row["delivery_failed"] for row in deltas.count_rows())
        assert (result.cards, result.responses) == (len(cards), len(responses))
        assert (result.rollups, result.criterion_rollups) == (
            len(expected["analytics_rollups"]),
            len(expected["analytics_criterion_rollups"]),
        )
