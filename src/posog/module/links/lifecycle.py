"""The survey link's life (SPEC §5): its states, the events that move it and from which states. Every
writer of a link's state goes through here — SQLAlchemy statements from :func:`move`, the hand-written
SQL of the PostgreSQL fast paths from :func:`sql_move` — so no transition is written anywhere else.

::

    issue ─▶ issued ──notify──▶ notified
               │  ╲               │  ╲
               │   open           │   open
               │     ╲            │     ╲
               │      ▶ opened ◀──┘      (opened_at set once)
               │          │
               ├──────────┼──── complete ──▶ completed   (one response wins)
               ├──────────┼──── expire ────▶ expired     (past expires_at)
               └──────────┴──── revoke ────▶ revoked     (an operator, with a reason)

ГЭПС delivery (INTEGRATION §3) is known only from what ЕПГУ answers through СМЭВ: ``deliver`` moves an
issued or notified link to ``delivered``, ``fail_delivery`` to ``delivery_failed`` (the reason kept).
Both are live states — the citizen can still open, answer and complete the link, and it expires or is
revoked as any other — and a ``delivered`` status coming after a failure (a re-driven notification)
moves ``delivery_failed`` on to ``delivered``::

    issued, notified ──deliver──▶ delivered ──open/complete/expire/revoke──▶ …
    issued, notified ──fail_delivery──▶ delivery_failed ──deliver──▶ delivered
                                              └──open/complete/expire/revoke──▶ …

``completed``, ``expired`` and ``revoked`` are final. Each move is a conditional update (``WHERE state
IN (sources)``), so concurrent writers never move a link backwards and of two racing completions
exactly one wins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Update, update

from posog.module.links.model import (
    COMPLETED,
    DELIVERED,
    DELIVERY_FAILED,
    EXPIRED,
    ISSUED,
    NOTIFIED,
    OPENED,
    REVOKED,
    SurveyLink,
)

FINAL_STATES = (COMPLETED, EXPIRED, REVOKED)


@dataclass(frozen=True)
class Transition:
    """``event`` moves a link from any of ``sources`` to ``target`` and stamps ``stamp`` (a column)."""

    event: str
    sources: tuple[str, ...]
    target: str
    stamp: str | None

    def allows(self, state: str) -> bool:
        return state in self.sources


# The states a delivery status may leave a link in (both live: the link still opens).
_DELIVERY = (DELIVERED, DELIVERY_FAILED)

ISSUE = Transition("issue", (), ISSUED, "issued_at")
NOTIFY = Transition("notify", (ISSUED,), NOTIFIED, "notified_at")
OPEN = Transition("open", (ISSUED, NOTIFIED, *_DELIVERY), OPENED, "opened_at")
COMPLETE = Transition("complete", (ISSUED, NOTIFIED, OPENED, *_DELIVERY), COMPLETED, "completed_at")
EXPIRE = Transition("expire", (ISSUED, NOTIFIED, OPENED, *_DELIVERY), EXPIRED, None)
REVOKE = Transition("revoke", (ISSUED, NOTIFIED, OPENED, *_DELIVERY), REVOKED, "revoked_at")
# ЕПГУ's word on the ГЭПС notification (INTEGRATION §3). A status may overtake the relay's commit of the
# confirm, hence ``issued`` among the sources; a failure never undoes a delivery or an opening.
DELIVER = Transition("deliver", (ISSUED, NOTIFIED, DELIVERY_FAILED), DELIVERED, "delivered_at")
FAIL_DELIVERY = Transition("fail_delivery", (ISSUED, NOTIFIED), DELIVERY_FAILED, "delivery_failed_at")
TRANSITIONS = {t.event: t for t in (ISSUE, NOTIFY, OPEN, COMPLETE, EXPIRE, REVOKE, DELIVER, FAIL_DELIVERY)}


def move(transition: Transition, *where: ColumnElement[bool], at: datetime, **values: Any) -> Update:
    """``UPDATE`` the links matching ``where`` that ``transition`` may move: to its target state, its
    stamp set to ``at``, and ``values`` besides. ``changed_at`` is the ORM's (``onupdate``)."""
    assert transition.sources, f"{transition.event} creates a link, it moves none"
    stamped = {transition.stamp: at} if transition.stamp is not None else {}
    return (
        update(SurveyLink)
        .where(SurveyLink.state.in_(transition.sources), *where)
        .values(state=transition.target, **stamped, **values)
    )


def new_link_values(at: datetime) -> dict[str, Any]:
    """The lifecycle columns of a link being issued."""
    assert ISSUE.stamp is not None
    return {"state": ISSUE.target, ISSUE.stamp: at}


def sql_states(states: tuple[str, ...]) -> str:
    """``'issued', 'notified'``: states as SQL literals for hand-written statements (from constants only)."""
    return ", ".join(f"'{state}'" for state in states)


def sql_move(transition: Transition, *, alias: str, at: str, changed_at: str) -> tuple[str, str]:
    """The ``SET`` list and the state condition of ``transition`` for hand-written SQL: ``at`` and
    ``changed_at`` are its placeholders (``$2``…), ``alias`` the table's alias in the statement."""
    assignments = [f"state = '{transition.target}'"]
    if transition.stamp is not None:
        assignments.append(f"{transition.stamp} = {at}")
    assignments.append(f"changed_at = {changed_at}")
    return ", ".join(assignments), f"{alias}.state IN ({sql_states(transition.sources)})"
