"""ГЭПС delivery statuses coming back through СМЭВ (INTEGRATION §3): the ``ReplyRoute`` of the ГЭПС
feature, which the СМЭВ dispatcher (:mod:`posog.module.smev.dispatcher`) asks about every response,
status and error the adapter delivers.

A notification goes out as a ``RequestMessage`` whose ``clientId`` is the notification id (a UUID), so
a reply is ours when its ``originalClientId`` (``StatusMessage``, ``ErrorMessage``) or
``replyToClientId`` (``ResponseMessage``) is the id of one of our notifications. What it says:

- ``ErrorMessage`` of type ``CLIENT`` (ЕПГУ cannot deliver it: no such citizen, a refused document) →
  failed for good; of type ``SERVER`` (СМЭВ or ЕПГУ could not take it now) → sent again after the
  engine's backoff (:mod:`posog.module.notifications.deliveries`);
- ``StatusMessage`` ``ERROR`` → failed; ``OTHER`` whose details the mapping reads as delivered
  (``delivered: …``) → delivered; any other ``OTHER`` → progress (kept as the last status);
- ``ResponseMessage``: a ``status`` the mapping reads as delivered → delivered, another status or
  content → progress, ``rejects`` → failed.

A reply with an id that is not one of our notifications is not ours: :meth:`GepsReplyRoute.on_reply`
returns False, and the dispatcher keeps it (``module_smev_unmatched``) and logs it — so an unmatched
status is never lost. A UUID that no notification has is also logged here (no personal data: ids only).

ЕПГУ's texts are kept as the reason, with anything that looks like a СНИЛС masked: a fault description
could name the citizen's number, and the reason is shown to operators and counted in analytics."""

from __future__ import annotations

import re

import structlog

from posog.module.notifications.deliveries import DeliveryReport, GepsDeliveries
from posog.module.notifications.mapping import GepsMapping
from posog.module.smev.envelope import InboundError, InboundResponse, InboundStatus

log = structlog.get_logger(__name__)

Reply = InboundResponse | InboundStatus | InboundError

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# A СНИЛС as written anywhere: 11 digits, or 3-3-3 and 2 with dashes or spaces.
_SNILS = re.compile(r"\d{3}[- ]?\d{3}[- ]?\d{3}[- ]?\d{2}")


def masked(text: str | None) -> str | None:
    """``text`` with every СНИЛС-like number replaced by ``***``."""
    return None if text is None else _SNILS.sub("***", text)


def correlation_id(reply: Reply) -> str | None:
    """Our clientId the reply is about: ``replyToClientId`` of a response, ``originalClientId`` of a
    status or an error."""
    if isinstance(reply, InboundResponse):
        return reply.reply_to_client_id
    return reply.original_client_id


def report_of(reply: Reply, mapping: GepsMapping) -> DeliveryReport:
    """What ``reply`` says about the notification (see the module docstring)."""
    if isinstance(reply, InboundError):
        error_type = (reply.error_type or "").upper() or "SERVER"
        parts = [error_type, reply.fault_code, reply.fault_description or reply.details]
        reason = masked(": ".join(part.strip() for part in parts if part and part.strip()))
        return DeliveryReport("failed" if error_type == "CLIENT" else "retry", reason)
    if isinstance(reply, InboundStatus):
        details = (reply.details or "").strip()
        if reply.status.upper() == "ERROR":
            return DeliveryReport("failed", masked(f"ERROR: {details}" if details else "ERROR"))
        if details and mapping.is_delivered(details):
            return DeliveryReport("delivered", masked(details))
        return DeliveryReport("progress", masked(details or reply.status))
    if reply.rejects:
        reason = "; ".join(f"{reject.code}: {reject.description}" for reject in reply.rejects)
        return DeliveryReport("failed", masked(reason))
    if reply.status is not None:
        text = f"{reply.status.code}: {reply.status.description}".strip(": ")
        if mapping.is_delivered(reply.status.code):
            return DeliveryReport("delivered", masked(text))
        return DeliveryReport("progress", masked(text))
    return DeliveryReport("progress", "response")


class GepsReplyRoute:
    """The ГЭПС feature's ``ReplyRoute``: ``GepsReplyRoute(deliveries, mapping)``, where ``deliveries``
    is the :class:`GepsDeliveries` handler and ``mapping`` the :class:`GepsMapping` in use (its
    reading of "delivered"). Idempotent: a reply delivered again records nothing new."""

    def __init__(self, deliveries: GepsDeliveries, mapping: GepsMapping) -> None:
        self._deliveries = deliveries
        self._mapping = mapping

    async def on_reply(self, reply: Reply) -> bool:
        """True when the reply is about one of our notifications (recorded and committed); False when
        it is not ours — the dispatcher keeps it."""
        client_id = correlation_id(reply)
        if client_id is None or not _UUID.match(client_id):
            return False  # not a notification id: ИАС (ias-…), answers (ans-…), or nobody's
        recorded = await self._deliveries.record(client_id, report_of(reply, self._mapping))
        if recorded is None:
            log.warning(
                "geps.reply_unmatched",
                client_id=client_id,
                kind=type(reply).__name__,
                smev_message_id=reply.meta.message_id,
            )
            return False
        return True
