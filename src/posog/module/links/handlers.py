"""Use cases of survey links (SPEC §5, §6): resolving a token into the survey it opens (ЛКП, ЛКО) and
completing a link with the ЛКО response that used it.

Each handler takes a command and an open unit of work (:class:`~posog.module.uow.ModuleUnitOfWork`)
and commits. State changes are the lifecycle's conditional updates (:mod:`posog.module.links.lifecycle`,
through ``uow.links``), so concurrent requests never move a link backwards (an ``opened`` after a
``completed``) and exactly one completion wins. No database connection is held while ЛКО is asked
about the questionnaire (the look-up's transaction ends first).

Resolving is the module's hottest request (every citizen opening a survey). ``uow.links.find_and_open``
may open the link along with the look-up when the catalog already knows the pinned version to be
answerable (the usual case: versions are cached for good, the questionnaire's status for ``ttl_s``):
on PostgreSQL that is one statement on one pooled connection
(:class:`~posog.module.links.repository.PostgresLinkRepository`); otherwise the link is read, ЛКО
asked, and the link opened in steps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

import structlog

from posog.core.clock import Clock
from posog.core.metrics import LINK_OUTCOMES
from posog.core.ratelimit import RateLimiter
from posog.lko.contracts import QuestionnaireDocument
from posog.module.contracts import LINK_ERRORS, LinkData, LinkOrganization, LinkService, SurveyLevel
from posog.module.links.catalog import QuestionnaireCatalog, version_key
from posog.module.links.lifecycle import EXPIRE, OPEN, REVOKE
from posog.module.links.model import COMPLETED, EXPIRED, OPENED, REVOKED, hash_token
from posog.module.links.queries import LinkWithCard
from posog.module.uow import ModuleUnitOfWork

log = structlog.get_logger(__name__)

_OPENED = LINK_OUTCOMES.labels("opened")  # the usual outcome, its counter looked up once


class LinkRefusal(Exception):
    """The link cannot be used: ``code`` is a SPEC §6 code, ``status`` the HTTP status to answer,
    ``retry_after`` (seconds) is set for ``too_many_requests``."""

    def __init__(self, code: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.status = status if status is not None else LINK_ERRORS[code]
        self.retry_after = retry_after


@dataclass(frozen=True)
class ResolveLink:
    """Open the survey behind ``token`` for ``client`` (the key its failed attempts are counted under)."""

    token: str
    client: str


@dataclass(frozen=True)
class CompleteSurveyLink:
    """Mark the link of ``token`` completed by the ЛКО response ``response_id``."""

    token: str
    response_id: str


@dataclass(frozen=True)
class RevokeLink:
    """An operator withdraws the link of card ``card_id`` (sent by mistake, a wrong citizen, a
    complaint): the citizen then sees that the link was revoked. ``reason`` is kept with the link."""

    card_id: str
    reason: str


class RevokeRefused(Exception):
    """The link cannot be revoked; the message (Russian, for the operator) says why."""


@dataclass(frozen=True)
class RevokedLink:
    card_id: str
    previous_state: str
    revoked_at: datetime


async def revoke_link(command: RevokeLink, uow: ModuleUnitOfWork, *, clock: Clock) -> RevokedLink:
    """Move a live link (issued, notified or opened) to ``revoked`` with its reason. A completed,
    expired or already revoked link, a card without a link and an unknown card are refused."""
    reason = " ".join(command.reason.split())
    if not reason:
        raise RevokeRefused("Укажите причину отзыва ссылки (--reason)")
    if len(reason) > 500:
        raise RevokeRefused("Причина отзыва — не длиннее 500 символов")
    now = clock()
    link = await uow.links.by_card(command.card_id)
    if link is None:
        raise RevokeRefused(f"У карточки «{command.card_id}» нет ссылки на опрос (или такой карточки нет)")
    previous = link.state
    if not REVOKE.allows(previous):
        raise RevokeRefused(f"Ссылку нельзя отозвать: она в состоянии «{previous}»")
    if not await uow.links.move(REVOKE, link.id, from_state=previous, at=now, revoke_reason=reason):
        raise RevokeRefused("Состояние ссылки только что изменилось; повторите команду")
    await uow.commit()
    LINK_OUTCOMES.labels("revoked").inc()
    log.info("links.revoked", card_id=command.card_id, previous_state=previous)
    return RevokedLink(command.card_id, previous, now)


def _refuse(code: str, *, status: int | None = None, retry_after: float | None = None) -> LinkRefusal:
    LINK_OUTCOMES.labels(code).inc()
    return LinkRefusal(code, status=status, retry_after=retry_after)


async def resolve_link(
    command: ResolveLink,
    uow: ModuleUnitOfWork,
    *,
    catalog: QuestionnaireCatalog,
    limiter: RateLimiter,
    clock: Clock,
) -> LinkData:
    """The survey behind a token, and the link moved to ``opened`` (``opened_at`` set once).

    Refusals, checked in this order: ``too_many_requests`` (the client failed too often — then even a
    valid token is refused, or guessing would reveal it), ``link_not_found``, ``link_revoked``,
    ``survey_completed``, ``link_expired`` (a live link past its expiry is marked ``expired``),
    ``questionnaire_unavailable`` (the pinned version is gone or the questionnaire was withdrawn in
    ЛКО). Only unknown and expired tokens count against the client: a citizen reopening a valid
    link is never limited. A failure over the budget (the limiter's ``hit`` refuses it: concurrent
    attempts, or attempts on other processes sharing the limiter) is answered ``too_many_requests``
    instead of its own refusal. Raises :class:`posog.lko.client.LkoError` when ЛКО cannot be asked."""
    wait = await limiter.retry_after(command.client)
    if wait is not None:
        raise _refuse("too_many_requests", retry_after=wait)
    now = clock()
    # The same work for every token, well-formed or not: one hash and one indexed lookup, so the
    # answer's timing says nothing about what exists.
    token_hash = hash_token(command.token)
    open_versions = catalog.open_versions()
    found = await uow.links.find_and_open(token_hash, now=now, open_versions=open_versions)
    await uow.commit()  # ends the look-up's transaction (if it had one): none is held while ЛКО is asked
    link, opened = (None, False) if found is None else found
    if link is None:
        await _count_failure(limiter, command.client)
        raise _refuse("link_not_found")
    if link.state == REVOKED:
        raise _refuse("link_revoked")
    if link.state == COMPLETED:
        raise _refuse("survey_completed")
    if link.state == EXPIRED or link.expires_at <= now:
        await _expire(uow, link.link_id, now)
        await _count_failure(limiter, command.client)
        raise _refuse("link_expired")

    # Known answerable (cached): no question to ЛКО; on PostgreSQL the link is already opened then.
    document = open_versions.get(version_key(link.questionnaire_id, link.questionnaire_version))
    if document is None:
        document = await catalog.version(link.questionnaire_id, link.questionnaire_version)
        if document is None or not await catalog.collecting(link.questionnaire_id):
            log.info(
                "links.questionnaire_unavailable",
                questionnaire_id=link.questionnaire_id,
                version=link.questionnaire_version,
                reason="version_missing" if document is None else "withdrawn",
            )
            raise _refuse("questionnaire_unavailable")

    if not opened and OPEN.allows(link.state):
        # Only from issued/notified: an opened link keeps its first opened_at, a completed one stays completed.
        await uow.links.move(OPEN, link.link_id, at=now)
        await uow.commit()
    _OPENED.inc()
    return _link_data(link, document)


async def _count_failure(limiter: RateLimiter, client: str) -> None:
    """Count a failed attempt; one over the budget (spent meanwhile by concurrent requests, or by
    the client's requests to other module processes sharing the limiter) is refused as such."""
    wait = await limiter.hit(client)
    if wait is not None:
        raise _refuse("too_many_requests", retry_after=wait)


async def complete_link(command: CompleteSurveyLink, uow: ModuleUnitOfWork, *, clock: Clock) -> None:
    """Mark the link completed by ``response_id``. Repeating it with the same response id is a no-op;
    refusals: ``link_not_found``, ``survey_completed`` (409: completed by another response),
    ``link_revoked``, ``link_expired`` (a live link past its expiry is marked ``expired``)."""
    now = clock()
    token_hash = hash_token(command.token)
    if await uow.links.complete(token_hash, response_id=command.response_id, now=now):
        await uow.commit()
        LINK_OUTCOMES.labels("completed").inc()
        return
    # Not completable as it stands: the reason.
    link = await uow.links.by_token(token_hash)
    if link is None:
        raise _refuse("link_not_found")
    if link.state == COMPLETED:
        if link.response_id == command.response_id:
            return  # a retry of the completion that already happened
        raise _refuse("survey_completed", status=409)
    if link.state == REVOKED:
        raise _refuse("link_revoked")
    if EXPIRE.allows(link.state):
        await _expire(uow, link.id, now)
    raise _refuse("link_expired")


async def _expire(uow: ModuleUnitOfWork, link_id: str, now: datetime) -> None:
    await uow.links.move(EXPIRE, link_id, at=now)
    await uow.commit()


def _link_data(link: LinkWithCard, questionnaire: QuestionnaireDocument) -> LinkData:
    return LinkData(
        card_id=link.card_id,
        expires_at=link.expires_at,
        survey_level=cast(SurveyLevel, link.survey_level),
        state=OPENED,
        service=LinkService(date=link.service_date, name=link.service_name),
        organization=LinkOrganization(
            name=link.org_name,
            address=link.org_address,
            inn=link.inn,
            ogrn=link.ogrn,
            kpp=link.kpp,
            region_code=link.region_code,
            type_code=link.type_code,
        ),
        questionnaire=questionnaire,
    )
