"""Which calling systems may do what in ЛКО's REST API (SPEC §7). The mechanism is
:mod:`posog.core.service_auth`."""

from __future__ import annotations

from posog.core.service_auth import ServiceCaller, ServiceKeyring, require_service

# Which operations each calling system may perform. Extend here when a system needs more.
SERVICE_OPERATIONS: dict[str, frozenset[str]] = {
    "module": frozenset({"questionnaires:read", "org-types:read", "responses:read"}),
    "lkp": frozenset({"questionnaires:read", "responses:write"}),
    "analytics": frozenset({"responses:read", "org-types:read", "questionnaires:read"}),
    # Administrators' tooling: bulk import of the directory, questionnaires managed from scripts.
    "admin": frozenset({"org-types:read", "org-types:write", "questionnaires:read", "questionnaires:write"}),
}

__all__ = ["SERVICE_OPERATIONS", "ServiceCaller", "ServiceKeyring", "require_service"]
