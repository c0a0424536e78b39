"""The garbage collector in long-running consumers."""

from __future__ import annotations

import gc


def freeze_heap() -> None:
    """Move every object alive now — modules, the application, its models, pools, caches: the bulk of
    a worker's heap, living as long as the process — out of the cyclic collector's sight
    (``gc.freeze``), so that a full collection walks only what was made since. A consumer calls it as
    it starts: a batch keeps its messages' objects alive long enough to reach the oldest generation,
    and each full collection then walked the whole heap (≈ 150–200 ms in the benchmark's process,
    measured with ``gc.callbacks``: 50–70 µs per fact of a 3 000-fact run that had one). No
    ``gc.collect()`` first (``posog.web.server.settle_heap`` does one): here it would hold up the first
    batch. Reference counting frees frozen objects as usual; only cyclic garbage waits for
    :func:`thaw_heap`."""
    gc.freeze()


def thaw_heap() -> None:
    """Give the frozen objects back to the collector (``gc.unfreeze``), as a consumer stops: a process
    that starts and stops consumers (the tests, the benchmark) keeps no cyclic garbage for good. With
    two consumers in one process, the first to stop thaws both: they only lose the saving."""
    gc.unfreeze()
