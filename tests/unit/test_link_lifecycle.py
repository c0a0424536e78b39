"""The link's lifecycle: which event moves which state where, final states stay final, and the
statements every writer uses say exactly that."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.dialects import postgresql

from posog.module.links.lifecycle import (
    COMPLETE,
    EXPIRE,
    FINAL_STATES,
    NOTIFY,
    OPEN,
    REVOKE,
    TRANSITIONS,
    move,
    new_link_values,
    sql_move,
)
from posog.module.links.model import LINK_STATES, SurveyLink

AT = datetime(2026, 12, 1, 12, tzinfo=UTC)


def test_every_state_is_reached_and_final_states_have_no_way_out() -> None:
    assert {t.target for t in TRANSITIONS.values()} == set(LINK_STATES)
    for transition in TRANSITIONS.values():
        assert not set(transition.sources) & set(FINAL_STATES), transition.event
    assert not NOTIFY.allows("opened")  # a late confirm never moves an opened link back
    assert not OPEN.allows("opened")  # opened_at is set once
    assert COMPLETE.allows("issued") and COMPLETE.allows("opened")  # noqa: PT018
    assert REVOKE.sources == EXPIRE.sources == COMPLETE.sources


def test_a_new_link_is_issued_at_its_moment() -> None:
    assert new_link_values(AT) == {"state": "issued", "issued_at": AT}


def test_move_is_a_conditional_update_to_the_target_with_its_stamp() -> None:
    statement = move(REVOKE, SurveyLink.card_id == "c-1", at=AT, revoke_reason="жалоба")
    sql = str(statement.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]
    assert "SET state=%(state)s" in sql
    assert "revoked_at=%(revoked_at)s" in sql
    assert "revoke_reason=%(revoke_reason)s" in sql
    assert "module_survey_links.state IN" in sql
    params = statement.compile(dialect=postgresql.dialect()).params  # type: ignore[no-untyped-call]
    assert params["state"] == "revoked"
    assert set(params["state_1"]) == {"issued", "notified", "opened"}


def test_the_hand_written_sql_gets_the_same_move() -> None:
    assignments, condition = sql_move(OPEN, alias="u", at="$2", changed_at="$3")
    assert assignments == "state = 'opened', opened_at = $2, changed_at = $3"
    assert condition == "u.state IN ('issued', 'notified')"
    assignments, condition = sql_move(EXPIRE, alias="l", at="$2", changed_at="$3")
    assert assignments == "state = 'expired', changed_at = $3"
    assert condition == "l.state IN ('issued', 'notified', 'opened')"
