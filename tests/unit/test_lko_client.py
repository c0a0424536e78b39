"""ЛКО's client tells the module's callers three things apart: found, not there (404 where a thing may
be missing), and ЛКО being unable to answer (anything else, or no connection) — the last as
:class:`LkoError`, which the workers wait out and the link pages explain."""

from __future__ import annotations

import httpx
import pytest

from posog.lko.client import LkoClient, LkoError


def _client(status: int, body: bytes = b"{}") -> LkoClient:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=body))
    return LkoClient(httpx.AsyncClient(transport=transport, base_url="http://lko.test"))


async def test_a_missing_questionnaire_is_none_and_a_missing_directory_is_an_error() -> None:
    assert await _client(404).active_questionnaire("mfc", "federal") is None
    assert await _client(404).questionnaire_version("q", 1) is None
    assert await _client(404).questionnaire_state("q") is None
    with pytest.raises(LkoError, match="ЛКО answered 404 for the organisation types"):
        await _client(404).org_types()
    with pytest.raises(LkoError, match="ЛКО answered 404 for the active versions"):
        await _client(404).active_versions()


async def test_a_server_error_or_no_connection_is_an_lko_error_naming_the_request() -> None:
    with pytest.raises(LkoError, match="ЛКО answered 503 for the active questionnaire"):
        await _client(503).active_questionnaire("mfc", "federal")
    with pytest.raises(LkoError, match="ЛКО answered 500 for the responses feed"):
        await _client(500).responses_feed()

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    down = LkoClient(httpx.AsyncClient(transport=httpx.MockTransport(refuse), base_url="http://lko.test"))
    with pytest.raises(LkoError, match="ЛКО unreachable: ConnectError"):
        await down.questionnaire_version("q", 1)


async def test_the_active_versions_are_read_as_listed() -> None:
    body = b'{"items": [{"type_code": "mfc", "level": "federal", "questionnaire_id": "q-1", "version": 3}]}'
    listed = await _client(200, body).active_versions()
    assert [(i.type_code, i.level, i.questionnaire_id, i.version) for i in listed.items] == [
        ("mfc", "federal", "q-1", 3)
    ]
