"""Issuing a link for a card: the link row and the outbox row of its notification, built together so
they are written in one transaction (SPEC §5, §4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from posog.core.pii import PiiCipher
from posog.lko.contracts import QuestionnaireDocument
from posog.module.contracts import Recipient
from posog.module.links.lifecycle import new_link_values
from posog.module.links.model import hash_token, link_expiry, new_token
from posog.module.notifications.geps import build_notification
from posog.module.notifications.model import TOPIC_GEPS


@dataclass(frozen=True)
class CardForLink:
    card_id: str
    service_date: date
    service_name: str | None
    org_name: str
    recipient: Recipient
    frgu_service_id: str | None = None  # the card's ФРГУ service id, sent in the ГЭПС document


@dataclass(frozen=True)
class IssuedLink:
    link_row: dict[str, Any]
    outbox_row: dict[str, Any]


def issue_link(
    card: CardForLink,
    questionnaire: QuestionnaireDocument,
    *,
    now: datetime,
    lkp_base_url: str,
    cipher: PiiCipher,
) -> IssuedLink | None:
    """A new link pinned to ``questionnaire``'s id and version, or None when the survey period of
    the card has already ended (a late fact gets a card but no link)."""
    expires_at = link_expiry(card.service_date, questionnaire.validity_days)
    if expires_at <= now:
        return None
    token = new_token()
    link = f"{lkp_base_url.rstrip('/')}/s/{token}"
    notification = build_notification(
        card_id=card.card_id,
        recipient=card.recipient,
        org_name=card.org_name,
        service_name=card.service_name,
        service_date=card.service_date,
        link=link,
        expires_at=expires_at,
        frgu_service_id=card.frgu_service_id,
    )
    key_id, body = cipher.seal(
        notification.model_dump_json(by_alias=True).encode(), context=notification.notification_id
    )
    return IssuedLink(
        link_row={
            "card_id": card.card_id,
            "token_hash": hash_token(token),
            "questionnaire_id": questionnaire.id,
            "questionnaire_version": questionnaire.version,
            "expires_at": expires_at,
            **new_link_values(now),
        },
        outbox_row={
            "message_id": notification.notification_id,
            "topic": TOPIC_GEPS,
            "card_id": card.card_id,
            "pii_key_id": key_id,
            "body": body,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        },
    )
