"""FastAPI dependencies shared by ЛКО's routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request

from posog.core.appstate import need
from posog.core.db import Database
from posog.core.http import SERVICE_ERRORS, error_responses
from posog.lko.uow import LkoUnitOfWork

# Error responses every service-authenticated route may give (for the OpenAPI document).
API_ERRORS: dict[int | str, dict[str, Any]] = error_responses(*SERVICE_ERRORS)


def database(request: Request) -> Database:
    return need(request, Database)


async def _database(request: Request) -> Database:
    """:func:`database` as a dependency: ``async``, so FastAPI calls it in the event loop rather than
    sending every request's look-up to a worker thread."""
    return database(request)


async def unit_of_work(db: Annotated[Database, Depends(_database)]) -> AsyncIterator[LkoUnitOfWork]:
    """One unit of work per request (ЛКО's, with its repositories); it rolls back unless a handler commits."""
    async with LkoUnitOfWork(db) as uow:
        yield uow


DatabaseDep = Annotated[Database, Depends(_database)]
UowDep = Annotated[LkoUnitOfWork, Depends(unit_of_work)]
