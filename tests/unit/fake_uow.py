"""Fake units of work for the handlers' unit tests: the repositories the module's and ЛКО's handlers
reach (``uow.links``, ``uow.cards``, ``uow.outbox``; ``uow.responses``…) kept in memory, with the
real unit's one promise: what a handler did not commit is gone when the unit ends (or is rolled back),
and the unique constraints the handlers rely on (one response per card, one active questionnaire per
type and level) refuse at flush or commit as the database does.

A link moves only as the lifecycle allows (:mod:`posog.module.links.lifecycle`, the same transitions
the SQL statements are generated from). :class:`FakeModuleUnitOfWork` can stand in for either store of
links: ``fast=True`` is the PostgreSQL repository's shape, whose look-up may open a link and whose
completion is a statement committed on its own; ``fast=False`` the plain one."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from types import TracebackType
from typing import Any, Self

from sqlalchemy.exc import IntegrityError

from posog.lko.contracts import QuestionnaireDocument
from posog.lko.org_types.model import OrgTypeEntry
from posog.lko.questionnaires.announcements import Announcement
from posog.lko.questionnaires.model import Questionnaire
from posog.lko.responses.model import SurveyResponse
from posog.module.links.catalog import version_key
from posog.module.links.lifecycle import COMPLETE, NOTIFY, OPEN, Transition
from posog.module.links.queries import LinkWithCard


@dataclass
class FakeCard:
    card_id: str
    type_code: str
    survey_level: str
    service_date: date
    status: str
    created_at: datetime
    updated_at: datetime
    service_name: str | None = "Выдача паспорта гражданина РФ"
    org_name: str = "ГБУ «МФЦ города Москвы»"
    org_address: str = "г. Москва, ул. Тверская, д. 1"
    inn: str = "7703012345"
    ogrn: str = "1027700000000"
    kpp: str | None = "770301001"
    region_code: str = "77"
    pii_key_id: str | None = None
    pii: bytes | None = None
    frgu_service_id: str | None = None


@dataclass
class FakeLink:
    id: str
    card_id: str
    token_hash: str
    questionnaire_id: str
    questionnaire_version: int
    state: str
    expires_at: datetime
    issued_at: datetime
    notified_at: datetime | None = None
    opened_at: datetime | None = None
    completed_at: datetime | None = None
    response_id: str | None = None
    revoked_at: datetime | None = None
    revoke_reason: str | None = None


@dataclass
class ModuleData:
    """The module's tables, as far as the handlers under test reach them."""

    cards: dict[str, FakeCard] = field(default_factory=dict)
    links: dict[str, FakeLink] = field(default_factory=dict)
    outbox: list[dict[str, Any]] = field(default_factory=list)


class FakeUnitOfWork:
    """Rolls back unless committed: handlers work on a copy of the committed data."""

    def __init__(self, committed: Any) -> None:
        self.committed = committed
        self.data = copy.deepcopy(committed)
        self.commits = 0
        self._open = False

    async def __aenter__(self) -> Self:
        assert not self._open, "unit of work entered twice"
        self._open = True
        self.data = copy.deepcopy(self.committed)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._open = False
        self.data = copy.deepcopy(self.committed)

    async def commit(self) -> None:
        assert self._open, "commit outside 'async with'"
        self.committed = copy.deepcopy(self.data)
        self.commits += 1

    async def rollback(self) -> None:
        assert self._open, "rollback outside 'async with'"
        self.data = copy.deepcopy(self.committed)

    def own_transaction(self, change: Any) -> None:
        """A statement that commits on its own (the PostgreSQL hot path): applied to the committed
        data and to the unit's view of it."""
        change(self.committed)
        change(self.data)


def _moved(link: FakeLink, transition: Transition, at: datetime, values: Mapping[str, Any]) -> bool:
    if not transition.allows(link.state):
        return False
    link.state = transition.target
    if transition.stamp is not None:
        setattr(link, transition.stamp, at)
    for name, value in values.items():
        setattr(link, name, value)
    return True


class FakeLinks:
    def __init__(self, uow: FakeModuleUnitOfWork, *, fast: bool) -> None:
        self._uow = uow
        self._fast = fast

    def _by_token(self, data: ModuleData, token_hash: str) -> FakeLink | None:
        return next((link for link in data.links.values() if link.token_hash == token_hash), None)

    async def find(self, token_hash: str) -> LinkWithCard | None:
        link = self._by_token(self._uow.data, token_hash)
        return None if link is None else _with_card(link, self._uow.data.cards[link.card_id])

    async def find_and_open(
        self, token_hash: str, *, now: datetime, open_versions: Iterable[str]
    ) -> tuple[LinkWithCard, bool] | None:
        found = await self.find(token_hash)
        if found is None or not self._fast:
            return None if found is None else (found, False)
        openable = (
            OPEN.allows(found.state)
            and found.expires_at > now
            and version_key(found.questionnaire_id, found.questionnaire_version) in set(open_versions)
        )
        if openable:
            self._uow.own_transaction(lambda data: _moved(data.links[found.link_id], OPEN, now, {}))
        return found, openable

    async def by_card(self, card_id: str) -> FakeLink | None:
        return next((link for link in self._uow.data.links.values() if link.card_id == card_id), None)

    async def by_token(self, token_hash: str) -> FakeLink | None:
        return self._by_token(self._uow.data, token_hash)

    async def move(
        self, transition: Transition, link_id: str, *, at: datetime, from_state: str | None = None, **values: Any
    ) -> bool:
        link = self._uow.data.links.get(link_id)
        if link is None or (from_state is not None and link.state != from_state):
            return False
        return _moved(link, transition, at, values)

    async def complete(self, token_hash: str, *, response_id: str, now: datetime) -> bool:
        def complete(data: ModuleData) -> bool:
            link = self._by_token(data, token_hash)
            return (
                link is not None and link.expires_at > now and _moved(link, COMPLETE, now, {"response_id": response_id})
            )

        if not self._fast:
            return complete(self._uow.data)
        done = complete(copy.deepcopy(self._uow.committed))
        if done:
            self._uow.own_transaction(complete)
        return done

    async def notify(self, card_ids: Sequence[str], *, at: datetime) -> None:
        for link in self._uow.data.links.values():
            if link.card_id in card_ids:
                _moved(link, NOTIFY, at, {})

    async def add(self, rows: Sequence[dict[str, Any]]) -> None:
        for row in rows:
            link_id = row.get("id") or f"link-{len(self._uow.data.links) + 1}"
            self._uow.data.links[link_id] = FakeLink(id=link_id, **row)


class FakeCards:
    def __init__(self, uow: FakeModuleUnitOfWork) -> None:
        self._uow = uow

    async def waiting(self, type_code: str, level: str, *, limit: int) -> list[FakeCard]:
        cards = [
            card
            for card in self._uow.data.cards.values()
            if card.type_code == type_code and card.survey_level == level and card.status == "waiting"
        ]
        return sorted(cards, key=lambda card: card.created_at)[:limit]

    async def get(self, card_id: str) -> FakeCard | None:
        return self._uow.data.cards.get(card_id)


class FakeOutbox:
    def __init__(self, uow: FakeModuleUnitOfWork) -> None:
        self._uow = uow

    async def add(self, rows: Sequence[dict[str, Any]]) -> None:
        self._uow.data.outbox.extend(dict(row) for row in rows)


class FakeModuleUnitOfWork(FakeUnitOfWork):
    committed: ModuleData
    data: ModuleData

    def __init__(self, data: ModuleData | None = None, *, fast: bool = False) -> None:
        super().__init__(data if data is not None else ModuleData())
        self.links = FakeLinks(self, fast=fast)
        self.cards = FakeCards(self)
        self.outbox = FakeOutbox(self)


def _with_card(link: FakeLink, card: FakeCard) -> LinkWithCard:
    return LinkWithCard(
        link_id=link.id,
        state=link.state,
        expires_at=link.expires_at,
        questionnaire_id=link.questionnaire_id,
        questionnaire_version=link.questionnaire_version,
        response_id=link.response_id,
        card_id=card.card_id,
        survey_level=card.survey_level,
        service_date=card.service_date,
        service_name=card.service_name,
        org_name=card.org_name,
        org_address=card.org_address,
        inn=card.inn,
        ogrn=card.ogrn,
        kpp=card.kpp,
        type_code=card.type_code,
        region_code=card.region_code,
    )


class FakeCatalog:
    """What ЛКО publishes, as the module's questionnaire catalog answers it: active questionnaires by
    (type, level), versions by (id, version), and which questionnaires still collect answers."""

    def __init__(self, *documents: QuestionnaireDocument) -> None:
        self.versions = {(d.id, d.version): d for d in documents}
        self.active_by_kind = {(d.type_code, d.level): d for d in documents}
        self.withdrawn: set[str] = set()
        self.cached = True  # whether open_versions() already knows the versions (the usual case)
        self.forgotten: list[tuple[str, str]] = []

    def open_versions(self) -> Mapping[str, QuestionnaireDocument]:
        if not self.cached:
            return {}
        return {version_key(d.id, d.version): d for d in self.versions.values() if d.id not in self.withdrawn}

    async def version(self, questionnaire_id: str, version: int) -> QuestionnaireDocument | None:
        return self.versions.get((questionnaire_id, version))

    async def collecting(self, questionnaire_id: str) -> bool:
        return questionnaire_id not in self.withdrawn

    async def active(self, type_code: str, level: str) -> QuestionnaireDocument | None:
        document = self.active_by_kind.get((type_code, level))
        return None if document is None or document.id in self.withdrawn else document

    def forget(self, type_code: str, level: str) -> None:
        self.forgotten.append((type_code, level))


# --- ЛКО ------------------------------------------------------------------------------------------


def _integrity_error(what: str) -> IntegrityError:
    return IntegrityError(f"fake: {what}", {}, Exception("unique constraint"))


@dataclass
class LkoData:
    """ЛКО's tables, as far as the handlers under test reach them."""

    org_types: dict[str, OrgTypeEntry] = field(default_factory=dict)
    questionnaires: dict[str, Questionnaire] = field(default_factory=dict)
    versions: dict[tuple[str, int], QuestionnaireDocument] = field(default_factory=dict)
    announcements: list[Announcement] = field(default_factory=list)
    responses: dict[str, SurveyResponse] = field(default_factory=dict)
    pending_completions: dict[str, datetime | None] = field(default_factory=dict)  # response id → sent at

    def check(self) -> None:
        """The unique constraints a commit would enforce."""
        active = [(q.type_code, q.level) for q in self.questionnaires.values() if q.status == "active"]
        if len(active) != len(set(active)):
            raise _integrity_error("two active questionnaires for one type and level")
        for column in ("card_id", "idempotency_key"):
            values = [getattr(r, column) for r in self.responses.values()]
            if len(values) != len(set(values)):
                raise _integrity_error(f"responses.{column}")


class FakeOrgTypes:
    def __init__(self, uow: FakeLkoUnitOfWork) -> None:
        self._uow = uow

    async def get(self, code: str) -> OrgTypeEntry | None:
        return self._uow.data.org_types.get(code)


class FakeQuestionnaires:
    def __init__(self, uow: FakeLkoUnitOfWork) -> None:
        self._uow = uow

    async def get(self, questionnaire_id: str) -> Questionnaire | None:
        return self._uow.data.questionnaires.get(questionnaire_id)

    async def locked(self, questionnaire_id: str) -> Questionnaire | None:
        return self._uow.data.questionnaires.get(questionnaire_id)

    def add(self, questionnaire: Questionnaire) -> None:
        self._uow.data.questionnaires[questionnaire.id] = questionnaire

    async def latest_version(self, questionnaire_id: str) -> int:
        return max((version for qid, version in self._uow.data.versions if qid == questionnaire_id), default=0)

    async def active_besides(self, questionnaire: Questionnaire) -> list[Questionnaire]:
        return [
            other
            for other in self._uow.data.questionnaires.values()
            if (other.type_code, other.level, other.status) == (questionnaire.type_code, questionnaire.level, "active")
            and other.id != questionnaire.id
        ]

    async def add_version(self, document: QuestionnaireDocument, *, published_at: datetime) -> None:
        self._uow.data.check()  # the withdrawals so far are written first, as a flush would
        self._uow.data.versions[(document.id, document.version)] = document

    def announce(self, announcement: Announcement) -> None:
        self._uow.data.announcements.append(announcement)


class FakeResponses:
    def __init__(self, uow: FakeLkoUnitOfWork) -> None:
        self._uow = uow

    async def add(self, response: SurveyResponse) -> None:
        self._uow.data.responses[response.id] = response
        self._uow.data.pending_completions[response.id] = None
        self._uow.data.check()  # as the flush would

    async def by_idempotency_key(self, idempotency_key: str) -> SurveyResponse | None:
        return next((r for r in self._uow.data.responses.values() if r.idempotency_key == idempotency_key), None)

    async def completion_tokens(self, response_ids: list[str]) -> dict[str, str | None]:
        responses = self._uow.data.responses
        return {rid: responses[rid].completion_token for rid in response_ids if rid in responses}

    async def settle_completion(
        self, response_id: str, *, completed_at: datetime | None, refusal: str | None = None, at: datetime
    ) -> None:
        response = self._uow.data.responses[response_id]
        response.completion_token = None
        response.link_completed_at = completed_at
        response.link_refusal = refusal
        self._uow.data.pending_completions[response_id] = at


class FakeLkoUnitOfWork(FakeUnitOfWork):
    committed: LkoData
    data: LkoData

    def __init__(self, data: LkoData | None = None) -> None:
        super().__init__(data if data is not None else LkoData())
        self.org_types = FakeOrgTypes(self)
        self.questionnaires = FakeQuestionnaires(self)
        self.responses = FakeResponses(self)

    async def commit(self) -> None:
        assert self._open, "commit outside 'async with'"
        self.data.check()
        await super().commit()
