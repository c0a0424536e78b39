"""The code's layout rules (docs/architecture.md), read from the source as a newcomer would grep it:

- what differs by database is decided in ``core/db.py`` and the repositories, never in a use case;
- intake passes what it needs as arguments (no ``ContextVar``);
- the application's state is typed (no ``getattr(….state, …)`` defaults), no private Starlette import;
- one backoff: every retry waits ``core.retry.backoff`` (no other doubling formula).

Each rule reads Python tokens, so a word in a comment or a docstring does not count."""

from __future__ import annotations

import io
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "posog"


def _sources() -> Iterator[Path]:
    yield from sorted(SRC.rglob("*.py"))


def _code_tokens(path: Path) -> list[tokenize.TokenInfo]:
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
    return [t for t in tokens if t.type not in {tokenize.COMMENT, tokenize.STRING, tokenize.NL, tokenize.NEWLINE}]


def _where(path: Path, token: tokenize.TokenInfo) -> str:
    shown = path.relative_to(SRC.parent) if path.is_relative_to(SRC) else path.name
    return f"{shown}:{token.start[0]}"


def _dialect_uses(path: Path) -> list[str]:
    return [_where(path, t) for t in _code_tokens(path) if t.type == tokenize.NAME and t.string == "dialect"]


def _is_repository(path: Path) -> bool:
    return path.name == "repository.py" or path.name.endswith("_repository.py")


def test_only_core_db_and_the_repositories_ask_which_database_they_run_on() -> None:
    offenders = [
        where
        for path in _sources()
        if path != SRC / "core" / "db.py" and not _is_repository(path)
        for where in _dialect_uses(path)
    ]
    assert offenders == []


def test_the_rule_on_dialects_sees_a_branch_and_not_a_docstring(tmp_path: Path) -> None:
    source = tmp_path / "use_case.py"
    source.write_text(
        '"""Runs on every dialect alike."""\n'
        "# a dialect in a comment\n"
        'if session.bind.dialect.name == "postgresql":\n'
        "    pass\n",
        encoding="utf-8",
    )
    assert _dialect_uses(source) == ["use_case.py:3"]


def test_intake_holds_no_context_variables() -> None:
    offenders = [
        _where(path, t)
        for path in sorted((SRC / "module" / "intake").rglob("*.py"))
        for t in _code_tokens(path)
        if t.type == tokenize.NAME and t.string in {"ContextVar", "contextvars"}
    ]
    assert offenders == []


def _calls(path: Path, name: str) -> Iterator[list[tokenize.TokenInfo]]:
    """The tokens of each ``name(…)`` call's first argument in ``path``."""
    tokens = _code_tokens(path)
    for i, token in enumerate(tokens[:-1]):
        if token.type == tokenize.NAME and token.string == name and tokens[i + 1].string == "(":
            depth, argument = 0, []
            for following in tokens[i + 2 :]:
                if following.string in "([{":
                    depth += 1
                elif following.string in ")]}":
                    if depth == 0:
                        break
                    depth -= 1
                elif following.string == "," and depth == 0:
                    break
                argument.append(following)
            yield argument


def test_application_state_is_read_typed_without_getattr_defaults() -> None:
    """``getattr(request.app.state, …)`` anywhere but the typed accessor itself (``core/appstate.py``)."""
    offenders = [
        str(path.relative_to(SRC.parent))
        for path in _sources()
        if path != SRC / "core" / "appstate.py"
        for argument in _calls(path, "getattr")
        if [t.string for t in argument[-3:]] == ["app", ".", "state"]
    ]
    assert offenders == []


def _private_starlette_imports(path: Path) -> bool:
    tokens = _code_tokens(path)
    return any(
        a.string == "starlette" and b.string == "." and c.string.startswith("_")
        for a, b, c in zip(tokens, tokens[1:], tokens[2:], strict=False)
    )


def test_no_private_starlette_module_is_imported() -> None:
    offenders = [str(path.relative_to(SRC.parent)) for path in _sources() if _private_starlette_imports(path)]
    assert offenders == []


def _doublings(path: Path) -> list[str]:
    """``2 ** <something that is not a number>``: a delay that doubles with a count."""
    tokens = _code_tokens(path)
    return [
        _where(path, a)
        for a, b, c in zip(tokens, tokens[1:], tokens[2:], strict=False)
        if a.type == tokenize.NUMBER and a.string in {"2", "2.0"} and b.string == "**" and c.type != tokenize.NUMBER
    ]


@pytest.mark.parametrize(
    ("formula", "found"),
    [
        ("pause = min(cap, 0.2 * 2**failures)", ["loop.py:1"]),
        ("delay = base * 2.0 ** (n - 1)", ["loop.py:1"]),
        ("LIMIT = 2**31 - 1  # 2 ** n in a comment", []),
    ],
)
def test_the_rule_on_backoffs_sees_a_doubling_and_not_a_constant(
    tmp_path: Path, formula: str, found: list[str]
) -> None:
    source = tmp_path / "loop.py"
    source.write_text(f"{formula}\n", encoding="utf-8")
    assert _doublings(source) == found


def test_every_retry_waits_the_one_backoff() -> None:
    offenders = [where for path in _sources() if path != SRC / "core" / "retry.py" for where in _doublings(path)]
    assert offenders == []
