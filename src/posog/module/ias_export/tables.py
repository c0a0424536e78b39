"""The tables ``posog export …`` prints of the ИАС export besides the batches: the RatesRequest packets with
ИАС's packet id and status (a refused one with ИАС's reason), the ratings that could not be sent with
the reason, and the form the ratings are mapped with (the commands are in ``cli.py`` beside it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.table import Table

from posog.core.russian import moscow_time
from posog.module.ias_export.forms import CRITERIA, FormMapping
from posog.module.ias_export.handlers import UNSENDABLE_REASONS
from posog.module.ias_export.model import IasPacket, IasUnsendable

PACKET_STATES = {
    "pending": "[yellow]ожидает отправки[/]",
    "sent": "[yellow]передан в СМЭВ, ждёт номер пакета[/]",
    "registered": "[yellow]принят на обработку, статус запрашивается[/]",
    "accepted": "[green]принят ИАС[/]",
    "refused": "[red]отклонён ИАС[/]",
    "failed": "[red]не доставлен[/]",
    "replaced": "[dim]заменён пересобранным[/]",
}
CRITERION_NAMES = {
    "service_time": "время предоставления услуги",
    "queue_time": "время ожидания в очереди",
    "staff": "вежливость и компетентность сотрудника",
    "comfort": "комфортность условий",
    "information": "доступность информации",
}


def packets_table(packets: Sequence[IasPacket], title: str = "Пакеты оценок (RatesRequest) в ИАС МКГУ") -> Table:
    table = Table(title=title)
    for column in (
        "пакет (clientId)",
        "выгрузка",
        "оценок",
        "№ пакета ИАС",
        "статус",
        "статус ИАС",
        "запросов",
        "причина",
    ):
        table.add_column(column, overflow="fold")
    for p in packets:
        table.add_row(
            p.client_id,
            p.batch_id,
            str(p.forms),
            str(p.packet_id) if p.packet_id is not None else "—",
            PACKET_STATES.get(p.state, p.state),
            p.ias_status or "—",
            str(p.polls),
            p.reason or "",
        )
    return table


def unsendable_table(rows: Sequence[IasUnsendable], counts: Mapping[str, int]) -> Table:
    total = sum(counts.values())
    by_reason = ", ".join(f"{reason}: {count}" for reason, count in sorted(counts.items())) or "нет"
    table = Table(title=f"Оценки, которые нельзя отправить в ИАС: {total} ({by_reason})")
    for column in ("выгрузка", "ответ (foreign-id)", "карточка", "причина", "подробно", "записано"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row.batch_id,
            row.foreign_id,
            row.card_id,
            row.reason,
            row.detail or UNSENDABLE_REASONS.get(row.reason, ""),
            moscow_time(row.recorded_at, seconds=True),
        )
    return table


def form_table(form_mapping: FormMapping) -> Table:
    sources = {"file": "POSOG_IAS_FORMS_FILE", "ias": "получена из ИАС", "default": "встроенная федеральная форма"}
    form = form_mapping.form
    table = Table(title=f"Форма ИАС {form.name} ({sources.get(form_mapping.source, form_mapping.source)})")
    for column in ("критерий", "показатель", "значения (оценка 1…5 → id)"):
        table.add_column(column, overflow="fold")
    for criterion in CRITERIA:
        indicator = form_mapping.indicators.get(criterion)
        if indicator is None:
            table.add_row(CRITERION_NAMES[criterion], "[red]нет в форме: оценки не отправляются[/]", "")
            continue
        values = ", ".join(f"{rating}→{form_mapping.value_id(indicator, rating)}" for rating in range(1, 6))
        table.add_row(CRITERION_NAMES[criterion], f"{indicator.id} {indicator.title}", values)
    return table
