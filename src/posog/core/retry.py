"""The one backoff of ПОС ОГ: how long to wait before trying again after a failure.

Every retry uses it — the delivery engine's rows (:mod:`posog.core.outbox`), the intake and СМЭВ
workers holding a batch while the database or ЛКО is away, the SOAP poller's ``Get``, the spool's
postponed documents, the broker's connection and consumer restarts. Each caller names only its base,
its cap and how much jitter it wants."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Final

JITTER: Final = 0.2  # a retry comes up to this share of its delay early, so rows failed together spread out


def backoff(attempts: int, *, base_s: float, cap_s: float, jitter: float = JITTER) -> timedelta:
    """The wait before the next attempt after ``attempts`` failed ones: ``base_s · 2^(attempts−1)``,
    at most ``cap_s``, less up to ``jitter`` of it at random (never more: the cap holds)."""
    exponent = min(max(attempts - 1, 0), 64)
    seconds = min(cap_s, base_s * 2.0**exponent)
    return timedelta(seconds=seconds * (1.0 - jitter * random.random()))


# The workers' pause while what they depend on is away: 0.2–0.4 s after the first failure, doubling, up
# to their cap, anywhere in the lower half of each step (so workers that failed together retry apart).
WORKER_BASE_S: Final = 0.4
WORKER_JITTER: Final = 0.5


def worker_delay(failures: int, *, cap_s: float) -> float:
    """A worker's pause in seconds after ``failures`` failures in a row, at most ``cap_s``."""
    return backoff(failures, base_s=WORKER_BASE_S, cap_s=cap_s, jitter=WORKER_JITTER).total_seconds()
