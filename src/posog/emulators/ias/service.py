"""The ИАС МКГУ emulator's handling of the vashkontrol messages, whatever brought them (HTTP, or the
СМЭВ-adapter emulator: :meth:`IasService.answer` takes the business element of a request and gives the
business element of the response).

A ``RatesRequest`` that is XML of the rates namespace gets a packet id (the same bytes again, the same
id). Its verdict is decided on receipt: ``refused``, with every reason, when it does not match the
schema, names a vendor other than the registered one(s), uses an indicator or value id that no form
ИАС serves has, or carries a user id that looks like a СНИЛС; else ``accepted``. A ``PacketsRequest``
answers ``received`` for a packet asked fewer than ``processing_polls`` times, then its verdict."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Final

import structlog

from posog.emulators.ias.model import IasPacketRecord, PacketStore
from posog.module.contracts import ias_documents as documents

log = structlog.get_logger(__name__)

_SNILS_LIKE: Final = re.compile(r"^\d{11}$|^\d{3}-\d{3}-\d{3}[ -]\d{2}$")


class RequestRefused(ValueError):
    """Not a document the emulator can take at all (not XML, another namespace or root)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class IasServiceSettings:
    """What the emulator is set to: the forms it serves, the vendors it knows (empty: any), and how many
    status questions a packet stays ``received`` for."""

    forms: list[dict[str, Any]] = field(default_factory=lambda: [documents.FEDERAL_FORM_DIRECT])
    vendors: set[int] = field(default_factory=set)
    processing_polls: int = 1


class IasService:
    def __init__(self, packets: PacketStore, settings: IasServiceSettings | None = None) -> None:
        self.packets = packets
        self.settings = settings or IasServiceSettings()

    def _values(self) -> dict[int, set[int]]:
        found: dict[int, set[int]] = {}
        for form in self.settings.forms:
            for indicator in form.get("indicators", []):
                found.setdefault(int(indicator["id"]), set()).update(int(v["id"]) for v in indicator["values"])
        return found

    def _verdict(self, root: Any) -> tuple[int, int, list[str]]:
        """(vendor id, forms, errors) of a RatesRequest; no errors: accepted."""
        try:
            document = documents.parse_rates_request(root)
        except documents.DocumentError as exc:
            vendor = root.find(f"{{{documents.RATES_NS}}}vendor")
            vendor_id = vendor.get("id", "0") if vendor is not None else "0"
            count = len(root.findall(f".//{{{documents.RATES_NS}}}form"))
            return int(vendor_id) if vendor_id.isdigit() else 0, count, [f"не соответствует схеме: {exc.detail}"]
        errors = []
        if self.settings.vendors and document.vendor_id not in self.settings.vendors:
            errors.append(f"поставщик {document.vendor_id} не зарегистрирован")
        values = self._values()
        for form in document.forms:
            if _SNILS_LIKE.match(form.user_id):
                errors.append(f"форма {form.foreign_id}: идентификатор пользователя похож на СНИЛС")
            for rate in form.rates:
                if rate.indicator_id not in values:
                    errors.append(f"форма {form.foreign_id}: показателя {rate.indicator_id} нет в формах ИАС")
                elif rate.value_id not in values[rate.indicator_id]:
                    errors.append(
                        f"форма {form.foreign_id}: значение {rate.value_id} "
                        f"не относится к показателю {rate.indicator_id}"
                    )
        return document.vendor_id, len(document.forms), errors

    async def receive_rates(self, body: bytes, *, channel: str) -> int:
        """A RatesRequest's packet id (refuses what is not one at all)."""
        try:
            root = documents.parse(body)
            name = documents.root_name(root)
        except documents.DocumentError as exc:
            raise RequestRefused(exc.reason, str(exc)) from None
        if name != "RatesRequest":
            raise RequestRefused("wrong_root", f"ожидается RatesRequest, получен {name}")
        vendor_id, forms, errors = self._verdict(root)
        packet_id, new = await self.packets.take(
            vendor_id=vendor_id,
            body=body.decode("utf-8", errors="replace"),
            sha256=hashlib.sha256(body).hexdigest(),
            forms=forms,
            channel=channel,
            verdict="refused" if errors else "accepted",
            errors="\n".join(errors[:50]),
        )
        log.info("ias_emulator.rates", packet_id=packet_id, new=new, forms=forms, refused=bool(errors))
        return packet_id

    def reported(self, record: IasPacketRecord) -> documents.PacketStatus:
        """What ИАС says of a packet that has been asked ``record.polls`` times."""
        if record.polls <= self.settings.processing_polls:
            return documents.PacketStatus(record.packet_id, "received")
        errors = tuple(line for line in record.errors.splitlines() if line)
        return documents.PacketStatus(record.packet_id, record.status, errors if record.status == "refused" else ())

    async def statuses(self, body: bytes) -> bytes:
        """The PacketsResponse to a PacketsRequest (packets the emulator does not know are left out)."""
        try:
            root = documents.parse(body)
            _vendor, packet_ids = documents.parse_packets_request(root)
        except documents.DocumentError as exc:
            raise RequestRefused(exc.reason, str(exc)) from None
        records = await self.packets.asked(packet_ids)
        if not records:
            raise RequestRefused("unknown_packet", "ни один из пакетов не известен ИАС")
        return documents.packets_response([self.reported(r) for r in records])

    async def answer(self, content: bytes) -> bytes:
        """The business answer to a business request brought by СМЭВ (RatesRequest → RatesResponse,
        PacketsRequest → PacketsResponse); :class:`RequestRefused` for anything else (answer rejects)."""
        try:
            name = documents.root_name(documents.parse(content))
        except documents.DocumentError as exc:
            raise RequestRefused(exc.reason, str(exc)) from None
        if name == "RatesRequest":
            return documents.rates_response(await self.receive_rates(content, channel="smev"))
        if name == "PacketsRequest":
            return await self.statuses(content)
        raise RequestRefused("wrong_root", f"ИАС не принимает {name}")
