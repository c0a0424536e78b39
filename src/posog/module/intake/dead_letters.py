"""What intake puts in the facts' dead-letter queue: never a body in clear (it may carry a citizen's
ФИО, birth date and СНИЛС), but the same sealed copy the database keeps, with the reasons in the
``x-posog-reasons`` header, a JSON array of ``{"field", "reason"}`` (``posog.dead-letter/1``,
docs/asyncapi.yaml).

Intake publishes these to the dead-letter exchange itself (with confirms) and then acknowledges the
original; the broker dead-letters on its own only a message delivered more often than the queue's
delivery limit, which intake catches one delivery earlier (see the consumer)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from posog.core.bus import OutgoingMessage

DEAD_LETTER_SCHEMA = "posog.dead-letter/1"
REASONS_HEADER = "x-posog-reasons"
DEAD_LETTERED_AT_HEADER = "x-posog-dead-lettered-at"


def dead_letter(row: Mapping[str, Any]) -> OutgoingMessage:
    """The dead letter of a stored rejection (a row of ``module_rejected_facts`` as inserted)."""
    at: datetime = row["received_at"]
    reasons = orjson.dumps(row["reasons"]).decode()
    body = {
        "schema": DEAD_LETTER_SCHEMA,
        "raw_sha256": row["raw_hash"],
        "card_id": row["card_id"],
        "message_id": row["message_id"],
        "reasons": row["reasons"],
        "dead_lettered_at": at.isoformat(),
        # AES-256-GCM under the key ``pii_key_id``, associated data ``rejected:<raw_sha256>``
        "pii_key_id": row["pii_key_id"],
        "sealed_payload": base64.b64encode(row["payload"]).decode("ascii"),
    }
    return OutgoingMessage(
        orjson.dumps(body),
        message_id=row["message_id"] or f"rejected:{row['raw_hash']}",
        headers={REASONS_HEADER: reasons, DEAD_LETTERED_AT_HEADER: at.isoformat()},
    )
