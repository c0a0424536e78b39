"""Property tests of the module's, ЛКО's and analytics' OpenAPI documents (schemathesis): every answer to
any request the documents allow is no server error, has a documented status, the documented content
type and the documented schema — with each calling system's key, with none, and with the key of a
system that is not a caller.

The apps run in-process on the embedded backend (SQLite, seeded: the default organisation types and
questionnaires, and a few issued links), in one event loop of their own (an anyio portal) that the
synchronous hypothesis tests send their requests into. Half of the generated path ids are replaced by
real ones (a seeded questionnaire, an issued link), so the operations are exercised past "not found".
Examples are derandomized: a failure is reproducible, and is reported with its operation, the request
(as a curl command) and what was wrong with the answer."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from posog.analytics.api import SERVICE_OPERATIONS as ANALYTICS_CALLERS
from posog.bootstrap import System
from posog.lko.auth import SERVICE_OPERATIONS as LKO_CALLERS
from posog.lko.questionnaires.defaults import default_questionnaire_id
from posog.module.api import SERVICE_OPERATIONS as MODULE_CALLERS
from posog.settings import DEV_SERVICE_KEYS
from tests.integration.survey_support import issue_surveys
from tests.support import stack

pytestmark = pytest.mark.integration

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 25  # per operation, with a key the operation accepts
EXAMPLES_REFUSED = 8  # per operation, without a key or with one it refuses: the answer hardly varies

CALLERS: dict[str, dict[str, frozenset[str]]] = {
    "module": MODULE_CALLERS,
    "lko": LKO_CALLERS,
    "analytics": ANALYTICS_CALLERS,
}
# A system that calls each app for nothing: its key is valid, but the app grants it no operation.
NOT_A_CALLER = {"module": "admin", "lko": "lko", "analytics": "lkp"}


@dataclass
class World:
    portal: BlockingPortal
    system: System
    schemas: dict[str, schemathesis.BaseSchema]
    ids: dict[str, list[str]]  # path parameter name → real values

    def app(self, name: str) -> Any:
        return getattr(self.system, f"{name}_asgi").app


async def _prepare(system: System) -> dict[str, list[str]]:
    surveys = await issue_surveys(system, 3, seed=1301)
    return {
        "questionnaire_id": [default_questionnaire_id("mfc"), default_questionnaire_id("school")],
        "version": ["1"],
        "token": [survey.token for survey in surveys],
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp_path: Path = tmp_path_factory.mktemp("openapi-fuzz")
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(stack("embedded", tmp_path)) as system:
        ids = portal.call(_prepare, system)
        schemas = {}
        for name in CALLERS:
            document = getattr(system, f"{name}_asgi").app.openapi()
            schemas[name] = schemathesis.openapi.from_dict(json.loads(json.dumps(document)))
        yield World(portal, system, schemas, ids)


def _variants() -> list[tuple[str, str | None]]:
    variants: list[tuple[str, str | None]] = []
    for name, callers in CALLERS.items():
        variants += [(name, caller) for caller in sorted(callers)]
        variants += [(name, None), (name, NOT_A_CALLER[name])]
    return variants


def _with_real_ids(strategy: st.SearchStrategy[Any], ids: dict[str, list[str]]) -> st.SearchStrategy[Any]:
    """Cases of ``strategy`` whose path parameters are, half of the time, real ids."""

    @st.composite
    def cases(draw: Callable[..., Any]) -> Any:
        case = draw(strategy)
        for name in list(case.path_parameters or {}):
            known = ids.get(name)
            if known and draw(st.booleans()):
                value = draw(st.sampled_from(known))
                case.path_parameters[name] = int(value) if name == "version" else value
        return case

    return cases()


def _cases(operation: Any) -> st.SearchStrategy[Any]:
    """Requests the document allows and, as often, requests it does not (wrong types, missing fields,
    values out of range), where the operation has anything to get wrong."""
    positive = operation.as_strategy()
    try:
        negative = operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE)
    except Exception:
        return positive
    return st.one_of(positive, negative)


def _send(world: World, app: Any, case: Any, headers: dict[str, str]) -> httpx.Response:
    kwargs = case.as_transport_kwargs(base_url="http://fuzz.test", headers=headers)
    body: dict[str, Any] = {}
    if "json" in kwargs:
        body["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        body["content"] = data.encode() if isinstance(data, str) else data

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://fuzz.test", cookies=kwargs.get("cookies")
        ) as http:
            response = await http.request(
                kwargs["method"], kwargs["url"], params=kwargs.get("params"), headers=kwargs.get("headers"), **body
            )
            await response.aread()
            return response

    return world.portal.call(send)


def _run_operation(world: World, system: str, operation: Any, caller: str | None) -> str | None:
    """Every example of ``operation`` as ``caller`` (None: no key); the report of the first failure."""
    headers = {} if caller is None else {"Authorization": f"Bearer {DEV_SERVICE_KEYS[caller]}"}
    accepted = caller is not None and bool(CALLERS[system].get(caller))
    app = world.app(system)
    failures: list[str] = []

    @settings(
        max_examples=EXAMPLES if accepted else EXAMPLES_REFUSED,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_with_real_ids(_cases(operation), world.ids))
    def examples(case: Any) -> None:
        if failures:
            return
        response = _send(world, app, case, headers)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (AssertionError, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup
            failures.append(f"{operation.label} as {caller or 'no key'}:\n{exc}")

    examples()
    return failures[0] if failures else None


@pytest.mark.parametrize(("system", "caller"), _variants(), ids=lambda value: str(value or "no-key"))
def test_every_answer_is_documented_and_no_server_error(world: World, system: str, caller: str | None) -> None:
    failures = []
    for result in world.schemas[system].get_all_operations():
        operation = result.ok()
        failure = _run_operation(world, system, operation, caller)
        if failure:
            failures.append(failure)
    assert not failures, "\n\n".join(failures)
