"""The СМЭВ emulator and the simulated citizens (issue 6): what they publish and what they answer."""

from __future__ import annotations

import asyncio
import random
import statistics
from collections import Counter
from collections.abc import Sequence
from datetime import date

import pytest

from posog.core.bus import OutgoingMessage, Topology
from posog.emulators.citizens import SurveyFormParser, _organisation_on, fill, quality_of
from posog.emulators.datagen.facts import CITIES, TYPES, FactFactory
from posog.emulators.smev import SmevEmulator
from posog.lko.org_types.defaults import DEFAULT_ORG_TYPES
from posog.lko.questionnaires.defaults import default_questionnaire_draft
from posog.lkp.forms import parse_answers
from posog.module.contracts import FactContext, OgFact
from posog.module.intake.parsing import Rejection, read_fact
from posog.web.templating import make_templates

TODAY = date(2026, 11, 25)


class CapturingBus:
    def __init__(self) -> None:
        self.published: list[tuple[str, OutgoingMessage]] = []

    async def declare(self, topology: Topology) -> None:
        return None

    async def publish(self, exchange: str, routing_key: str, messages: Sequence[OutgoingMessage]) -> None:
        self.published.extend((routing_key, m) for m in messages)


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def _publish(count: int, **options: float) -> tuple[CapturingBus, FakeTime]:
    bus, fake = CapturingBus(), FakeTime()
    smev = SmevEmulator(
        bus,  # type: ignore[arg-type]
        "posog.og.facts",
        FactFactory(seed=5, today=TODAY),
        clock=fake.clock,
        sleep=fake.sleep,
    )
    asyncio.run(smev.publish(count, **options))  # type: ignore[arg-type]
    return bus, fake


def test_smev_publishes_valid_facts_with_the_asked_share_of_broken_ones() -> None:
    bus, _ = _publish(1000, invalid_share=0.05)
    assert len(bus.published) == 1000
    assert {queue for queue, _ in bus.published} == {"posog.og.facts"}
    context = FactContext(today=TODAY, horizon_days=365, known_types=frozenset(t.code for t in DEFAULT_ORG_TYPES))
    outcomes = [read_fact(message.body, context) for _, message in bus.published]
    valid = [o for o in outcomes if isinstance(o, OgFact)]
    assert len(valid) == 950
    # Broken facts are spread over the run and of many kinds, each with a named problem.
    broken_positions = [i for i, o in enumerate(outcomes) if not isinstance(o, OgFact)]
    assert broken_positions[0] < 300
    assert broken_positions[-1] > 700
    reasons = {str(problem) for o in outcomes if isinstance(o, Rejection) for problem in o.problems}
    assert len(reasons) >= 15
    # AMQP message ids are unique (СМЭВ MessageID); a valid fact's is its message_id.
    ids = [message.message_id for _, message in bus.published]
    assert len(set(ids)) == 1000
    assert all(fact.message_id in ids for fact in valid)


def test_smev_keeps_the_rate_asked_for() -> None:
    _, unlimited = _publish(300)
    assert unlimited.now == 1000.0  # never waited
    _, limited = _publish(500, rate=100)
    assert limited.now - 1000.0 == pytest.approx(5.0, abs=0.01)  # 500 facts at 100 a second


def test_smev_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="rate"):
        _publish(10, rate=0)
    with pytest.raises(ValueError, match="invalid_share"):
        _publish(10, invalid_share=1.5)


def test_the_generator_covers_every_organisation_type_and_twenty_regions() -> None:
    assert set(TYPES) == {t.code for t in DEFAULT_ORG_TYPES}
    factory = FactFactory(seed=1, today=TODAY, organizations=50)
    assert {o.type_code for o in factory.organizations} == set(TYPES)
    assert len({o.region_code for o in factory.organizations}) >= 20
    assert len(CITIES) >= 20


def test_fixed_organisations_and_continued_numbering() -> None:
    first = FactFactory(seed=1, today=TODAY, organization_seed=9)
    second = FactFactory(seed=2, today=TODAY, organization_seed=9, first_number=40)
    assert first.organizations == second.organizations  # the same organisations, run after run
    a, b = first.fact(), second.fact()
    assert a["citizen"] != b["citizen"]  # new citizens
    assert a["card_id"].split("-")[3] == "000000001"
    assert b["card_id"].split("-")[3] == "000000041"


def _default_form() -> str:
    draft = default_questionnaire_draft()
    questionnaire = {"id": "q-id", "version": 1, **draft.model_dump()}
    template = make_templates().get_template("survey/form.html")
    return template.render(
        questionnaire=_document(questionnaire),
        answers={},
        errors={},
        preview=False,
        form_action="/lkp/s/token",
        idempotency_key="k" * 32,
    )


def _document(data: dict[str, object]) -> object:
    from posog.lko.contracts import QuestionnaireDocument

    fields = set(QuestionnaireDocument.model_fields)
    defaults: dict[str, object] = {"type_code": "mfc", "level": "federal"}
    return QuestionnaireDocument.model_validate({k: v for k, v in (defaults | data).items() if k in fields})


def test_a_citizen_fills_the_real_survey_form_validly() -> None:
    parser = SurveyFormParser()
    parser.feed(_default_form())
    assert parser.action == "/lkp/s/token"
    assert {f.name for f in parser.fields if f.kind == "hidden"} == {
        "idempotency_key",
        "questionnaire_id",
        "questionnaire_version",
    }
    questionnaire = _document({"id": "q-id", "version": 1, **default_questionnaire_draft().model_dump()})
    rng = random.Random(3)
    for quality in (2.6, 3.5, 4.9):
        for _ in range(50):
            form: dict[str, list[str]] = {}
            for name, value in fill(parser.fields, quality, rng):
                form.setdefault(name, []).append(value)
            parsed = parse_answers(questionnaire, form)  # type: ignore[arg-type]
            assert parsed.ok, parsed.errors
            assert form["idempotency_key"] == ["k" * 32]


def test_ratings_follow_the_quality_of_the_organisation() -> None:
    parser = SurveyFormParser()
    parser.feed(_default_form())
    rng = random.Random(4)

    def mean_rating(quality: float) -> float:
        values = [
            int(value)
            for _ in range(300)
            for name, value in fill(parser.fields, quality, rng)
            if name in ("answer_q1", "answer_q2", "answer_q3", "answer_q4", "answer_q5")
        ]
        return statistics.mean(values)

    assert mean_rating(4.8) > mean_rating(3.6) + 0.6 > mean_rating(2.6) + 1.2
    spread = Counter(int(v) for _ in range(300) for n, v in fill(parser.fields, 3.7, rng) if n == "answer_q1")
    assert set(spread) == {1, 2, 3, 4, 5}  # plausible and varied, not one value
    # Quality differs between organisation types and regions (the card id's prefix), and is stable.
    qualities = {quality_of(f"{t.upper()}-{r}-2026-000000001-0001") for t in TYPES for r, _, _ in CITIES}
    assert len(qualities) > 100
    assert min(qualities) >= 2.6
    assert max(qualities) <= 4.9
    assert quality_of("MFC-77-2026-000000001-0001") == quality_of("MFC-77-2026-000000999-1234")


def test_without_a_card_id_the_organisation_on_the_page_sets_the_quality() -> None:
    """Through СМЭВ ЕПГУ's inbox has no card id (the ГЭПС document carries none): a citizen rates by the
    organisation named on the survey page, still stable per organisation and different between them."""
    page = '<h2 class="org__name" id="org-name">ГАУ «МФЦ города Москвы»</h2>'
    assert _organisation_on(page) == "ГАУ «МФЦ города Москвы»"
    assert _organisation_on("<p>нет</p>") == ""
    assert quality_of(_organisation_on(page)) == quality_of("ГАУ «МФЦ города Москвы»")
    assert quality_of("ГАУ «МФЦ города Москвы»") != quality_of("МБОУ «Средняя школа № 3»")
