"""The ``lko_responses`` table: one row per answered card. No personal data — the card id, the
organisation, the questionnaire version and the answers."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, Index, Integer, String, column
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from posog.core.db import Base, UTCDateTime, UUIDStr
from posog.core.outbox import Delivery, DeliveryColumns
from posog.lko.contracts import StoredResponse, SurveyLevel

# JSONB on PostgreSQL, JSON text on SQLite (as the questionnaire documents).
JsonAnswers = JSON().with_variant(JSONB(), "postgresql")


class SurveyResponse(Base):
    """A citizen's answers to the questionnaire version pinned by the card's link.

    Exactly once per card: ``card_id`` is unique, so of concurrent submissions for one link only one
    row can ever exist; ``idempotency_key`` is unique, so a retried submission finds its row.

    ``completion_token`` is the link's token, kept only while the module has not yet confirmed that
    the link is completed by this response: the recovery step needs it to re-send the completion
    (the module's API addresses links by token). It is cleared once the completion is settled
    (``link_completed_at``, or ``link_refusal`` when the module refused). ``token_hash`` (SHA-256,
    as the module stores it) stays, to recognise a retry of the same submission."""

    __tablename__ = "lko_responses"
    __table_args__ = (
        Index("ix_lko_responses_submitted", "submitted_at", "id"),
        Index("ix_lko_responses_inn_submitted", "inn", "submitted_at", "id"),
        Index("ix_lko_responses_region_submitted", "region_code", "submitted_at", "id"),
        # Only the (few) responses whose link completion is still to be confirmed.
        Index(
            "ix_lko_responses_pending_completion",
            "submitted_at",
            sqlite_where=column("completion_token").isnot(None),
            postgresql_where=column("completion_token").isnot(None),
        ),
    )

    id: Mapped[str] = mapped_column(UUIDStr(), primary_key=True)
    card_id: Mapped[str] = mapped_column(String(100), unique=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    questionnaire_id: Mapped[str] = mapped_column(String(36))
    questionnaire_version: Mapped[int] = mapped_column(Integer)
    type_code: Mapped[str] = mapped_column(String(40))
    survey_level: Mapped[str] = mapped_column(String(16))
    inn: Mapped[str] = mapped_column(String(12))
    ogrn: Mapped[str] = mapped_column(String(15))
    kpp: Mapped[str | None] = mapped_column(String(9))
    region_code: Mapped[str] = mapped_column(String(2))
    org_name: Mapped[str] = mapped_column(String(1000))
    service_date: Mapped[date] = mapped_column(Date)
    answers: Mapped[dict[str, Any]] = mapped_column(JsonAnswers)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completion_token: Mapped[str | None] = mapped_column(String(128))
    link_completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    link_refusal: Mapped[str | None] = mapped_column(String(40))

    def to_contract(self) -> StoredResponse:
        """The v1 wire shape (no token, no bookkeeping)."""
        level: SurveyLevel = self.survey_level  # type: ignore[assignment]
        return StoredResponse(
            id=self.id,
            card_id=self.card_id,
            questionnaire_id=self.questionnaire_id,
            questionnaire_version=self.questionnaire_version,
            type_code=self.type_code,
            survey_level=level,
            inn=self.inn,
            ogrn=self.ogrn,
            kpp=self.kpp,
            region_code=self.region_code,
            org_name=self.org_name,
            service_date=self.service_date.isoformat(),
            answers=self.answers,
            submitted_at=self.submitted_at.isoformat(),
        )


class PendingCompletion(DeliveryColumns, Base):
    """The link completion of response ``response_id``, to be confirmed by the module: written with
    the response (the ``lko-completions`` delivery of the one engine, :mod:`posog.core.outbox`),
    sent once the module has settled it — completed, or refused for good. The token it needs stays
    in the response's ``completion_token`` (cleared at the same time)."""

    __tablename__ = "lko_response_completions"
    __table_args__ = (Index("ix_lko_response_completions_due", "sent_at", "next_attempt_at"),)

    response_id: Mapped[str] = mapped_column(UUIDStr(), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


COMPLETIONS = Delivery("lko-completions", PendingCompletion)
