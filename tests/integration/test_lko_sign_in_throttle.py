"""The cabinet's sign-in throttle (issue 13, A): password guessing is slowed per (login, client) and
per client with growing waits, never by a lock a stranger can trigger with a few failures; a login is
locked only after very many failures from every client together, audited, and released by an operator
(`posog users unlock`) or by time. Unknown logins get exactly the answers known ones get. The client
is the peer, or what a trusted proxy says in X-Forwarded-For.

Time is the cabinet's injectable clock (``lko_state(app).clock``), frozen and moved by the tests: what is
asserted is what the user sees (status, ``Retry-After``, the message), never how long anything took."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from posog.bootstrap import System
from posog.cli import app as cli_app
from posog.core.clock import utcnow
from posog.lko.accounts.model import CabinetSession, LoginLock
from posog.lko.state import lko_state
from tests.integration.cabinet_support import PASSWORD, browser, make_user, sign_in
from tests.support import BACKENDS, count, stack

pytestmark = pytest.mark.integration

INVALID = "Неверный логин или пароль."


class Clock:
    """The cabinet's clock, frozen; tests move it."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def frozen(system: System) -> Clock:
    clock = Clock()
    lko_state(system.lko_asgi.app).clock = clock
    return clock


def seen(response: httpx.Response, login: str) -> tuple[int, str | None, str]:
    """What the user sees: status, Retry-After and the page's message (the echoed login removed)."""
    found = re.search(r'<p class="form-error">(.*?)</p>', response.text, flags=re.S)
    message = found.group(1).strip() if found else ""
    return response.status_code, response.headers.get("retry-after"), message.replace(login, "LOGIN")


async def test_five_wrong_passwords_keep_nobody_out(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path) as system:
        await make_user(system, "fed", "federal")
        clock = frozen(system)
        async with browser(system, address="198.51.100.66") as stranger:
            for _ in range(5):
                refused = await sign_in(stranger, "fed", "a guess")
                assert (refused.status_code, INVALID in refused.text) == (200, True)
            # The stranger's own next attempt waits a second — with the right password too (it is
            # not checked while waiting, so waiting tells nothing).
            waiting = await sign_in(stranger, "fed", PASSWORD)
            assert waiting.status_code == 429
            assert waiting.headers["retry-after"] == "1"
            assert "Слишком много попыток входа, повторите через 1 с." in waiting.text
        async with browser(system, address="203.0.113.5") as owner:
            assert (await sign_in(owner, "fed", PASSWORD)).status_code == 303, "the owner signs in meanwhile"
        clock.advance(seconds=1)
        async with browser(system, address="198.51.100.66") as same:
            assert (await sign_in(same, "fed", PASSWORD)).status_code == 303, "and the same client after the wait"
        assert await count(system, CabinetSession) == 2
        assert await count(system, LoginLock) == 0, "nothing was locked"


async def test_a_pairs_waits_double_up_to_the_cap_and_are_forgotten(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path, cabinet_login_max_failures=2, cabinet_login_delay_max_s=10) as system:
        await make_user(system, "fed", "federal")
        clock = frozen(system)
        waits = []
        async with browser(system, address="198.51.100.66") as client:
            for _ in range(2):
                assert (await sign_in(client, "fed", "guess")).status_code == 200
            for _ in range(6):
                blocked = await sign_in(client, "fed", "guess")
                assert blocked.status_code == 429
                wait = int(blocked.headers["retry-after"])
                waits.append(wait)
                assert f"повторите через {wait} с." in blocked.text
                clock.advance(seconds=wait)
                assert (await sign_in(client, "fed", "guess")).status_code == 200, "after the wait, a real attempt"
            assert waits == [1, 2, 4, 8, 10, 10]
            # A quiet quarter of an hour (POSOG_CABINET_LOGIN_FORGET_MINUTES) and the count starts over.
            clock.advance(minutes=16)
            assert (await sign_in(client, "fed", "guess")).status_code == 200
            assert (await sign_in(client, "fed", PASSWORD)).status_code == 303


async def test_forty_sign_ins_from_one_client_are_slowed(tmp_path: Path) -> None:
    """The probe's 40 logins from one address in 8.7 s: beyond the client's free failures (20 over
    every login) each attempt waits, whatever login it tries; other clients are not affected."""
    async with stack("embedded", tmp_path) as system:
        await make_user(system, "fed", "federal")
        clock = frozen(system)
        answers = []
        async with browser(system, address="192.0.2.40") as prober:
            for n in range(40):
                answers.append(await sign_in(prober, f"user{n:02d}", "password123"))
            statuses = [response.status_code for response in answers]
            assert statuses == [200] * 20 + [429] * 20
            assert {response.headers["retry-after"] for response in answers[20:]} == {"1"}
            assert "Слишком много попыток входа, повторите через 1 с." in answers[-1].text
            # Each later failure doubles the client's wait.
            clock.advance(seconds=1)
            assert (await sign_in(prober, "user99", "password123")).status_code == 200
            assert (await sign_in(prober, "fed", PASSWORD)).headers["retry-after"] == "2"
        async with browser(system, address="192.0.2.41") as neighbour:
            assert (await sign_in(neighbour, "fed", PASSWORD)).status_code == 303


@pytest.mark.parametrize("backend", BACKENDS)
async def test_unknown_logins_get_the_answers_known_ones_get(backend: str, tmp_path: Path) -> None:
    overrides = {"cabinet_login_max_failures": 3, "cabinet_login_lock_failures": 6}
    async with stack(backend, tmp_path, **overrides) as system:
        await make_user(system, "known.user", "federal")
        clock = frozen(system)
        start = clock.now

        async def journey(login: str) -> list[tuple[int, str | None, str]]:
            clock.now = start  # both journeys at the same moments: the lock's end reads the same
            seen_by_user = []
            for n in range(6):
                async with browser(system, address=f"198.51.100.{n // 3 + 1}") as client:
                    response = await sign_in(client, login, "wrong password")
                    seen_by_user.append(seen(response, login))
                    if n % 3 == 2:  # the third failure of a pair: its next attempt waits
                        seen_by_user.append(seen(await sign_in(client, login, "wrong password"), login))
                        clock.advance(seconds=1)
            async with browser(system, address="198.51.100.200") as fresh:
                seen_by_user.append(seen(await sign_in(fresh, login, PASSWORD), login))
            return seen_by_user

        known, unknown = await journey("known.user"), await journey("nobody.at.all")
        assert known == unknown
        assert [status for status, _, _ in known] == [200, 200, 200, 429, 200, 200, 429, 429, 429]
        assert "заблокирован" in known[-2][2], "the sixth failure locks the login — existing or not"
        async with system.db.uow() as uow:
            locks = (await uow.session.scalars(select(LoginLock).order_by(LoginLock.login))).all()
        assert [lock.login for lock in locks] == ["known.user", "nobody.at.all"]


def _cli(system: System, *args: str) -> str:
    """`posog ARGS` against the stack's database (the CLI runs its own event loop)."""
    env = {"POSOG_DATABASE_URL": system.settings.resolved_database_url, "POSOG_VAR_DIR": str(system.settings.var_dir)}
    result = CliRunner().invoke(cli_app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_login_is_locked_only_after_many_failures_audited_and_released(backend: str, tmp_path: Path) -> None:
    # Every failure from another address: no pair ever waits, only the login's count grows.
    async with stack(backend, tmp_path, cabinet_login_lock_failures=12, cabinet_login_lock_hours=24) as system:
        await make_user(system, "fed", "federal")
        clock = frozen(system)
        locked_at = None
        for n in range(12):
            async with browser(system, address=f"10.1.0.{n + 1}") as client:
                response = await sign_in(client, "fed", f"guess {n}")
            if n < 11:
                assert (response.status_code, INVALID in response.text) == (200, True), n
            else:
                locked_at = clock.now
                assert response.status_code == 429
                assert "Вход под этим логином заблокирован после множества неудачных попыток" in response.text
                assert response.headers["retry-after"] == str(24 * 3600)
            clock.advance(seconds=30)
        async with browser(system, address="203.0.113.5") as owner:
            refused = await sign_in(owner, "fed", PASSWORD)
        assert refused.status_code == 429, "now the right password waits too, from anywhere"
        assert "Обратитесь к администратору кабинета" in refused.text

        # The audit: the login, when, after how many failures — never a password.
        async with system.db.uow() as uow:
            lock = (await uow.session.scalars(select(LoginLock))).one()
        assert (lock.login, lock.locked_at, lock.failures) == ("fed", locked_at, 12)
        assert lock.locked_until == locked_at + timedelta(hours=24)
        assert lock.released_at is None
        listed = json.loads(await asyncio.to_thread(_cli, system, "users", "locks", "--json"))
        assert [(item["login"], item["state"], item["failures"]) for item in listed] == [("fed", "active", 12)]
        assert "guess" not in json.dumps(listed)

        # The operator releases it.
        assert "снята" in await asyncio.to_thread(_cli, system, "users", "unlock", "FED")
        assert "не заблокирован" in await asyncio.to_thread(_cli, system, "users", "unlock", "fed")
        async with browser(system, address="203.0.113.5") as owner:
            assert (await sign_in(owner, "fed", PASSWORD)).status_code == 303
        listed = json.loads(await asyncio.to_thread(_cli, system, "users", "locks", "fed", "--json"))
        assert [(item["state"], item["released_by"]) for item in listed] == [("released", "operator")]

        # Locked again; this time the lock ends by itself.
        for n in range(12):
            async with browser(system, address=f"10.2.0.{n + 1}") as client:
                await sign_in(client, "fed", f"guess {n}")
        async with browser(system, address="203.0.113.5") as owner:
            assert (await sign_in(owner, "fed", PASSWORD)).status_code == 429
            clock.advance(hours=24, seconds=1)
            assert (await sign_in(owner, "fed", PASSWORD)).status_code == 303
        assert await count(system, LoginLock) == 2


async def test_concurrent_failures_lock_a_login_once(tmp_path: Path) -> None:
    """On PostgreSQL, many failures arriving together: counted exactly, one lock, one audit record."""
    async with stack("production", tmp_path, cabinet_login_lock_failures=10) as system:
        await make_user(system, "fed", "federal")

        async def attempt(n: int) -> int:
            async with browser(system, address=f"10.3.0.{n + 1}") as client:
                return (await sign_in(client, "fed", f"guess {n}")).status_code

        statuses = await asyncio.gather(*(attempt(n) for n in range(16)))
        # The tenth failure locks; attempts already past the check when it did are answered as usual.
        assert statuses.count(200) >= 9, statuses
        assert statuses.count(429) >= 1, statuses
        async with system.db.uow() as uow:
            lock = (await uow.session.scalars(select(LoginLock))).one()
        assert lock.failures == 10


async def test_x_forwarded_for_counts_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    async with stack("embedded", tmp_path, cabinet_login_max_failures=2, trusted_proxies=["10.0.0.0/24"]) as system:
        await make_user(system, "fed", "federal")
        frozen(system)
        # From an untrusted peer the header is ignored: a guesser cannot pose as new clients.
        async with browser(system, address="198.51.100.9") as direct:
            for n in range(2):
                forged = {"X-Forwarded-For": f"192.0.2.{n + 1}"}
                assert (await sign_in(direct, "fed", "guess", headers=forged)).status_code == 200
            forged = {"X-Forwarded-For": "192.0.2.99"}
            assert (await sign_in(direct, "fed", PASSWORD, headers=forged)).status_code == 429
        # Behind the trusted proxy each citizen is counted under the address the proxy saw (the
        # right-most entry that is not a trusted proxy), whatever the client prepended.
        async with browser(system, address="10.0.0.3") as proxy:
            for _ in range(2):
                spoofed = {"X-Forwarded-For": "1.1.1.1, 198.51.100.50"}
                assert (await sign_in(proxy, "fed", "guess", headers=spoofed)).status_code == 200
            blocked = {"X-Forwarded-For": "8.8.8.8, 198.51.100.50, 10.0.0.7"}
            assert (await sign_in(proxy, "fed", PASSWORD, headers=blocked)).status_code == 429
            other = {"X-Forwarded-For": "198.51.100.51"}
            assert (await sign_in(proxy, "fed", PASSWORD, headers=other)).status_code == 303
