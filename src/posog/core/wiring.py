"""What every system's builder is given (``posog.bootstrap`` composes a process from the systems'
builders: ``posog.module.wiring.build_module`` and its siblings), and how a system's operator
commands get what they work with from the process that hosts them (:class:`CommandRuntime`).

Light on purpose: the command-line modules import it when ``posog --help`` runs."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from posog.core.bus import MessageBus
    from posog.core.clock import Clock
    from posog.core.db import Database
    from posog.core.pii import PiiCipher
    from posog.settings import Settings

T = TypeVar("T")

Job = Callable[[], Coroutine[Any, Any, None]]
"""A worker's body (``posog worker NAME``), run until cancelled."""


class ConfigurationError(Exception):
    """The configuration cannot work; the message names the setting (``posog`` prints it, exit 2)."""


@dataclass(frozen=True)
class Shared:
    """What the systems of one process share: the configuration, the database, the bus, the cipher of
    personal data and the clock."""

    settings: Settings
    db: Database
    bus: MessageBus
    cipher: PiiCipher
    clock: Clock


class CommandRuntime(Generic[T]):
    """How a system's operator commands open what they work with (a system's part wired to the others,
    on a database migrated by ``posog db upgrade``). A system cannot compose a process — that would
    import the other systems — so the process hosting the commands (``posog.cli``) provides it."""

    def __init__(self, system: str) -> None:
        self._system = system
        self._open: Callable[[], AbstractAsyncContextManager[T]] | None = None

    def provide(self, open_: Callable[[], AbstractAsyncContextManager[T]]) -> None:
        self._open = open_

    def open(self) -> AbstractAsyncContextManager[T]:
        if self._open is None:
            raise RuntimeError(f"the {self._system} commands were not given a runtime (posog.cli provides it)")
        return self._open()
