"""The one backoff's worker pause: what the intake and СМЭВ workers wait while the database, ЛКО or
the adapter is away — short at first, doubling, never past the cap, spread so that workers that
failed together do not retry together."""

from __future__ import annotations

from posog.core.retry import backoff, worker_delay


def test_a_worker_waits_a_fraction_of_a_second_first_then_doubling_up_to_its_cap() -> None:
    for failures, low, high in [(1, 0.2, 0.4), (2, 0.4, 0.8), (3, 0.8, 1.6), (20, 15.0, 30.0)]:
        delays = [worker_delay(failures, cap_s=30.0) for _ in range(200)]
        assert all(low <= d <= high for d in delays), (failures, min(delays), max(delays))
        assert max(delays) - min(delays) > (high - low) / 4, "workers that failed together spread out"


def test_the_sign_in_delay_and_the_broker_retries_are_exact_without_jitter() -> None:
    assert [backoff(n, base_s=1.0, cap_s=60.0, jitter=0).total_seconds() for n in (1, 2, 3, 7, 8)] == [
        1.0,
        2.0,
        4.0,
        60.0,
        60.0,
    ]
    assert backoff(10_000, base_s=0.5, cap_s=0.8, jitter=0).total_seconds() == 0.8  # no overflow
