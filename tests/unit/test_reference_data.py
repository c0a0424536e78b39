"""Reference data checked against sources outside the project (issue 15, item 7).

- The ОКАТО of every subject (``posog.module.ias_export.okato``) against a second public source:
  the HFLabs «region» directory (github.com/hflabs/region, ``region.csv``, columns ``kladr_id`` — whose
  first two digits are the ФНС subject code — and ``okato``; transcribed below from commit 31e8012). That
  directory predates the four subjects of 2022; their codes are those of ОК 019-95 as amended for them
  (ДНР 21, Запорожская 23, ЛНР 43, Херсонская 74), as INTEGRATION.md §6 states them.
- The example numbers of SPEC.md and INTEGRATION.md pass their check digits, computed here a second
  time with the published weights (not only with ``posog.core.ids``)."""

from __future__ import annotations

import os
import re

import pytest

from posog.core import ids
from posog.core.regions import REGIONS
from posog.module.ias_export.okato import okato_for_region
from tests.reference import shared_dir

# HFLabs «region», region.csv: ФНС code (kladr_id[:2]), okato, name (name_with_type).
HFLABS_REGION_CSV = """\
01,79000000000,Респ Адыгея
02,80000000000,Респ Башкортостан
03,81000000000,Респ Бурятия
04,84000000000,Респ Алтай
05,82000000000,Респ Дагестан
06,26000000000,Респ Ингушетия
07,83000000000,Респ Кабардино-Балкарская
08,85000000000,Респ Калмыкия
09,91000000000,Респ Карачаево-Черкесская
10,86000000000,Респ Карелия
11,87000000000,Респ Коми
12,88000000000,Респ Марий Эл
13,89000000000,Респ Мордовия
14,98000000000,Респ Саха /Якутия/
15,90000000000,Респ Северная Осетия - Алания
16,92000000000,Респ Татарстан
17,93000000000,Респ Тыва
18,94000000000,Респ Удмуртская
19,95000000000,Респ Хакасия
20,96000000000,Респ Чеченская
21,97000000000,Чувашская Республика - Чувашия
22,01000000000,Алтайский край
23,03000000000,Краснодарский край
24,04000000000,Красноярский край
25,05000000000,Приморский край
26,07000000000,Ставропольский край
27,08000000000,Хабаровский край
28,10000000000,Амурская обл
29,11000000000,Архангельская обл
30,12000000000,Астраханская обл
31,14000000000,Белгородская обл
32,15000000000,Брянская обл
33,17000000000,Владимирская обл
34,18000000000,Волгоградская обл
35,19000000000,Вологодская обл
36,20000000000,Воронежская обл
37,24000000000,Ивановская обл
38,25000000000,Иркутская обл
39,27000000000,Калининградская обл
40,29000000000,Калужская обл
41,30000000000,Камчатский край
42,32000000000,Кемеровская область - Кузбасс
43,33000000000,Кировская обл
44,34000000000,Костромская обл
45,37000000000,Курганская обл
46,38000000000,Курская обл
47,41000000000,Ленинградская обл
48,42000000000,Липецкая обл
49,44000000000,Магаданская обл
50,46000000000,Московская обл
51,47000000000,Мурманская обл
52,22000000000,Нижегородская обл
53,49000000000,Новгородская обл
54,50000000000,Новосибирская обл
55,52000000000,Омская обл
56,53000000000,Оренбургская обл
57,54000000000,Орловская обл
58,56000000000,Пензенская обл
59,57000000000,Пермский край
60,58000000000,Псковская обл
61,60000000000,Ростовская обл
62,61000000000,Рязанская обл
63,36000000000,Самарская обл
64,63000000000,Саратовская обл
65,64000000000,Сахалинская обл
66,65000000000,Свердловская обл
67,66000000000,Смоленская обл
68,68000000000,Тамбовская обл
69,28000000000,Тверская обл
70,69000000000,Томская обл
71,70000000000,Тульская обл
72,71000000000,Тюменская обл
73,73000000000,Ульяновская обл
74,75000000000,Челябинская обл
75,76000000000,Забайкальский край
76,78000000000,Ярославская обл
77,45000000000,г Москва
78,40000000000,г Санкт-Петербург
79,99000000000,Еврейская Аобл
83,11100000000,Ненецкий АО
86,71100000000,Ханты-Мансийский Автономный округ - Югра АО
87,77000000000,Чукотский АО
89,71140000000,Ямало-Ненецкий АО
91,35000000000,Респ Крым
92,67000000000,г Севастополь
99,55000000000,г Байконур
"""
# ОК 019-95 for the subjects of 2022 (not in the directory above).
OK_019_95_2022 = {"93": "21000000000", "90": "23000000000", "94": "43000000000", "95": "74000000000"}


def second_source() -> dict[str, str]:
    table = {}
    for line in HFLABS_REGION_CSV.splitlines():
        code, okato, _name = line.split(",", 2)
        table[code] = okato
    return {**table, **OK_019_95_2022}


def test_every_subject_has_the_okato_of_the_second_source() -> None:
    expected = second_source()
    assert set(expected) == set(REGIONS)  # 89 subjects and 99, each with a code to check
    ours = {code: okato_for_region(code) for code in REGIONS}
    differing = {code: (ours[code], expected[code]) for code in expected if ours[code] != expected[code]}
    assert not differing, differing
    assert all(re.fullmatch(r"\d{11}", value or "") for value in ours.values())
    assert okato_for_region("95") == "74000000000"  # Херсонская область (the project had 39 before)
    assert okato_for_region("39") == "27000000000"  # Калининградская область keeps its own
    assert okato_for_region("00") is None
    assert okato_for_region("80") is None  # a code of a merged autonomous district


# --- The example numbers of SPEC.md and INTEGRATION.md ------------------------------------------------

SPEC_INN = "7703012348"
SPEC_OGRN = "1027700000008"
SPEC_KPP = "770301001"
SPEC_SNILS = ("112-233-445 95", "11223344595")
SPEC_SNILS_UNCHECKED_MAX = "001-001-998"


def textbook_inn10(inn: str) -> bool:
    weights = (2, 4, 10, 3, 5, 9, 4, 6, 8)
    return sum(w * int(d) for w, d in zip(weights, inn[:9], strict=True)) % 11 % 10 == int(inn[9])


def textbook_ogrn13(ogrn: str) -> bool:
    return int(ogrn[:12]) % 11 % 10 == int(ogrn[12])


def textbook_snils(snils: str) -> bool:
    digits = re.sub(r"[ -]", "", snils)
    total = sum((9 - i) * int(d) for i, d in enumerate(digits[:9]))
    while total > 101:
        total %= 101
    return (0 if total in (100, 101) else total) == int(digits[9:])


def test_the_spec_examples_pass_their_check_digits() -> None:
    assert textbook_inn10(SPEC_INN)
    assert ids.validate_inn(SPEC_INN, allow_individual=False) == SPEC_INN
    assert textbook_ogrn13(SPEC_OGRN)
    assert ids.validate_ogrn(SPEC_OGRN) == SPEC_OGRN
    assert re.fullmatch(r"\d{4}[\dA-Z]{2}\d{3}", SPEC_KPP)
    assert ids.validate_kpp(SPEC_KPP) == SPEC_KPP
    assert SPEC_KPP[:2] == SPEC_INN[:2] == "77"  # the same subject (Москва) in all three
    for snils in SPEC_SNILS:
        assert textbook_snils(snils)
        assert ids.validate_snils(snils) == "11223344595"
    # The boundary SPEC names carries no check number: any two digits are accepted there.
    assert not ids.snils_is_checked(re.sub(r"\D", "", SPEC_SNILS_UNCHECKED_MAX))
    assert ids.validate_snils(SPEC_SNILS_UNCHECKED_MAX + " 00") == "00100199800"
    # And the checks are not blind: one digit off fails each of them.
    assert not textbook_inn10("7703012340")
    assert not textbook_ogrn13("1027700000009")
    assert not textbook_snils("112-233-445 96")
    for validate, wrong in ((ids.validate_inn, "7703012340"), (ids.validate_ogrn, "1027700000009")):
        with pytest.raises(ids.IdError):
            validate(wrong)


def test_the_examples_above_are_those_of_the_shared_documents() -> None:
    """Every ИНН/ОГРН/КПП/СНИЛС in the JSON examples of SPEC.md and INTEGRATION.md is one checked above.
    In CI the documents must be there; elsewhere a missing ../shared is reported, not assumed."""
    shared = shared_dir()
    if shared is None:  # outside CI only: a checkout without ../shared has nothing more to compare
        assert not os.environ.get("CI"), "CI runs with ../shared beside the project: SPEC.md not found"
        return
    text = (shared / "SPEC.md").read_text(encoding="utf-8")
    integration = shared / "INTEGRATION.md"
    if integration.is_file():
        text += integration.read_text(encoding="utf-8")
    found: dict[str, set[str]] = {"inn": set(), "ogrn": set(), "kpp": set(), "snils": set()}
    for block in re.findall(r"```json\n(.*?)```", text, flags=re.DOTALL):
        for key, value in re.findall(r'"(inn|ogrn|kpp|snils)":\s*"([^"]+)"', block):
            found[key].add(value)
    assert found["inn"] == {SPEC_INN}
    assert found["ogrn"] == {SPEC_OGRN}
    assert found["kpp"] == {SPEC_KPP}
    assert found["snils"]
    assert found["snils"] <= set(SPEC_SNILS)
    assert SPEC_SNILS_UNCHECKED_MAX in text
