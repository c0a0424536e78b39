"""Read side of the organisation-type directory."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from posog.lko.contracts import OrgType
from posog.lko.org_types.model import OrgTypeEntry


async def list_org_types(session: AsyncSession, *, active_only: bool = False) -> list[OrgType]:
    """All organisation types ordered by code (inactive ones too, unless ``active_only``)."""
    query = select(OrgTypeEntry).order_by(OrgTypeEntry.code)
    if active_only:
        query = query.where(OrgTypeEntry.active.is_(True))
    return [entry.to_contract() for entry in await session.scalars(query)]


async def active_org_type_codes(session: AsyncSession) -> list[str]:
    """Codes of the active organisation types, ordered."""
    query = select(OrgTypeEntry.code).where(OrgTypeEntry.active.is_(True)).order_by(OrgTypeEntry.code)
    return list(await session.scalars(query))
