"""The port through which every outgoing exchange reaches the СМЭВ adapter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class AdapterOutbound(Protocol):
    """Sends ClientMessage documents to the СМЭВ adapter (AMQP queue or SOAP Send). Returns when the
    adapter/broker has them (publisher confirms / Send answered); raises on failure (the caller's
    delivery engine retries)."""

    async def send(self, documents: Sequence[bytes]) -> None: ...
