"""Who sees what in ЛКО (SPEC §10): a federal operator everything, a regional operator one region, an
organisation user one ИНН. Every query of responses, reports and cards takes a Scope."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["federal", "regional", "organization"]

ROLE_NAMES: dict[str, str] = {
    "federal": "Федеральный оператор",
    "regional": "Региональный оператор",
    "organization": "Пользователь организации",
}


@dataclass(frozen=True)
class Scope:
    role: Role
    region_code: str | None = None
    inn: str | None = None

    def __post_init__(self) -> None:
        if self.role == "regional" and not self.region_code:
            raise ValueError("a regional scope needs a region code")
        if self.role == "organization" and not self.inn:
            raise ValueError("an organisation scope needs an ИНН")

    @classmethod
    def federal(cls) -> Scope:
        return cls("federal")

    def allows(self, *, region_code: str | None, inn: str | None) -> bool:
        """Whether a record of (region, ИНН) is visible in this scope."""
        if self.role == "federal":
            return True
        if self.role == "regional":
            return region_code == self.region_code
        return inn == self.inn
