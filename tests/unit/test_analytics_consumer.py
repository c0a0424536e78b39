"""The feed consumer's overlap scheme on fake feeds and a clock we move: an item committed late behind
the cursor is still counted (and would be lost without the overlap), the safe cursor moves past old
items so they are not re-read forever, stale pages change nothing; ratings on other scales are
normalised; rankings share ranks on ties; figures round half up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import pytest
from sqlalchemy import func, select

from posog.analytics import tables
from posog.analytics.ratings.figures import Totals, figures, rounded
from posog.analytics.ratings.reports import buckets, ranking
from posog.analytics.rollups.consumer import FeedConsumer
from posog.analytics.rollups.items import normalise
from posog.analytics.rollups.model import CardItem, CriterionRollup, FeedCursor, Rollup
from posog.analytics.rollups.sources import CardsSource, ResponsesSource
from posog.core.db import Base, Database
from posog.lko.contracts import Question, QuestionnaireDocument, ResponsePage, StoredResponse
from posog.module.contracts import CardFeedItem, CardFeedPage

T = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class FakeCardsFeed:
    """The module's feed contract over a list: keyset pages in (updated_at, card_id) order of what is
    *committed*; ``commit`` adds (or changes) a card as a writer's transaction would."""

    def __init__(self) -> None:
        self.committed: dict[str, CardFeedItem] = {}

    def commit(self, card_id: str, stamp: datetime, *, notified: bool = False, region: str = "77") -> None:
        self.committed[card_id] = CardFeedItem(
            card_id=card_id,
            inn="7707083893",
            ogrn="1027700132195",
            kpp="770701001",
            org_name="ГАУ «МФЦ»",
            region_code=region,
            type_code="mfc",
            survey_level="federal",
            service_date=date(2026, 11, 19),
            created_at=stamp,
            link_state="notified" if notified else "issued",
            notified=notified,
            updated_at=stamp,
        )

    async def cards_feed(self, since: str | None = None, limit: int = 500) -> CardFeedPage:
        def key(item: CardFeedItem) -> str:
            return f"{item.updated_at.isoformat()}|{item.card_id}"

        ordered = sorted(self.committed.values(), key=key)
        after = [item for item in ordered if since is None or key(item) > since]
        page = after[:limit]
        return CardFeedPage(items=page, next_cursor=key(page[-1]) if page else since, has_more=len(after) > limit)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/analytics.db")
    assert tables.MODEL_MODULES
    ours = [table for name, table in Base.metadata.tables.items() if name.startswith("analytics_")]
    async with database.engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all, tables=ours)
    yield database
    await database.dispose()


async def services(db: Database) -> tuple[int, int]:
    async with db.uow() as uow:
        row = (await uow.session.execute(select(func.sum(Rollup.services), func.sum(Rollup.notified)))).one()
    return int(row[0] or 0), int(row[1] or 0)


@pytest.mark.parametrize("batch_items", [1, 5])
async def test_an_item_committed_late_behind_the_cursor_is_still_counted(db: Database, batch_items: int) -> None:
    """Page by page, or pages applied together: the safe cursor stops at the last page that is safe."""
    clock, feed = Clock(T), FakeCardsFeed()
    source = CardsSource(feed)
    consumer = FeedConsumer(db, clock, overlap_s=30, page_size=1, batch_items=batch_items)
    feed.commit("X", T - timedelta(seconds=100))
    feed.commit("Y", T - timedelta(seconds=5))
    first = await consumer.poll(source)
    assert (first.items, first.changed) == (2, 2)
    async with db.uow() as uow:
        cursor = await uow.session.get(FeedCursor, source.name)
        assert cursor is not None
        # Safe past X (100 s old), not past Y (within the 30 s overlap).
        assert cursor.base_bound == T - timedelta(seconds=100)

    # A writer stamped Z before Y but committed after the poll read Y.
    feed.commit("Z", T - timedelta(seconds=10))
    clock.now = T + timedelta(seconds=1)
    second = await consumer.poll(source)
    assert (second.items, second.changed) == (2, 1)  # Z and Y re-read; X not: it is behind the safe cursor
    assert await services(db) == (3, 0)

    # Long after, everything is behind the safe cursor: a poll reads nothing.
    clock.now = T + timedelta(minutes=5)
    await consumer.poll(source)
    assert (await consumer.poll(source)).items == 0


async def test_without_the_overlap_the_late_item_would_be_lost(db: Database) -> None:
    clock, feed = Clock(T), FakeCardsFeed()
    source = CardsSource(feed)
    consumer = FeedConsumer(db, clock, overlap_s=0, page_size=1)
    feed.commit("X", T - timedelta(seconds=100))
    feed.commit("Y", T - timedelta(seconds=5))
    await consumer.poll(source)
    feed.commit("Z", T - timedelta(seconds=10))
    clock.now = T + timedelta(seconds=1)
    await consumer.poll(source)
    assert await services(db) == (2, 0)  # the failure the overlap exists for


async def test_changes_move_counts_once_and_stale_pages_change_nothing(db: Database) -> None:
    clock, feed = Clock(T), FakeCardsFeed()
    source = CardsSource(feed)
    consumer = FeedConsumer(db, clock, overlap_s=30, page_size=10)
    feed.commit("X", T - timedelta(seconds=3))
    stale = await feed.cards_feed(None, 10)
    await consumer.poll(source)
    feed.commit("X", T - timedelta(seconds=2), notified=True)
    for _ in range(3):
        await consumer.poll(source)
    assert await services(db) == (1, 1)
    async with db.uow() as uow:
        assert await source.apply(uow.session, stale.items) == 0  # an older state of X: ignored
        await uow.commit()
    assert await services(db) == (1, 1)
    async with db.uow() as uow:
        card = await uow.session.get(CardItem, "X")
        assert card is not None
        assert (card.link_state, card.notified) == ("notified", True)


class FakeResponsesFeed:
    def __init__(self, responses: list[StoredResponse], document: QuestionnaireDocument) -> None:
        self.responses = responses
        self.document = document
        self.version_calls = 0

    async def responses_feed(self, cursor: str | None = None, limit: int = 500) -> ResponsePage:
        start = int(cursor or 0)
        page = self.responses[start : start + limit]
        more = start + limit < len(self.responses)
        return ResponsePage(items=page, next_cursor=str(start + limit) if more else None)

    async def questionnaire_version(self, questionnaire_id: str, version: int) -> QuestionnaireDocument | None:
        self.version_calls += 1
        return self.document if (questionnaire_id, version) == (self.document.id, self.document.version) else None


def _response(response_id: str, answers: dict[str, object]) -> StoredResponse:
    return StoredResponse(
        id=response_id,
        card_id=f"card-{response_id}",
        questionnaire_id="q-10",
        questionnaire_version=2,
        type_code="mfc",
        survey_level="federal",
        inn="7707083893",
        ogrn="1027700132195",
        kpp="770701001",
        region_code="77",
        org_name="ГАУ «МФЦ»",
        service_date="2026-11-19",
        answers=answers,  # type: ignore[arg-type]
        submitted_at=(T - timedelta(seconds=60)).isoformat(),
    )


async def test_ratings_on_other_scales_are_normalised_and_versions_fetched_once(db: Database) -> None:
    document = QuestionnaireDocument(
        id="q-10",
        version=2,
        type_code="mfc",
        level="federal",
        title="Анкета с десятибалльной шкалой",
        questions=(
            Question(id="a", kind="rating", scale=10, criterion="staff", text="Сотрудник"),
            Question(id="b", kind="rating", scale=5, criterion="comfort", text="Помещение"),
            Question(id="c", kind="rating", scale=5, text="В целом"),
            Question(id="d", kind="yes_no", text="Понятно ли?"),
        ),
    )
    feed = FakeResponsesFeed(
        [
            _response("r1", {"a": 8, "b": 5, "c": 1, "d": True}),  # 8/10 → 4.11 → 4
            _response("r2", {"a": 9, "b": True, "c": 1}),  # 9/10 → 4.56 → 5; a bool is not a rating
            _response("r3", {"a": 1, "b": 2}),  # 1/10 → 1
            _response("r4", {"a": 11, "b": 0}),  # out of range: not counted
        ],
        document,
    )
    consumer = FeedConsumer(db, Clock(T), overlap_s=30, page_size=3)
    await consumer.poll(ResponsesSource(feed))
    assert feed.version_calls == 1
    async with db.uow() as uow:
        rows = {
            row.criterion: (row.count, row.sum, [row.n1, row.n2, row.n3, row.n4, row.n5])
            for row in await uow.session.scalars(select(CriterionRollup))
        }
        responses = await uow.session.scalar(select(func.sum(Rollup.responses)))
    assert rows == {"staff": (3, 10, [1, 0, 0, 1, 1]), "comfort": (2, 7, [0, 1, 0, 0, 1])}
    assert responses == 4


def test_normalisation_to_five_points() -> None:
    assert [normalise(v, 10) for v in range(1, 11)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert [normalise(v, 3) for v in (1, 2, 3)] == [1, 3, 5]
    assert [normalise(v, 5) for v in range(1, 6)] == [1, 2, 3, 4, 5]
    assert [normalise(v, 7) for v in range(1, 8)] == [1, 2, 2, 3, 4, 4, 5]  # 1+(v−1)·⅔, halves up


def _totals(responses: int, distribution: list[int]) -> Totals:
    totals = Totals(responses=responses)
    totals.add_ratings("staff", distribution)
    return totals


def test_ranking_ties_share_a_rank_and_small_groups_follow_unranked() -> None:
    groups = {
        "a": _totals(10, [0, 0, 0, 5, 5]),  # 100 %
        "b": _totals(12, [0, 0, 4, 4, 4]),  # 66.7 %, more responses
        "c": _totals(10, [0, 0, 4, 4, 4]),  # 66.7 %
        "d": _totals(10, [0, 0, 4, 4, 4]),  # 66.7 %, same responses as c: same rank
        "e": _totals(10, [0, 0, 9, 1, 0]),  # 10 %
        "f": _totals(2, [0, 0, 0, 0, 2]),  # 100 % but only two responses
        "g": _totals(10, [0, 0, 0, 0, 0]),  # responses without criterion ratings
    }
    assert ranking(groups, min_responses=10) == [
        ("a", 1),
        ("b", 2),
        ("c", 3),
        ("d", 3),
        ("e", 5),
        ("g", None),
        ("f", None),
    ]


def test_figures_are_pooled_and_rounded_half_up() -> None:
    assert rounded(Fraction(1, 8), 2) == 0.13  # not banker's 0.12
    assert rounded(Fraction(2, 3), 4) == 0.6667
    one, other = Totals(services=3, notified=2, responses=1), Totals(services=5, notified=4, responses=3)
    one.add_ratings("staff", [0, 0, 0, 0, 1])  # 1 of 1 positive
    other.add_ratings("staff", [1, 1, 0, 0, 1])  # 1 of 3 positive
    one.merge(other)
    answer = figures(one)
    assert answer.satisfaction_index == 0.5  # 2 of 4, not (1 + 1/3) / 2
    assert answer.response_rate == 0.6667
    assert answer.criteria["staff"].mean == 3.25  # (5 + 1 + 2 + 5) / 4
    assert answer.criteria["queue_time"].count == 0
    assert answer.criteria["queue_time"].mean is None


def test_buckets_are_iso_weeks_and_months_clipped_to_the_period() -> None:
    assert list(buckets(date(2026, 11, 1), date(2026, 11, 10), "week")) == [
        (date(2026, 11, 1), date(2026, 11, 1)),
        (date(2026, 11, 2), date(2026, 11, 8)),
        (date(2026, 11, 9), date(2026, 11, 10)),
    ]
    assert list(buckets(date(2026, 1, 15), date(2026, 3, 2), "month")) == [
        (date(2026, 1, 15), date(2026, 1, 31)),
        (date(2026, 2, 1), date(2026, 2, 28)),
        (date(2026, 3, 1), date(2026, 3, 2)),
    ]
