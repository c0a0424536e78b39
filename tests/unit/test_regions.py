"""The directory of subjects and finding the subject in an address."""

from __future__ import annotations

import dataclasses

import pytest

from posog.core.regions import (
    OTHER_TERRITORIES_CODE,
    REGIONS,
    Region,
    get_region,
    is_region_code,
    region_from_address,
    resolve_region,
)

# ФНС subject codes: 01–79, the four autonomous districts left, Крым and Севастополь,
# the four subjects of 2022 — and 99 for Байконур and other territories.
EXPECTED_SUBJECT_CODES = {
    *(f"{n:02d}" for n in range(1, 80)),
    "83",
    "86",
    "87",
    "89",
    "90",
    "91",
    "92",
    "93",
    "94",
    "95",
}


def test_directory_has_89_subjects_plus_99() -> None:
    assert len(EXPECTED_SUBJECT_CODES) == 89
    assert set(REGIONS) == EXPECTED_SUBJECT_CODES | {"99"}
    assert len(REGIONS) == 90
    assert sum(region.is_subject for region in REGIONS.values()) == 89
    assert not REGIONS[OTHER_TERRITORIES_CODE].is_subject


def test_entries_are_consistent_and_frozen() -> None:
    names = set()
    for code, region in REGIONS.items():
        assert isinstance(region, Region)
        assert region.code == code
        assert region.name
        assert region.name not in names
        names.add(region.name)
        assert len(set(region.short_names)) == len(region.short_names)
    with pytest.raises(dataclasses.FrozenInstanceError):
        REGIONS["77"].name = "Москва"  # type: ignore[misc]
    with pytest.raises(TypeError):
        REGIONS["00"] = Region("00", "Нигде")  # type: ignore[index]


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("01", "Республика Адыгея (Адыгея)"),
        ("14", "Республика Саха (Якутия)"),
        ("16", "Республика Татарстан (Татарстан)"),
        ("21", "Чувашская Республика — Чувашия"),
        ("42", "Кемеровская область — Кузбасс"),
        ("50", "Московская область"),
        ("77", "г. Москва"),
        ("78", "г. Санкт-Петербург"),
        ("86", "Ханты-Мансийский автономный округ — Югра"),
        ("89", "Ямало-Ненецкий автономный округ"),
        ("90", "Запорожская область"),
        ("91", "Республика Крым"),
        ("92", "г. Севастополь"),
        ("93", "Донецкая Народная Республика"),
        ("94", "Луганская Народная Республика"),
        ("95", "Херсонская область"),
    ],
)
def test_known_names(code: str, name: str) -> None:
    region = get_region(code)
    assert region is not None
    assert region.name == name


def test_short_names_cover_common_spellings() -> None:
    assert {"Москва", "г Москва"} <= set(REGIONS["77"].short_names)
    assert {"Московская обл.", "Московская обл", "МО"} <= set(REGIONS["50"].short_names)
    assert {"Респ. Татарстан", "Татарстан", "РТ"} <= set(REGIONS["16"].short_names)
    assert {"ХМАО", "Югра"} <= set(REGIONS["86"].short_names)
    assert "ЯНАО" in REGIONS["89"].short_names
    assert "Чувашия" in REGIONS["21"].short_names
    assert "Якутия" in REGIONS["14"].short_names
    assert "Кузбасс" in REGIONS["42"].short_names


@pytest.mark.parametrize(
    ("code", "known"),
    [
        ("77", True),
        ("01", True),
        ("99", True),
        ("95", True),
        (" 16 ", True),
        ("00", False),
        ("80", False),  # Агинский Бурятский АО, merged into Забайкальский край
        ("84", False),
        ("88", False),
        ("96", False),
        ("7", False),
        ("", False),
    ],
)
def test_is_region_code(code: str, known: bool) -> None:
    assert is_region_code(code) is known
    assert (get_region(code) is not None) is known


@pytest.mark.parametrize("region", list(REGIONS.values()), ids=lambda r: r.code)
def test_every_name_and_short_name_resolves_to_its_region(region: Region) -> None:
    for name in (region.name, *region.short_names):
        assert region_from_address(name) == region.code, name


ADDRESSES = [
    ("101000, г. Москва, ул. Мясницкая, д. 20", "77"),
    ("Москва, Тверская ул., д. 13", "77"),
    ("г.Москва,ул.Тверская,д.1", "77"),
    ("Москва, Ленинградский пр-т, д. 39", "77"),
    ("г. Москва, поселение Московский, ул. Атласова, 1", "77"),
    ("143401, Московская обл., г. Красногорск, бульвар Строителей, д. 1", "50"),
    ("Московская область, г.о. Балашиха, ул. Советская, 1", "50"),
    ("МО, г. Люберцы, Октябрьский пр-т, 190", "50"),
    ("обл. Московская, г. Подольск", "50"),
    ("московская область, г. мытищи", "50"),
    ("Московская обл., г. Королёв, ул. Ленина, 1", "50"),
    ("190000, г. Санкт-Петербург, Невский пр., д. 1", "78"),
    ("СПб, Московский пр., 100", "78"),
    ("188300, Ленинградская обл., г. Гатчина, пр. 25 Октября, 42", "47"),
    ("Ленинградская область, Всеволожский р-н, г. Мурино, ул. Санкт-Петербургская, 5", "47"),
    ("420111, Респ. Татарстан, г. Казань, ул. Кремлевская, 18", "16"),
    ("Республика Татарстан (Татарстан), г. Набережные Челны", "16"),
    ("Татарстан Респ, Казань г", "16"),
    ("450008, Республика Башкортостан, г. Уфа, ул. Цюрупы, 13", "02"),
    ("677000, Респ. Саха (Якутия), г. Якутск, пр. Ленина, 30", "14"),
    ("Саха /Якутия/ Респ, Якутск г", "14"),
    ("693000, Сахалинская обл., г. Южно-Сахалинск", "65"),
    ("360000, Кабардино-Балкарская Респ., г. Нальчик, пр. Ленина, 27", "07"),
    ("369000, Карачаево-Черкесская Республика, г. Черкесск", "09"),
    ("362040, Республика Северная Осетия — Алания, г. Владикавказ", "15"),
    ("428000, Чувашская Республика — Чувашия, г. Чебоксары", "21"),
    ("Чувашия, г. Новочебоксарск", "21"),
    ("426000, Удмуртская Респ., г. Ижевск", "18"),
    ("424000, Респ. Марий Эл, г. Йошкар-Ола", "12"),
    ("Тыва, г. Кызыл", "17"),
    ("299011, г. Севастополь, ул. Ленина, 2", "92"),
    ("295000, Республика Крым, г. Симферополь", "91"),
    ("628400, ХМАО-Югра, г. Сургут, ул. Энгельса, 8", "86"),
    ("Ханты-Мансийский автономный округ — Югра, г. Ханты-Мансийск", "86"),
    ("Тюменская обл., Ханты-Мансийский АО — Югра, г. Нижневартовск", "86"),
    ("629008, Ямало-Ненецкий АО, г. Салехард, ул. Республики, 72", "89"),
    ("Тюменская обл., ЯНАО, г. Новый Уренгой", "89"),
    ("625000, Тюменская обл., г. Тюмень, ул. Володарского, 45", "72"),
    ("166000, Ненецкий автономный округ, г. Нарьян-Мар", "83"),
    ("Архангельская обл., Ненецкий АО, г. Нарьян-Мар", "83"),
    ("163000, Архангельская область, г. Архангельск", "29"),
    ("620014, Свердловская обл., г. Екатеринбург, пр. Ленина, 24", "66"),
    ("СВЕРДЛОВСКАЯ ОБЛАСТЬ, Г. ЕКАТЕРИНБУРГ", "66"),
    ("650000, Кемеровская область — Кузбасс, г. Кемерово", "42"),
    ("Кузбасс, г. Новокузнецк", "42"),
    ("350000, Краснодарский край, г. Краснодар, ул. Красная, 35", "23"),
    ("Краснодарский край, Ленинградский р-н, ст-ца Ленинградская", "23"),
    ("656000, Алтайский край, г. Барнаул", "22"),
    ("649000, Республика Алтай, г. Горно-Алтайск", "04"),
    ("690000, Приморский кр., г. Владивосток", "25"),
    ("603000, Нижегородская обл, г. Нижний Новгород", "52"),
    ("173000, Новгородская обл., г. Великий Новгород", "53"),
    ("630000, Новосибирская область, г. Новосибирск", "54"),
    ("683000, Камчатский край, г. Петропавловск-Камчатский", "41"),
    ("Пермский край, Коми-Пермяцкий округ, г. Кудымкар", "59"),
    ("Коми-Пермяцкий округ, г. Кудымкар", "59"),  # part of Пермский край, not Республика Коми
    ("167000, Республика Коми, г. Сыктывкар", "11"),
    ("129090, Москва г, Олимпийский пр-кт, д.16", "77"),
    ("Владимирская обл., г. Владимир, ул. Московская", "33"),
    ("Орловская обл., г. Орёл", "57"),
    ("679000, Еврейская автономная область, г. Биробиджан", "79"),
    ("689000, Чукотский АО, г. Анадырь", "87"),
    ("283000, Донецкая Народная Республика, г. Донецк", "93"),
    ("ЛНР, г. Луганск", "94"),
    ("Запорожская обл., г. Мелитополь", "90"),
    ("Херсонская область, г. Геническ", "95"),
    ("468320, г. Байконур, ул. Неделина, 1", "99"),
    ("ул. Московская, обл. Тверская, г. Тверь", "69"),
]


@pytest.mark.parametrize(("address", "code"), ADDRESSES)
def test_region_from_address(address: str, code: str) -> None:
    assert region_from_address(address) == code


def test_address_table_is_broad() -> None:
    assert len(ADDRESSES) >= 40
    assert len({code for _, code in ADDRESSES}) >= 40


@pytest.mark.parametrize(
    "address",
    [
        "",
        "   ",
        "Россия",
        "420111, г. Казань, ул. Московская, д. 1",  # a city, a street — no subject named
        "ул. Ленинградская, д. 5",
        "Московский пр., д. 10",
        "мо, г. Люберцы",  # "МО" only counts in capitals
        "Санкт-Петербургское ш., 10",
    ],
)
def test_region_from_address_finds_nothing(address: str) -> None:
    assert region_from_address(address) is None


def test_moscow_city_and_oblast_are_not_confused() -> None:
    assert region_from_address("г. Москва") == "77"
    assert region_from_address("Московская обл.") == "50"
    assert region_from_address("Московская обл., Ленинский г.о., пос. Развилка, у МКАД (Москва)") == "50"
    assert region_from_address("Санкт-Петербург") == "78"
    assert region_from_address("Ленинградская обл.") == "47"


# ------------------------------------------------------------ resolve_region


def test_resolve_region_prefers_the_explicit_code() -> None:
    assert resolve_region(region_code="16", address="г. Москва", kpp="773601001", inn="7707083893") == "16"
    assert resolve_region(region_code=" 99 ", address=None, kpp=None, inn=None) == "99"


def test_resolve_region_unknown_code_falls_back_to_the_address() -> None:
    assert resolve_region(region_code="80", address="г. Москва", kpp="164401001", inn="1644003838") == "77"
    assert resolve_region(region_code="", address="Респ. Татарстан", kpp=None, inn=None) == "16"


def test_resolve_region_address_before_kpp_and_inn() -> None:
    assert resolve_region(region_code=None, address="ХМАО-Югра, г. Сургут", kpp="773601001", inn="7707083893") == "86"


def test_resolve_region_kpp_when_the_address_says_nothing() -> None:
    street_only = "ул. Ленина, д. 1"
    assert resolve_region(region_code=None, address=street_only, kpp="860201001", inn="7707083893") == "86"
    assert resolve_region(region_code=None, address=None, kpp="773601001", inn="1644003838") == "77"


def test_resolve_region_skips_kpp_of_the_largest_taxpayers_inspectorate() -> None:
    # Газпром: КПП 997250001 (inspectorate for the largest taxpayers), ИНН 7736050003.
    assert resolve_region(region_code=None, address=None, kpp="997250001", inn="7736050003") == "77"
    assert resolve_region(region_code=None, address=None, kpp="997250001", inn=None) is None


def test_resolve_region_kpp_with_unknown_prefix_falls_back_to_inn() -> None:
    assert resolve_region(region_code=None, address=None, kpp="800101001", inn="1644003838") == "16"


def test_resolve_region_inn_last() -> None:
    assert resolve_region(region_code=None, address=None, kpp=None, inn="8602060555") == "86"
    assert resolve_region(region_code=None, address="", kpp="", inn="123456789047") == "12"


def test_resolve_region_nothing_resolves() -> None:
    assert resolve_region(region_code=None, address=None, kpp=None, inn=None) is None
    assert resolve_region(region_code="00", address="Россия", kpp="002001001", inn="8002000000") is None
