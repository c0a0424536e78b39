"""``posog pii purge``: an operator erases now the personal data past its retention (SPEC §10), as the
``pii-purge`` worker does periodically. Like every operator command, it works on a database already
migrated (``posog db upgrade``).

Exposed as :data:`pii_app`; the main CLI registers it as the ``pii`` group."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console

from posog.module.wiring import COMMANDS

pii_app = typer.Typer(help="Personal data: erase what is past its retention (SPEC §10).", no_args_is_help=True)
console = Console()


@pii_app.command("purge")
def pii_purge() -> None:
    """Erase now the personal data past the link's life plus POSOG_PII_RETENTION_DAYS (the pii-purge
    worker does this every POSOG_PII_PURGE_INTERVAL_S)."""
    from rich.table import Table

    async def main() -> None:
        async with COMMANDS.open() as commands:
            result = await commands.module.pii_purger().purge_once()
            retention_days = commands.module.shared.settings.pii_retention_days
        table = Table(title=f"Удалено по истечении срока хранения ({retention_days} дн.)")
        table.add_column("что")
        table.add_column("сколько", justify="right")
        table.add_row("Карточки: ФИО, дата рождения, СНИЛС стёрты", str(result.cards))
        table.add_row("Отправленные уведомления ГЭПС удалены", str(result.notifications))
        table.add_row("Отклонённые сведения: содержимое стёрто", str(result.rejected))
        table.add_row("Записи о конфликтах удалены", str(result.conflicts))
        console.print(table)

    asyncio.run(main())
