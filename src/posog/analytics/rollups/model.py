"""Analytics' own tables (prefix ``analytics_``). Nothing here can identify a citizen: a card is kept as
its organisation, region, type, level, service date and link progress; a response as its organisation
and its criterion ratings (normalised to 1..5) — no free text, no choices, no personal data.

``analytics_cards`` and ``analytics_responses`` hold the latest state of every item read from the
feeds; they are what each rollup delta is computed against (exactly once) and what a rebuild
recomputes every rollup from. The rollups are kept at the grain (service day, region, ИНН,
organisation type, survey level); weeks, regions and the country are summed at query time from it.

Beside the day grain the same deltas keep two month grains: per organisation (month, region, ИНН,
type, level) and without the organisation (month, region, type, level). An answer reads the coarsest
grain that can give it for the whole months of its period, and the day grain only for the days of a
month the period cuts through (see :mod:`posog.analytics.ratings.queries`). At 10 M ratings the day
grain has some 5 M criterion rows, the month grains 380 000 and 70 000."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Index, Integer, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from posog.core.db import Base, UTCDateTime

SOURCE_CARDS = "module.cards"
SOURCE_RESPONSES = "lko.responses"
SOURCES = (SOURCE_CARDS, SOURCE_RESPONSES)


class FeedCursor(Base):
    """Where analytics stands in one source's feed (see ``consumer.py`` for the overlap scheme):
    ``base_cursor`` is where the next poll starts (None: the beginning); every item up to it has been
    applied and changed no later than ``base_bound``."""

    __tablename__ = "analytics_cursors"

    source: Mapped[str] = mapped_column(String(40), primary_key=True)
    base_cursor: Mapped[str | None] = mapped_column(Text)
    base_bound: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_poll_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_poll_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    items_read: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # When this source last changed the rollups (a page that changed something, a rebuild): strictly
    # increasing per source, so the pair of them names the rollups' version (``rollups_version``).
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CardItem(Base):
    """The latest state of one service card, as far as analytics needs it."""

    __tablename__ = "analytics_cards"
    __table_args__ = ({"postgresql_with": {"fillfactor": 90}},)  # see migration 0008: HOT updates

    card_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    inn: Mapped[str] = mapped_column(String(12))
    region_code: Mapped[str] = mapped_column(String(2))
    type_code: Mapped[str] = mapped_column(String(40))
    survey_level: Mapped[str] = mapped_column(String(16))
    service_date: Mapped[date] = mapped_column(Date)
    link_state: Mapped[str] = mapped_column(String(16))
    notified: Mapped[bool] = mapped_column(Boolean)
    source_updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The ГЭПС notification could not be delivered (ЕПГУ's error; migration 0015). Last, as the migration
    # adds it: the stored cards are read with ``SELECT *`` (``repository._rows_by_key``).
    delivery_failed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ResponseItem(Base):
    """One stored response: its organisation and its criterion ratings ``[[criterion, 1..5], …]``."""

    __tablename__ = "analytics_responses"

    response_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    card_id: Mapped[str] = mapped_column(String(100))
    inn: Mapped[str] = mapped_column(String(12))
    region_code: Mapped[str] = mapped_column(String(2))
    type_code: Mapped[str] = mapped_column(String(40))
    survey_level: Mapped[str] = mapped_column(String(16))
    service_date: Mapped[date] = mapped_column(Date)
    questionnaire_id: Mapped[str] = mapped_column(String(36))
    questionnaire_version: Mapped[int] = mapped_column(Integer)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ratings: Mapped[list[Any]] = mapped_column(JSON)


class Organization(Base):
    """Display name of an ИНН: the name carried by its item with the greatest (service date, card id),
    so that the answer does not depend on the order the items arrived in."""

    __tablename__ = "analytics_organizations"

    inn: Mapped[str] = mapped_column(String(12), primary_key=True)
    org_name: Mapped[str] = mapped_column(String(1000))
    region_code: Mapped[str] = mapped_column(String(2))
    name_key: Mapped[str] = mapped_column(String(120))


class _Counts:
    """The measures of a counts rollup, after its key columns."""

    services: Mapped[int] = mapped_column(Integer, sort_order=10)
    notified: Mapped[int] = mapped_column(Integer, sort_order=10)
    responses: Mapped[int] = mapped_column(Integer, sort_order=10)
    # Of the notified services, those whose ГЭПС notification ЕПГУ could not deliver (migration 0015).
    delivery_failed: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"), sort_order=10)


class _Ratings:
    """The criterion (last of the key) and the measures of a criterion-ratings rollup."""

    criterion: Mapped[str] = mapped_column(String(20), primary_key=True, sort_order=9)
    count: Mapped[int] = mapped_column(Integer, sort_order=10)
    sum: Mapped[int] = mapped_column(Integer, sort_order=10)
    n1: Mapped[int] = mapped_column(Integer, sort_order=10)
    n2: Mapped[int] = mapped_column(Integer, sort_order=10)
    n3: Mapped[int] = mapped_column(Integer, sort_order=10)
    n4: Mapped[int] = mapped_column(Integer, sort_order=10)
    n5: Mapped[int] = mapped_column(Integer, sort_order=10)


class Rollup(_Counts, Base):
    """Counts at the grain: services (cards), notified (cards whose citizen was notified), responses."""

    __tablename__ = "analytics_rollups"
    __table_args__ = (
        Index("ix_analytics_rollups_region_day", "region_code", "day"),
        Index("ix_analytics_rollups_inn_day", "inn", "day"),
        {"postgresql_with": {"fillfactor": 85}},
    )

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    region_code: Mapped[str] = mapped_column(String(2), primary_key=True)
    inn: Mapped[str] = mapped_column(String(12), primary_key=True)
    type_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    survey_level: Mapped[str] = mapped_column(String(16), primary_key=True)


class CriterionRollup(_Ratings, Base):
    """Ratings of one criterion at the grain: how many, their sum, and how many of each value 1..5."""

    __tablename__ = "analytics_criterion_rollups"
    __table_args__ = (
        Index("ix_analytics_criterion_rollups_region_day", "region_code", "day"),
        Index("ix_analytics_criterion_rollups_inn_day", "inn", "day"),
        {"postgresql_with": {"fillfactor": 85}},
    )

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    region_code: Mapped[str] = mapped_column(String(2), primary_key=True)
    inn: Mapped[str] = mapped_column(String(12), primary_key=True)
    type_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    survey_level: Mapped[str] = mapped_column(String(16), primary_key=True)


class OrgMonthRollup(_Counts, Base):
    """:class:`Rollup` summed over the days of a month: ``month`` is the month's first day."""

    __tablename__ = "analytics_org_month_rollups"
    __table_args__ = (
        Index("ix_analytics_org_month_rollups_region_month", "region_code", "month"),
        Index("ix_analytics_org_month_rollups_inn_month", "inn", "month"),
        {"postgresql_with": {"fillfactor": 70}},
    )

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    region_code: Mapped[str] = mapped_column(String(2), primary_key=True)
    inn: Mapped[str] = mapped_column(String(12), primary_key=True)
    type_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    survey_level: Mapped[str] = mapped_column(String(16), primary_key=True)


class OrgMonthCriterionRollup(_Ratings, Base):
    """:class:`CriterionRollup` at the month grain of :class:`OrgMonthRollup`."""

    __tablename__ = "analytics_org_month_criterion_rollups"
    __table_args__ = (
        Index("ix_analytics_org_month_criterion_rollups_region_month", "region_code", "month"),
        Index("ix_analytics_org_month_criterion_rollups_inn_month", "inn", "month"),
        {"postgresql_with": {"fillfactor": 70}},
    )

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    region_code: Mapped[str] = mapped_column(String(2), primary_key=True)
    inn: Mapped[str] = mapped_column(String(12), primary_key=True)
    type_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    survey_level: Mapped[str] = mapped_column(String(16), primary_key=True)


class MonthRollup(_Counts, Base):
    """:class:`Rollup` summed over the days of a month and the organisations of a (region, type, level):
    ``month`` is the month's first day."""

    __tablename__ = "analytics_month_rollups"
    __table_args__ = (
        Index("ix_analytics_month_rollups_region_month", "region_code", "month"),
        {"postgresql_with": {"fillfactor": 50}},
    )

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    region_code: Mapped[str] = mapped_column(String(2), primary_key=True)
    type_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    survey_level: Mapped[str] = mapped_column(String(16), primary_key=True)


class MonthCriterionRollup(_Ratings, Base):
    """:class:`CriterionRollup` at the month grain of :class:`MonthRollup`."""

    __tablename__ = "analytics_month_criterion_rollups"
    __table_args__ = (
        Index("ix_analytics_month_criterion_rollups_region_month", "region_code", "month"),
        {"postgresql_with": {"fillfactor": 50}},
    )

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    region_code: Mapped[str] = mapped_column(String(2), primary_key=True)
    type_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    survey_level: Mapped[str] = mapped_column(String(16), primary_key=True)
