"""What every system's builder is given (``posog.bootstrap`` composes a process from the systems'
builders: ``posog.module.wiring.build_module`` and its siblings)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from posog.core.bus import MessageBus
from posog.core.clock import Clock
from posog.core.db import Database
from posog.core.pii import PiiCipher
from posog.settings import Settings

Job = Callable[[], Coroutine[Any, Any, None]]
"""A worker's body (``posog worker NAME``), run until cancelled."""


@dataclass(frozen=True)
class Shared:
    """What the systems of one process share: the configuration, the database, the bus, the cipher of
    personal data and the clock."""

    settings: Settings
    db: Database
    bus: MessageBus
    cipher: PiiCipher
    clock: Clock
