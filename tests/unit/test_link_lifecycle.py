"""The link's lifecycle: which event moves which state where, final states stay final, and the
statements every writer uses say exactly that."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.dialects import postgresql

from posog.module.links.lifecycle import (
    COMPLETE,
    DELIVER,
    EXPIRE,
    FAIL_DELIVERY,
    FINAL_STATES,
    NOTIFY,
    OPEN,
    REVOKE,
    TRANSITIONS,
    move,
    new_link_values,
    sql_move,
)
from posog.module.links.model import LINK_STATES, LIVE_STATES, SurveyLink

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
    # A link whose notification was delivered — or failed to be — is still live (ГЭПС delivery statuses).
    assert set(params["state_1"]) == {"issued", "notified", "opened", "delivered", "delivery_failed"}


def test_the_hand_written_sql_gets_the_same_move() -> None:
    assignments, condition = sql_move(OPEN, alias="u", at="$2", changed_at="$3")
    assert assignments == "state = 'opened', opened_at = $2, changed_at = $3"
    assert condition == "u.state IN ('issued', 'notified', 'delivered', 'delivery_failed')"
    assignments, condition = sql_move(EXPIRE, alias="l", at="$2", changed_at="$3")
    assert assignments == "state = 'expired', changed_at = $3"
    assert condition == "l.state IN ('issued', 'notified', 'opened', 'delivered', 'delivery_failed')"


def test_delivery_statuses_move_only_links_not_yet_opened_and_never_undo_a_delivery() -> None:
    assert DELIVER.target == "delivered" and DELIVER.stamp == "delivered_at"  # noqa: PT018
    assert FAIL_DELIVERY.target == "delivery_failed" and FAIL_DELIVERY.stamp == "delivery_failed_at"  # noqa: PT018
    assert DELIVER.allows("notified") and DELIVER.allows("issued")  # noqa: PT018 (a status may overtake the confirm)
    assert DELIVER.allows("delivery_failed")  # a re-driven notification that got through
    assert FAIL_DELIVERY.allows("notified") and not FAIL_DELIVERY.allows("delivered")  # noqa: PT018
    for state in ("opened", "completed", "expired", "revoked"):
        assert not DELIVER.allows(state), state
        assert not FAIL_DELIVERY.allows(state), state
    # The citizen can still open and answer a delivered link, and one whose delivery failed.
    for state in ("delivered", "delivery_failed"):
        assert OPEN.allows(state) and COMPLETE.allows(state) and EXPIRE.allows(state), state  # noqa: PT018
        assert REVOKE.allows(state), state
        assert state in LIVE_STATES
        assert state not in FINAL_STATES
    assert not NOTIFY.allows("delivered")  # a late confirm never moves a delivered link back


def test_a_delivery_failure_is_written_with_its_stamp_and_reason() -> None:
    statement = move(
        FAIL_DELIVERY, SurveyLink.card_id == "c-1", at=AT, delivery_failure_reason="CLIENT: нет учётной записи"
    )
    params = statement.compile(dialect=postgresql.dialect()).params  # type: ignore[no-untyped-call]
    assert params["state"] == "delivery_failed"
    assert params["delivery_failed_at"] == AT
    assert params["delivery_failure_reason"] == "CLIENT: нет учётной записи"
    assert set(params["state_1"]) == {"issued", "notified"}
