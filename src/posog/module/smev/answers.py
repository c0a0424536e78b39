"""The answer to every fact's sender (INTEGRATION §2).

Every fact that came through СМЭВ is answered with a ``ResponseMessage`` whose ``replyToClientId`` is
the request's ``clientId``:

- accepted → ``status`` ``accepted`` (parameters ``card_id``, ``link_state``: issued | waiting | late);
- the same fact under a new clientId → ``status`` ``duplicate`` (the same parameters);
- a different payload under a known card → ``status`` ``conflict`` (``card_id``, ``fields``: the
  differing field names, comma-separated);
- rejected → ``rejects``, one per problem, ``UNKNOWN_REQUEST_DESCRIPTION``, described as
  ``field: reason — a Russian sentence``.

No answer carries personal data: a card id, a link state, field names and reasons only.

The answer is a row of ``module_smev_answers`` written in the fact's own transaction (so a crash never
loses it) and unique per request clientId (so the same envelope delivered again by the broker gets no
second answer). :class:`AnswersRelay` sends the rows through an :class:`AdapterOutbound` on the
delivery engine; :class:`AnswerReplies` records what the adapter says back about them."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from sqlalchemy import update

from posog.core.clock import Clock
from posog.core.db import Database
from posog.core.outbox import Failure, Outbox, relay_forever
from posog.module.contracts import FactProblem
from posog.module.smev.envelope import (
    InboundError,
    InboundResponse,
    InboundStatus,
    OutboundInvalid,
    OutboundResponse,
    Reject,
    Status,
    client_message,
)
from posog.module.smev.model import ANSWER_PREFIX, SMEV_ANSWERS, SmevAnswer
from posog.module.smev.port import AdapterOutbound
from posog.module.smev.repository import AnswerRepository

if TYPE_CHECKING:
    from posog.module.intake.handlers import Outcome

log = structlog.get_logger(__name__)

REJECT_CODE = "UNKNOWN_REQUEST_DESCRIPTION"
LINK_STATES = {"linked": "issued", "waiting": "waiting", "late": "late"}
SERVER_ERROR_RETRIES = 5  # a СМЭВ server error about an answer sends it again, this many times at most

STATUS_TEXT = {
    "accepted": "Сведения приняты.",
    "duplicate": "Эти сведения уже были приняты ранее; повторная отправка ничего не изменила.",
    "conflict": "Карточка с этим идентификатором уже принята с другими сведениями; новые сведения не применены.",
}

# What each reason means, in the sender's language. Field names and reasons only: never a value.
REASON_TEXT = {
    "required": "Обязательное поле не заполнено.",
    "unknown_field": "Такого поля нет в схеме вида сведений.",
    "not_allowed": "Недопустимое значение.",
    "bad_type": "Значение не того типа: ожидается текст или вложенные поля по схеме.",
    "bad_date": "Дата должна быть в формате ГГГГ-ММ-ДД.",
    "too_long": "Значение длиннее допустимого.",
    "bad_format": "Значение не соответствует формату.",
    "bad_length": "Неверное количество цифр.",
    "bad_checksum": "Контрольное число не сходится.",
    "in_future": "Дата оказания услуги в будущем.",
    "too_old": "Дата оказания услуги старше допустимого срока приёма сведений.",
    "unknown_type": "Тип организации отсутствует в справочнике ПОС ОГ.",
    "unknown_region": "Неизвестный код региона.",
    "unresolved": "Регион не удалось определить ни по коду, ни по адресу, КПП или ИНН.",
    "not_allowed_for_individual": "КПП не указывается для индивидуального предпринимателя.",
    "implausible": "Недостоверная дата рождения.",
    "after_service_date": "Дата рождения позже даты оказания услуги.",
    "control_character": "Значение содержит управляющие символы.",
    "duplicate_key": "Поле указано более одного раза.",
    "wrong_namespace": "Элемент в чужом пространстве имён.",
    "wrong_element": "Вид сведений не поддерживается: ожидается OgFactRequest (urn://x-artefacts-posog/og-fact/1.0.0).",
    "too_large": "Сообщение больше допустимого размера.",
    "too_many_problems": "Ошибок слишком много; показаны первые.",
    "not_xml": "Сообщение не является корректным XML-документом.",
    "entities": "Документы с DTD и сущностями не принимаются.",
    "invalid": "Сообщение не соответствует схеме адаптера СМЭВ.",
    "not_utf8": "Сообщение не в кодировке UTF-8.",
    "invalid_json": "Сообщение не является корректным JSON.",
    "too_deep": "Слишком глубокая вложенность.",
    "unreadable": "Сообщение не удалось прочитать.",
    "processing_error": "Сообщение не удалось обработать; оно сохранено и будет разобрано оператором.",
    "delivery_limit": "Сообщение не удалось обработать за допустимое число попыток; оно сохранено для оператора.",
}
DEFAULT_REASON_TEXT = "Значение не прошло проверку."


def describe(problem: FactProblem) -> str:
    """``field: reason — a Russian sentence`` (no value of the message in it)."""
    return f"{problem} — {REASON_TEXT.get(problem.reason, DEFAULT_REASON_TEXT)}"[:4000]


def new_answer_id() -> str:
    """Our own clientId of an answer: ``ans-`` and 32 hex digits (the adapter allows 50 characters)."""
    return f"{ANSWER_PREFIX}{secrets.token_hex(16)}"  # 128 random bits, as uuid4's hex but without building a UUID


def answer_of(outcome: Outcome) -> dict[str, Any]:
    """What the ResponseMessage says about an intake outcome (the row's ``answer``)."""
    if outcome.kind == "rejected":
        return {"rejects": [{"code": REJECT_CODE, "description": describe(p)} for p in outcome.problems]}
    parameters: list[list[str]] = []
    if outcome.card_id is not None:
        parameters.append(["card_id", outcome.card_id])
    if outcome.kind == "conflict":
        parameters.append(["fields", ",".join(outcome.fields)])
    elif outcome.card_status is not None:
        parameters.append(["link_state", LINK_STATES.get(outcome.card_status, outcome.card_status)])
    return {"status": {"code": outcome.kind, "description": STATUS_TEXT[outcome.kind], "parameters": parameters}}


def rejects_answer(problems: Sequence[FactProblem]) -> dict[str, Any]:
    return {"rejects": [{"code": REJECT_CODE, "description": describe(p)} for p in problems]}


def answer_row(
    reply_to: str,
    *,
    kind: str,
    answer: dict[str, Any],
    now: datetime,
    card_id: str | None = None,
    request_message_id: str | None = None,
) -> dict[str, Any]:
    return {
        "client_id": new_answer_id(),
        "reply_to_client_id": reply_to,
        "request_message_id": request_message_id,
        "card_id": card_id,
        "kind": kind,
        "answer_json": orjson.dumps(answer).decode(),  # UTF-8 as is, like json.dumps(ensure_ascii=False)
        "created_at": now,
        "attempts": 0,
        "next_attempt_at": now,
    }


def answer_document(it_system: str, row: SmevAnswer) -> bytes:
    """The ClientMessage of an answer row (validated: :class:`OutboundInvalid` if it cannot be sent)."""
    answer = row.answer
    status = answer.get("status")
    message = OutboundResponse(
        client_id=row.client_id,
        reply_to_client_id=row.reply_to_client_id,
        rejects=tuple(Reject(r["code"], r["description"]) for r in answer.get("rejects", ())),
        status=None
        if status is None
        else Status(status["code"], status["description"], tuple((k, v) for k, v in status.get("parameters", ()))),
    )
    return client_message(it_system, message)


# --- Sending ---------------------------------------------------------------------------------------

BASE_BACKOFF_S = 0.5


class AnswersRelay:
    """``smev-answers`` on the delivery engine: claims due answer rows (``FOR UPDATE SKIP LOCKED``, held
    while sending), builds their ClientMessage documents and hands them to the adapter in one call;
    marks them sent when the adapter (or its broker) has them, retries with backoff otherwise. A row
    whose document cannot be built is dead at once (``posog outbox dead smev-answers``)."""

    def __init__(
        self,
        db: Database,
        outbound: AdapterOutbound,
        clock: Clock,
        *,
        it_system: str,
        batch_size: int = 200,
        idle_sleep_s: float = 0.2,
        max_backoff_s: float = 60.0,
    ) -> None:
        self._db = db
        self._outbound = outbound
        self._clock = clock
        self._it_system = it_system
        self._batch_size = batch_size
        self._idle_sleep_s = idle_sleep_s
        self.outbox = Outbox(db, SMEV_ANSWERS, base_s=BASE_BACKOFF_S, cap_s=max_backoff_s, clock=clock)
        self.sent = 0

    async def relay_once(self) -> int:
        """Send one batch of due answers; how many were sent (0: none due, or the adapter failed)."""
        now = self._clock()
        async with self._db.uow() as uow:
            query = self.outbox.due(now=now, limit=self._batch_size).order_by(SmevAnswer.next_attempt_at, SmevAnswer.id)
            rows = list((await uow.session.scalars(query)).all())
            if not rows:
                return 0
            documents: list[bytes] = []
            ready: list[SmevAnswer] = []
            broken: list[Failure] = []
            for row in rows:
                try:
                    documents.append(answer_document(self._it_system, row))
                    ready.append(row)
                except (OutboundInvalid, KeyError, TypeError, ValueError) as error:
                    broken.append(Failure(row.id, row.attempts, f"unbuildable: {error}"[:300], permanent=True))
            await self.outbox.mark_failed(uow.session, broken, now=now)
            if ready:
                try:
                    await self._outbound.send(documents)
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    failures = [Failure(row.id, row.attempts, f"{error.__class__.__name__}: {error}") for row in ready]
                    await self.outbox.mark_failed(uow.session, failures, now=now)
                    await uow.commit()
                    log.warning("smev.answers_send_failed", size=len(ready), error=error.__class__.__name__)
                    return 0
                await self.outbox.mark_sent(uow.session, [row.id for row in ready], at=self._clock())
            await uow.commit()
        self.sent += len(ready)
        return len(ready)

    async def run(self) -> None:
        """Relay until cancelled; sleeps only when there was nothing to send."""
        log.info("smev.answers_relay_started")
        await relay_forever(
            self.relay_once,
            name=SMEV_ANSWERS.name,
            batch_size=self._batch_size,
            idle_sleep_s=self._idle_sleep_s,
            observe=self.outbox.observe,
        )


# --- What the adapter says back about an answer ----------------------------------------------------


class AnswerReplies:
    """A ``ReplyRoute`` (:mod:`posog.module.smev.dispatcher`) for replies about our answers (``ans-…``):
    a status or an error is recorded on the answer's row. A СМЭВ server error sends the answer again
    (up to :data:`SERVER_ERROR_RETRIES` times); a client error makes it dead, for an operator to look at
    (``posog outbox dead smev-answers``)."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def on_reply(self, reply: InboundResponse | InboundStatus | InboundError) -> bool:
        ours = reply.reply_to_client_id if isinstance(reply, InboundResponse) else reply.original_client_id
        if not ours or not ours.startswith(ANSWER_PREFIX):
            return False
        now = self._clock()
        async with self._db.uow() as uow:
            row = await AnswerRepository(uow.session).by_client_id(ours)
            if row is None:
                return False
            values: dict[str, Any] = {"adapter_status_at": now}
            if isinstance(reply, InboundResponse):
                values["adapter_status"] = "RESPONSE"
                values["adapter_detail"] = "; ".join(r.description for r in reply.rejects)[:2000] or (
                    reply.status.code if reply.status is not None else None
                )
            else:
                values["adapter_status"] = reply.status or ("ERROR" if isinstance(reply, InboundError) else "OTHER")
                detail = reply.details
                if isinstance(reply, InboundError):
                    detail = " ".join(
                        part for part in (reply.error_type, reply.fault_code, reply.fault_description, detail) if part
                    )
                    values.update(self._after_error(row, reply, now))
                values["adapter_detail"] = (detail or "")[:2000] or None
            await uow.session.execute(update(SmevAnswer).where(SmevAnswer.id == row.id).values(**values))
            await uow.commit()
        log.info("smev.answer_reply", answer=ours, status=values["adapter_status"])
        return True

    @staticmethod
    def _after_error(row: SmevAnswer, error: InboundError, now: datetime) -> dict[str, Any]:
        reason = f"adapter {error.error_type} error: {error.fault_code or ''} {error.fault_description or ''}".strip()
        if error.error_type == "SERVER" and row.attempts < SERVER_ERROR_RETRIES:
            return {"sent_at": None, "next_attempt_at": now, "last_error": reason[:500]}
        return {"dead_at": now, "last_error": reason[:500]}
