"""The module's unit of work: one transaction with the module's repositories on it.

``async with ModuleUnitOfWork(db) as uow:`` at an entry point (a request, a message batch, a job),
then a handler works through ``uow.cards``, ``uow.links``, ``uow.outbox`` and ``uow.intake`` and
commits. Which implementation a repository has (the links' asyncpg hot path on PostgreSQL) is chosen
here, once, when the unit is built; handlers never ask which database they run on. Unit tests hand
handlers a fake with in-memory repositories of the same shape (``tests/unit/fake_uow.py``)."""

from __future__ import annotations

from functools import cached_property

from posog.core.db import UnitOfWork
from posog.module.intake.repository import CardRepository, IntakeRepository
from posog.module.links.repository import LinkRepository, link_repository
from posog.module.notifications.repository import OutboxRepository


class ModuleUnitOfWork(UnitOfWork):
    # Repositories are made on first use: the link hot path builds one unit per request.

    @cached_property
    def cards(self) -> CardRepository:
        return CardRepository(self)

    @cached_property
    def links(self) -> LinkRepository:
        return link_repository(self)

    @cached_property
    def outbox(self) -> OutboxRepository:
        return OutboxRepository(self)

    @cached_property
    def intake(self) -> IntakeRepository:
        return IntakeRepository(self)
