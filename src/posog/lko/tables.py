"""Every ORM model of ЛКО, so that Alembic's env (and tests) import one module to see all its tables."""

from __future__ import annotations

from posog.lko.accounts import model as accounts_model
from posog.lko.org_types import model as org_types_model
from posog.lko.questionnaires import announcements as announcements_model
from posog.lko.questionnaires import model as questionnaires_model
from posog.lko.responses import model as responses_model

MODEL_MODULES = (org_types_model, questionnaires_model, responses_model, accounts_model, announcements_model)

__all__ = ["MODEL_MODULES"]
