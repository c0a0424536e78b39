"""The ``lko_org_types`` table: one row per organisation type."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, String, true
from sqlalchemy.orm import Mapped, mapped_column

from posog.core.db import Base, UTCDateTime
from posog.lko.contracts import OrgType


class OrgTypeEntry(Base):
    """An entry of the organisation-type directory. ``code`` is stable: facts and questionnaires refer
    to it, so an entry is deactivated rather than deleted or renamed."""

    __tablename__ = "lko_org_types"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    sphere: Mapped[str | None] = mapped_column(String(40))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    def to_contract(self) -> OrgType:
        """The v1 wire shape of this entry."""
        return OrgType(code=self.code, name=self.name, sphere=self.sphere, active=self.active)
