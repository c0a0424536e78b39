"""Role scopes (SPEC §10) enforced by analytics itself, whatever the caller asks: ЛКО passes the cabinet
user's scope with every request, and the answer never reaches past it.

- no scope: the calling system itself (the module's ИАС export, ЛКО's own jobs) — everything;
- ``federal``: everything;
- ``regional``: its region only — summaries and series of the region or of organisations within it
  (an organisation's figures are cut to the region), ratings of the region's organisations; asking
  for the country, another region or a rating of regions is refused (403 ``scope_violation``);
- ``organization``: its ИНН only — summaries and series of the organisation; no ratings (they
  would show other organisations' figures)."""

from __future__ import annotations

from dataclasses import dataclass

from posog.analytics.contracts import CallerScope, Level


class ScopeViolation(Exception):
    """The request reaches past the caller's scope; ``message`` is Russian, for the cabinet user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Target:
    """What a request may read after the scope was applied."""

    region_code: str | None
    inn: str | None


def for_figures(scope: CallerScope | None, level: Level, region_code: str | None, inn: str | None) -> Target:
    """The region and ИНН a summary or time series may read for ``scope``."""
    if scope is None or scope.role == "federal":
        return Target(region_code, inn)
    if scope.role == "regional":
        if level == "country":
            raise ScopeViolation("Региональному оператору недоступны показатели по стране")
        if region_code is not None and region_code != scope.region_code:
            raise ScopeViolation("Региональному оператору доступны только показатели своего региона")
        return Target(scope.region_code, inn)
    if level != "organization":
        raise ScopeViolation("Пользователю организации доступны только показатели своей организации")
    if inn is not None and inn != scope.inn:
        raise ScopeViolation("Пользователю организации доступны только показатели своей организации")
    return Target(region_code, scope.inn)


def for_ratings(scope: CallerScope | None, level: Level, region_code: str | None) -> str | None:
    """The region a rating may cover for ``scope`` (None: all regions)."""
    if scope is None or scope.role == "federal":
        return region_code
    if scope.role == "organization":
        raise ScopeViolation("Пользователю организации рейтинги недоступны: они показывают другие организации")
    if level != "organization":
        raise ScopeViolation("Региональному оператору доступен только рейтинг организаций своего региона")
    if region_code is not None and region_code != scope.region_code:
        raise ScopeViolation("Региональному оператору доступны только показатели своего региона")
    return scope.region_code
