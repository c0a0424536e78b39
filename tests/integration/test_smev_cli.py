"""``posog emulate smev --through-adapter``: facts delivered as the СМЭВ adapter's AMQP interface
delivers them — QueryResult envelopes holding OgFactRequest — on the configured in queue."""

from __future__ import annotations

import asyncio
from pathlib import Path
from unittest import mock

import pytest
from typer.testing import CliRunner

from posog import cli
from posog.module.smev.envelope import InboundRequest, parse_query_result
from tests.integration.intake_support import drain
from tests.support import stack

pytestmark = pytest.mark.integration


async def test_emulate_smev_through_the_adapter_fills_the_in_queue_with_envelopes(tmp_path: Path) -> None:
    async with stack("production", tmp_path, smev_transport="amqp") as system:
        s = system.settings
        assert s.amqp_url is not None
        env = {
            "POSOG_ENV": "test",
            "POSOG_VAR_DIR": str(tmp_path / "cli"),
            "POSOG_DATABASE_URL": s.resolved_database_url,
            "POSOG_AMQP_URL": s.amqp_url,
            "POSOG_SMEV_IN_QUEUE": s.smev_in_queue,
            "POSOG_SMEV_OUT_QUEUE": s.smev_out_queue,
            "POSOG_SMEV_IN_DEAD_LETTER_EXCHANGE": s.smev_in_dead_letter_exchange,
            "POSOG_SMEV_IN_DEAD_LETTER_QUEUE": s.smev_in_dead_letter_queue,
            "POSOG_FACTS_QUEUE": s.facts_queue,
            "POSOG_FACTS_DEAD_LETTER_EXCHANGE": s.facts_dead_letter_exchange,
            "POSOG_FACTS_DEAD_LETTER_QUEUE": s.facts_dead_letter_queue,
            "POSOG_GEPS_EXCHANGE": s.geps_exchange,
            "POSOG_GEPS_INBOX_QUEUE": s.geps_inbox_queue,
        }
        args = ["emulate", "smev", "--facts", "40", "--invalid-share", "0.1", "--seed", "3", "--through-adapter"]
        with mock.patch.object(cli, "configure_logging", return_value=None):
            result = await asyncio.to_thread(CliRunner().invoke, cli.app, args, env=env)
        assert result.exit_code == 0, result.output
        assert "36 корректных, 4 с ошибками" in result.output
        assert await system.bus.queue_depth(s.facts_queue) == 0, "nothing on the JSON channel"
        delivered = await drain(system, s.smev_in_queue)
        assert len(delivered) == 40
        requests = [parse_query_result(message.body) for message in delivered]
        assert all(isinstance(r, InboundRequest) for r in requests)
        assert {r.content.tag for r in requests if isinstance(r, InboundRequest)} == {
            "{urn://x-artefacts-posog/og-fact/1.0.0}OgFactRequest"
        }
        assert len({r.client_id for r in requests if isinstance(r, InboundRequest)}) == 40
