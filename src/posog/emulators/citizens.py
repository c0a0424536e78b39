"""Simulated citizens: they read their notifications in the ЕПГУ emulator, follow the survey link into
ЛКП, fill the form a person would (plausible, varied ratings) and send it — over HTTP, through the same
pages and the same path a real citizen's browser takes. The demo uses them; so can an operator on a
test stand (``posog emulate citizens``).

Ratings are not uniform noise: each (organisation type, region) pair of a card gets a quality of its
own, so the demo's ratings differ between organisations and regions the way real ones do."""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import httpx
import structlog

log = structlog.get_logger(__name__)

COMMENTS_GOOD = (
    "Всё быстро и вежливо, спасибо!",
    "Приняли без очереди, специалист всё подробно объяснил.",
    "Удобная запись через Госуслуги, документы выдали в срок.",
    "Спасибо сотрудникам за внимательное отношение.",
)
COMMENTS_BAD = (
    "Долго ждал в очереди, электронная очередь не работала.",
    "Не хватает информации на стендах, пришлось переспрашивать.",
    "Сотрудник был невежлив, документы пришлось переделывать.",
    "Душно и негде присесть, окон работало мало.",
)


@dataclass
class FormField:
    kind: str  # "hidden" | "radio" | "checkbox" | "textarea" | "text"
    name: str
    value: str
    rating: bool = False
    required: bool = False


class SurveyFormParser(HTMLParser):
    """The fields of the survey form (``form[data-survey-form]``) of an ЛКП page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.action: str | None = None
        self.fields: list[FormField] = []
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form" and "data-survey-form" in attributes:
            self._in_form = True
            self.action = attributes.get("action")
            return
        if not self._in_form or tag not in ("input", "textarea"):
            return
        name = attributes.get("name")
        if not name:
            return
        kind = "textarea" if tag == "textarea" else (attributes.get("type") or "text")
        self.fields.append(
            FormField(
                kind=kind,
                name=name,
                value=attributes.get("value") or "",
                rating="rating__input" in (attributes.get("class") or ""),
                required="required" in attributes,
            )
        )

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def _organisation_on(html: str) -> str:
    """The organisation's name on a survey page (ЛКП's ``#org-name``), or the empty string."""
    found = re.search(r'id="org-name">([^<]*)<', html)
    return found.group(1) if found else ""


def quality_of(card_id: str) -> float:
    """The mean rating (about 2.6–4.9) citizens give the organisations of a card's type and region: the
    card id starts with ``TYPE-REGION-``."""
    prefix = "-".join(card_id.split("-")[:2])
    digest = hashlib.sha256(prefix.encode()).digest()
    return 2.6 + 2.3 * (int.from_bytes(digest[:4], "big") / 2**32)


def fill(fields: Sequence[FormField], quality: float, rng: random.Random) -> list[tuple[str, str]]:
    """The values a citizen of this ``quality`` of service would send for the form's fields."""
    chosen: list[tuple[str, str]] = []
    groups: dict[str, list[FormField]] = {}
    for f in fields:
        if f.kind == "hidden":
            chosen.append((f.name, f.value))
        elif f.kind in ("radio", "checkbox"):
            groups.setdefault(f.name, []).append(f)
    mood = min(5.0, max(1.0, rng.gauss(quality, 0.8)))
    for name, options in groups.items():
        values = [o.value for o in options]
        required = any(o.required for o in options)
        if not required and rng.random() < 0.15:
            continue  # optional questions are sometimes skipped
        if options[0].kind == "checkbox":
            picked = rng.sample(values, rng.randint(1, min(2, len(values))))
            chosen.extend((name, v) for v in picked)
        elif options[0].rating:
            scale = len(values)
            score = round(min(scale, max(1.0, rng.gauss(mood * scale / 5, 0.6))))
            chosen.append((name, str(int(score))))
        elif set(values) == {"yes", "no"}:
            chosen.append((name, "yes" if rng.random() < mood / 5.5 else "no"))
        else:
            chosen.append((name, rng.choice(values)))
    for f in fields:
        if f.kind == "textarea" and (f.required or rng.random() < 0.25):
            chosen.append((f.name, rng.choice(COMMENTS_GOOD if mood >= 3.5 else COMMENTS_BAD)))
    return chosen


@dataclass
class Answered:
    submitted: int = 0
    skipped: int = 0  # already completed, expired, not yet open…
    failed: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


class CitizenSimulator:
    """``epgu_url``: the ЕПГУ emulator's base (``…/emulators``), whose ``/epgu/api/notifications`` lists
    the inbox without personal data."""

    def __init__(self, http: httpx.AsyncClient, epgu_url: str, *, seed: int = 1) -> None:
        self._http = http
        self._epgu = epgu_url.rstrip("/")
        self._rng = random.Random(seed)

    async def notifications(self, *, offset: int = 0) -> list[dict[str, Any]]:
        """Every notification in the inbox from ``offset`` on, oldest first."""
        found: list[dict[str, Any]] = []
        while True:
            response = await self._http.get(
                f"{self._epgu}/epgu/api/notifications", params={"offset": offset + len(found), "limit": 1000}
            )
            response.raise_for_status()
            items = response.json()["items"]
            found.extend(items)
            if len(items) < 1000:
                return found

    async def answer(self, notification: dict[str, Any]) -> int:
        """Open the link, fill the form, send it; the HTTP status of the outcome (303: thank-you page)."""
        link = notification["link"]
        page = await self._http.get(link)
        if page.status_code != 200:
            return page.status_code
        parser = SurveyFormParser()
        parser.feed(page.text)
        if parser.action is None:
            return 422
        form: dict[str, list[str]] = {}
        # Through СМЭВ ЕПГУ gets no card id (the ГЭПС document has none): the organisation on the page.
        key = notification["card_id"] or _organisation_on(page.text)
        for name, value in fill(parser.fields, quality_of(key), self._rng):
            form.setdefault(name, []).append(value)
        sent = await self._http.post(urljoin(link, parser.action), data=form, follow_redirects=False)
        return sent.status_code

    async def run(
        self,
        notifications: Sequence[dict[str, Any]],
        *,
        share: float,
        concurrency: int = 8,
        on_progress: Callable[[int], None] | None = None,
    ) -> Answered:
        """``share`` of ``notifications`` (chosen at random) answered, ``concurrency`` citizens at a time."""
        if not 0 <= share <= 1:
            raise ValueError("share must be between 0 and 1")
        chosen = self._rng.sample(list(notifications), round(len(notifications) * share))
        result = Answered()
        slots = asyncio.Semaphore(concurrency)

        async def one(notification: dict[str, Any]) -> None:
            async with slots:
                try:
                    status = await self.answer(notification)
                except httpx.HTTPError as exc:
                    log.warning("emulators.citizens.http_error", error=type(exc).__name__)
                    status = 0
            result.by_status[status] = result.by_status.get(status, 0) + 1
            if status == 303:
                result.submitted += 1
            elif status in (404, 409, 410):
                result.skipped += 1
            else:
                result.failed += 1
            if on_progress is not None:
                on_progress(1)

        await asyncio.gather(*(one(n) for n in chosen))
        log.info("emulators.citizens.done", submitted=result.submitted, skipped=result.skipped, failed=result.failed)
        return result
