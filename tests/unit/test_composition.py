"""Composition (``posog.bootstrap`` over the systems' builders): every worker ``posog worker`` offers is
built by a system's part, the shortcuts into the parts resolve, and a process imports only what it
runs — ``posog --help`` no database layer or web framework, a deployed worker no FastAPI, Alembic or
templates (each ``posog`` process the deployment and the end-to-end tests start pays for its imports)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from posog import cli
from posog.bootstrap import System, _Via, bootstrap
from posog.settings import Settings

HEAVY_FOR_A_WORKER = ("fastapi", "alembic", "jinja2", "posog.web.app", "posog.lko.api", "posog.module.api")


def _imported_by(code: str) -> set[str]:
    """The modules a fresh interpreter holds after ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_the_command_line_loads_no_database_layer_or_web_framework() -> None:
    code = """
import contextlib, io, sys
from posog.cli import main
sys.argv = ["posog", "--help"]
with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
    main()
"""
    loaded = _imported_by(code)
    for heavy in ("sqlalchemy", "fastapi", "alembic", "httpx", "pydantic_settings", "posog.bootstrap"):
        assert heavy not in loaded, f"`posog --help` imports {heavy}"


@pytest.mark.parametrize(
    ("workers", "ias_url"),
    [
        (("intake", "outbox", "analytics", "pii-purge", "lko-completions", "lko-announcements", "smev"), None),
        (("ias-export",), "http://ias"),
    ],
)
def test_deployed_workers_load_no_web_framework(workers: tuple[str, ...], ias_url: str | None, tmp_path: Path) -> None:
    """As docs/deployment.md deploys a worker: the other systems' URLs set (the ИАС URL only for the
    export). Each job is built as ``posog worker`` builds it (all of them in one interpreter: what none
    of them may import, their union may not either); nothing is connected."""
    urls = {"module_url": "http://module", "lko_url": "http://lko", "analytics_url": "http://analytics"}
    if ias_url is not None:
        urls["ias_url"] = ias_url
    code = f"""
import posog.cli
from posog.bootstrap import bootstrap
from posog.settings import Settings
settings = Settings(_env_file=None, env="test", var_dir={str(tmp_path)!r}, **{urls!r})
jobs = bootstrap(settings).workers()
for name in {workers!r}:
    jobs[name]().close()
"""
    loaded = _imported_by(code)
    assert {heavy for heavy in HEAVY_FOR_A_WORKER if heavy in loaded} == set()


async def test_every_worker_is_built_by_a_system_and_every_shortcut_resolves(tmp_path: Path) -> None:
    system = bootstrap(Settings(_env_file=None, env="test", var_dir=tmp_path))  # type: ignore[call-arg]
    try:
        jobs = system.workers()
        assert set(cli.WORKERS) <= set(jobs), "every `posog worker` is built by a system's part"
        # The one job no `posog worker` runs: the embedded server's СМЭВ adapter emulator (in-process bus).
        assert set(jobs) - set(cli.WORKERS) == {"smev-adapter"}
        shortcuts = [name for name, value in vars(System).items() if isinstance(value, _Via)]
        assert len(shortcuts) > 20
        for name in shortcuts:
            getattr(system, name)  # raises if a shortcut names a part's attribute that is not there
        # Embedded, the systems call each other in-process: their apps are bound, ЛКП's made when served.
        assert system.module_asgi.app is not None
        assert system.lko_asgi.app is not None
        assert system.analytics_asgi.app is not None
        assert system.lkp_asgi.app is not None
        assert system.lko.recovery is not None
        assert system.lko.announcements is not None
    finally:
        await system.close()


def test_every_command_of_the_readme_is_there() -> None:
    """The command groups moved to their systems; ``posog`` still offers every command (README
    «Command line»)."""
    import typer

    def names(command: Any, prefix: str = "") -> set[str]:
        if hasattr(command, "commands"):  # a group (Typer's own Click)
            found: set[str] = set()
            for name, sub in command.commands.items():
                found |= names(sub, f"{prefix}{name} ")
            return found
        return {prefix.strip()}

    assert names(typer.main.get_command(cli.app)) == {
        "analytics poll",
        "analytics rebuild",
        "analytics status",
        "db upgrade",
        "demo",
        "emulate citizens",
        "emulate smev",
        "export forms",
        "export ias",
        "export log",
        "export rebuild",
        "export unsendable",
        "facts redrive",
        "facts rejected",
        "facts show",
        "ingest",
        "links revoke",
        "outbox dead",
        "outbox redrive",
        "pii purge",
        "serve",
        "users create",
        "users disable",
        "users list",
        "users locks",
        "users unlock",
        "worker",
    }
