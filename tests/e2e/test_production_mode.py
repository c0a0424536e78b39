"""Production mode (issue 6, SPEC §2): PostgreSQL + RabbitMQ, ``POSOG_ENV=production`` with real keys,
each system served by its own ``posog serve <system>`` process and each worker by its own
``posog worker <name>``, wired only by URLs and queues. The СМЭВ emulator publishes facts, simulated
citizens answer through ЛКП, ``posog export ias`` sends the batches — then the same end-to-end check as
the demo's, through the public APIs."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from posog.core.clock import today, utcnow
from posog.settings import Settings
from tests.conftest import LOG_DIR
from tests.demo_support import POSOG, citizens_in, free_port
from tests.e2e.processes import answers, until
from tests.e2e_check import Endpoints, check_agreement, observe

SYSTEMS = ("module", "lko", "lkp", "analytics", "emulators")
WORKERS = ("intake", "outbox", "epgu-inbox", "analytics")
FACTS = 120


class Stack:
    def __init__(self, tmp_path: Path, database_url: str, amqp_url: str, redis_url: str, redis_prefix: str) -> None:
        self.tmp_path = tmp_path
        self.ports = {name: free_port() for name in SYSTEMS}
        self.keys = {caller: secrets.token_urlsafe(24) for caller in ("module", "lkp", "analytics", "lko", "admin")}
        run = uuid.uuid4().hex[:8]
        self.urls = {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("POSOG_")} | {
            "POSOG_ENV": "production",
            "POSOG_VAR_DIR": str(tmp_path / "var"),
            "POSOG_DATABASE_URL": database_url,
            "POSOG_AMQP_URL": amqp_url,
            "POSOG_REDIS_URL": redis_url,
            "POSOG_REDIS_KEY_PREFIX": redis_prefix,
            "POSOG_PII_KEYS": json.dumps({"k2026": base64.b64encode(secrets.token_bytes(32)).decode()}),
            "POSOG_SNILS_HASH_KEY": secrets.token_urlsafe(32),
            "POSOG_IAS_VENDOR_ID": "4242",
            "POSOG_IAS_USER_KEY": secrets.token_urlsafe(32),
            "POSOG_SERVICE_KEYS": json.dumps(self.keys),
            "POSOG_FACTS_QUEUE": f"posog.prod-{run}.facts",
            "POSOG_FACTS_DEAD_LETTER_EXCHANGE": f"posog.prod-{run}.facts.dlx",
            "POSOG_FACTS_DEAD_LETTER_QUEUE": f"posog.prod-{run}.facts.dead",
            "POSOG_GEPS_EXCHANGE": f"posog.prod-{run}.geps",
            "POSOG_GEPS_INBOX_QUEUE": f"posog.prod-{run}.geps.epgu",
            "POSOG_LKP_BASE_URL": self.urls["lkp"],
            "POSOG_MODULE_URL": self.urls["module"],
            "POSOG_LKO_URL": self.urls["lko"],
            "POSOG_ANALYTICS_URL": self.urls["analytics"],
            "POSOG_ANALYTICS_POLL_INTERVAL_S": "1",
            "POSOG_ANALYTICS_FEED_OVERLAP_S": "2",
            "POSOG_RELAY_IDLE_SLEEP_MS": "50",
            "POSOG_LOG_JSON": "true",
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def env_for(self, name: str) -> dict[str, str]:
        """A system served here must not be configured as remote (it would not be served)."""
        own = {"module": "POSOG_MODULE_URL", "lko": "POSOG_LKO_URL", "analytics": "POSOG_ANALYTICS_URL"}.get(name)
        return {k: v for k, v in self.env.items() if k != own}

    def command(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
        done = subprocess.run(
            [POSOG, *args], env=env or self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        assert done.returncode == 0, f"posog {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def start(self, label: str, *args: str, env: dict[str, str]) -> None:
        with (self.tmp_path / f"{label}.log").open("wb") as log:
            self.processes[label] = subprocess.Popen([POSOG, *args], env=env, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> dict[str, int | None]:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        codes: dict[str, int | None] = {}
        for label, process in self.processes.items():
            try:
                codes[label] = process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[label] = None
        # Their logs join the suite's, which the personal-data check reads.
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        for label in self.processes:
            shutil.copy(self.tmp_path / f"{label}.log", LOG_DIR / f"production-{label}-{self.tmp_path.name}.log")
        return codes

    def until(self, condition: Callable[[], bool], what: str) -> None:
        """Wait for ``condition`` (see ``tests.e2e.processes.until``); fail at once, with its log, if a
        process exited."""
        try:
            until(condition, what, processes=self.processes)
        except AssertionError as failure:
            exited = [label for label, process in self.processes.items() if process.poll() is not None]
            logs = "".join(
                f"\n--- {label}:\n" + (self.tmp_path / f"{label}.log").read_text(errors="replace")[-3000:]
                for label in exited
            )
            raise AssertionError(f"{failure}{logs}") from None

    def endpoints(self) -> Endpoints:
        return Endpoints(
            self.urls["module"], self.urls["lko"], self.urls["analytics"], self.urls["emulators"], keys=self.keys
        )


@pytest.fixture
def stack(tmp_path: Path, pg_url: str, amqp_url: str, redis_url: str, redis_prefix: str) -> Iterator[Stack]:
    made = Stack(tmp_path, pg_url, amqp_url, redis_url, redis_prefix)
    try:
        yield made
    finally:
        codes = made.stop()
        # SIGTERM is a clean stop for every process.
        assert all(code == 0 for code in codes.values()), codes


def test_production_processes_run_the_whole_flow(stack: Stack) -> None:
    # The deployment's steps: migrate and seed once, then every process on its own.
    assert "Schema is up to date" in stack.command("db", "upgrade")
    for name in SYSTEMS:
        stack.start(
            f"serve-{name}",
            "serve",
            name,
            "--host",
            "127.0.0.1",
            "--port",
            str(stack.ports[name]),
            env=stack.env_for(name),
        )
    metrics_port = free_port()
    for name in WORKERS:
        extra = ("--metrics-port", str(metrics_port)) if name == "intake" else ()
        stack.start(f"worker-{name}", "worker", name, *extra, env=stack.env)
    for name, url in stack.urls.items():
        path = {"module": "/healthz", "analytics": "/healthz", "lkp": "/healthz", "lko": "/login"}.get(name, "/epgu/")
        stack.until(lambda u=url, p=path: answers(u, p), f"{name} to answer {path}")

    # СМЭВ publishes facts into RabbitMQ; the workers turn them into notifications in the ЕПГУ inbox.
    stack.command("emulate", "smev", "--facts", str(FACTS), "--invalid-share", "0.05", "--seed", "7", "--frgu")
    inbox = f"{stack.urls['emulators']}/epgu/api/notifications"
    valid = FACTS - round(FACTS * 0.05)
    stack.until(
        lambda: httpx.get(inbox, params={"limit": 1}, timeout=30).json()["total"] == valid, "every notification"
    )

    # Citizens follow the links into ЛКП (its own process) and answer.
    stack.command("emulate", "citizens", "--emulators-url", stack.urls["emulators"], "--share", "0.5")

    # The analytics worker catches up with ЛКО's responses.
    at = stack.endpoints()

    def analytics_caught_up() -> bool:
        summary = httpx.get(f"{at.analytics}/api/v1/analytics/summary", headers=at.auth("lko"), timeout=30).json()
        responses = httpx.get(
            f"{at.lko}/api/v1/responses", params={"limit": 500}, headers=at.auth("analytics"), timeout=30
        ).json()
        return bool(summary["responses"] == len(responses["items"]) > 0)

    stack.until(analytics_caught_up, "analytics to count every response")

    # The export to ИАС МКГУ (the emulator stands in for it), as the operator's command sends it.
    day = today(utcnow)
    period = f"{day - timedelta(days=28)}..{day}"
    ias_env = stack.env | {"POSOG_IAS_URL": f"{stack.urls['emulators']}/ias", "POSOG_IAS_STATUS_POLL_S": "0.2"}
    stack.command("export", "ias", "--period", period, "--wait", env=ias_env)

    seen = observe(at)
    # A tenth of the facts carry no ФРГУ service id: those ratings are listed as unsendable, the rest went
    # as RatesRequest packets that ИАС accepted; none is lost.
    unsendable = json.loads(stack.command("export", "unsendable", "--json", "--limit", "100000", env=ias_env))
    assert set(unsendable["reasons"]) <= {"no_frgu_service"}
    assert seen.ias_packets
    check_agreement(seen, unsendable=[item["foreign_id"] for item in unsendable["items"]])
    assert len(seen.cards) == valid
    assert 0.3 * valid <= len(seen.responses) <= 0.6 * valid
    # The intake worker's metrics can be scraped: what it took, and the lag of its queue.
    metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).text
    assert f'posog_facts_total{{outcome="accepted"}} {float(valid)}' in metrics
    assert f'posog_facts_total{{outcome="rejected"}} {float(FACTS - valid)}' in metrics
    assert f'posog_queue_depth{{queue="{stack.env["POSOG_FACTS_QUEUE"]}"}}' in metrics
    # The broken facts are kept with their reasons; `posog facts rejected` lists them.
    listed = json.loads(stack.command("facts", "rejected", "--json"))
    assert listed["total"] == round(FACTS * 0.05)
    assert all(item["reasons"] for item in listed["items"])
    # The citizens' data is sealed with the deployment's key; the suite's log check looks for it everywhere.
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        env="production",
        database_url=stack.env["POSOG_DATABASE_URL"],
        amqp_url=stack.env["POSOG_AMQP_URL"],
        redis_url=stack.env["POSOG_REDIS_URL"],
        lkp_base_url=stack.env["POSOG_LKP_BASE_URL"],
        pii_keys=json.loads(stack.env["POSOG_PII_KEYS"]),
        snils_hash_key=stack.env["POSOG_SNILS_HASH_KEY"],
        service_keys=stack.keys,
        ias_vendor_id=int(stack.env["POSOG_IAS_VENDOR_ID"]),
        ias_user_key=stack.env["POSOG_IAS_USER_KEY"],
    )
    assert len(citizens_in(settings)) == valid


def test_two_module_processes_share_one_link_attempt_budget(stack: Stack) -> None:
    """Issue 13: real `posog serve module` processes count a client's failed look-ups in one Redis
    budget (after N on one, the other answers 429), and a forged X-Forwarded-For from a peer that is
    not a trusted proxy does not make a new client (uvicorn's own default would have believed it
    from 127.0.0.1)."""
    stack.command("db", "upgrade")
    env = stack.env_for("module") | {"POSOG_LINK_ATTEMPTS_PER_MINUTE": "4"}
    ports = {label: free_port() for label in ("module-a", "module-b")}
    for label, port in ports.items():
        stack.start(label, "serve", "module", "--host", "127.0.0.1", "--port", str(port), env=env)
    urls = {label: f"http://127.0.0.1:{port}" for label, port in ports.items()}
    for label, url in urls.items():
        stack.until(lambda u=url: answers(u, "/healthz"), f"{label} to answer /healthz")
    key = {"Authorization": f"Bearer {stack.keys['lkp']}"}

    def look_up(label: str, headers: dict[str, str]) -> int:
        token = secrets.token_urlsafe(32)
        return httpx.get(f"{urls[label]}/api/v1/survey-links/{token}", headers=key | headers, timeout=10).status_code

    citizen = {"X-Posog-Client": "198.51.100.31"}
    assert [look_up("module-a", citizen) for _ in range(4)] == [404] * 4
    assert look_up("module-b", citizen) == 429
    assert look_up("module-a", citizen) == 429
    assert look_up("module-b", {"X-Posog-Client": "198.51.100.32"}) == 404

    forged = [look_up("module-b", {"X-Forwarded-For": f"192.0.2.{n}"}) for n in range(5)]
    assert forged == [404] * 4 + [429], "the peer (127.0.0.1) is the client: the header is not believed"
