"""Subjects of the Russian Federation, keyed by the ФНС subject code.

The codes are those of the ФНС directory «Коды субъектов Российской Федерации
и иных территорий» (the first two digits of an ИНН or КПП): 01–79, 83, 86, 87,
89 for the subjects that existed before 2014, 91 Крым and 92 Севастополь,
90 Запорожская, 93 ДНР, 94 ЛНР and 95 Херсонская области since 2022 — 89
subjects in all — plus 99 «иные территории, включая город и космодром Байконур».
Codes 80–82, 84, 85 and 88 belonged to autonomous districts merged into other
subjects and are not used any more.

:func:`region_from_address` finds the subject named in a free-text address and
:func:`resolve_region` applies the precedence rule of the specification.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, NamedTuple

OTHER_TERRITORIES_CODE: Final = "99"
"""Байконур and other territories outside the subjects; at КПП level 99 means the
inspectorate for the largest taxpayers instead."""


@dataclass(frozen=True, slots=True)
class Region:
    """A subject of the Russian Federation (or code 99, other territories).

    ``short_names`` are the other ways addresses commonly name it; together with
    ``name`` they are what :func:`region_from_address` looks for.
    """

    code: str
    name: str
    short_names: tuple[str, ...] = ()

    @property
    def is_subject(self) -> bool:
        """False only for code 99, which is not a subject of the federation."""
        return self.code != OTHER_TERRITORIES_CODE


def _obl(code: str, adjective: str, *extra: str) -> Region:
    """An oblast named ``<adjective> область``."""
    return Region(code, f"{adjective} область", (f"{adjective} обл.", f"{adjective} обл", *extra))


def _krai(code: str, adjective: str, *extra: str) -> Region:
    """A krai named ``<adjective> край``."""
    return Region(code, f"{adjective} край", (f"{adjective} кр.", *extra))


_REGION_LIST: Final[tuple[Region, ...]] = (
    Region("01", "Республика Адыгея (Адыгея)", ("Респ. Адыгея", "Республика Адыгея", "Адыгея")),
    Region(
        "02",
        "Республика Башкортостан",
        ("Респ. Башкортостан", "Башкортостан", "Башкирия", "РБ"),
    ),
    Region("03", "Республика Бурятия", ("Респ. Бурятия", "Бурятия")),
    Region("04", "Республика Алтай", ("Респ. Алтай", "Алтай Респ.")),
    Region("05", "Республика Дагестан", ("Респ. Дагестан", "Дагестан", "РД")),
    Region("06", "Республика Ингушетия", ("Респ. Ингушетия", "Ингушетия")),
    Region(
        "07",
        "Кабардино-Балкарская Республика",
        ("Кабардино-Балкарская Респ.", "Кабардино-Балкария", "КБР"),
    ),
    Region("08", "Республика Калмыкия", ("Респ. Калмыкия", "Калмыкия")),
    Region(
        "09",
        "Карачаево-Черкесская Республика",
        ("Карачаево-Черкесская Респ.", "Карачаево-Черкесия", "КЧР"),
    ),
    Region("10", "Республика Карелия", ("Респ. Карелия", "Карелия")),
    Region("11", "Республика Коми", ("Респ. Коми", "Коми")),
    Region("12", "Республика Марий Эл", ("Респ. Марий Эл", "Марий Эл", "РМЭ")),
    Region("13", "Республика Мордовия", ("Респ. Мордовия", "Мордовия")),
    Region(
        "14",
        "Республика Саха (Якутия)",
        ("Респ. Саха (Якутия)", "Респ. Саха", "Республика Саха", "Саха (Якутия)", "Якутия"),
    ),
    Region(
        "15",
        "Республика Северная Осетия — Алания",
        (
            "Респ. Северная Осетия — Алания",
            "Респ. Северная Осетия",
            "Северная Осетия — Алания",
            "Северная Осетия",
            "РСО-Алания",
        ),
    ),
    Region(
        "16",
        "Республика Татарстан (Татарстан)",
        ("Респ. Татарстан", "Республика Татарстан", "Татарстан", "РТ"),
    ),
    Region("17", "Республика Тыва", ("Респ. Тыва", "Тыва", "Тува")),
    Region("18", "Удмуртская Республика", ("Удмуртская Респ.", "Удмуртия", "УР")),
    Region("19", "Республика Хакасия", ("Респ. Хакасия", "Хакасия")),
    Region("20", "Чеченская Республика", ("Чеченская Респ.", "Чечня")),
    Region(
        "21",
        "Чувашская Республика — Чувашия",
        ("Чувашская Респ.", "Чувашская Республика", "Чувашия"),
    ),
    _krai("22", "Алтайский"),
    _krai("23", "Краснодарский", "Кубань"),
    _krai("24", "Красноярский"),
    _krai("25", "Приморский", "Приморье"),
    _krai("26", "Ставропольский"),
    _krai("27", "Хабаровский"),
    _obl("28", "Амурская"),
    _obl("29", "Архангельская"),
    _obl("30", "Астраханская"),
    _obl("31", "Белгородская"),
    _obl("32", "Брянская"),
    _obl("33", "Владимирская"),
    _obl("34", "Волгоградская"),
    _obl("35", "Вологодская"),
    _obl("36", "Воронежская"),
    _obl("37", "Ивановская"),
    _obl("38", "Иркутская"),
    _obl("39", "Калининградская"),
    _obl("40", "Калужская"),
    _krai("41", "Камчатский", "Камчатка"),
    Region(
        "42",
        "Кемеровская область — Кузбасс",
        ("Кемеровская обл. — Кузбасс", "Кемеровская область", "Кемеровская обл.", "Кузбасс"),
    ),
    _obl("43", "Кировская"),
    _obl("44", "Костромская"),
    _obl("45", "Курганская"),
    _obl("46", "Курская"),
    _obl("47", "Ленинградская", "ЛО"),
    _obl("48", "Липецкая"),
    _obl("49", "Магаданская"),
    _obl("50", "Московская", "МО"),
    _obl("51", "Мурманская"),
    _obl("52", "Нижегородская"),
    _obl("53", "Новгородская"),
    _obl("54", "Новосибирская"),
    _obl("55", "Омская"),
    _obl("56", "Оренбургская"),
    _obl("57", "Орловская"),
    _obl("58", "Пензенская"),
    # The former Коми-Пермяцкий АО is part of Пермский край; naming it must not read as Республика Коми.
    _krai("59", "Пермский", "Коми-Пермяцкий округ", "Коми-Пермяцкий АО"),
    _obl("60", "Псковская"),
    _obl("61", "Ростовская"),
    _obl("62", "Рязанская"),
    _obl("63", "Самарская"),
    _obl("64", "Саратовская"),
    _obl("65", "Сахалинская"),
    _obl("66", "Свердловская"),
    _obl("67", "Смоленская"),
    _obl("68", "Тамбовская"),
    _obl("69", "Тверская"),
    _obl("70", "Томская"),
    _obl("71", "Тульская"),
    _obl("72", "Тюменская"),
    _obl("73", "Ульяновская"),
    _obl("74", "Челябинская"),
    _krai("75", "Забайкальский", "Забайкалье"),
    _obl("76", "Ярославская"),
    Region("77", "г. Москва", ("Москва", "г Москва", "город Москва")),
    Region(
        "78",
        "г. Санкт-Петербург",
        ("Санкт-Петербург", "г Санкт-Петербург", "С.-Петербург", "Петербург", "СПб"),
    ),
    Region(
        "79",
        "Еврейская автономная область",
        ("Еврейская авт. обл.", "Еврейская АО", "Еврейская обл.", "ЕАО"),
    ),
    Region("83", "Ненецкий автономный округ", ("Ненецкий АО", "Ненецкий авт. округ")),
    Region(
        "86",
        "Ханты-Мансийский автономный округ — Югра",
        (
            "Ханты-Мансийский АО — Югра",
            "Ханты-Мансийский автономный округ",
            "Ханты-Мансийский АО",
            "ХМАО — Югра",
            "ХМАО",
            "Югра",
        ),
    ),
    Region("87", "Чукотский автономный округ", ("Чукотский АО", "Чукотка", "ЧАО")),
    Region(
        "89",
        "Ямало-Ненецкий автономный округ",
        ("Ямало-Ненецкий АО", "Ямало-Ненецкий авт. округ", "ЯНАО"),
    ),
    _obl("90", "Запорожская"),
    Region("91", "Республика Крым", ("Респ. Крым", "Крым")),
    Region("92", "г. Севастополь", ("Севастополь", "г Севастополь", "город Севастополь")),
    Region(
        "93",
        "Донецкая Народная Республика",
        ("Донецкая Народная Респ.", "ДНР"),
    ),
    Region(
        "94",
        "Луганская Народная Республика",
        ("Луганская Народная Респ.", "ЛНР"),
    ),
    _obl("95", "Херсонская"),
    Region(
        OTHER_TERRITORIES_CODE,
        "Иные территории, включая город и космодром Байконур",
        ("г. Байконур", "Байконур"),
    ),
)

REGIONS: Final[Mapping[str, Region]] = MappingProxyType({r.code: r for r in _REGION_LIST})
"""Subject code → region: the 89 subjects plus 99."""

# Autonomous districts lying within another subject: when an address names both
# (e.g. "Тюменская обл., ХМАО-Югра, г. Сургут") the district is the answer.
_PARENT_OF: Final[Mapping[str, str]] = MappingProxyType({"83": "29", "86": "72", "89": "72"})


def get_region(code: str) -> Region | None:
    """The region with this two-digit code, or None."""
    return REGIONS.get(code.strip())


def is_region_code(code: str) -> bool:
    """Whether ``code`` is one of the 89 subject codes or 99."""
    return code.strip() in REGIONS


# ----------------------------------------------------------- address matching

_WORD = re.compile(r"[^\W_]+")

# Designations of the kind of subject, folded to one marker token each so that
# "обл." / "обл" / "область" (and so on) compare equal.
_OBL, _RESP, _KRAI, _CITY, _AO, _AOBL = "<обл>", "<респ>", "<край>", "<г>", "<ао>", "<аобл>"
_TYPE_WORDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "область": _OBL,
        "обл": _OBL,
        "республика": _RESP,
        "респ": _RESP,
        "край": _KRAI,
        "кр": _KRAI,
        "г": _CITY,
        "город": _CITY,
        "гор": _CITY,
        "ао": _AO,
        "аобл": _AOBL,
    }
)
_TYPE_PAIRS: Final[Mapping[tuple[str, str], str]] = MappingProxyType(
    {
        ("автономный", "округ"): _AO,
        ("автономный", "окр"): _AO,
        ("авт", "округ"): _AO,
        ("авт", "окр"): _AO,
        ("автономная", "область"): _AOBL,
        ("автономная", "обл"): _AOBL,
        ("авт", "обл"): _AOBL,
        ("авт", "область"): _AOBL,
    }
)
_TYPE_MARKERS: Final = frozenset(_TYPE_WORDS.values())


class _Token(NamedTuple):
    folded: str  # lower case, ё → е, designations folded to markers
    original: str  # as written (ё → е), for case-sensitive abbreviations


def _tokenize(text: str) -> list[_Token]:
    """Split text into words, folding case, ё and subject designations."""
    words = _WORD.findall(text.replace("ё", "е").replace("Ё", "Е"))
    tokens: list[_Token] = []
    i = 0
    while i < len(words):
        lower = words[i].lower()
        if i + 1 < len(words) and (lower, words[i + 1].lower()) in _TYPE_PAIRS:
            tokens.append(_Token(_TYPE_PAIRS[lower, words[i + 1].lower()], f"{words[i]} {words[i + 1]}"))
            i += 2
            continue
        tokens.append(_Token(_TYPE_WORDS.get(lower, lower), words[i]))
        i += 1
    return tokens


class _Pattern(NamedTuple):
    code: str
    words: tuple[str, ...]
    case_sensitive: bool  # short all-capital abbreviations such as "МО", "РТ", "КБР"
    weight: float


def _is_abbreviation(name: str) -> bool:
    """Short all-capital abbreviations ("МО", "РТ", "КБР") only count when written in capitals."""
    letters = name.replace("-", "")
    return letters.isalpha() and letters.isupper() and len(letters) <= 3


def _patterns_for(region: Region) -> Iterable[_Pattern]:
    """Token sequences naming ``region``, with the designation moved to either end."""
    for source in (region.name, *region.short_names):
        if _is_abbreviation(source):
            weight = 0.5 if len(source) <= 2 else 1.0
            yield _Pattern(region.code, (source,), True, weight)
            continue
        words = tuple(t.folded for t in _tokenize(source))
        if not words or all(w in _TYPE_MARKERS for w in words):
            raise ValueError(f"region {region.code}: {source!r} names no subject")
        variants = {words}
        if len(words) > 1 and words[-1] in _TYPE_MARKERS:
            variants.add((words[-1], *words[:-1]))
        if len(words) > 1 and words[0] in _TYPE_MARKERS:
            variants.add((*words[1:], words[0]))
        for variant in variants:
            yield _Pattern(region.code, variant, False, float(len(variant)))


def _build_index() -> dict[str, list[_Pattern]]:
    """Patterns by their first word; fails loudly if two subjects share a pattern."""
    owner: dict[tuple[bool, tuple[str, ...]], str] = {}
    index: dict[str, list[_Pattern]] = {}
    for region in _REGION_LIST:
        for pattern in _patterns_for(region):
            key = (pattern.case_sensitive, pattern.words)
            if owner.setdefault(key, pattern.code) != pattern.code:
                raise ValueError(f"{pattern.words} names both {owner[key]} and {pattern.code}")
            bucket = index.setdefault(pattern.words[0], [])
            if pattern not in bucket:
                bucket.append(pattern)
    return index


_INDEX: Final = _build_index()


class _Match(NamedTuple):
    code: str
    start: int
    end: int
    weight: float


_SEGMENT_BREAK = re.compile(r"[,;\n]")


def _find_matches(address: str) -> list[_Match]:
    """Every occurrence of every pattern in the address; none spans a comma or semicolon."""
    found: list[_Match] = []
    offset = 0
    for segment in _SEGMENT_BREAK.split(address):
        tokens = _tokenize(segment)
        found.extend(_find_in_segment(tokens, offset))
        offset += len(tokens)
    return found


def _find_in_segment(tokens: list[_Token], offset: int) -> list[_Match]:
    """Occurrences of the patterns in one comma-separated part, positioned from ``offset``."""
    folded = [t.folded for t in tokens]
    found: list[_Match] = []
    for start, token in enumerate(tokens):
        candidates = list(_INDEX.get(token.folded, ()))
        if token.original != token.folded:
            candidates += _INDEX.get(token.original, ())
        for pattern in candidates:
            end = start + len(pattern.words)
            if pattern.case_sensitive:
                hit = token.original == pattern.words[0]
            else:
                hit = tuple(folded[start:end]) == pattern.words
            if hit:
                found.append(_Match(pattern.code, offset + start, offset + end, pattern.weight))
    return found


def _inside(inner: _Match, outer: _Match) -> bool:
    """``inner`` names another subject within a longer name ("Ненецкий АО" in "Ямало-Ненецкий АО")."""
    return (
        inner.code != outer.code
        and outer.start <= inner.start
        and inner.end <= outer.end
        and outer.end - outer.start > inner.end - inner.start
    )


def region_from_address(address: str) -> str | None:
    """The code of the subject named in a free-text Russian address, or None.

    Case-insensitive and tolerant of "обл."/"обл"/"область", "респ."/"республика",
    "кр."/"край", "г."/"г"/"город", "АО"/"автономный округ" before or after the
    name, and of ё written as е. Short capital abbreviations ("МО", "РТ") only
    count in capitals and weigh less than names. Rules, in order:

    * a name never spans a comma or semicolon ("ул. Московская, обл. Тверская");
    * a match lying inside a longer match of another subject is dropped
      ("Ненецкий АО" inside "Ямало-Ненецкий АО");
    * an autonomous district beats the oblast it lies in (ХМАО over Тюменская обл.);
    * the heaviest match wins (more words: "Московская обл." beats a bare "Москва");
    * on a tie, the one named first (addresses run from region to street).
    """
    matches = _find_matches(address)
    kept = [m for m in matches if not any(_inside(m, other) for other in matches)]
    best: dict[str, _Match] = {}
    for m in kept:
        current = best.get(m.code)
        if current is None or (m.weight, -m.start) > (current.weight, -current.start):
            best[m.code] = m
    for child, parent in _PARENT_OF.items():
        if child in best:
            best.pop(parent, None)
    if not best:
        return None
    winner = max(best.values(), key=lambda m: (m.weight, -m.start))
    return winner.code


def _known(code: str | None) -> str | None:
    """``code`` stripped if it is a known region code, else None."""
    if code is None:
        return None
    code = code.strip()
    return code if code in REGIONS else None


def resolve_region(
    *,
    region_code: str | None,
    address: str | None,
    kpp: str | None,
    inn: str | None,
) -> str | None:
    """The subject code of an organisation, by the specification's precedence.

    1. ``region_code`` when given and known;
    2. else the subject named in ``address``;
    3. else the first two digits of ``kpp`` — unless they are 99, which at КПП
       level means the inspectorate for the largest taxpayers, not a territory;
    4. else the first two digits of ``inn``;
    5. else None.
    """
    if (code := _known(region_code)) is not None:
        return code
    if address and (code := region_from_address(address)) is not None:
        return code
    if kpp:
        prefix = kpp.strip()[:2]
        if prefix != OTHER_TERRITORIES_CODE and (code := _known(prefix)) is not None:
            return code
    if inn:
        return _known(inn.strip()[:2])
    return None


__all__ = [
    "OTHER_TERRITORIES_CODE",
    "REGIONS",
    "Region",
    "get_region",
    "is_region_code",
    "region_from_address",
    "resolve_region",
]
