"""``posog outbox …``: an operator's commands for the deliveries of the one engine (:mod:`.outbox`):
list the dead rows, re-drive them. Like every operator command, it works on a database already
migrated (``posog db upgrade``) and changes nothing else.

The main CLI builds it with the deliveries of the systems (:func:`outbox_app`: their names, and how
to load them when a command runs — ``posog --help`` loads none) and registers it as the ``outbox``
group: the core knows no system. (No postponed annotations here: the commands' help
names the deliveries given, and Typer reads the annotations of functions made in a closure.)"""

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from posog.core.db import Database
    from posog.core.outbox import DeadRow, Delivery

console = Console()


def outbox_app(delivery_names: Sequence[str], deliveries: "Callable[[], Sequence[Delivery[Any]]]") -> typer.Typer:
    """The ``outbox`` command group over the deliveries named ``delivery_names``, which ``deliveries``
    loads when a command runs."""
    names = ", ".join(delivery_names)
    loaded: dict[str, Delivery[Any]] = {}

    def by_name() -> "dict[str, Delivery[Any]]":
        if not loaded:
            loaded.update((delivery.name, delivery) for delivery in deliveries())
            if list(loaded) != list(delivery_names):
                raise RuntimeError(f"the deliveries loaded are {', '.join(loaded)}, not {names}")
        return loaded

    app = typer.Typer(
        help=f"Доставки ({names}): строки, которые не будут отправлены, и их повторная отправка.",
        no_args_is_help=True,
    )

    def chosen(name: str | None) -> "list[Delivery[Any]]":
        if name is None:
            return list(by_name().values())
        if name not in delivery_names:
            console.print(f"[red]Нет доставки {name!r}; есть: {names}.[/]")
            raise typer.Exit(2)
        return [by_name()[name]]

    @app.command("dead")
    def dead(
        delivery: Annotated[str | None, typer.Option("--delivery", help=f"Только эта доставка: {names}")] = None,
        limit: Annotated[int, typer.Option(min=1, help="Не больше стольких строк каждой доставки")] = 100,
    ) -> None:
        """Строки, которые не будут отправлены (получатель отказал навсегда или попытки кончились)."""
        from rich.table import Table

        from posog.core.operator import on_migrated_database
        from posog.core.outbox import Outbox
        from posog.core.russian import moscow_time

        selected = chosen(delivery)

        async def main(db: "Database") -> "list[DeadRow]":
            found: list[DeadRow] = []
            for each in selected:
                found += await Outbox(db, each).dead(limit)
            return found

        rows = asyncio.run(on_migrated_database(main, console=console))
        if not rows:
            console.print("Таких строк нет.")
            return
        table = Table(title="Не будут отправлены (повторить: posog outbox redrive ID…)")
        for column in ("ID", "Попыток", "С", "Последняя ошибка"):
            table.add_column(column)
        for row in rows:
            at = moscow_time(row.dead_at, seconds=True)
            table.add_row(f"{row.delivery}:{row.key}", str(row.attempts), at, (row.last_error or "")[:200])
        console.print(table)

    @app.command("redrive")
    def redrive(
        ids: Annotated[list[str], typer.Argument(help="ДОСТАВКА:ID, как их показывает «posog outbox dead»")],
        delivery: Annotated[
            str | None, typer.Option("--delivery", help="Доставка для ID без префикса «ДОСТАВКА:»")
        ] = None,
    ) -> None:
        """Отправить строки снова: с новым кругом попыток, начиная с этой минуты."""
        from posog.core.clock import utcnow
        from posog.core.operator import on_migrated_database
        from posog.core.outbox import Outbox

        wanted: dict[str, list[str]] = {}
        for given in ids:
            prefix, colon, rest = given.partition(":")
            if colon and prefix in delivery_names:
                name, key = prefix, rest
            elif delivery is not None:
                name, key = chosen(delivery)[0].name, given
            else:
                console.print(f"[red]{given}: укажите доставку (ДОСТАВКА:ID или --delivery; есть: {names}).[/]")
                raise typer.Exit(2)
            wanted.setdefault(name, []).append(key)

        async def main(db: "Database") -> dict[str, list[Any]]:
            done: dict[str, list[Any]] = {}
            for name, keys in wanted.items():
                each = by_name()[name]
                done[name] = await Outbox(db, each, clock=utcnow).redrive([each.parse_key(k) for k in keys])
            return done

        done = asyncio.run(on_migrated_database(main, console=console))
        missed = []
        for name, keys in wanted.items():
            redriven = {str(key) for key in done.get(name, [])}
            for key in keys:
                if key in redriven:
                    console.print(f"{name}:{key} — будет отправлена снова.")
                else:
                    missed.append(f"{name}:{key}")
        if missed:
            console.print(f"[red]Не найдены среди неотправляемых: {', '.join(missed)}.[/]")
            raise typer.Exit(1)

    return app
