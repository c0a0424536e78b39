"""Shapes of the directory administration API (``org-types:write``)."""

from __future__ import annotations

from pydantic import BaseModel

from posog.lko.contracts import ApiError


class RowProblem(BaseModel):
    row: int  # the item's position in the list, from 1 (0: the body as a whole)
    message: str


class ImportRejected(BaseModel):
    """422 of ``PUT /api/v1/org-types``: nothing was imported; every bad row is named."""

    error: ApiError
    rows: list[RowProblem]


class ImportResult(BaseModel):
    """200 of ``PUT /api/v1/org-types``: what the import did."""

    created: int
    updated: int
    unchanged: int
