"""``posog links …``: an operator's commands for survey links. Like every operator command, it works
on a database already migrated (``posog db upgrade``) and changes nothing else.

Exposed as :data:`links_app`; the main CLI registers it as the ``links`` group."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from posog.core.db import Database

links_app = typer.Typer(help="Ссылки на опрос: отозвать ссылку карточки.", no_args_is_help=True)
console = Console()


@links_app.command("revoke")
def revoke(
    card_id: Annotated[str, typer.Argument(help="card_id карточки услуги")],
    reason: Annotated[str, typer.Option("--reason", help="Почему ссылка отозвана (хранится со ссылкой)")],
) -> None:
    """Отозвать ссылку: гражданин увидит, что ссылка отозвана, и ответить по ней не сможет."""
    from posog.core.clock import utcnow
    from posog.core.operator import on_migrated_database
    from posog.core.russian import moscow_time
    from posog.module.links.handlers import RevokeLink, RevokeRefused, revoke_link
    from posog.module.uow import ModuleUnitOfWork

    async def main(db: Database) -> None:
        try:
            async with ModuleUnitOfWork(db) as uow:
                revoked = await revoke_link(RevokeLink(card_id, reason), uow, clock=utcnow)
        except RevokeRefused as refused:
            console.print(f"[red]{refused}[/]")
            raise typer.Exit(2) from None
        console.print(
            f"Ссылка карточки {revoked.card_id} отозвана {moscow_time(revoked.revoked_at)} "
            f"(была: {revoked.previous_state})."
        )

    asyncio.run(on_migrated_database(main, console=console))
