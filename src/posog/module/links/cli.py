"""``posog links …``: an operator's commands for survey links. Like every operator command, it works
on a database already migrated (``posog db upgrade``) and changes nothing else.

Exposed as :data:`links_app`; the main CLI registers it as the ``links`` group."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy.exc import OperationalError, ProgrammingError

from posog.core.clock import MOSCOW, utcnow
from posog.core.db import Database
from posog.module.links.handlers import RevokeLink, RevokeRefused, revoke_link
from posog.settings import Settings

links_app = typer.Typer(help="Ссылки на опрос: отозвать ссылку карточки.", no_args_is_help=True)
console = Console()


@links_app.command("revoke")
def revoke(
    card_id: Annotated[str, typer.Argument(help="card_id карточки услуги")],
    reason: Annotated[str, typer.Option("--reason", help="Почему ссылка отозвана (хранится со ссылкой)")],
) -> None:
    """Отозвать ссылку: гражданин увидит, что ссылка отозвана, и ответить по ней не сможет."""

    async def main() -> None:
        settings = Settings()
        db = Database(settings.resolved_database_url, pool_size=2)
        try:
            revoked = await revoke_link(RevokeLink(card_id, reason), db, clock=utcnow)
        except RevokeRefused as refused:
            console.print(f"[red]{refused}[/]")
            raise typer.Exit(2) from None
        except (OperationalError, ProgrammingError):
            console.print("[red]База данных не подготовлена или недоступна: сначала «posog db upgrade».[/]")
            raise typer.Exit(2) from None
        finally:
            await db.dispose()
        at = revoked.revoked_at.astimezone(MOSCOW).strftime("%d.%m.%Y %H:%M")
        console.print(f"Ссылка карточки {revoked.card_id} отозвана {at} (была: {revoked.previous_state}).")

    asyncio.run(main())
