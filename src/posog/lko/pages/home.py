"""The start page: what the signed-in user's role gives access to."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from posog.lko.pages.web import Principal, render

router = APIRouter(include_in_schema=False)


@router.get("/", name="dashboard")
async def dashboard(request: Request, principal: Principal) -> HTMLResponse:
    """Links to the sections of the user's role."""
    return render(request, "lko/dashboard.html", {"section": "dashboard"}, principal=principal)
