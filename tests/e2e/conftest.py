"""The process-level tests: real ``posog`` processes (servers, workers, the demo) on real ports, queues
and databases. Each of them is marked ``e2e`` and may run longer than the suite's default per-test
timeout: starting processes on a loaded machine takes time."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 900


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.e2e)
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(TIMEOUT_S))
