"""``posog users …``: cabinet accounts from the command line (the only way to create them).

Exposed as :data:`users_app`; the main CLI registers it as the ``users`` group."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console

if TYPE_CHECKING:
    from posog.core.db import Database
    from posog.lko.accounts.queries import LockSummary, UserSummary

users_app = typer.Typer(
    help="Учётные записи кабинета ЛКО: создать, показать, отключить; блокировки входа.", no_args_is_help=True
)
console = Console()
T = TypeVar("T")


def _with_database(action: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``action`` against the configured database, migrated by ``posog db upgrade`` (as every
    operator command, this one neither migrates nor seeds it)."""
    from posog.core.operator import on_migrated_database

    return asyncio.run(on_migrated_database(action, console=console))


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    password: str = typer.prompt("Пароль", hide_input=True, confirmation_prompt="Пароль ещё раз")
    return password


@users_app.command("create")
def create(
    login: Annotated[str, typer.Argument(help="Логин (латинские буквы, цифры, . _ - @)")],
    role: Annotated[str, typer.Option("--role", help="federal | regional | organization")],
    region: Annotated[str | None, typer.Option("--region", help="Код региона (для regional)")] = None,
    inn: Annotated[str | None, typer.Option("--inn", help="ИНН организации (для organization)")] = None,
    name: Annotated[str | None, typer.Option("--name", help="ФИО или название для шапки кабинета")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Прочитать пароль из первой строки стандартного ввода")
    ] = False,
) -> None:
    """Create a cabinet account with its role (and region or ИНН)."""
    from posog.core.clock import utcnow
    from posog.lko.accounts.handlers import AccountError, NewUser, create_user
    from posog.lko.scope import ROLE_NAMES

    password = _read_password(password_stdin)
    command = NewUser(login=login, password=password, role=role, full_name=name, region_code=region, inn=inn)

    async def action(db: Database) -> None:
        async with db.uow() as uow:
            await create_user(uow, command, now=utcnow())

    try:
        _with_database(action)
    except AccountError as exc:
        console.print(f"[red]{exc.message}[/]")
        raise typer.Exit(2) from None
    console.print(f"[green]Пользователь «{login.strip().casefold()}» создан ({ROLE_NAMES[role]}).[/]")


@users_app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False) -> None:
    """List cabinet accounts (never their passwords)."""
    from rich.table import Table

    from posog.core.russian import moscow_time
    from posog.lko.accounts.queries import list_users
    from posog.lko.scope import ROLE_NAMES

    async def action(db: Database) -> list[UserSummary]:
        async with db.uow() as uow:
            return await list_users(uow.session)

    users = _with_database(action)
    if as_json:
        items = [
            {
                "login": u.login,
                "full_name": u.full_name,
                "role": u.role,
                "region_code": u.region_code,
                "inn": u.inn,
                "active": u.active,
                "created_at": u.created_at.isoformat(),
                "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
            }
            for u in users
        ]
        typer.echo(json.dumps(items, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"Пользователи ЛКО ({len(users)})")
    for column in ("логин", "имя", "роль", "регион", "ИНН", "активен", "последний вход"):
        table.add_column(column, overflow="fold")
    for u in users:
        table.add_row(
            u.login,
            u.full_name,
            ROLE_NAMES.get(u.role, u.role),
            u.region_code or "—",
            u.inn or "—",
            "да" if u.active else "нет",
            moscow_time(u.last_login_at) if u.last_login_at else "—",
        )
    console.print(table)


@users_app.command("disable")
def disable(login: Annotated[str, typer.Argument(help="Логин")]) -> None:
    """Disable an account and end its sessions."""
    from posog.core.clock import utcnow
    from posog.lko.accounts.handlers import AccountError, disable_user

    async def action(db: Database) -> None:
        async with db.uow() as uow:
            await disable_user(uow, login, now=utcnow())

    try:
        _with_database(action)
    except AccountError as exc:
        console.print(f"[red]{exc.message}[/]")
        raise typer.Exit(2) from None
    console.print(f"Пользователь «{login.strip().casefold()}» отключён; его сеансы завершены.")


_LOCK_STATES = {"active": "действует", "released": "снята оператором", "expired": "истекла"}


@users_app.command("locks")
def locks(
    login: Annotated[str | None, typer.Argument(help="Только этого логина")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """List login locks (after many failed sign-ins), newest first: active, released, expired."""
    from rich.table import Table

    from posog.core.clock import utcnow
    from posog.core.russian import moscow_time
    from posog.lko.accounts.handlers import normalize_login
    from posog.lko.accounts.queries import list_login_locks

    key = normalize_login(login)[:100] if login is not None else None

    async def action(db: Database) -> list[LockSummary]:
        async with db.uow() as uow:
            return await list_login_locks(uow.session, login=key)

    found = _with_database(action)
    now = utcnow()
    if as_json:
        items = [
            {
                "login": lock.login,
                "locked_at": lock.locked_at.isoformat(),
                "locked_until": lock.locked_until.isoformat(),
                "failures": lock.failures,
                "state": lock.state(now),
                "released_at": lock.released_at.isoformat() if lock.released_at else None,
                "released_by": lock.released_by,
            }
            for lock in found
        ]
        typer.echo(json.dumps(items, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"Блокировки входа ({len(found)})")
    for column in ("логин", "заблокирован", "до", "неудачных попыток", "состояние"):
        table.add_column(column, overflow="fold")

    for lock in found:
        table.add_row(
            lock.login,
            moscow_time(lock.locked_at),
            moscow_time(lock.locked_until),
            str(lock.failures),
            _LOCK_STATES[lock.state(now)],
        )
    console.print(table)


@users_app.command("unlock")
def unlock(login: Annotated[str, typer.Argument(help="Логин")]) -> None:
    """Release a login locked after many failed sign-ins (the audit records the release)."""
    from posog.core.clock import utcnow
    from posog.lko.accounts.handlers import normalize_login, unlock_login

    async def action(db: Database) -> bool:
        async with db.uow() as uow:
            return await unlock_login(uow, login, now=utcnow())

    key = normalize_login(login)[:100]
    if _with_database(action):
        console.print(f"Блокировка входа для логина «{key}» снята.")
    else:
        console.print(f"Логин «{key}» не заблокирован.")
