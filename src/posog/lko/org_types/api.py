"""ЛКО REST API: the organisation-type directory (SPEC §7)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from posog.core.service_auth import require_service
from posog.lko.contracts import OrgTypeList
from posog.lko.deps import API_ERRORS, UowDep
from posog.lko.org_types.queries import list_org_types

router = APIRouter(responses=API_ERRORS, tags=["org-types"])


@router.get("/org-types", response_model=OrgTypeList, dependencies=[Depends(require_service("org-types:read"))])
async def get_org_types(uow: UowDep) -> OrgTypeList:
    """The organisation-type directory, inactive types included (see ``active``)."""
    return OrgTypeList(items=await list_org_types(uow.session))
