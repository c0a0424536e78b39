"""Nothing loads from outside at run time: no page, template or script refers to another host, and
no API serves FastAPI's CDN-backed documentation pages (the OpenAPI documents stay)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.support import stack

pytestmark = pytest.mark.integration

SRC = Path(__file__).resolve().parents[2] / "src" / "posog"
# src=, href= or url() pointing at an absolute http(s) URL.
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']https?://|url\(\s*["']?https?://|@import\s+["']?https?://""")


def test_no_template_or_static_file_refers_to_another_host() -> None:
    offenders = []
    for path in [*SRC.rglob("*.html"), *SRC.rglob("*.css"), *SRC.rglob("*.js")]:
        if EXTERNAL.search(path.read_text(encoding="utf-8", errors="replace")):
            offenders.append(str(path.relative_to(SRC)))
    assert offenders == []


async def test_no_api_serves_cdn_documentation_pages(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system:
        apps = {"module": system.module_asgi.app, "lko": system.lko_asgi.app, "analytics": system.analytics_asgi.app}
        for name, app in apps.items():
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}") as http:
                for page in ("/docs", "/redoc"):
                    response = await http.get(page)
                    assert response.status_code == 404, f"{name}{page}"
                    assert "cdn" not in response.text.lower()
                assert (await http.get("/openapi.json")).status_code == 200, name
                assert (await http.get("/healthz")).json() == {"status": "ok"}, name
                assert (await http.get("/readyz")).json() == {"status": "ok"}, name
                if name != "lko":
                    assert "posog_" in (await http.get("/metrics")).text, name
