"""The ``lko_questionnaires`` and ``lko_questionnaire_versions`` tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    column,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from posog.core.db import Base, UTCDateTime, UUIDStr
from posog.lko.contracts import QuestionnaireDocument, QuestionnaireDraft, SurveyLevel

QuestionnaireStatus = Literal["draft", "active", "withdrawn"]
STATUSES: tuple[str, ...] = get_args(QuestionnaireStatus)
LEVELS: tuple[str, ...] = get_args(SurveyLevel)

# JSONB on PostgreSQL (indexable, compact); JSON text on SQLite.
JsonDocument = JSON().with_variant(JSONB(), "postgresql")


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


class Questionnaire(Base):
    """A questionnaire of one organisation type and survey level.

    ``draft`` is the editable content (a ``QuestionnaireDraft``); each publication freezes it into a new
    ``QuestionnaireVersion``, and ``active_version`` names the one citizens are given while ``status`` is
    ``active``.
    """

    __tablename__ = "lko_questionnaires"
    __table_args__ = (
        CheckConstraint(f"status IN ({_quoted(STATUSES)})", name="status"),
        CheckConstraint(f"level IN ({_quoted(LEVELS)})", name="level"),
        CheckConstraint("status <> 'active' OR active_version IS NOT NULL", name="active_has_version"),
        # At most one active questionnaire per (type, level); drafts and withdrawn ones are unlimited.
        Index(
            "ux_lko_questionnaires_active_type_level",
            "type_code",
            "level",
            unique=True,
            sqlite_where=column("status") == "active",
            postgresql_where=column("status") == "active",
        ),
    )

    id: Mapped[str] = mapped_column(UUIDStr(), primary_key=True)
    type_code: Mapped[str] = mapped_column(
        String(40), ForeignKey("lko_org_types.code", ondelete="RESTRICT"), index=True
    )
    level: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20), default="draft")
    draft: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    active_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class QuestionnaireVersion(Base):
    """An immutable published version; ``document`` is the full v1 ``QuestionnaireDocument``."""

    __tablename__ = "lko_questionnaire_versions"

    questionnaire_id: Mapped[str] = mapped_column(
        UUIDStr(),
        # Named explicitly: the convention's name would exceed PostgreSQL's 63 characters.
        ForeignKey("lko_questionnaires.id", ondelete="RESTRICT", name="fk_lko_questionnaire_versions_qid"),
        primary_key=True,
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    document: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime())

    def to_document(self) -> QuestionnaireDocument:
        """The stored document as the v1 contract."""
        return QuestionnaireDocument.model_validate(self.document)


def freeze(
    questionnaire_id: str, version: int, type_code: str, level: SurveyLevel, draft: QuestionnaireDraft
) -> QuestionnaireDocument:
    """The immutable document that publishing ``draft`` as ``version`` produces."""
    return QuestionnaireDocument(
        id=questionnaire_id,
        version=version,
        type_code=type_code,
        level=level,
        title=draft.title,
        validity_days=draft.validity_days,
        questions=draft.questions,
    )
