"""Use cases of the organisation-type directory: add a type, edit one (rename, sphere, deactivate),
import many at once. Each takes a unit of work and commits. Codes never change: facts and
questionnaires refer to them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from posog.core.db import UnitOfWork
from posog.lko.contracts import OrgType
from posog.lko.org_types.model import OrgTypeEntry

log = structlog.get_logger(__name__)


class OrgTypeNotFound(Exception):
    """No organisation type with this code."""


class OrgTypeConflict(Exception):
    """The change collides with the directory's state; ``message`` is Russian."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ImportSummary:
    created: int
    updated: int
    unchanged: int


async def add_org_type(uow: UnitOfWork, org_type: OrgType, *, now: datetime) -> None:
    """Add a new type. Raises :class:`OrgTypeConflict` if the code is taken."""
    if await uow.session.get(OrgTypeEntry, org_type.code) is not None:
        raise OrgTypeConflict(f"Тип организации с кодом «{org_type.code}» уже есть в справочнике")
    uow.session.add(OrgTypeEntry(**org_type.model_dump(), created_at=now, updated_at=now))
    try:
        await uow.commit()
    except IntegrityError:
        raise OrgTypeConflict(f"Тип организации с кодом «{org_type.code}» уже есть в справочнике") from None
    log.info("lko.org_types.added", code=org_type.code)


async def update_org_type(uow: UnitOfWork, org_type: OrgType, *, now: datetime) -> None:
    """Rename a type, change its sphere, (de)activate it. Raises :class:`OrgTypeNotFound`."""
    entry = await uow.session.get(OrgTypeEntry, org_type.code)
    if entry is None:
        raise OrgTypeNotFound(org_type.code)
    if _apply(entry, org_type, now):
        await uow.commit()
        log.info("lko.org_types.updated", code=org_type.code, active=org_type.active)


def _apply(entry: OrgTypeEntry, org_type: OrgType, now: datetime) -> bool:
    if entry.to_contract() == org_type:
        return False
    entry.name, entry.sphere, entry.active = org_type.name, org_type.sphere, org_type.active
    entry.updated_at = now
    return True


async def import_org_types(uow: UnitOfWork, items: list[OrgType], *, now: datetime) -> ImportSummary:
    """Create the new types and update the existing ones, all in one transaction (validated
    beforehand: see :mod:`.io`). Types absent from ``items`` are left as they are — to deactivate one,
    list it with ``active`` false. Raises :class:`OrgTypeConflict` if another import raced this one."""
    codes = [item.code for item in items]
    existing = {
        entry.code: entry
        for entry in await uow.session.scalars(select(OrgTypeEntry).where(OrgTypeEntry.code.in_(codes)))
    }
    created = updated = unchanged = 0
    for item in items:
        entry = existing.get(item.code)
        if entry is None:
            uow.session.add(OrgTypeEntry(**item.model_dump(), created_at=now, updated_at=now))
            created += 1
        elif _apply(entry, item, now):
            updated += 1
        else:
            unchanged += 1
    try:
        await uow.commit()
    except IntegrityError:
        raise OrgTypeConflict("Справочник одновременно изменили; повторите импорт") from None
    log.info("lko.org_types.imported", created=created, updated=updated, unchanged=unchanged)
    return ImportSummary(created, updated, unchanged)
