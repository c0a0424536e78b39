"""Structured logs (structlog). Personal data is never passed to a logger; as a second line of
defence a processor masks anything shaped like a СНИЛС, and keys named like personal fields."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import structlog

_SNILS = re.compile(r"\b\d{3}[- ]?\d{3}[- ]?\d{3}[- ]?\d{2}\b")
_PII_KEYS = frozenset({"snils", "last_name", "first_name", "middle_name", "birth_date", "citizen", "recipient", "fio"})


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return _SNILS.sub("***", value)
    if isinstance(value, dict):
        return {k: ("***" if k in _PII_KEYS else _mask(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    return value


def redact_personal_data(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        event_dict[key] = "***" if key in _PII_KEYS else _mask(event_dict[key])
    return event_dict


def configure_logging(level: str = "INFO", *, json: bool = False, file: Path | None = None) -> None:
    """Configure structlog and the standard library logging once per process; with ``file``, log lines
    go there instead of the terminal (the demo keeps its screen for progress bars and results)."""
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        logging.basicConfig(format="%(message)s", filename=file, encoding="utf-8", level=level.upper(), force=True)
    else:
        logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level.upper(), force=True)
    for noisy in (
        "aiormq",
        "aio_pika",
        "aiosqlite",
        "asyncio",
        "httpx",
        "httpcore",
        "uvicorn.access",
        "faker",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False) if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_personal_data,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # Through the standard library, so every handler (files, pytest's capture) sees the same lines.
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
