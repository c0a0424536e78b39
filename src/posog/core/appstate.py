"""What an app was built with, typed: ``provide(app, thing)`` when the app is composed, and
``need(request, Thing)`` (or ``maybe`` for what an app may lack) where a request uses it.

Starlette's ``app.state`` is an untyped bag: every read there is a ``request.app.state.db`` that mypy
cannot check and a typo or a forgotten wiring fails only at run time (or, with ``getattr(…, default)``,
silently). Here the things an app holds are keyed by their type, checked when they are read, and a
missing one is a clear error naming what the composition forgot."""

from __future__ import annotations

from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import HTTPConnection

T = TypeVar("T")

_KEY = "posog_services"


class NotProvided(LookupError):
    """The app was composed without this: a wiring bug, not a request's fault."""


def _services(app: Any) -> dict[type, object]:
    state = app.state
    services: dict[type, object] | None = getattr(state, _KEY, None)
    if services is None:
        services = {}
        setattr(state, _KEY, services)
    return services


def provide(app: Starlette, thing: object, *, as_type: type | None = None) -> None:
    """Hold ``thing`` for the app's requests, under its own type (or ``as_type``: a protocol or base
    class the requests ask for)."""
    _services(app)[as_type or type(thing)] = thing


def need(where: HTTPConnection | Starlette, kind: type[T]) -> T:
    """The ``kind`` the app was built with; :class:`NotProvided` if it was not."""
    found = maybe(where, kind)
    if found is None:
        raise NotProvided(f"the app was composed without a {kind.__name__}")
    return found


def maybe(where: HTTPConnection | Starlette, kind: type[T]) -> T | None:
    """The ``kind`` the app was built with, or None when this app has none (an optional part)."""
    app = where.app if isinstance(where, HTTPConnection) else where
    thing = _services(app).get(kind)
    if thing is None:
        return None
    if not isinstance(thing, kind):
        raise TypeError(f"{kind.__name__} provided as {type(thing).__name__}")
    return thing
