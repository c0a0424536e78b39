"""An operator revokes a card's link (``posog links revoke CARD_ID --reason …``): the revocation is
recorded, the citizen sees the revoked page, ЛКО cannot complete it, analytics sees ``revoked``; what
cannot be revoked is refused with a reason."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from posog.cli import app as cli_app
from posog.core.clock import Clock, utcnow
from posog.core.db import Database
from posog.module.client import LinkRefused, ModuleClient
from posog.module.links.api import MESSAGES
from posog.module.links.handlers import RevokedLink, RevokeLink, RevokeRefused, revoke_link
from posog.module.links.model import REVOKED, SurveyLink
from posog.module.uow import ModuleUnitOfWork
from tests.integration.survey_support import client, issue_surveys
from tests.support import BACKENDS, stack

pytestmark = pytest.mark.integration


async def _link(system: object, card_id: str) -> SurveyLink:
    async with system.db.uow() as uow:  # type: ignore[attr-defined]
        return (await uow.session.scalars(select(SurveyLink).where(SurveyLink.card_id == card_id))).one()


async def _revoke(command: RevokeLink, db: Database, *, clock: Clock) -> RevokedLink:
    """The operator command's use case on a unit of work of its own."""
    async with ModuleUnitOfWork(db) as uow:
        return await revoke_link(command, uow, clock=clock)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_revoked_link_shows_the_citizen_the_revoked_page_and_cannot_be_completed(
    backend: str, tmp_path: Path
) -> None:
    async with stack(backend, tmp_path) as system:
        survey, opened = await issue_surveys(system, 2, seed=141)
        async with client(system.module_asgi, "lkp") as lkp:
            await ModuleClient(lkp).resolve_link(opened.token)  # opened links can be revoked too

        for target in (survey, opened):
            revoked = await _revoke(
                RevokeLink(target.card_id, "  ошибочно   отправлена "), system.db, clock=system.clock
            )
            assert revoked.previous_state in {"issued", "notified", "opened"}
            link = await _link(system, target.card_id)
            assert link.state == REVOKED
            assert link.revoke_reason == "ошибочно отправлена"
            assert link.revoked_at is not None

        async with client(system.module_asgi, "lkp") as lkp:
            response = await lkp.get(f"/api/v1/survey-links/{survey.token}")
            assert response.status_code == 410
            assert response.json()["error"] == {"code": "link_revoked", "message": MESSAGES["link_revoked"]}
        async with client(system.module_asgi, "lko") as lko:
            with pytest.raises(LinkRefused) as refused:
                await ModuleClient(lko).complete_link(survey.token, "resp-1")
            assert refused.value.code == "link_revoked"

        # The citizen's page says so, in Russian.
        async with client(system.lkp_asgi, None) as citizen:
            page = await citizen.get(f"/s/{survey.token}")
        assert page.status_code == 410
        assert "отозвана" in page.text.lower()

        # Analytics sees the revocation in the cards feed.
        async with client(system.module_asgi, "analytics") as analytics:
            feed = (await analytics.get("/api/v1/cards/feed")).json()
        states = {item["card_id"]: item["link_state"] for item in feed["items"]}
        assert states[survey.card_id] == "revoked"


async def test_what_cannot_be_revoked_is_refused_with_its_reason(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system:
        (survey,) = await issue_surveys(system, 1, seed=142)
        with pytest.raises(RevokeRefused, match="причину"):
            await _revoke(RevokeLink(survey.card_id, "   "), system.db, clock=utcnow)
        with pytest.raises(RevokeRefused, match="500"):
            await _revoke(RevokeLink(survey.card_id, "я" * 501), system.db, clock=utcnow)
        with pytest.raises(RevokeRefused, match="нет ссылки"):
            await _revoke(RevokeLink("no-such-card", "жалоба"), system.db, clock=utcnow)
        await _revoke(RevokeLink(survey.card_id, "жалоба"), system.db, clock=utcnow)
        with pytest.raises(RevokeRefused, match="revoked"):
            await _revoke(RevokeLink(survey.card_id, "ещё раз"), system.db, clock=utcnow)

        (done,) = await issue_surveys(system, 1, seed=143)
        async with client(system.module_asgi, "lko") as lko:
            await ModuleClient(lko).complete_link(done.token, "resp-2")
        with pytest.raises(RevokeRefused, match="completed"):
            await _revoke(RevokeLink(done.card_id, "поздно"), system.db, clock=utcnow)
        assert (await _link(system, done.card_id)).state == "completed"


async def _issued(tmp_path: Path) -> tuple[str, str]:
    async with stack("embedded", tmp_path) as system:
        (survey,) = await issue_surveys(system, 1, seed=144)
        return system.settings.resolved_database_url, survey.card_id


async def _state(url: str, card_id: str) -> str:
    db = Database(url, pool_size=1)
    try:
        async with db.uow() as uow:
            return str(await uow.session.scalar(select(SurveyLink.state).where(SurveyLink.card_id == card_id)))
    finally:
        await db.dispose()


def test_the_operator_command_revokes_and_says_what_it_did(tmp_path: Path) -> None:
    url, card_id = asyncio.run(_issued(tmp_path))
    env = {"POSOG_ENV": "test", "POSOG_DATABASE_URL": url}
    runner = CliRunner()
    result = runner.invoke(cli_app, ["links", "revoke", card_id, "--reason", "жалоба"], env=env)
    assert result.exit_code == 0, result.output
    assert f"Ссылка карточки {card_id} отозвана" in result.output
    assert asyncio.run(_state(url, card_id)) == REVOKED

    again = runner.invoke(cli_app, ["links", "revoke", card_id, "--reason", "жалоба"], env=env)
    assert again.exit_code == 2
    assert "нельзя отозвать" in again.output
    missing = runner.invoke(cli_app, ["links", "revoke", card_id], env=env)
    assert missing.exit_code == 2
    assert "--reason" in missing.output


def test_the_operator_command_asks_for_a_migrated_database(tmp_path: Path) -> None:
    env = {"POSOG_ENV": "test", "POSOG_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}"}
    result = CliRunner().invoke(cli_app, ["links", "revoke", "any", "--reason", "x"], env=env)
    assert result.exit_code == 2
    assert "posog db upgrade" in result.output
