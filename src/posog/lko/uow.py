"""ЛКО's unit of work: one transaction with ЛКО's repositories on it.

An entry point opens it (``async with LkoUnitOfWork(db) as uow``, or the routes' ``UowDep``) and a
handler works through ``uow.questionnaires``, ``uow.responses``, ``uow.accounts`` and ``uow.org_types``
and commits. Unit tests hand handlers a fake of the same shape (``tests/unit/fake_uow.py``)."""

from __future__ import annotations

from functools import cached_property

from posog.core.db import UnitOfWork
from posog.lko.accounts.repository import AccountRepository
from posog.lko.org_types.repository import OrgTypeRepository
from posog.lko.questionnaires.repository import QuestionnaireRepository
from posog.lko.responses.repository import ResponseRepository


class LkoUnitOfWork(UnitOfWork):
    @cached_property
    def questionnaires(self) -> QuestionnaireRepository:
        return QuestionnaireRepository(self)

    @cached_property
    def responses(self) -> ResponseRepository:
        return ResponseRepository(self)

    @cached_property
    def accounts(self) -> AccountRepository:
        return AccountRepository(self)

    @cached_property
    def org_types(self) -> OrgTypeRepository:
        return OrgTypeRepository(self)
