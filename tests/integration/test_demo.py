"""`posog demo` (what `make demo` runs) on the embedded default, as a newcomer would run it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from posog.bootstrap import bootstrap
from posog.cli import app
from posog.emulators.epgu.model import InboxNotification
from posog.module.intake.model import RejectedFact, ServiceCard
from posog.module.links.model import NOTIFIED, SurveyLink
from posog.settings import Settings


def test_demo_runs_the_whole_flow_and_keeps_personal_data_out_of_its_log(tmp_path: Path) -> None:
    env = {"POSOG_ENV": "development", "POSOG_VAR_DIR": str(tmp_path / "var")}
    result = CliRunner().invoke(app, ["demo", "--facts", "120", "--invalid-share", "0.1"], env=env)
    assert result.exit_code == 0, result.output
    assert "ПОС ОГ — итоги демонстрации" in result.output
    assert "Карточки услуг" in result.output

    settings = Settings(_env_file=None, env="development", var_dir=tmp_path / "var")  # type: ignore[call-arg]

    async def check() -> list[dict[str, str]]:
        system = bootstrap(settings)
        try:
            async with system.db.uow() as uow:
                s = uow.session
                cards = await s.scalar(select(func.count()).select_from(ServiceCard))
                rejected = await s.scalar(select(func.count()).select_from(RejectedFact))
                notified = await s.scalar(
                    select(func.count()).select_from(SurveyLink).where(SurveyLink.state == NOTIFIED)
                )
                inbox = await s.scalar(select(func.count()).select_from(InboxNotification))
                rows = (await s.execute(select(ServiceCard))).scalars().all()
            assert cards is not None
            assert rejected is not None
            assert cards + rejected <= 120
            assert cards >= 100
            assert 1 <= rejected <= 12
            assert notified == cards
            assert inbox == cards
            return [
                system.cipher.open_json(r.pii_key_id, r.pii, context=r.card_id) for r in rows if r.pii and r.pii_key_id
            ]
        finally:
            await system.close()

    citizens = asyncio.run(check())
    log = (tmp_path / "var" / "posog.log").read_text(encoding="utf-8")
    assert "intake.fact_rejected" in log, "the demo logs its rejections"
    for citizen in citizens:
        assert citizen["snils"] not in log
        assert citizen["birth_date"] not in log
        assert f"{citizen['last_name']} {citizen['first_name']}" not in log

    again = CliRunner().invoke(app, ["demo", "--facts", "30", "--invalid-share", "0"], env=env)
    assert again.exit_code == 0, again.output  # re-running continues with the same database
