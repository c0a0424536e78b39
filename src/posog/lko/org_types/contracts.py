"""Shapes of the directory administration API (``org-types:write``)."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from posog.lko.contracts import ApiError


class RowProblem(BaseModel):
    row: int  # the item's position in the list, from 1 (0: the body as a whole)
    message: str


class ImportRejected(BaseModel):
    """422 of ``PUT /api/v1/org-types``: nothing was imported; every bad row is named."""

    error: ApiError
    rows: list[RowProblem]

    @classmethod
    def for_request_problems(cls, error: ApiError, problems: Sequence[tuple[str, str]]) -> ImportRejected:
        """A malformed request (no JSON body): row 0, the body as a whole, with each problem."""
        return cls(error=error, rows=[RowProblem(row=0, message=message) for _, message in problems])


class ImportResult(BaseModel):
    """200 of ``PUT /api/v1/org-types``: what the import did."""

    created: int
    updated: int
    unchanged: int
