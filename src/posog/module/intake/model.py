"""Service cards and the records intake keeps of what it could not apply."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from posog.core.db import Base, UTCDateTime, UUIDStr, new_uuid
from posog.module.contracts import OgFact

# Card statuses: waiting for a questionnaire, linked (a link was issued), late (arrived or released
# after the survey period: a card without a link).
CARD_WAITING = "waiting"
CARD_LINKED = "linked"
CARD_LATE = "late"


class ServiceCard(Base):
    """The card of one provided service. Personal data only sealed (``pii``), purged after retention."""

    __tablename__ = "module_service_cards"
    __table_args__ = (
        Index("ix_module_service_cards_waiting", "type_code", "survey_level", "status"),
        Index("ix_module_service_cards_created", "created_at"),
        Index("ix_module_service_cards_updated", "updated_at"),  # the analytics cards feed
    )

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_uuid)
    card_id: Mapped[str] = mapped_column(String(100), unique=True)
    message_id: Mapped[str] = mapped_column(String(100))
    payload_hash: Mapped[str] = mapped_column(String(64))
    survey_level: Mapped[str] = mapped_column(String(16))
    service_date: Mapped[date] = mapped_column(Date)
    service_name: Mapped[str | None] = mapped_column(String(1000))
    service_code: Mapped[str | None] = mapped_column(String(100))
    frgu_service_id: Mapped[str | None] = mapped_column(String(20))
    frgu_procedure_id: Mapped[str | None] = mapped_column(String(20))
    org_name: Mapped[str] = mapped_column(String(1000))
    org_address: Mapped[str] = mapped_column(String(1000))
    inn: Mapped[str] = mapped_column(String(12), index=True)
    ogrn: Mapped[str] = mapped_column(String(15))
    kpp: Mapped[str | None] = mapped_column(String(9))
    type_code: Mapped[str] = mapped_column(String(40))
    region_code: Mapped[str] = mapped_column(String(2), index=True)
    frgu_authority_id: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(16))
    pii_key_id: Mapped[str | None] = mapped_column(String(40))
    pii: Mapped[bytes | None] = mapped_column(LargeBinary)
    snils_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    pii_purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    def fields(self) -> dict[str, Any]:
        """The card's og.fact/1 fields by path (``service.date`` …), as :func:`fact_fields` gives a fact's."""
        return {path: getattr(self, column) for path, column in FACT_COLUMNS.items()}


# The one mapping of og.fact/1 fields to a card's columns: it builds a card (``card_row``) and names
# what differs in a conflict (``fact_fields`` against ``ServiceCard.fields``).
FACT_COLUMNS: dict[str, str] = {
    "survey_level": "survey_level",
    "service.date": "service_date",
    "service.name": "service_name",
    "service.code": "service_code",
    "organization.name": "org_name",
    "organization.address": "org_address",
    "organization.inn": "inn",
    "organization.ogrn": "ogrn",
    "organization.kpp": "kpp",
    "organization.type_code": "type_code",
    "organization.region_code": "region_code",
    "service.frgu_service_id": "frgu_service_id",
    "service.frgu_procedure_id": "frgu_procedure_id",
    "organization.frgu_authority_id": "frgu_authority_id",
}


def fact_fields(fact: OgFact) -> dict[str, Any]:
    """A fact's fields by og.fact/1 path, the region resolved (as stored on its card)."""
    org = fact.organization
    return {
        "survey_level": fact.survey_level,
        "service.date": fact.service.date,
        "service.name": fact.service.name,
        "service.code": fact.service.code,
        "organization.name": org.name,
        "organization.address": org.address,
        "organization.inn": org.inn,
        "organization.ogrn": org.ogrn,
        "organization.kpp": org.kpp,
        "organization.type_code": org.type_code,
        "organization.region_code": fact.resolved_region(),
        "service.frgu_service_id": fact.service.frgu_service_id,
        "service.frgu_procedure_id": fact.service.frgu_procedure_id,
        "organization.frgu_authority_id": org.frgu_authority_id,
    }


def citizen_record(fact: OgFact) -> dict[str, Any]:
    """The citizen's personal data as sealed on the card (and compared, opened, in a conflict)."""
    c = fact.citizen
    return {
        "last_name": c.last_name,
        "first_name": c.first_name,
        "middle_name": c.middle_name,
        "birth_date": c.birth_date.isoformat(),
        "snils": c.snils,
    }


def card_row(fact: OgFact, **columns: Any) -> dict[str, Any]:
    """A new card's row from its fact: the mapped fields plus ``columns`` (hash, sealed data, times…)."""
    row = {FACT_COLUMNS[path]: value for path, value in fact_fields(fact).items()}
    row["card_id"] = fact.card_id
    row["message_id"] = fact.message_id
    row.update(columns)
    return row


class FactConflict(Base):
    """A different payload under a known ``card_id``: recorded, not applied. One row per distinct payload."""

    __tablename__ = "module_fact_conflicts"
    __table_args__ = (UniqueConstraint("card_id", "payload_hash"),)

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_uuid)
    card_id: Mapped[str] = mapped_column(String(100), index=True)
    message_id: Mapped[str] = mapped_column(String(100))
    payload_hash: Mapped[str] = mapped_column(String(64))
    differing_fields: Mapped[list[str]] = mapped_column(JSON)
    pii_key_id: Mapped[str] = mapped_column(String(40))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


REJECTED = "rejected"
REDRIVEN = "redriven"


class RejectedFact(Base):
    """A message that failed validation, kept whole (sealed) with every reason, for re-driving."""

    __tablename__ = "module_rejected_facts"

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_uuid)
    raw_hash: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(100))
    card_id: Mapped[str | None] = mapped_column(String(100), index=True)
    reasons: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    pii_key_id: Mapped[str] = mapped_column(String(40))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default=REJECTED)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IntakeAttempt(Base):
    """How often intake started handling one returned message on its own (by the hash of its body).
    Written, and committed, before each such attempt: when a message kills the worker, only its own
    count grows — not that of the messages that happened to be in flight beside it, which the
    broker's delivery count cannot tell apart. Deleted by the personal-data purge with age."""

    __tablename__ = "module_intake_attempts"

    raw_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer)
    last_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
