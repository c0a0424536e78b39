"""Intake of ОГ facts (SPEC §3): validate, dedupe by card_id, store the card with its personal data
sealed, issue the link and its notification — all in one transaction per batch.

A batch is one pass over per-message objects (:class:`Incoming`: the raw message, what reading it
gave, its content hash, its outcome). The questionnaires the batch needs are fetched before its
transaction opens (a miss of the catalog's cache is an HTTP call to ЛКО, which must not hold a
transaction open) and handed down as an argument.

The handler is idempotent, so the bus may deliver at least once: a redelivered fact finds its card
and changes nothing; a different payload under a known card_id is recorded as a conflict."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import structlog
from lxml import etree
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from posog.core.bus import OutgoingMessage
from posog.core.clock import Clock, today
from posog.core.db import Database
from posog.core.pii import PiiCipher
from posog.lko.contracts import QuestionnaireDocument, SurveyLevel
from posog.module.contracts import CONTROL_CHARACTERS, FactContext, FactProblem, OgFact, Recipient
from posog.module.intake.dead_letters import dead_letter
from posog.module.intake.model import (
    CARD_LATE,
    CARD_LINKED,
    CARD_WAITING,
    ServiceCard,
    card_row,
    citizen_record,
    fact_fields,
)
from posog.module.intake.parsing import DEFAULT_MAX_FACT_BYTES, Rejection, card_id_of, read_fact
from posog.module.intake.repository import CardRepository
from posog.module.links.catalog import QuestionnaireCatalog
from posog.module.links.issuing import CardForLink, IssuedLink, issue_link
from posog.module.smev.answers import answer_of, answer_row
from posog.module.smev.ogfact import card_id_of_xml, looks_like_og_fact, read_og_fact, read_og_fact_bytes
from posog.module.smev.repository import AnswerRepository
from posog.module.uow import ModuleUnitOfWork

log = structlog.get_logger(__name__)

_KEEP_AT_MOST = 1024 * 1024  # a larger rejected body is not kept (its reasons and hash are)

OutcomeKind = Literal["accepted", "duplicate", "conflict", "rejected"]
Questionnaires = Mapping[tuple[str, str], QuestionnaireDocument | None]


class RawFact:
    """One message as received: its bytes and the AMQP message id (if any).

    Through СМЭВ (:mod:`posog.module.smev.facts`): ``body`` is the OgFactRequest document,
    ``message_id`` the СМЭВ MessageID, ``element`` the same element already parsed with its envelope
    (read as is, not parsed again) and ``reply_to`` the request's clientId, which the outcome is
    answered to (:mod:`posog.module.smev.answers`, in the same transaction).

    With an ``element``, ``body`` may be left out: it is then the element serialised (UTF-8), made
    only when something needs the bytes — a rejection or conflict to seal, or the size check when
    ``size_bound`` (at least the serialised element's length: see
    :func:`posog.module.smev.facts.raw_fact`) cannot settle it. An accepted or duplicate fact is
    never serialised."""

    __slots__ = ("_body", "element", "message_id", "reply_to", "size_bound")

    def __init__(
        self,
        body: bytes | None = None,
        message_id: str | None = None,
        element: Any = None,
        reply_to: str | None = None,
        *,
        size_bound: int | None = None,
    ) -> None:
        if body is None and element is None:
            raise ValueError("a raw fact needs its body or its element")
        self._body = body
        self.message_id = message_id
        self.element = element
        self.reply_to = reply_to
        self.size_bound = size_bound

    @property
    def body(self) -> bytes:
        if self._body is None:
            self._body = bytes(etree.tostring(self.element, encoding="UTF-8"))
        return self._body

    def within(self, max_bytes: int) -> bool:
        """Whether the body is at most ``max_bytes`` long (without making it when the bound says so)."""
        if self._body is None and self.size_bound is not None and self.size_bound <= max_bytes:
            return True
        return len(self.body) <= max_bytes


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    card_id: str | None = None
    problems: tuple[FactProblem, ...] = ()
    card_status: str | None = None
    fields: tuple[str, ...] = ()  # a conflict's differing field names
    # A rejected message's copy for the dead-letter queue: sealed, never the body in clear.
    dead_letter: OutgoingMessage | None = None


@dataclass
class Incoming:
    """One message on its way through a batch."""

    raw: RawFact
    read: OgFact | Rejection
    hash: str = ""  # the fact's content hash (valid facts only)
    outcome: Outcome | None = None

    @property
    def fact(self) -> OgFact | None:
        return self.read if isinstance(self.read, OgFact) else None


@dataclass
class IntakeStats:
    accepted: int = 0
    duplicate: int = 0
    conflict: int = 0
    rejected: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)

    def add(self, outcomes: Sequence[Outcome]) -> None:
        for outcome in outcomes:
            setattr(self, outcome.kind, getattr(self, outcome.kind) + 1)
            for problem in outcome.problems:
                key = str(problem)
                self.by_reason[key] = self.by_reason.get(key, 0) + 1


def fact_hash(fact: OgFact) -> str:
    """The identity of a fact's content: a re-sent fact with a new СМЭВ MessageID is the same fact."""
    canonical = fact.model_dump(mode="json", by_alias=True, exclude=_absent_optional(fact))
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _absent_optional(fact: OgFact) -> dict[str, Any]:
    """What the content hash leaves out: the message id, and the fields added to og.fact/1 later (the
    ФРГУ ids) when absent — so a card stored before they existed keeps its hash, and a fact re-sent
    without them is still the same fact."""
    exclude: dict[str, Any] = {"message_id": True}
    service = {name for name in ("frgu_service_id", "frgu_procedure_id") if getattr(fact.service, name) is None}
    if service:
        exclude["service"] = service
    if fact.organization.frgu_authority_id is None:
        exclude["organization"] = {"frgu_authority_id"}
    return exclude


def safe_message_id(message_id: str | None) -> str | None:
    """The AMQP message id as it may be stored and logged: AMQP allows any bytes in it (NUL included,
    which PostgreSQL refuses); anything with a control character is dropped, the rest cut to 100."""
    if not message_id or CONTROL_CHARACTERS.search(message_id):
        return None
    return message_id[:100]


def _comparable(fact: OgFact) -> dict[str, Any]:
    """The fields of a fact a conflict report may name: the card's and the citizen's."""
    return fact_fields(fact) | {f"citizen.{key}": value for key, value in citizen_record(fact).items()}


class IntakeHandler:
    """The use case behind the intake consumer, ``posog ingest`` and ``posog facts redrive``."""

    def __init__(
        self,
        db: Database,
        catalog: QuestionnaireCatalog,
        cipher: PiiCipher,
        clock: Clock,
        *,
        horizon_days: int,
        lkp_base_url: str,
        max_fact_bytes: int = DEFAULT_MAX_FACT_BYTES,
    ) -> None:
        self._db = db
        self._catalog = catalog
        self._cipher = cipher
        self._clock = clock
        self._horizon_days = horizon_days
        self._lkp_base_url = lkp_base_url
        self._max_fact_bytes = max_fact_bytes

    async def handle(self, messages: Sequence[RawFact], *, redrive_of: Sequence[str] | None = None) -> list[Outcome]:
        """Apply a batch of raw facts in one transaction; returns one outcome per message, in order.
        Retries the batch once if a concurrent worker inserted the same card_id meanwhile."""
        for attempt in range(3):
            try:
                return await self._handle_once(messages, redrive_of=redrive_of)
            except IntegrityError:
                if attempt == 2:
                    raise
                log.info("intake.batch_retry_after_race", size=len(messages))
        raise AssertionError("unreachable")

    async def _handle_once(self, messages: Sequence[RawFact], *, redrive_of: Sequence[str] | None) -> list[Outcome]:
        context = FactContext(
            today=today(self._clock),
            horizon_days=self._horizon_days,
            known_types=await self._catalog.known_types(),
        )
        batch = [Incoming(m, self._read(m, context)) for m in messages]
        for item in batch:
            if item.fact is not None:
                item.hash = fact_hash(item.fact)
        questionnaires = await self._questionnaires(
            {(f.organization.type_code, f.survey_level) for f in (i.fact for i in batch) if f is not None}
        )
        outcomes = await self._apply(batch, questionnaires, self._clock(), redrive_of)
        self._log(outcomes)
        return outcomes

    def _read(self, raw: RawFact, context: FactContext) -> OgFact | Rejection:
        """The fact of a message: JSON (og.fact/1), or the вид сведений ОГ's XML (already parsed when it
        came with its СМЭВ envelope; a stored one when re-driven). Never raises."""
        if raw.element is not None:
            if not raw.within(self._max_fact_bytes):
                return Rejection((FactProblem("payload", "too_large"),))
            return read_og_fact(raw.element, context, message_id=raw.message_id)
        if looks_like_og_fact(raw.body):
            return read_og_fact_bytes(raw.body, context, message_id=raw.message_id, max_bytes=self._max_fact_bytes)
        return read_fact(raw.body, context, max_bytes=self._max_fact_bytes)

    async def _questionnaires(
        self, keys: set[tuple[str, SurveyLevel]]
    ) -> dict[tuple[str, str], QuestionnaireDocument | None]:
        """The active questionnaire of each (type, level), from the catalog's cache; the misses are
        asked of ЛКО all at once."""
        ordered = sorted(keys)
        found = await asyncio.gather(*(self._catalog.active(type_code, level) for type_code, level in ordered))
        return dict(zip(ordered, found, strict=True))

    async def _apply(
        self, batch: list[Incoming], questionnaires: Questionnaires, now: datetime, redrive_of: Sequence[str] | None
    ) -> list[Outcome]:
        """One pass over the batch inside one transaction: each message's outcome and rows."""
        async with ModuleUnitOfWork(self._db) as uow:
            known = await uow.cards.known([i.fact.card_id for i in batch if i.fact is not None])
            cards: list[dict[str, Any]] = []
            links: list[dict[str, Any]] = []
            outbox: list[dict[str, Any]] = []
            conflicts: dict[tuple[str, str], dict[str, Any]] = {}
            rejected: list[dict[str, Any]] = []
            created: dict[str, OgFact] = {}  # cards created earlier in this batch, by card_id
            for item in batch:
                fact = item.fact
                if fact is None:
                    assert isinstance(item.read, Rejection)
                    item.outcome = self._rejected(item, item.read, now, stored=redrive_of is None, rows=rejected)
                elif fact.card_id in known:
                    payload_hash, status = known[fact.card_id]
                    if payload_hash == item.hash:
                        item.outcome = Outcome("duplicate", fact.card_id, card_status=status)
                    else:
                        if (fact.card_id, item.hash) not in conflicts:
                            row = self._conflict_row(item, fact, now)
                            row["differing_fields"] = await self._differing_fields(uow.cards, fact, created)
                            conflicts[(fact.card_id, item.hash)] = row
                        fields = conflicts[(fact.card_id, item.hash)]["differing_fields"]
                        item.outcome = Outcome("conflict", fact.card_id, fields=tuple(fields))
                else:
                    card, link = self._new_card(fact, item.hash, now, questionnaires)
                    known[fact.card_id] = (item.hash, card["status"])
                    created[fact.card_id] = fact
                    cards.append(card)
                    if link is not None:
                        links.append(link.link_row)
                        outbox.append(link.outbox_row)
                    item.outcome = Outcome("accepted", fact.card_id, card_status=card["status"])

            await uow.cards.add(cards)
            await uow.links.add(links)
            await uow.outbox.add(outbox)
            await uow.intake.add_conflicts(list(conflicts.values()))
            await uow.intake.add_rejections(rejected)
            outcomes = [i.outcome for i in batch if i.outcome is not None]
            assert len(outcomes) == len(batch)
            if redrive_of is not None:
                for rejected_id, outcome in zip(redrive_of, outcomes, strict=True):
                    reasons = _reasons(outcome.problems) if outcome.kind == "rejected" else None
                    await uow.intake.record_redrive(rejected_id, reasons, now)
            await _answer_senders(uow.session, batch, now)
            await uow.commit()
        return outcomes

    @staticmethod
    def _log(outcomes: Sequence[Outcome]) -> None:
        for outcome in outcomes:
            if outcome.kind == "rejected":
                # Reasons name fields only; the payload (with its personal data) is never logged.
                log.warning("intake.fact_rejected", card_id=outcome.card_id, reasons=[str(p) for p in outcome.problems])
            elif outcome.kind == "conflict":
                log.warning("intake.fact_conflict", card_id=outcome.card_id)

    def _new_card(
        self, fact: OgFact, payload_hash: str, now: datetime, questionnaires: Questionnaires
    ) -> tuple[dict[str, Any], IssuedLink | None]:
        """The card of a new fact, with its link and notification when a questionnaire collects."""
        key_id, sealed = self._cipher.seal_json(citizen_record(fact), context=fact.card_id)
        card = card_row(
            fact,
            payload_hash=payload_hash,
            pii_key_id=key_id,
            pii=sealed,
            snils_hash=self._cipher.snils_hash(fact.citizen.snils),
            created_at=now,
            updated_at=now,
        )
        questionnaire = questionnaires.get((fact.organization.type_code, fact.survey_level))
        if questionnaire is None:
            card["status"] = CARD_WAITING
            return card, None
        link = issue_link(
            CardForLink(
                card_id=fact.card_id,
                service_date=fact.service.date,
                service_name=fact.service.name,
                org_name=fact.organization.name,
                recipient=Recipient(
                    snils=fact.citizen.snils,
                    last_name=fact.citizen.last_name,
                    first_name=fact.citizen.first_name,
                    middle_name=fact.citizen.middle_name,
                ),
                frgu_service_id=fact.service.frgu_service_id,
            ),
            questionnaire,
            now=now,
            lkp_base_url=self._lkp_base_url,
            cipher=self._cipher,
        )
        card["status"] = CARD_LATE if link is None else CARD_LINKED
        return card, link

    async def _differing_fields(self, cards: CardRepository, fact: OgFact, in_batch: dict[str, OgFact]) -> list[str]:
        """Which fields differ from the card on record (stored, or created earlier in this batch):
        names only, never values."""
        if fact.card_id in in_batch:
            before = _comparable(in_batch[fact.card_id])
        else:
            card: ServiceCard | None = await cards.get(fact.card_id)
            if card is None:
                return []
            before = card.fields()
            if card.pii is not None and card.pii_key_id is not None:
                stored = self._cipher.open_json(card.pii_key_id, card.pii, context=card.card_id)
                before.update({f"citizen.{key}": value for key, value in stored.items()})
        after = _comparable(fact)
        return [name for name in after if name in before and before[name] != after[name]]

    def _conflict_row(self, item: Incoming, fact: OgFact, now: datetime) -> dict[str, Any]:
        key_id, sealed = self._cipher.seal(item.raw.body, context=f"conflict:{fact.card_id}")
        return {
            "card_id": fact.card_id,
            "message_id": fact.message_id,
            "payload_hash": item.hash,
            "differing_fields": [],
            "pii_key_id": key_id,
            "payload": sealed,
            "received_at": now,
        }

    def _rejected(
        self, item: Incoming, rejection: Rejection, now: datetime, *, stored: bool, rows: list[dict[str, Any]]
    ) -> Outcome:
        """A rejection's outcome; unless re-driven (already on record), its row to store and its dead letter."""
        if not stored:
            return Outcome("rejected", rejection.card_id, rejection.problems)
        row = self._rejected_row(item.raw, rejection, now)
        rows.append(row)
        return Outcome("rejected", rejection.card_id, rejection.problems, dead_letter=dead_letter(row))

    def _rejected_row(self, raw: RawFact, rejection: Rejection, now: datetime) -> dict[str, Any]:
        """The stored rejection: the body sealed (a body too large to keep is sealed empty), the reasons,
        and only what was checked to be storable (no NUL reaches PostgreSQL)."""
        raw_hash = hashlib.sha256(raw.body).hexdigest()
        kept = raw.body if len(raw.body) <= _KEEP_AT_MOST else b""
        key_id, sealed = self._cipher.seal(kept, context=f"rejected:{raw_hash}")
        return {
            "raw_hash": raw_hash,
            "message_id": safe_message_id(raw.message_id),
            "card_id": rejection.card_id,
            "reasons": _reasons(rejection.problems),
            "pii_key_id": key_id,
            "payload": sealed,
            "status": "rejected",
            "attempts": 1,
            "received_at": now,
            "updated_at": now,
        }

    # --- When a message cannot be handled -------------------------------------------------------

    async def quarantine(self, raw: RawFact, error: BaseException | None, reason: str = "processing_error") -> Outcome:
        """Record a message that made the handler fail (a bug, not bad input: ``payload:
        processing_error``) or that was delivered too often (``payload: delivery_limit``) as a rejected
        fact, so it is kept (sealed), dead-lettered and re-drivable. Nothing of the body is parsed
        here but, boundedly, its ``card_id``."""
        outcome, row = self._unhandled(raw, reason)
        async with ModuleUnitOfWork(self._db) as uow:
            await uow.intake.add_rejections([row])
            await _answer_senders(
                uow.session, [Incoming(raw, Rejection(outcome.problems), outcome=outcome)], row["received_at"], one=True
            )
            await uow.commit()
        log.error(
            "intake.fact_quarantined",
            reason=reason,
            error=None if error is None else error.__class__.__name__,
            card_id=outcome.card_id,
        )
        return outcome

    async def note_attempt(self, raw: RawFact) -> int:
        """Count (and commit) one more attempt at handling this returned message alone; the count so far."""
        async with ModuleUnitOfWork(self._db) as uow:
            attempts = await uow.intake.count_attempt(hashlib.sha256(raw.body).hexdigest(), self._clock())
            await uow.commit()
        return attempts

    def dead_letter_only(self, raw: RawFact, reason: str) -> Outcome:
        """The last resort when even the quarantine record cannot be stored: the sealed dead letter
        alone (the dead-letter queue keeps it, with the same ciphertext a stored rejection would hold)."""
        return self._unhandled(raw, reason)[0]

    def _unhandled(self, raw: RawFact, reason: str) -> tuple[Outcome, dict[str, Any]]:
        """The rejection ``payload: <reason>`` of a message that was not handled: its outcome (with the
        sealed dead letter) and the row that records it."""
        card_id = card_id_of_xml(raw.body) if looks_like_og_fact(raw.body) else card_id_of(raw.body)
        rejection = Rejection((FactProblem("payload", reason),), card_id)
        row = self._rejected_row(raw, rejection, self._clock())
        return Outcome("rejected", rejection.card_id, rejection.problems, dead_letter=dead_letter(row)), row

    # --- Operators -------------------------------------------------------------------------------

    async def redrive(self, rejected_ids: Sequence[str]) -> list[Outcome]:
        """Feed stored rejected facts through the handler again (after the directory or the sender
        fixed what was wrong). Accepted ones are marked ``redriven``; others get their new reasons."""
        async with ModuleUnitOfWork(self._db) as uow:
            found = await uow.intake.rejected(rejected_ids)
        missing = [i for i in rejected_ids if i not in found]
        if missing:
            raise KeyError(", ".join(missing))
        raws = [
            RawFact(
                self._cipher.open(found[i].pii_key_id, found[i].payload, context=f"rejected:{found[i].raw_hash}"),
                found[i].message_id,
            )
            for i in rejected_ids
        ]
        return await self.handle(raws, redrive_of=list(rejected_ids))


async def _answer_senders(
    session: AsyncSession, batch: Sequence[Incoming], now: datetime, *, one: bool = False
) -> None:
    """The answers to the senders of the batch's СМЭВ facts (those with a reply address), in the
    batch's transaction; a request clientId already answered keeps its first answer."""
    rows = [
        answer_row(
            item.raw.reply_to,
            kind=item.outcome.kind,
            answer=answer_of(item.outcome),
            now=now,
            card_id=item.outcome.card_id,
            request_message_id=safe_message_id(item.raw.message_id),
        )
        for item in batch
        if item.raw.reply_to and item.outcome is not None
    ]
    if one and rows:
        await AnswerRepository(session).add_one(rows[0])
    elif rows:
        await AnswerRepository(session).add(rows)


def _reasons(problems: Sequence[FactProblem]) -> list[dict[str, str]]:
    return [{"field": p.field, "reason": p.reason} for p in problems]
