"""ЛКО read API (SPEC §7): organisation types, active questionnaires and immutable versions, behind
service bearer keys; driven over HTTP and through the ``LkoClient`` other systems use."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from posog.core.db import Base, Database
from posog.lko import tables
from posog.lko.api import create_app
from posog.lko.client import LkoClient
from posog.lko.contracts import CRITERIA, QuestionnaireDocument
from posog.lko.org_types.model import OrgTypeEntry
from posog.lko.questionnaires.defaults import default_questionnaire_id
from posog.lko.questionnaires.model import Questionnaire, QuestionnaireVersion
from posog.lko.seed import seed_defaults
from posog.settings import Settings

EXPECTED_TYPE_CODES = {
    "mfc", "polyclinic", "hospital", "dental", "school", "kindergarten", "college", "university",
    "additional_education", "social_service", "social_protection", "culture", "library", "museum",
    "theatre", "sport", "employment", "pension_fund", "tax", "registry_office", "traffic_police",
    "migration", "rosreestr", "municipal_admin",
}  # fmt: skip
SPHERES = {"health", "education", "social", "culture", "sport", "employment", "public_administration"}


class ClientFactory(Protocol):
    def __call__(self, key: str | None = ..., *, scheme: str = ...) -> httpx.AsyncClient: ...


async def _create_lko_tables(db: Database) -> None:
    assert tables.MODEL_MODULES  # registers every ЛКО model on Base.metadata
    lko_tables = [table for name, table in Base.metadata.tables.items() if name.startswith("lko_")]
    async with db.engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all, tables=lko_tables)


@pytest.fixture
async def empty_db(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    await _create_lko_tables(db)
    yield db
    await db.dispose()


@pytest.fixture
async def db(empty_db: Database) -> Database:
    await seed_defaults(empty_db)
    return empty_db


@pytest.fixture
def app(db: Database, tmp_path: Path) -> FastAPI:
    return create_app(db, Settings(env="test", var_dir=tmp_path))


@pytest.fixture
async def make_client(app: FastAPI) -> AsyncIterator[ClientFactory]:
    clients: list[httpx.AsyncClient] = []

    def make(key: str | None = "dev-module-key", *, scheme: str = "Bearer") -> httpx.AsyncClient:
        headers = {} if key is None else {"Authorization": f"{scheme} {key}"}
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://lko", headers=headers)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def http(make_client: ClientFactory) -> httpx.AsyncClient:
    return make_client("dev-module-key")


@pytest.fixture
def lko(http: httpx.AsyncClient) -> LkoClient:
    return LkoClient(http)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]


def assert_default_federal(document: QuestionnaireDocument, type_code: str) -> None:
    assert document.id == default_questionnaire_id(type_code)
    assert (document.version, document.type_code, document.level) == (1, type_code, "federal")
    assert document.title == "Оценка качества предоставления услуги"
    assert document.validity_days == 30
    questions = {question.id: question for question in document.questions}
    assert list(questions) == ["q1", "q2", "q3", "q4", "q5", "q6", "q7"]
    criteria = [questions[f"q{n}"].criterion for n in range(1, 6)]
    assert criteria == ["service_time", "queue_time", "staff", "comfort", "information"]
    assert set(criteria) == set(CRITERIA)
    for question_id in ("q1", "q2", "q3", "q4", "q5", "q6"):
        question = questions[question_id]
        assert (question.kind, question.scale, question.required) == ("rating", 5, True)
    assert questions["q6"].criterion is None
    comment = questions["q7"]
    assert (comment.kind, comment.max_length, comment.required) == ("text", 2000, False)


async def _counts(db: Database) -> tuple[int, int, int]:
    async with db.uow() as uow:
        session = uow.session
        return (
            await session.scalar(select(func.count()).select_from(OrgTypeEntry)) or 0,
            await session.scalar(select(func.count()).select_from(Questionnaire)) or 0,
            await session.scalar(select(func.count()).select_from(QuestionnaireVersion)) or 0,
        )


async def test_every_org_type_has_the_default_federal_questionnaire(lko: LkoClient) -> None:
    org_types = await lko.org_types()

    assert {org_type.code for org_type in org_types} >= EXPECTED_TYPE_CODES
    for org_type in org_types:
        assert org_type.active
        assert org_type.sphere in SPHERES
        document = await lko.active_questionnaire(org_type.code, "federal")
        assert document is not None, org_type.code
        assert_default_federal(document, org_type.code)
    assert next(t for t in org_types if t.code == "mfc").name == "МФЦ"


async def test_no_questionnaire_at_a_level_without_one(lko: LkoClient, http: httpx.AsyncClient) -> None:
    assert await lko.active_questionnaire("mfc", "regional") is None
    assert await lko.active_questionnaire("no_such_type", "federal") is None

    response = await http.get("/api/v1/questionnaires/active", params={"type_code": "mfc", "level": "municipal"})
    assert_error(response, 404, "questionnaire_not_found")


async def test_a_version_is_the_active_document_and_cacheable_forever(lko: LkoClient, http: httpx.AsyncClient) -> None:
    active = await lko.active_questionnaire("school", "federal")
    assert active is not None

    assert await lko.questionnaire_version(active.id, active.version) == active
    response = await http.get(f"/api/v1/questionnaires/{active.id}/versions/{active.version}")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=86400, immutable"
    etag = response.headers["etag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    assert "Оценка качества" in response.text  # Russian travels as UTF-8, not \u escapes
    assert QuestionnaireDocument.model_validate_json(response.content) == active

    revalidated = await http.get(
        f"/api/v1/questionnaires/{active.id}/versions/{active.version}", headers={"If-None-Match": etag}
    )
    assert revalidated.status_code == 304
    assert revalidated.headers["etag"] == etag


async def test_unknown_versions_are_not_found(lko: LkoClient, http: httpx.AsyncClient) -> None:
    active = await lko.active_questionnaire("mfc", "federal")
    assert active is not None

    assert await lko.questionnaire_version(str(uuid.uuid4()), 1) is None
    assert await lko.questionnaire_version(active.id, 2) is None
    for path in (
        f"/api/v1/questionnaires/{uuid.uuid4()}/versions/1",
        f"/api/v1/questionnaires/{active.id}/versions/0",
        f"/api/v1/questionnaires/{active.id}/versions/-1",
        f"/api/v1/questionnaires/{active.id}/versions/{10**30}",
        "/api/v1/questionnaires/not-a-uuid/versions/1",
        f"/api/v1/questionnaires/{'x' * 5000}/versions/1",
    ):
        assert_error(await http.get(path), 404, "questionnaire_not_found")
    # The same id in upper case is the same questionnaire.
    response = await http.get(f"/api/v1/questionnaires/{active.id.upper()}/versions/1")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "params",
    [
        {"type_code": "mfc", "level": "galactic"},
        {"type_code": "mfc"},
        {"level": "federal"},
        {"type_code": "", "level": "federal"},
        {"type_code": "MFC'; drop table", "level": "federal"},
        {"type_code": "mfc\x00", "level": "federal"},
        {"type_code": "m" * 41, "level": "federal"},
    ],
)
async def test_bad_query_is_a_422_envelope(http: httpx.AsyncClient, params: dict[str, str]) -> None:
    response = await http.get("/api/v1/questionnaires/active", params=params)

    assert_error(response, 422, "validation_error")


async def test_bad_level_names_the_allowed_levels(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/v1/questionnaires/active", params={"type_code": "mfc", "level": "galactic"})

    assert_error(response, 422, "validation_error")
    message = response.json()["error"]["message"]
    assert "«level»" in message
    assert "'federal', 'regional', 'municipal'" in message
    assert "galactic" in message


async def test_non_integer_version_is_a_422_envelope(http: httpx.AsyncClient) -> None:
    response = await http.get(f"/api/v1/questionnaires/{uuid.uuid4()}/versions/latest")

    assert_error(response, 422, "validation_error")


@pytest.mark.parametrize(
    ("key", "scheme"),
    [(None, "Bearer"), ("wrong-key", "Bearer"), ("dev-module-key", "Basic"), ("", "Bearer")],
)
async def test_callers_without_a_valid_key_are_unauthorized(
    make_client: ClientFactory, key: str | None, scheme: str
) -> None:
    client = make_client(key, scheme=scheme)
    for path in (
        "/api/v1/org-types",
        "/api/v1/questionnaires/active?type_code=mfc&level=federal",
        # Unauthenticated callers learn nothing about their input either.
        "/api/v1/questionnaires/active?level=galactic",
    ):
        response = await client.get(path)
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


async def test_callers_are_limited_to_their_operations(make_client: ClientFactory) -> None:
    lkp = make_client("dev-lkp-key")
    analytics = make_client("dev-analytics-key")

    assert_error(await lkp.get("/api/v1/org-types"), 403, "forbidden")
    assert (await LkoClient(lkp).active_questionnaire("mfc", "federal")) is not None
    assert len(await LkoClient(analytics).org_types()) >= len(EXPECTED_TYPE_CODES)
    # Analytics reads questionnaire versions (which question rates which criterion), never writes.
    assert (await LkoClient(analytics).questionnaire_version(default_questionnaire_id("mfc"), 1)) is not None
    assert_error(await analytics.post("/api/v1/responses", json={}), 403, "forbidden")


async def test_health_needs_no_key_and_unknown_routes_answer_in_the_envelope(
    make_client: ClientFactory,
) -> None:
    anonymous = make_client(None)

    assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
    assert (await anonymous.get("/readyz")).json() == {"status": "ok"}
    assert_error(await anonymous.get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(await anonymous.delete("/healthz"), 405, "method_not_allowed")


async def test_seeding_again_changes_nothing(db: Database) -> None:
    async def snapshot() -> list[tuple[object, ...]]:
        async with db.uow() as uow:
            rows = await uow.session.execute(
                select(Questionnaire.id, Questionnaire.status, Questionnaire.updated_at).order_by(Questionnaire.id)
            )
            return [tuple(row) for row in rows]

    counts, before = await _counts(db), await snapshot()
    assert counts[0] >= len(EXPECTED_TYPE_CODES)
    assert counts[1] == counts[2] == counts[0]

    await seed_defaults(db, clock=lambda: datetime(2031, 1, 1, tzinfo=UTC))

    assert await _counts(db) == counts
    assert await snapshot() == before


async def test_concurrent_seeding_processes_agree(empty_db: Database) -> None:
    other_process = Database(empty_db.url)
    try:
        await asyncio.gather(seed_defaults(empty_db), seed_defaults(other_process), seed_defaults(empty_db))
    finally:
        await other_process.dispose()

    org_types, questionnaires, versions = await _counts(empty_db)
    assert org_types == questionnaires == versions >= len(EXPECTED_TYPE_CODES)


async def test_seeding_does_not_revive_a_withdrawn_default(db: Database, lko: LkoClient) -> None:
    async with db.uow() as uow:
        await uow.session.execute(
            update(Questionnaire)
            .where(Questionnaire.id == default_questionnaire_id("museum"))
            .values(status="withdrawn")
        )
        await uow.commit()

    await seed_defaults(db)

    assert await lko.active_questionnaire("museum", "federal") is None
    # Published versions stay readable for the links that pinned them.
    assert await lko.questionnaire_version(default_questionnaire_id("museum"), 1) is not None


async def test_only_one_questionnaire_is_active_per_type_and_level(db: Database) -> None:
    now = datetime.now(UTC)

    def questionnaire(status: str, version: int | None) -> Questionnaire:
        return Questionnaire(
            id=str(uuid.uuid4()), type_code="mfc", level="federal", title="Другая анкета", status=status,
            draft={}, active_version=version, created_at=now, updated_at=now,
        )  # fmt: skip

    async with db.uow() as uow:
        uow.session.add(questionnaire("draft", None))
        uow.session.add(questionnaire("withdrawn", 1))
        await uow.commit()

    async with db.uow() as uow:
        uow.session.add(questionnaire("active", 1))
        with pytest.raises(IntegrityError):
            await uow.session.flush()
