"""The module's unit of work: one transaction with the module's repositories on it.

``async with ModuleUnitOfWork(db) as uow:`` at an entry point (a request, a message batch, a job),
then a handler works through ``uow.cards``, ``uow.links``, ``uow.outbox`` and ``uow.intake`` and
commits. Which implementation a repository has (the links' asyncpg hot path on PostgreSQL) is chosen
here, once, when the unit is built; handlers never ask which database they run on. Unit tests hand
handlers a fake with in-memory repositories of the same shape (``tests/unit/fake_uow.py``)."""

from __future__ import annotations

from posog.core.db import Database, UnitOfWork
from posog.module.intake.repository import CardRepository, IntakeRepository
from posog.module.links.repository import LinkRepository, link_repository
from posog.module.notifications.repository import OutboxRepository


class ModuleUnitOfWork(UnitOfWork):
    cards: CardRepository
    links: LinkRepository
    outbox: OutboxRepository
    intake: IntakeRepository

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.cards = CardRepository(self)
        self.links = link_repository(self)
        self.outbox = OutboxRepository(self)
        self.intake = IntakeRepository(self)
