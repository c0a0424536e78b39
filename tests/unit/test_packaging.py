"""The operators' recipe agrees with the code: compose.yaml runs real ``posog`` commands, names only
real settings and wires every process so that it serves what it is told to and calls the rest over the
network; deploy/env.example documents every variable compose needs and, filled in, starts production;
the Dockerfile installs the lock without dev tools and runs as a non-root user."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import re
import secrets
import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import typer
import yaml  # type: ignore[import-untyped]
from dotenv import dotenv_values
from starlette.routing import Match
from typer.core import TyperGroup

from posog import cli
from posog.analytics.api import SERVICE_OPERATIONS as ANALYTICS_CALLERS
from posog.bootstrap import bootstrap
from posog.lko.auth import SERVICE_OPERATIONS as LKO_CALLERS
from posog.module.api import SERVICE_OPERATIONS as MODULE_CALLERS
from posog.settings import Settings
from posog.web.app import SYSTEMS, system_apps

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
HEALTHCHECK = ROOT / "deploy" / "healthcheck.py"
MAKEFILE = ROOT / "Makefile"

# The systems that are reached by URL when another process serves them (Settings.<name>_url).
REMOTE_SYSTEMS = ("module", "lko", "analytics")
# Callers that bootstrap() gives an HTTP client with their own service key.
BOOTSTRAP_CALLERS = {"module", "lko", "lkp", "analytics"}


class Drift(AssertionError):
    """The recipe names something the code does not have."""


# --- Reading the files ------------------------------------------------------------------------------------


def setting_variables() -> set[str]:
    return {f"POSOG_{name.upper()}" for name in Settings.model_fields}


def posog_variables(text: str) -> set[str]:
    return set(re.findall(r"\bPOSOG_[A-Z0-9_]+\b", text))


def unknown_settings(text: str) -> set[str]:
    return posog_variables(text) - setting_variables()


_INTERPOLATION = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def interpolations(text: str) -> list[tuple[str, str, str]]:
    """Every ``${NAME}``, ``${NAME:-default}``, ``${NAME:?message}`` … as (name, operator, argument)."""
    return [(m[2] or m[5], m[3] or "", m[4] or "") for m in _INTERPOLATION.finditer(text) if not m[1]]


def strings(node: Any) -> Iterator[str]:
    """Every string value of a parsed YAML document (what compose interpolates; comments are not)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)


def compose_interpolations() -> list[tuple[str, str, str]]:
    return [found for text in strings(compose()) for found in interpolations(text)]


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """docker compose's interpolation of one string (the forms compose.yaml may use)."""

    def substitute(match: re.Match[str]) -> str:
        if match[1]:
            return "$"
        name, operator, argument = match[2] or match[5], match[3] or "", match[4] or ""
        current = env.get(name)
        missing = not current if operator.startswith(":") else current is None
        if missing and operator.endswith("-"):
            return argument
        if missing and operator.endswith("?"):
            raise Drift(f"${{{name}}} is required: {argument}")
        return current or ""

    return _INTERPOLATION.sub(substitute, value)


def interpolated(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolated(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolated(value, env) for key, value in node.items()}
    return node


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def posog_services(spec: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the ПОС ОГ image (its entry point is ``posog``)."""
    return {
        name: service
        for name, service in spec["services"].items()
        if "build" in service or str(service.get("image", "")).startswith("posog:")
    }


def command_of(service: Mapping[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.partition("=")[::2] for item in environment)
    return {str(key): "" if value is None else str(value) for key, value in environment.items()}


def documented(text: str) -> dict[str, str]:
    """Variables env.example sets or shows commented out (``# NAME=value``), with their values."""
    return {m[1]: m[2] for m in re.finditer(r"^#?[ \t]*([A-Z][A-Z0-9_]*)=(.*)$", text, flags=re.MULTILINE)}


def commented(text: str) -> dict[str, str]:
    return {m[1]: m[2] for m in re.finditer(r"^#[ \t]*([A-Z][A-Z0-9_]*)=(.*)$", text, flags=re.MULTILINE)}


PLACEHOLDERS: dict[str, Callable[[], str]] = {
    "<base64-32-bytes>": lambda: base64.b64encode(os.urandom(32)).decode(),
    "<random-hex>": lambda: secrets.token_hex(32),
    "<ias-vendor-id>": lambda: str(secrets.randbelow(10**6) + 1),
}


def filled_in(text: str) -> str:
    """env.example as an operator fills it in: every placeholder of a setting replaced by a fresh value."""
    lines = []
    for line in text.splitlines():
        if not line.lstrip().startswith("#"):
            for placeholder, generate in PLACEHOLDERS.items():
                while placeholder in line:
                    line = line.replace(placeholder, generate(), 1)
            left = re.search(r"<[^>]*>", line)
            if left:
                raise Drift(f"env.example: no rule to fill in {left[0]} (known: {', '.join(PLACEHOLDERS)})")
        lines.append(line)
    return "\n".join(lines) + "\n"


def operator_env() -> dict[str, str]:
    values = dotenv_values(stream=io.StringIO(filled_in(ENV_EXAMPLE.read_text(encoding="utf-8"))))
    return {key: value for key, value in values.items() if value is not None}


def parse_command(argv: Sequence[str]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Parse ``posog ARGV`` the way the CLI would, without running it: (command path, parameters)."""
    command = typer.main.get_command(cli.app)
    context = typer.Context(command, info_name="posog")
    path: list[str] = []
    args = list(argv)
    while isinstance(command, TyperGroup):
        if not args:
            raise Drift(f"'posog {' '.join(path)}' needs a subcommand")
        name = args.pop(0)
        sub = command.get_command(context, name)
        if sub is None:
            raise Drift(f"posog has no command {' '.join([*path, name])!r}")
        path.append(name)
        command = sub
        if isinstance(command, TyperGroup):
            context = typer.Context(command, info_name=name, parent=context)
    try:
        parsed = command.make_context(path[-1], args, parent=context)
    except typer.TyperException as exc:
        raise Drift(f"posog {' '.join(argv)}: {exc}") from None
    return tuple(path), dict(parsed.params)


def checked_command(argv: Sequence[str]) -> tuple[str, ...]:
    """What ``posog ARGV`` runs, e.g. ``("worker", "intake")``; Drift if the CLI would refuse it."""
    path, params = parse_command(argv)
    if path == ("serve",):
        if params["name"] not in SYSTEMS:
            raise Drift(f"posog serve {params['name']}: not a system ({', '.join(SYSTEMS)})")
        return (*path, params["name"])
    if path == ("worker",):
        if params["name"] not in cli.WORKERS:
            raise Drift(f"posog worker {params['name']}: not a worker ({', '.join(cli.WORKERS)})")
        return (*path, params["name"])
    return path


def answers(app: Any, path: str) -> bool:
    """Whether ``app`` (a FastAPI app) has a route for ``GET path``."""
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": [], "query_string": b""}
    return any(route.matches(scope)[0] == Match.FULL for route in app.router.routes)


def load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("posog_container_healthcheck", HEALTHCHECK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No POSOG_* variable of the machine running the tests, and no .env of the working directory."""
    for name in list(os.environ):
        if name.startswith("POSOG_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


# --- compose.yaml -----------------------------------------------------------------------------------------


def test_every_compose_process_runs_a_real_posog_command() -> None:
    services = posog_services(compose())
    assert services, "compose.yaml runs no ПОС ОГ service"
    problems: list[str] = []
    ran: dict[tuple[str, ...], list[str]] = {}
    for name, service in services.items():
        if "entrypoint" in service:
            problems.append(f"{name}: overrides the image's entry point (posog)")
        try:
            ran.setdefault(checked_command(command_of(service)), []).append(name)
        except Drift as exc:
            problems.append(f"{name}: {exc}")
    assert not problems, "\n".join(problems)
    expected = {("db", "upgrade")} | {("serve", system) for system in SYSTEMS} | {("worker", w) for w in cli.WORKERS}
    assert sorted(expected - set(ran)) == [], "processes of the production mode compose.yaml does not run"
    assert ran[("db", "upgrade")] == ["migrate"]


def test_every_process_starts_after_the_migration() -> None:
    services = compose()["services"]

    def after_migration(name: str, seen: frozenset[str] = frozenset()) -> bool:
        depends = services[name].get("depends_on", {})
        if depends.get("migrate") == {"condition": "service_completed_successfully"}:
            return True
        return any(after_migration(other, seen | {name}) for other in depends if other not in seen)

    for name in posog_services({"services": services}):
        if name != "migrate":
            assert after_migration(name), f"{name} may start before 'posog db upgrade' has finished"


def test_every_worker_waits_for_the_broker() -> None:
    """`posog worker` connects to RabbitMQ at start, whichever worker it runs."""
    for name, service in posog_services(compose()).items():
        if command_of(service)[:1] == ["worker"]:
            assert service["depends_on"].get("rabbitmq") == {"condition": "service_healthy"}, name


@pytest.mark.parametrize(
    "argv",
    [
        ["worker", "intakes"],
        ["serve", "modul"],
        ["serve", "module", "--listen", "0.0.0.0"],
        ["serve", "module", "--port", "http"],
        ["db", "migrate"],
        ["workers", "intake"],
    ],
)
def test_the_command_check_refuses_what_the_cli_would(argv: list[str]) -> None:
    with pytest.raises(Drift):
        checked_command(argv)


def test_compose_and_env_example_name_only_real_settings() -> None:
    for path in (COMPOSE, ENV_EXAMPLE, DOCKERFILE):
        assert unknown_settings(path.read_text(encoding="utf-8")) == set(), f"{path.name}: not in posog.settings"
    assert unknown_settings("POSOG_DATABSE_URL=postgresql://…") == {"POSOG_DATABSE_URL"}


def test_every_variable_compose_needs_is_in_env_example() -> None:
    example = ENV_EXAMPLE.read_text(encoding="utf-8")
    shown = documented(example)
    set_there = {m[1] for m in re.finditer(r"^([A-Z][A-Z0-9_]*)=", example, flags=re.MULTILINE)}
    used = compose_interpolations()
    assert used, "compose.yaml interpolates nothing: where do the secrets come from?"
    assert sorted({name for name, _, _ in used} - shown.keys()) == [], "undocumented in deploy/env.example"
    required = {name for name, operator, _ in used if operator.endswith("?")}
    assert sorted(required - set_there) == [], "required by compose.yaml but only commented out in env.example"
    for secret in ("POSOG_PII_KEYS", "POSOG_SNILS_HASH_KEY", "POSOG_SERVICE_KEYS", "POSTGRES_PASSWORD"):
        assert secret in required, f"{secret} must come from the operator (${{{secret}:?…}})"


def test_no_secret_is_written_into_compose() -> None:
    spec = compose()
    for name, service in spec["services"].items():
        for key, value in environment_of(service).items():
            if re.search(r"KEYS?$|PASS(WORD)?$|SECRET", key):
                assert "${" in value, f"{name}: {key} is hard-coded"
    assert "dev-module-key" not in COMPOSE.read_text(encoding="utf-8")


def test_compose_defaults_are_the_documented_and_the_settings_defaults(clean_environment: pytest.MonkeyPatch) -> None:
    example = commented(ENV_EXAMPLE.read_text(encoding="utf-8"))
    baseline = Settings(_env_file=None)
    checked = 0
    for name, operator, default in compose_interpolations():
        if operator != ":-":
            continue
        if name in example:
            assert example[name] == default, f"{name}: compose.yaml says {default}, env.example {example[name]}"
        if name.startswith("POSOG_"):
            field = name.removeprefix("POSOG_").lower()
            clean_environment.setenv(name, default)
            assert getattr(Settings(_env_file=None), field) == getattr(baseline, field), name
            clean_environment.delenv(name)
            checked += 1
    assert checked, "no tunable passes through compose.yaml"
    for name, value in example.items():
        field = name.removeprefix("POSOG_").lower()
        if name.startswith("POSOG_") and getattr(baseline, field) is not None:
            clean_environment.setenv(name, value)
            assert getattr(Settings(_env_file=None), field) == getattr(baseline, field), f"env.example: {name}"
            clean_environment.delenv(name)


async def test_each_compose_process_serves_its_system_and_calls_the_others(
    clean_environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What `posog serve X` checks before serving (X among the apps this process can build), and that no
    process quietly builds an in-process copy of another system or falls back to SQLite or the
    in-process bus; the healthcheck paths exist on the apps they probe."""
    env = operator_env()
    for name, service in posog_services(compose()).items():
        resolved = interpolated(service, env)
        command = checked_command(command_of(resolved))
        variables = environment_of(resolved)
        assert not [k for k, v in variables.items() if k.startswith("POSOG_") and v == ""], f"{name}: empty value"
        with clean_environment.context() as patch:
            for key, value in variables.items():
                patch.setenv(key, value)
            patch.setenv("POSOG_VAR_DIR", str(tmp_path / name))
            settings = Settings(_env_file=None)
            assert settings.env == "production", name
            assert (settings.database_url or "").startswith("postgresql+asyncpg://"), name
            assert (settings.amqp_url or "").startswith("amqp://"), name
            served = command[1] if command[0] == "serve" else None
            for remote in REMOTE_SYSTEMS:
                url = getattr(settings, f"{remote}_url")
                if remote == served:
                    assert url is None, f"{name} serves {remote} but is told it is at {url}"
                elif command[0] != "db":
                    assert url, f"{name}: POSOG_{remote.upper()}_URL unset, so it would build its own {remote}"
            process = bootstrap(settings)
            try:
                apps = system_apps(process)
                if served is not None:
                    assert served in apps, f"{name}: 'posog serve {served}' would refuse to start"
                    probe = " ".join(resolved.get("healthcheck", {}).get("test", []))
                    path = re.search(r"http://127\.0\.0\.1:8000(/\S*)", probe)
                    assert path, f"{name}: no HTTP healthcheck"
                    assert answers(apps[served], path[1]), f"{name}: the healthcheck probes {path[1]}, not a route"
            finally:
                await process.close()


# --- deploy/env.example -----------------------------------------------------------------------------------


async def test_env_example_filled_in_starts_production(clean_environment: pytest.MonkeyPatch, tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(filled_in(ENV_EXAMPLE.read_text(encoding="utf-8")), encoding="utf-8")
    # compose builds the three service URLs from the passwords of its bundled PostgreSQL, RabbitMQ, Redis.
    settings = Settings(
        _env_file=dotenv,
        var_dir=tmp_path / "var",
        database_url="postgresql+asyncpg://posog:x@postgres:5432/posog",
        amqp_url="amqp://rabbitmq/",
        redis_url="redis://:x@redis:6379/0",
    )
    assert settings.env == "production"
    assert settings.pii_active_key in settings.pii_keys
    callers = BOOTSTRAP_CALLERS | MODULE_CALLERS.keys() | LKO_CALLERS.keys() | ANALYTICS_CALLERS.keys()
    assert sorted(callers - settings.service_keys.keys()) == [], "service keys env.example does not list"
    keys = [key.get_secret_value() for key in settings.service_keys.values()]
    assert len(set(keys)) == len(keys), "each placeholder must get its own key"
    system = bootstrap(settings)
    await system.close()


def test_env_example_without_its_secrets_is_refused(clean_environment: pytest.MonkeyPatch, tmp_path: Path) -> None:
    text = filled_in(ENV_EXAMPLE.read_text(encoding="utf-8"))
    dotenv = tmp_path / ".env"
    dotenv.write_text(re.sub(r"(?m)^POSOG_SNILS_HASH_KEY=.*$", "", text), encoding="utf-8")
    with pytest.raises(ValueError, match="POSOG_SNILS_HASH_KEY"):
        Settings(_env_file=dotenv)


def test_every_placeholder_of_env_example_can_be_filled_in() -> None:
    filled = filled_in(ENV_EXAMPLE.read_text(encoding="utf-8"))
    keys = json.loads(operator_env()["POSOG_PII_KEYS"])
    assert all(len(base64.b64decode(key)) == 32 for key in keys.values())
    assert "<random-hex>" not in filled
    with pytest.raises(Drift, match="no rule"):
        filled_in("POSOG_SNILS_HASH_KEY=<ask-security>\n")


# --- Dockerfile and .dockerignore -------------------------------------------------------------------------


def stages(text: str) -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), split by FROM."""
    joined = re.sub(r"\\\n", " ", text)
    instructions = [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    result: list[list[str]] = []
    for instruction in instructions:
        if instruction.upper().startswith("FROM "):
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def test_the_image_installs_exactly_the_lock_without_dev_tools() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    build, *_, runtime = stages(text)
    assert any("python:3.11-slim" in line for line in text.splitlines() if line.startswith("ARG PYTHON_IMAGE"))
    syncs = [line for line in build if line.startswith("RUN") and "uv sync" in line]
    assert syncs, "the image does not install with uv sync"
    for line in syncs:
        for flag in ("--frozen", "--no-dev"):
            assert flag in line, f"{flag} missing: {line}"
    assert any(line.startswith("COPY") and "uv.lock" in line for line in build)
    makefile_uv = re.search(r"^UV_VERSION := (\S+)$", MAKEFILE.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert makefile_uv is not None
    assert f"ARG UV_VERSION={makefile_uv[1]}" in build, "the image's uv is not the Makefile's"
    assert not [line for line in runtime if re.search(r"\b(uv|pip)\b.*\binstall|uv sync", line)], "tools in runtime"


def test_the_image_runs_posog_as_a_non_root_user() -> None:
    runtime = stages(DOCKERFILE.read_text(encoding="utf-8"))[-1]
    users = [line.split(None, 1)[1] for line in runtime if line.upper().startswith("USER ")]
    assert users, "no USER in the final stage: the container runs as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert 'ENTRYPOINT ["posog"]' in runtime
    assert any(line.startswith("HEALTHCHECK") for line in runtime)


def test_the_build_context_keeps_local_state_and_secrets_out() -> None:
    ignored = {line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()}
    for entry in (".venv", ".tools", ".git", "var", "bench/results", "docs/screenshots", ".env"):
        assert entry in ignored, entry
    for line in (line for stage in stages(DOCKERFILE.read_text(encoding="utf-8")) for line in stage):
        if line.startswith("COPY") and "--from" not in line:
            *sources, _target = line.split()[1:]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert source.split("/")[0] not in ignored, f"COPY {source}: excluded by .dockerignore"


def test_the_container_healthcheck_probes_servers_and_trusts_workers() -> None:
    healthcheck = load_healthcheck()
    python = ["/app/.venv/bin/python", "/app/.venv/bin/posog"]
    assert healthcheck.default_url([*python, "serve", "lkp", "--port", "9000"]) == "http://127.0.0.1:9000/healthz"
    assert healthcheck.default_url([*python, "serve", "emulators"]) == "http://127.0.0.1:8000/epgu/"
    assert healthcheck.default_url([*python, "worker", "intake"]) is None
    assert healthcheck.main(["http://127.0.0.1:9/healthz"]) == 1  # nothing listens on the discard port
