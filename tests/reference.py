"""The shared reference schemas (``../shared/reference/`` beside the repository, INTEGRATION.md): what
tests validate the module's documents against besides the project's own schemas.

Found through ``POSOG_SHARED_DIR`` (the ``shared`` directory) or, failing that, as ``shared/`` beside
the repository root or one of its parents (a git worktree sits a level deeper than the main checkout), or
beside the checkout this one was cloned from (a fresh clone in /tmp, as the CI check makes, has its origin
there).
Missing: a test that needs it is skipped locally and FAILS in CI (``CI`` set), never silently passes."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

import pytest
from lxml import etree

REPO_ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def _origin() -> Path | None:
    """The local checkout this repository was cloned from, if its origin is a path."""
    try:
        url = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "config", "--get", "remote.origin.url"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    path = Path(url.removeprefix("file://"))
    return path.resolve() if url and path.is_absolute() and path.is_dir() else None


def shared_dir() -> Path | None:
    configured = os.environ.get("POSOG_SHARED_DIR")
    if configured:
        candidates = [Path(configured)]
    else:
        origin = _origin()
        candidates = [p / "shared" for p in REPO_ROOT.parents]
        candidates += [p / "shared" for p in origin.parents] if origin is not None else []
    return next((c for c in candidates if (c / "reference").is_dir()), None)


def reference_path(relative: str) -> Path:
    """The reference file ``reference/<relative>``; skip (locally) or fail (CI) when it is absent."""
    shared = shared_dir()
    path = None if shared is None else shared / "reference" / relative
    if path is None or not path.is_file():
        what = f"the reference schema reference/{relative} (../shared beside the repository or POSOG_SHARED_DIR)"
        if os.environ.get("CI"):
            pytest.fail(f"{what} is required in CI and is missing")
        pytest.skip(f"{what} is missing here; CI has it")
    return path


@functools.cache
def _schema(path: Path) -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.XMLSchema(etree.parse(str(path), parser))


def reference_schema(relative: str) -> etree.XMLSchema:
    return _schema(reference_path(relative))


def assert_valid_against_reference(document: bytes | etree._Element, relative: str) -> None:
    schema = reference_schema(relative)
    element = etree.fromstring(document) if isinstance(document, bytes) else document
    assert schema.validate(element), [f"{e.path}: {e.message}" for e in schema.error_log]


ADAPTER_REFERENCE = "smev-adapter/smev-service-adapter.validating.xsd"
