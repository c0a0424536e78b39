"""Building, sending and retrying ИАС МКГУ batches, and the schedule that makes them (SPEC §9).

A batch is (kind, period): ``aggregates`` — the SPEC §8 figures of the country, of every region and of
every organisation, asked of analytics — or ``rates`` — the individual ratings of the period's services
in the vashkontrol form, read from ЛКО's responses feed. Its id is deterministic
(``posog-<kind>-<from>-<to>``) and its payload is built once and frozen in ``module_ias_exports``, so
every attempt and every re-send carries the same bytes under the same id: the receiver keeps a batch id
once and answers 200 to a repeat.

Delivery, on the one engine (:mod:`posog.core.outbox`, delivery ``ias-export``): 2xx → ``sent``; a
connection error, 5xx, 408, 425 or 429 → another attempt after the engine's backoff
(``retry_base_s · 2^(attempts−1)``, at most ``retry_max_s``, a little less at random) until
``max_attempts``, then ``failed`` (dead); any other 4xx → ``failed`` at once (the receiver will never
take it; logged with its answer)."""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final, Literal

import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from posog.analytics.client import AnalyticsClient, AnalyticsError, AnalyticsRefused
from posog.core.clock import MOSCOW, Clock, today
from posog.core.db import Database
from posog.core.outbox import Failure, Outbox
from posog.lko.client import LkoClient, LkoError
from posog.lko.contracts import QuestionnaireDocument, StoredResponse
from posog.module.ias_export.model import FAILED, IAS_EXPORTS, PENDING, SENT, IasExport
from posog.module.ias_export.okato import okato_for_region
from posog.module.ias_export.rates import RateForm, criterion_ratings, rates_xml
from posog.module.intake.model import ServiceCard

log = structlog.get_logger(__name__)

Kind = Literal["aggregates", "rates"]
KINDS: Final[tuple[Kind, ...]] = ("aggregates", "rates")
AGGREGATES_SCHEMA: Final = "ias.aggregates/1"
_PATHS: Final[dict[str, tuple[str, str]]] = {
    "aggregates": ("/api/v1/batches", "application/json"),
    "rates": ("/api/v1/rates", "application/xml; charset=utf-8"),
}
_RETRYABLE_4XX: Final = frozenset({408, 425, 429})
LEASE_S: Final = 300.0  # a claimed attempt's batch is not picked by another worker for this long


class ExportError(Exception):
    """The batch could not be built (analytics or ЛКО unavailable): nothing was logged, try again."""


def batch_id(kind: str, date_from: date, date_to: date) -> str:
    """The batch's id: the same for the same kind and period, always."""
    return f"posog-{kind}-{date_from:%Y%m%d}-{date_to:%Y%m%d}"


@dataclass(frozen=True)
class Delivery:
    """What one attempt got: ``accepted`` (stored now), ``duplicate`` (already there), ``retry`` or
    ``refused`` (permanent)."""

    outcome: Literal["accepted", "duplicate", "retry", "refused"]
    status_code: int | None
    detail: str


class IasSender:
    """Posts batches to ИАС МКГУ (``POSOG_IAS_URL``, or the in-process emulator)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def send(self, kind: str, batch: str, payload: bytes) -> Delivery:
        path, content_type = _PATHS[kind]
        try:
            response = await self._http.post(
                path, content=payload, headers={"Content-Type": content_type, "X-Batch-Id": batch}
            )
        except httpx.HTTPError as exc:
            return Delivery("retry", None, f"ИАС недоступна: {exc.__class__.__name__}")
        code = response.status_code
        answer = response.text[:300]
        if 200 <= code < 300:
            return Delivery("duplicate" if code == 200 else "accepted", code, answer)
        if code >= 500 or code in _RETRYABLE_4XX:
            return Delivery("retry", code, f"HTTP {code}: {answer}")
        return Delivery("refused", code, f"HTTP {code}: {answer}")


def _sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


class IasExporter:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        analytics: AnalyticsClient,
        lko: LkoClient,
        sender: IasSender,
        *,
        retry_base_s: float = 30.0,
        retry_max_s: float = 3600.0,
        max_attempts: int = 20,
        page_size: int = 500,
        lease_s: float = LEASE_S,
    ) -> None:
        self._db = db
        self._clock = clock
        self._analytics = analytics
        self._lko = lko
        self._sender = sender
        self._retry_base_s = retry_base_s
        self._retry_max_s = retry_max_s
        self._max_attempts = max_attempts
        self._page_size = page_size
        self._lease = timedelta(seconds=lease_s)
        self.outbox = Outbox(
            db, IAS_EXPORTS, base_s=retry_base_s, cap_s=retry_max_s, max_attempts=max_attempts, clock=clock
        )

    # --- Batches -----------------------------------------------------------------------------------

    async def export(self, kind: Kind, date_from: date, date_to: date) -> IasExport:
        """Log the batch of (kind, period) if new, and make one attempt now: a new or pending batch is
        sent; a sent one is sent again (the receiver answers that it has it); a failed one is given
        another round of attempts."""
        if date_from > date_to:
            raise ValueError("the period's start is after its end")
        batch = batch_id(kind, date_from, date_to)
        row = await self.get(batch)
        if row is None:
            payload, items = await self.build(kind, date_from, date_to, batch)
            await self._create(batch, kind, date_from, date_to, payload, items)
        elif row.status == FAILED:  # re-driven: pending, with a fresh round of attempts
            await self.outbox.redrive([batch])
        return await self.attempt(batch)

    async def exists(self, kind: Kind, date_from: date, date_to: date) -> bool:
        return await self.get(batch_id(kind, date_from, date_to)) is not None

    async def get(self, batch: str) -> IasExport | None:
        async with self._db.uow() as uow:
            return await uow.session.get(IasExport, batch)

    async def log(self, limit: int = 100) -> Sequence[IasExport]:
        """The newest batches first."""
        async with self._db.uow() as uow:
            query = select(IasExport).order_by(IasExport.created_at.desc(), IasExport.batch_id).limit(limit)
            return (await uow.session.scalars(query)).all()

    async def _create(self, batch: str, kind: str, date_from: date, date_to: date, payload: bytes, items: int) -> None:
        now = self._clock()
        try:
            async with self._db.uow() as uow:
                uow.session.add(
                    IasExport(
                        batch_id=batch,
                        kind=kind,
                        period_from=date_from,
                        period_to=date_to,
                        status=PENDING,
                        attempts=0,
                        next_attempt_at=now,
                        payload=payload,
                        payload_sha256=_sha256(payload),
                        payload_size=len(payload),
                        items=items,
                        created_at=now,
                        updated_at=now,
                    )
                )
                await uow.commit()
        except IntegrityError:  # another worker logged it first: theirs is the frozen payload
            log.info("ias.batch.already_logged", batch_id=batch)
        else:
            log.info("ias.batch.logged", batch_id=batch, kind=kind, items=items, size=len(payload))

    # --- Delivery ----------------------------------------------------------------------------------

    async def attempt(self, batch: str) -> IasExport:
        """One delivery attempt of a logged batch, and its outcome logged."""
        now = self._clock()
        async with self._db.uow() as uow:
            row = await uow.session.get(IasExport, batch)
            if row is None:
                raise KeyError(batch)
            if row.status == PENDING:  # a lease, so that a concurrent worker does not send it too
                await self.outbox.lease(uow.session, batch, lease=self._lease, now=now)
                await uow.commit()
        delivery = await self._sender.send(row.kind, row.batch_id, row.payload)
        now = self._clock()
        async with self._db.uow() as uow:
            row = await uow.session.get(IasExport, batch)
            assert row is not None
            row.updated_at = now
            if delivery.outcome in ("accepted", "duplicate"):
                self.outbox.sent(row, at=row.sent_at or now)
                row.status = SENT
                log.info("ias.batch.sent", batch_id=batch, attempts=row.attempts, outcome=delivery.outcome)
            elif row.status == SENT:  # a re-send that did not go through changes nothing of the batch
                row.attempts += 1
                log.warning("ias.batch.resend_failed", batch_id=batch, error=delivery.detail)
            elif delivery.outcome == "refused":
                self.outbox.failed(row, Failure(batch, row.attempts, delivery.detail, permanent=True), now=now)
                row.status = FAILED
                log.error("ias.batch.refused", batch_id=batch, status=delivery.status_code, error=delivery.detail)
            elif self.outbox.failed(row, Failure(batch, row.attempts, delivery.detail), now=now):
                row.status = FAILED  # out of attempts
                row.last_error = f"{delivery.detail} (попыток: {row.attempts})"
                log.error("ias.batch.out_of_attempts", batch_id=batch, attempts=row.attempts, error=delivery.detail)
            else:
                assert row.next_attempt_at is not None
                log.warning(
                    "ias.batch.retry_scheduled",
                    batch_id=batch,
                    attempts=row.attempts,
                    next_attempt_at=row.next_attempt_at.isoformat(),
                    error=delivery.detail,
                )
            await uow.commit()
            return row

    async def retry_due(self) -> int:
        """Attempt every pending batch whose time has come; returns how many were attempted. Each is
        claimed under a lease first: only one worker attempts a batch at a time."""
        claimed = await self.outbox.claim_due(
            None, lease=self._lease, now=self._clock(), where=[IasExport.status == PENDING]
        )
        for row in claimed:
            await self.attempt(row.batch_id)
        return len(claimed)

    async def settle(self, batch: str, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> IasExport:
        """Keep attempting a pending batch, waiting out each backoff, until it is sent or failed."""
        while True:
            row = await self.get(batch)
            if row is None:
                raise KeyError(batch)
            if row.status != PENDING:
                return row
            if row.next_attempt_at is not None:
                wait = (row.next_attempt_at - self._clock()).total_seconds()
                if wait > 0:
                    await sleep(wait)
            await self.attempt(batch)

    # --- Payloads ----------------------------------------------------------------------------------

    async def build(self, kind: Kind, date_from: date, date_to: date, batch: str) -> tuple[bytes, int]:
        """The payload of a batch and the number of items in it."""
        try:
            if kind == "aggregates":
                return await self._aggregates(date_from, date_to, batch)
            return await self._rates(date_from, date_to)
        except (AnalyticsError, AnalyticsRefused, LkoError) as exc:
            raise ExportError(f"{kind} {date_from}..{date_to}: {exc}") from exc

    async def _aggregates(self, date_from: date, date_to: date, batch: str) -> tuple[bytes, int]:
        country = await self._analytics.summary(level="country", date_from=date_from, date_to=date_to)
        regions = await self._analytics.ratings(level="region", date_from=date_from, date_to=date_to)
        organizations = await self._analytics.ratings(level="organization", date_from=date_from, date_to=date_to)
        document: dict[str, Any] = {
            "schema": AGGREGATES_SCHEMA,
            "batch_id": batch,
            "kind": "aggregates",
            "period": {"from": date_from.isoformat(), "to": date_to.isoformat()},
            "min_responses": regions.min_responses,
            "country": country.model_dump(mode="json", exclude={"scope", "period"}),
            "regions": [item.model_dump(mode="json", exclude={"inn", "org_name"}) for item in regions.items],
            "organizations": [item.model_dump(mode="json") for item in organizations.items],
        }
        payload = json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
        return payload, 1 + len(regions.items) + len(organizations.items)

    async def _period_responses(self, date_from: date, date_to: date) -> list[StoredResponse]:
        found: list[StoredResponse] = []
        cursor: str | None = None
        while True:
            page = await self._lko.responses_feed(cursor, limit=self._page_size)
            for response in page.items:
                if date_from <= date.fromisoformat(response.service_date[:10]) <= date_to:
                    found.append(response)
            if not page.items or page.next_cursor is None or page.next_cursor == cursor:
                return found
            cursor = page.next_cursor

    async def _rates(self, date_from: date, date_to: date) -> tuple[bytes, int]:
        responses = await self._period_responses(date_from, date_to)
        versions: dict[tuple[str, int], QuestionnaireDocument | None] = {}
        for response in responses:
            key = (response.questionnaire_id, response.questionnaire_version)
            if key not in versions:
                versions[key] = await self._lko.questionnaire_version(*key)
        services = await self._services({r.card_id for r in responses})
        forms: list[RateForm] = []
        for response in sorted(responses, key=lambda r: (r.service_date, r.id)):
            questionnaire = versions[(response.questionnaire_id, response.questionnaire_version)]
            if questionnaire is None:
                log.warning("ias.rates.unknown_questionnaire", response_id=response.id)
                continue
            ratings = criterion_ratings(questionnaire, response.answers)
            if not ratings:
                continue
            service_name, service_code = services.get(response.card_id, (None, None))
            forms.append(
                RateForm(
                    foreign_id=response.id,
                    authority_name=response.org_name,
                    authority_inn=response.inn,
                    service_name=service_name or questionnaire.title,
                    service_code=service_code,
                    service_date=date.fromisoformat(response.service_date[:10]),
                    okato=okato_for_region(response.region_code),
                    ratings=ratings,
                )
            )
        return rates_xml(forms), len(forms)

    async def _services(self, card_ids: set[str]) -> dict[str, tuple[str | None, str | None]]:
        """card id → (service name, service code) from the module's own cards."""
        found: dict[str, tuple[str | None, str | None]] = {}
        ids = sorted(card_ids)
        async with self._db.uow() as uow:
            for start in range(0, len(ids), 500):
                rows = await uow.session.execute(
                    select(ServiceCard.card_id, ServiceCard.service_name, ServiceCard.service_code).where(
                        ServiceCard.card_id.in_(ids[start : start + 500])
                    )
                )
                for card_id, name, code in rows:
                    found[card_id] = (name, code)
        return found


# --- Schedule --------------------------------------------------------------------------------------


def previous_day(day: date) -> tuple[date, date]:
    yesterday = day - timedelta(days=1)
    return yesterday, yesterday


def previous_month(day: date) -> tuple[date, date]:
    last = day.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last.replace(day=calendar.monthrange(last.year, last.month)[1])


class IasSchedule:
    """``posog worker ias-export``: every ``interval_s``, once the Moscow hour is ``after_hour`` or later,
    the batches of the previous day (``daily``) and of the previous month (``monthly``) for each kind are
    made if not logged yet; then the pending batches whose time has come are attempted."""

    def __init__(
        self,
        exporter: IasExporter,
        clock: Clock,
        *,
        kinds: Sequence[Kind] = KINDS,
        daily: bool = True,
        monthly: bool = True,
        after_hour: int = 2,
        interval_s: float = 60.0,
    ) -> None:
        self._exporter = exporter
        self._clock = clock
        self._kinds = tuple(kinds)
        self._daily = daily
        self._monthly = monthly
        self._after_hour = after_hour
        self._interval_s = interval_s

    def periods(self, now: datetime) -> list[tuple[date, date]]:
        if now.astimezone(MOSCOW).hour < self._after_hour:
            return []
        day = today(lambda: now)
        found = []
        if self._daily:
            found.append(previous_day(day))
        if self._monthly:
            found.append(previous_month(day))
        return found

    async def tick(self) -> None:
        for date_from, date_to in self.periods(self._clock()):
            for kind in self._kinds:
                if await self._exporter.exists(kind, date_from, date_to):
                    continue
                try:
                    await self._exporter.export(kind, date_from, date_to)
                except ExportError as exc:
                    log.warning("ias.schedule.build_failed", error=str(exc))
        await self._exporter.retry_due()

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ias.schedule.tick_failed")
            await self._exporter.outbox.observe_quietly()  # the delivery's gauges, after each round
            await asyncio.sleep(self._interval_s)
