"""Use cases of responses: accepting a citizen's submission exactly once (SPEC §5, §7) and finishing
the link completions a crash or an unreachable module left pending.

Exactly once, step by step:

1. A submission whose idempotency key is already stored is a retry: it gets the stored response (200)
   from ЛКО's own table — its link may be completed by then, so the module would refuse it. (A retry
   that raced its original — not stored yet when looked up, completed when the module is asked — is
   looked up again on the module's ``survey_completed``.)
2. The module resolves the link (refusals are relayed with the module's message for the citizen).
3. The answers are validated against the questionnaire version the link pinned.
4. The response is inserted and committed. ``card_id`` and ``idempotency_key`` are unique: of any
   number of concurrent submissions for one link exactly one row can exist; the others fail here
   and are told the survey is completed (or, for the same key, get the stored response).
5. Only then is the module asked to complete the link with the response's id. So the module never
   holds a completed link without ЛКО holding its response; and if this step does not happen (the
   module is down, the process dies), the row keeps the token and :func:`complete_pending` re-sends
   the completion later — the module accepts the same response id again as a no-op.

No database connection is held while the module is called (in the embedded mode both systems share
one pool, and the module calls back into ЛКО for questionnaires): the unit of work's transaction is
ended (committed) before each call."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy.exc import IntegrityError

from posog.core.clock import Clock, utcnow
from posog.core.db import Database, new_uuid
from posog.core.outbox import Failure, Outbox
from posog.lko.contracts import AnswerValue, StoredResponse
from posog.lko.responses.model import COMPLETIONS, PendingCompletion, SurveyResponse
from posog.lko.responses.validation import validate_answers
from posog.lko.uow import LkoUnitOfWork
from posog.module.client import LinkRefused, ModuleClient, ModuleError
from posog.module.contracts import LINK_ERRORS, LinkData
from posog.settings import Settings

log = structlog.get_logger(__name__)

SURVEY_COMPLETED = "Ответы на эту анкету уже отправлены — повторно заполнить её нельзя. Спасибо за вашу оценку!"
IDEMPOTENCY_CONFLICT = "Эта отправка не совпадает с предыдущей. Обновите страницу опроса и отправьте ответы ещё раз."
MODULE_UNAVAILABLE = (
    "Не удалось отправить ответы: сервис временно недоступен. Попробуйте отправить их ещё раз через несколько минут."
)

# The module's answers to a completion that settle it for good. Anything else (a misconfigured key,
# a 5xx) is left pending and retried.
_FINAL_REFUSALS = frozenset({"link_not_found", "link_expired", "link_revoked", "survey_completed"})
# A completion that failed again is retried after the engine's backoff, at most the recovery's
# interval: every run of the recovery retries what is pending, for ever, as before the engine.
RETRY_BASE_S = 1.0
RETRY_CAP_S = 60.0
COMPLETION_LEASE = timedelta(seconds=120)


def completions(db: Database, clock: Clock = utcnow) -> Outbox[PendingCompletion]:
    """The engine over the pending link completions."""
    return Outbox(db, COMPLETIONS, base_s=RETRY_BASE_S, cap_s=RETRY_CAP_S, clock=clock)


class SubmissionRefused(Exception):
    """The submission cannot be accepted: HTTP ``status``, ``code`` and a Russian ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message


class ModuleUnavailable(Exception):
    """The module could not be asked about the link; nothing was stored, the citizen may retry."""


@dataclass(frozen=True)
class SubmitResponse:
    """A citizen's answers to the survey of ``token``. ``client_id`` identifies the citizen's client
    for the module's rate limiting of link attempts."""

    token: str
    idempotency_key: str
    answers: dict[str, AnswerValue]
    client_id: str | None = None


@dataclass(frozen=True)
class Submitted:
    response: StoredResponse
    created: bool  # False: a retry, answered with the response stored before


def token_hash(token: str) -> str:
    """SHA-256 of the token, as the module stores it: recognises a retry without keeping the token."""
    return hashlib.sha256(token.encode()).hexdigest()


async def submit_response(
    command: SubmitResponse, uow: LkoUnitOfWork, module: ModuleClient, *, clock: Clock = utcnow
) -> Submitted:
    """Store a citizen's answers exactly once (see the module docstring). Raises
    :class:`~posog.lko.responses.validation.AnswersInvalid` (422), :class:`SubmissionRefused`
    (the link's or the survey's state) or :class:`ModuleUnavailable` (503)."""
    stored = await _by_idempotency_key(uow, command.idempotency_key)
    if stored is not None:
        return await _replay(stored, command, uow, module, clock)

    try:
        link = await _resolve(command, module)
    except SubmissionRefused as refused:
        # The same submission sent twice at once: the other request stored it and completed the link
        # between our look-up and the module's answer. A retry gets the stored response, not a refusal.
        if refused.code == "survey_completed":
            stored = await _by_idempotency_key(uow, command.idempotency_key)
            if stored is not None:
                return await _replay(stored, command, uow, module, clock)
        raise
    answers = validate_answers(link.questionnaire, command.answers)
    response = _new_response(command, link, answers, clock)
    try:
        await uow.responses.add(response)
        await uow.commit()
    except IntegrityError:
        await uow.rollback()
        stored = await _by_idempotency_key(uow, command.idempotency_key)
        if stored is not None:  # the same submission, sent twice at once
            return await _replay(stored, command, uow, module, clock)
        log.info("responses.card_already_answered", card_id=link.card_id)
        raise SubmissionRefused(409, "survey_completed", SURVEY_COMPLETED) from None
    accepted = response.to_contract()
    log.info("responses.accepted", response_id=response.id, card_id=response.card_id)
    await _complete_link(uow, module, response.id, command.token, clock)
    return Submitted(accepted, created=True)


async def complete_pending(
    db: Database,
    module: ModuleClient,
    *,
    clock: Clock = utcnow,
    older_than: timedelta = timedelta(0),
    limit: int = 100,
    lease: timedelta = COMPLETION_LEASE,
) -> int:
    """Re-send the link completions the module has not confirmed (the process died between storing a
    response and completing its link, or the module was unreachable). Idempotent and safe to run in
    several processes at once: the module takes a completion with the same response id as a no-op.
    Returns how many were settled."""
    outbox = completions(db, clock)
    claimed = await outbox.claim_due(limit, lease=lease, where=[PendingCompletion.created_at <= clock() - older_than])
    if not claimed:
        return 0
    async with LkoUnitOfWork(db) as uow:
        tokens = await uow.responses.completion_tokens([row.response_id for row in claimed])
    settled = 0
    for row in claimed:
        token = tokens.get(row.response_id)
        if token is None:  # settled meanwhile (a retried submission completed it): nothing to send
            async with db.uow() as uow:
                await outbox.mark_sent(uow.session, [row.response_id], at=clock())
                await uow.commit()
            continue
        async with LkoUnitOfWork(db) as uow:
            error = await _settle_link(uow, module, row.response_id, token, clock)
        if error is None:
            settled += 1
            continue
        async with db.uow() as uow:
            await outbox.mark_failed(uow.session, [Failure(row.response_id, row.attempts, error)], now=clock())
            await uow.commit()
    log.info("responses.pending_completions", found=len(claimed), settled=settled)
    return settled


class CompletionRecovery:
    """:func:`complete_pending` on a schedule: a worker runs :meth:`run_forever`; the API nudges it
    after submissions (:meth:`nudge` runs at most once per ``interval_s`` and only looks at responses
    older than ``grace``, so it does not race the requests still completing their own links)."""

    def __init__(
        self,
        db: Database,
        module: ModuleClient,
        *,
        interval_s: float = 60.0,
        grace: timedelta = timedelta(seconds=60),
        lease: timedelta = COMPLETION_LEASE,
        clock: Clock = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._module = module
        self._interval = interval_s
        self._grace = grace
        self._lease = lease
        self._clock = clock
        self._now = monotonic
        self._last_run: float | None = None

    @classmethod
    def from_settings(cls, db: Database, module: ModuleClient, settings: Settings) -> CompletionRecovery:
        """The recovery of ``posog worker lko-completions``, as configured (``POSOG_LKO_COMPLETION_*``)."""
        return cls(
            db,
            module,
            interval_s=settings.lko_completion_interval_s,
            grace=timedelta(seconds=settings.lko_completion_grace_s),
            lease=timedelta(seconds=settings.lko_completion_lease_s),
        )

    async def nudge(self) -> None:
        """Run once if the last run is older than the interval; never raises."""
        now = self._now()
        if self._last_run is not None and now - self._last_run < self._interval:
            return
        self._last_run = now
        await self._run_once()

    async def run_forever(self) -> None:
        outbox = completions(self._db, self._clock)
        while True:
            await self._run_once()
            await outbox.observe_quietly()  # the delivery's gauges, after each round
            await asyncio.sleep(self._interval)

    async def _run_once(self) -> None:
        try:
            await complete_pending(self._db, self._module, clock=self._clock, older_than=self._grace, lease=self._lease)
        except Exception as exc:
            log.warning("responses.recovery_failed", error=exc.__class__.__name__)


async def _by_idempotency_key(uow: LkoUnitOfWork, idempotency_key: str) -> SurveyResponse | None:
    """The response stored under ``idempotency_key``; the look-up's transaction is ended (committed:
    the row stays readable) so that none is held while the module is called next."""
    stored = await uow.responses.by_idempotency_key(idempotency_key)
    await uow.commit()
    return stored


async def _replay(
    stored: SurveyResponse, command: SubmitResponse, uow: LkoUnitOfWork, module: ModuleClient, clock: Clock
) -> Submitted:
    """A retry of a stored submission: the stored response, if the key was used for the same link."""
    if not hmac.compare_digest(stored.token_hash, token_hash(command.token)):
        raise SubmissionRefused(409, "idempotency_conflict", IDEMPOTENCY_CONFLICT)
    replayed = stored.to_contract()
    if stored.completion_token is not None:  # finish what the first attempt could not
        await _complete_link(uow, module, stored.id, stored.completion_token, clock)
    return Submitted(replayed, created=False)


async def _resolve(command: SubmitResponse, module: ModuleClient) -> LinkData:
    try:
        return await module.resolve_link(command.token, client_id=command.client_id)
    except LinkRefused as refusal:
        if refusal.code == "survey_completed":
            # The card has its response. (A link completed in the module while ЛКО holds no response
            # for its card cannot happen: the module completes a link only when ЛКО asks, after
            # committing the response. Should databases be restored out of step, the citizen still
            # gets this answer and nothing breaks.)
            raise SubmissionRefused(409, "survey_completed", SURVEY_COMPLETED) from None
        if refusal.code in LINK_ERRORS:
            raise SubmissionRefused(refusal.status, refusal.code, refusal.message) from None
        # Not a link's state (e.g. our service key is refused): our problem, not the citizen's.
        log.error("responses.module_refused_call", status=refusal.status, code=refusal.code)
        raise ModuleUnavailable(refusal.code) from None
    except ModuleError as exc:
        log.warning("responses.module_unavailable", error=str(exc))
        raise ModuleUnavailable(str(exc)) from exc


def _new_response(
    command: SubmitResponse, link: LinkData, answers: dict[str, AnswerValue], clock: Clock
) -> SurveyResponse:
    org = link.organization
    return SurveyResponse(
        id=new_uuid(),
        card_id=link.card_id,
        idempotency_key=command.idempotency_key,
        token_hash=token_hash(command.token),
        questionnaire_id=link.questionnaire.id,
        questionnaire_version=link.questionnaire.version,
        type_code=org.type_code,
        survey_level=link.survey_level,
        inn=org.inn,
        ogrn=org.ogrn,
        kpp=org.kpp,
        region_code=org.region_code,
        org_name=org.name,
        service_date=link.service.date,
        answers=answers,
        submitted_at=clock(),
        completion_token=command.token,
    )


async def _complete_link(uow: LkoUnitOfWork, module: ModuleClient, response_id: str, token: str, clock: Clock) -> bool:
    """Ask the module to complete the link with ``response_id`` and record its answer. False when the
    module could not be reached (the completion stays pending for :func:`complete_pending`)."""
    return await _settle_link(uow, module, response_id, token, clock) is None


async def _settle_link(
    uow: LkoUnitOfWork, module: ModuleClient, response_id: str, token: str, clock: Clock
) -> str | None:
    """:func:`_complete_link`, saying why not: None when settled, else what the module answered."""
    refusal: str | None = None
    try:
        await module.complete_link(token, response_id)
    except ModuleError as exc:
        log.warning("responses.completion_deferred", response_id=response_id, error=str(exc))
        return f"{exc.__class__.__name__}: {exc}"
    except LinkRefused as refused:
        if refused.code not in _FINAL_REFUSALS:
            log.error("responses.completion_refused_call", response_id=response_id, code=refused.code)
            return f"refused: {refused.code}"
        refusal = refused.code
        if refusal == "survey_completed":
            # Completed by another response id. Impossible by construction: the module completes a
            # link only when ЛКО asks, ЛКО asks only with the id of a committed row, and card_id is
            # unique here — one row per card, so one id per link. Reachable only if the two
            # databases were restored to different moments; the answer is kept and the discrepancy
            # logged for operators.
            log.error("responses.link_completed_by_another_response", response_id=response_id)
        else:
            # The link expired or was revoked after it was resolved for this submission (e.g. around
            # midnight, or a long outage before recovery): the answers were accepted while it was
            # valid and are kept.
            log.warning("responses.completion_refused", response_id=response_id, code=refusal)
    await uow.responses.settle_completion(
        response_id, completed_at=clock() if refusal is None else None, refusal=refusal, at=clock()
    )
    await uow.commit()
    return None
