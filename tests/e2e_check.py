"""The end-to-end check of a running ПОС ОГ (the demo, or production processes): everything is asked
through the public APIs — the module's cards feed, the ЕПГУ emulator's inbox, ЛКО's responses, the
analytics summary and the ИАС МКГУ emulator — and the answers must agree with one another."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import httpx

from posog.settings import DEV_SERVICE_KEYS

RATES_NS = "{http://vashkontrol.ru/service/rates/1.2.0}"
SNILS_LIKE = re.compile(r"\d{3}-\d{3}-\d{3} \d{2}")


@dataclass(frozen=True)
class Endpoints:
    """Base URLs of each system (``…/module`` under ``serve all``, or a process of its own)."""

    module: str
    lko: str
    analytics: str
    emulators: str
    keys: dict[str, str] = field(default_factory=lambda: dict(DEV_SERVICE_KEYS))

    @classmethod
    def all_in_one(cls, base: str) -> Endpoints:
        return cls(f"{base}/module", f"{base}/lko", f"{base}/analytics", f"{base}/emulators")

    def auth(self, caller: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[caller]}"}


@dataclass
class Observed:
    cards: dict[str, dict[str, Any]]
    notifications: list[dict[str, Any]]
    responses: list[dict[str, Any]]
    summary: dict[str, Any]
    ias: dict[str, dict[str, Any]]
    # The ИАС emulator's RatesRequest packets, each with its "body" (the document as received).
    ias_packets: list[dict[str, Any]] = field(default_factory=list)


def _cards(http: httpx.Client, at: Endpoints) -> dict[str, dict[str, Any]]:
    cards: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 500} | ({"since": cursor} if cursor else {})
        page = http.get(f"{at.module}/api/v1/cards/feed", params=params, headers=at.auth("analytics"))
        assert page.status_code == 200, page.text
        body = page.json()
        for item in body["items"]:
            cards[item["card_id"]] = item  # a card seen again carries its whole current state
        cursor = body["next_cursor"]
        if not body["has_more"]:
            return cards


def _notifications(http: httpx.Client, at: Endpoints) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = http.get(f"{at.emulators}/epgu/api/notifications", params={"offset": len(found), "limit": 1000})
        assert page.status_code == 200, page.text
        items = page.json()["items"]
        found.extend(items)
        if len(items) < 1000:
            return found


def _responses(http: httpx.Client, at: Endpoints) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 500} | ({"cursor": cursor} if cursor else {})
        page = http.get(f"{at.lko}/api/v1/responses", params=params, headers=at.auth("analytics"))
        assert page.status_code == 200, page.text
        body = page.json()
        found.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return found


def observe(at: Endpoints) -> Observed:
    with httpx.Client(timeout=60.0) as http:
        cards = _cards(http, at)
        notifications = _notifications(http, at)
        responses = _responses(http, at)
        summary = http.get(f"{at.analytics}/api/v1/analytics/summary", headers=at.auth("lko"))
        assert summary.status_code == 200, summary.text
        listed = http.get(f"{at.emulators}/ias/api/v1/batches")
        assert listed.status_code == 200, listed.text
        ias: dict[str, dict[str, Any]] = {}
        for batch in listed.json()["items"]:
            body = http.get(f"{at.emulators}/ias/api/v1/batches/{batch['batch_id']}")
            assert body.status_code == 200, body.text
            ias[batch["batch_id"]] = batch | {"body": body.text}
        packets = http.get(f"{at.emulators}/ias/api/v1/packets")
        assert packets.status_code == 200, packets.text
        ias_packets = []
        for packet in packets.json()["items"]:
            body = http.get(f"{at.emulators}/ias/api/v1/packets/{packet['packet_id']}")
            assert body.status_code == 200, body.text
            ias_packets.append(packet | {"body": body.text})
    return Observed(cards, notifications, responses, summary.json(), ias, ias_packets)


def check_agreement(seen: Observed, *, unsendable: Collection[str] | None = None) -> None:
    """``unsendable``: the response ids the module listed as not sendable to ИАС (``posog export
    unsendable --json``), when the caller has them: then every response of the period is either in a
    RatesRequest or there."""
    """Every system tells the same story."""
    cards, notifications, responses = seen.cards, seen.notifications, seen.responses
    assert cards, "no service cards"
    # ГЭПС: one notification per notified card, each with a personal link into ЛКП.
    notified = {card_id for card_id, card in cards.items() if card["notified"]}
    undelivered = {card_id for card_id in notified if cards[card_id].get("delivery_failed")}
    links = [n["link"] for n in notifications]
    assert len(links) == len(set(links)), "a link was sent twice"
    assert all(re.search(r"/s/[A-Za-z0-9_-]{20,}$", link) for link in links)
    if all(n["card_id"] for n in notifications):  # the JSON channel names the card
        noted = [n["card_id"] for n in notifications]
        assert len(noted) == len(set(noted)), "a card was notified twice"
        assert set(noted) == notified - undelivered
    else:  # through СМЭВ the ГЭПС document has no card id: ЕПГУ's inbox holds the rest, once each
        assert not any(n["card_id"] for n in notifications), "some notifications lost their card"
        assert len(notifications) == len(notified - undelivered), "a notified citizen's inbox lacks the link"
    # Responses: one per card, only for notified cards, and those links are completed.
    answered = [r["card_id"] for r in responses]
    assert responses, "no citizen answered"
    assert len(answered) == len(set(answered)), "two responses for one card"
    assert set(answered) <= notified
    assert {card_id for card_id, card in cards.items() if card["link_state"] == "completed"} == set(answered)
    for response in responses:
        card = cards[response["card_id"]]
        assert (response["inn"], response["region_code"], response["type_code"]) == (
            card["inn"],
            card["region_code"],
            card["type_code"],
        )
    # Analytics: the whole country, all periods.
    summary = seen.summary
    assert summary["services"] == len(cards)
    assert summary["notified"] == len(notified)
    assert summary["responses"] == len(responses)
    # The default questionnaire rates the five criteria as q1..q5, all required.
    ratings = [r["answers"][q] for r in responses for q in ("q1", "q2", "q3", "q4", "q5")]
    assert set(ratings) <= {1, 2, 3, 4, 5}
    assert len(set(ratings)) >= 3, "ratings are not varied"
    # ИАС МКГУ: an aggregates batch, agreeing with analytics and ЛКО for its period, and the period's
    # ratings as RatesRequest 1.2.0 packets (INTEGRATION.md §4): each form a response of the period, once,
    # with the form's value ids (never the rating), none refused by ИАС.
    kinds = {batch["kind"]: batch for batch in seen.ias.values()}
    assert set(kinds) == {"aggregates"}
    aggregates = json.loads(kinds["aggregates"]["body"])
    period = aggregates["period"]
    in_period = [r for r in responses if period["from"] <= r["service_date"] <= period["to"]]
    assert aggregates["country"]["responses"] == len(in_period)
    assert sum(region["responses"] for region in aggregates["regions"]) == len(in_period)
    sent: list[str] = []
    for packet in seen.ias_packets:
        assert packet["verdict"] == "accepted", packet["errors"]
        root = ET.fromstring(packet["body"])
        assert root.tag == f"{RATES_NS}RatesRequest"
        for form in root.iter(f"{RATES_NS}form"):
            sent.append(form.get("foreign-id") or "")
            values = [int(rate.get("value-id") or 0) for rate in form.iter(f"{RATES_NS}rate")]
            assert values
            assert all(value > 5 for value in values), values
    assert len(sent) == len(set(sent)), "a rating sent twice"
    assert set(sent) <= {r["id"] for r in in_period}
    if unsendable is not None:
        assert set(unsendable).isdisjoint(sent)
        assert set(sent) | set(unsendable) == {r["id"] for r in in_period}, "a rating neither sent nor listed"
    # No personal data left the module: nothing СНИЛС-shaped in what ЛКО, analytics or ИАС hold.
    bodies = [b["body"] for b in kinds.values()] + [p["body"] for p in seen.ias_packets]
    for text in [json.dumps(responses, ensure_ascii=False), json.dumps(summary), *bodies]:
        assert not SNILS_LIKE.search(text)
