"""Realistic ОГ facts for the СМЭВ emulator, the demo, the tests and the benchmarks: Russian names,
valid СНИЛС, organisations with valid ИНН/ОГРН/КПП and addresses in many regions, service dates over
recent weeks — and, on request, deliberately broken facts of every kind intake must reject."""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from faker import Faker

from posog.core import ids, regions

# (region code, city) pairs: the address names the city, the region is named or derivable.
CITIES: tuple[tuple[str, str, str], ...] = (
    ("77", "г. Москва", ""),
    ("78", "г. Санкт-Петербург", ""),
    ("50", "г. Подольск", "Московская обл."),
    ("47", "г. Гатчина", "Ленинградская обл."),
    ("16", "г. Казань", "Респ. Татарстан"),
    ("66", "г. Екатеринбург", "Свердловская обл."),
    ("54", "г. Новосибирск", "Новосибирская обл."),
    ("52", "г. Нижний Новгород", "Нижегородская обл."),
    ("23", "г. Краснодар", "Краснодарский край"),
    ("61", "г. Ростов-на-Дону", "Ростовская обл."),
    ("63", "г. Самара", "Самарская обл."),
    ("02", "г. Уфа", "Респ. Башкортостан"),
    ("24", "г. Красноярск", "Красноярский край"),
    ("59", "г. Пермь", "Пермский край"),
    ("36", "г. Воронеж", "Воронежская обл."),
    ("34", "г. Волгоград", "Волгоградская обл."),
    ("74", "г. Челябинск", "Челябинская обл."),
    ("55", "г. Омск", "Омская обл."),
    ("72", "г. Тюмень", "Тюменская обл."),
    ("86", "г. Сургут", "Ханты-Мансийский автономный округ — Югра"),
    ("14", "г. Якутск", "Респ. Саха (Якутия)"),
    ("25", "г. Владивосток", "Приморский край"),
    ("39", "г. Калининград", "Калининградская обл."),
    ("92", "г. Севастополь", ""),
    ("05", "г. Махачкала", "Респ. Дагестан"),
)

# Every organisation type of ЛКО's default directory: a name pattern, then the services it provides.
TYPES: dict[str, tuple[str, ...]] = {
    "mfc": ("ГАУ «МФЦ {city}»", "Выдача паспорта гражданина РФ", "Регистрация по месту жительства"),
    "polyclinic": ("ГБУЗ «Городская поликлиника № {n}»", "Приём врача-терапевта", "Диспансеризация"),
    "hospital": ("ГБУЗ «Городская больница № {n}»", "Госпитализация в плановом порядке"),
    "school": ("МБОУ «Средняя общеобразовательная школа № {n}»", "Зачисление в первый класс"),
    "kindergarten": ("МБДОУ «Детский сад № {n}»", "Зачисление в детский сад"),
    "college": ("ГБПОУ «Колледж № {n}»", "Приём документов на обучение"),
    "social_service": (
        "ГБУ «Комплексный центр социального обслуживания населения»",
        "Социальное обслуживание на дому",
    ),
    "employment": ("ГКУ «Центр занятости населения»", "Содействие в поиске работы"),
    "culture": ("МБУК «Дом культуры № {n}»", "Запись в творческий кружок"),
    "sport": ("МБУ «Спортивная школа № {n}»", "Зачисление в спортивную секцию"),
    "dental": ("ГАУЗ «Стоматологическая поликлиника № {n}»", "Лечение кариеса", "Профилактический осмотр"),
    "university": ("ФГБОУ ВО «Государственный университет» ({city})", "Приём документов в магистратуру"),
    "additional_education": (
        "МБУ ДО «Центр детского творчества № {n}»",
        "Запись на программу дополнительного образования",
    ),
    "social_protection": (
        "ГКУ «Управление социальной защиты населения»",
        "Назначение ежемесячной выплаты на ребёнка",
        "Выдача справки о доходах",
    ),
    "pension_fund": (
        "Клиентская служба Социального фонда России",
        "Консультация по назначению пенсии",
        "Выдача сертификата на материнский капитал",
    ),
    "library": ("МБУК «Центральная библиотека № {n}»", "Запись в библиотеку"),
    "museum": ("ГБУК «Краеведческий музей» ({city})", "Экскурсионное обслуживание"),
    "theatre": ("ГАУК «Драматический театр» ({city})", "Продажа билетов на спектакль"),
    "tax": ("Инспекция ФНС России № {n}", "Регистрация индивидуального предпринимателя", "Выдача справки об ИНН"),
    "registry_office": ("Отдел ЗАГС № {n}", "Регистрация брака", "Регистрация рождения"),
    "traffic_police": (
        "МРЭО ГИБДД № {n}",
        "Регистрация транспортного средства",
        "Выдача водительского удостоверения",
    ),
    "migration": ("Отдел по вопросам миграции № {n}", "Выдача заграничного паспорта"),
    "rosreestr": ("Управление Росреестра", "Государственная регистрация права собственности"),
    "municipal_admin": ("Администрация городского округа", "Выдача разрешения на строительство"),
}

STREETS = (
    "ул. Ленина",
    "ул. Советская",
    "пр. Мира",
    "ул. Гагарина",
    "ул. Пушкина",
    "ул. Центральная",
    "ул. Садовая",
)


@dataclass(frozen=True)
class Organization:
    name: str
    address: str
    inn: str
    ogrn: str
    kpp: str
    type_code: str
    region_code: str


class FactFactory:
    """Deterministic for a given seed, so tests and benchmarks are repeatable.

    ``organization_seed`` fixes the organisations apart from the facts (the demo keeps the same
    organisations from run to run while each run brings new citizens); ``first_number`` continues the
    numbering of card ids after facts generated earlier. ``frgu``: the facts carry ФРГУ ids (the
    service's from its type and name, the authority's from its ИНН; every tenth fact has no service id,
    as some senders omit it), drawn without the generator's randomness so the rest stays the same."""

    def __init__(
        self,
        *,
        seed: int = 1,
        today: date,
        organizations: int = 60,
        horizon_days: int = 28,
        organization_seed: int | None = None,
        first_number: int = 0,
        frgu: bool = False,
    ) -> None:
        self.frgu = frgu
        self.rng = random.Random(seed)
        self.faker = Faker("ru_RU")
        self.faker.seed_instance(seed)
        self.today = today
        self.horizon_days = horizon_days
        org_rng = self.rng if organization_seed is None else random.Random(organization_seed)
        self.organizations = [self._organization(i, org_rng) for i in range(organizations)]
        self._counter = first_number

    @staticmethod
    def _organization(index: int, rng: random.Random) -> Organization:
        region_code, city, region_name = CITIES[index % len(CITIES)]
        type_code = list(TYPES)[index % len(TYPES)]
        pattern = TYPES[type_code][0]
        name = pattern.format(n=rng.randint(1, 250), city=city.removeprefix("г. "))
        street = rng.choice(STREETS)
        place = f"{region_name}, {city}" if region_name else city
        address = f"{rng.randint(100000, 699999)}, {place}, {street}, д. {rng.randint(1, 150)}"
        return Organization(
            name=name,
            address=address,
            inn=ids.make_inn_org(rng, region_code),
            ogrn=ids.make_ogrn(rng, region_code),
            kpp=ids.make_kpp(rng, region_code),
            type_code=type_code,
            region_code=region_code,
        )

    def citizen(self) -> dict[str, Any]:
        male = self.rng.random() < 0.5
        f = self.faker
        age_days = self.rng.randint(18 * 365, 85 * 365)
        snils = ids.make_snils(self.rng)
        return {
            "last_name": f.last_name_male() if male else f.last_name_female(),
            "first_name": f.first_name_male() if male else f.first_name_female(),
            "middle_name": f.middle_name_male() if male else f.middle_name_female(),
            "birth_date": (self.today - timedelta(days=age_days)).isoformat(),
            "snils": f"{snils[:3]}-{snils[3:6]}-{snils[6:9]} {snils[9:]}",
        }

    def fact(
        self,
        *,
        organization: Organization | None = None,
        level: str = "federal",
        service_date: date | None = None,
    ) -> dict[str, Any]:
        """One valid fact."""
        self._counter += 1
        org = organization or self.rng.choice(self.organizations)
        when = service_date or self.today - timedelta(days=self.rng.randint(0, self.horizon_days))
        service_name = self.rng.choice(TYPES[org.type_code][1:])
        organization_part: dict[str, Any] = {
            "name": org.name,
            "address": org.address,
            "inn": org.inn,
            "ogrn": org.ogrn,
            "kpp": org.kpp,
            "type_code": org.type_code,
        }
        if self.rng.random() < 0.7:  # СМЭВ senders often omit the optional region code
            organization_part["region_code"] = org.region_code
        suffix = f"{self.rng.randint(0, 9999):04d}"
        service: dict[str, Any] = {"date": when.isoformat(), "name": service_name}
        if self.frgu:
            if self._counter % 10:
                service["frgu_service_id"] = _frgu_id(f"{org.type_code}/{service_name}")
            organization_part["frgu_authority_id"] = _frgu_id(org.inn)
        return {
            "schema": "og.fact/1",
            "message_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "card_id": f"{org.type_code.upper()}-{org.region_code}-{when:%Y}-{self._counter:09d}-{suffix}",
            "survey_level": level,
            "service": service,
            "organization": organization_part,
            "citizen": self.citizen(),
        }

    # --- Broken facts ---------------------------------------------------------------------------

    def invalid(self, kind: str) -> tuple[bytes, str]:
        """A fact broken in one way; returns the body and the ``field: reason`` intake must report."""
        mutate, expected = INVALID_KINDS[kind]
        fact = self.fact()
        result = mutate(self, fact)
        body = result if isinstance(result, bytes) else json.dumps(fact, ensure_ascii=False).encode()
        return body, expected

    def invalid_any(self) -> tuple[bytes, str]:
        return self.invalid(self.rng.choice(list(INVALID_KINDS)))


def _frgu_id(key: str) -> str:
    """A ФРГУ-like id (13 digits, «10000…»), the same for the same key."""
    return "10000" + str(int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) % 10**8).zfill(8)


def _bad_check_digit(value: str) -> str:
    return value[:-1] + str((int(value[-1]) + 1) % 10)


def _snils_bad(f: FactFactory, fact: dict[str, Any]) -> None:
    digits = ids.normalize_snils(fact["citizen"]["snils"])
    fact["citizen"]["snils"] = _bad_check_digit(digits)


def _set(path: str, value: Any) -> Callable[[FactFactory, dict[str, Any]], None]:
    def mutate(_f: FactFactory, fact: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = fact
        for part in parents:
            node = node[part]
        node[leaf] = value

    return mutate


def _drop(path: str) -> Callable[[FactFactory, dict[str, Any]], None]:
    def mutate(_f: FactFactory, fact: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = fact
        for part in parents:
            node = node[part]
        del node[leaf]

    return mutate


def _inn_bad(_f: FactFactory, fact: dict[str, Any]) -> None:
    fact["organization"]["inn"] = _bad_check_digit(fact["organization"]["inn"])


def _ogrn_bad(_f: FactFactory, fact: dict[str, Any]) -> None:
    # Change the last of the 12 number digits and keep the old check digit.
    ogrn = fact["organization"]["ogrn"]
    number = ogrn[:11] + str((int(ogrn[11]) + 1) % 10)
    if ids.ogrn_check_digit(number) == int(ogrn[12]):
        number = ogrn[:11] + str((int(ogrn[11]) + 2) % 10)
    fact["organization"]["ogrn"] = number + ogrn[12]


def _future(f: FactFactory, fact: dict[str, Any]) -> None:
    fact["service"]["date"] = (f.today + timedelta(days=3)).isoformat()


def _too_old(f: FactFactory, fact: dict[str, Any]) -> None:
    fact["service"]["date"] = (f.today - timedelta(days=3 * 365)).isoformat()


def _born_after(f: FactFactory, fact: dict[str, Any]) -> None:
    fact["citizen"]["birth_date"] = (date.fromisoformat(fact["service"]["date"]) + timedelta(days=1)).isoformat()


def _individual_with_kpp(f: FactFactory, fact: dict[str, Any]) -> None:
    region = fact["organization"]["inn"][:2]
    fact["organization"]["inn"] = ids.make_inn_individual(f.rng, region)
    fact["organization"]["ogrn"] = ids.make_ogrnip(f.rng, region)


def _unresolvable_region(f: FactFactory, fact: dict[str, Any]) -> None:
    org = fact["organization"]
    org.pop("region_code", None)
    org["address"] = "ул. Безымянная, д. 1"
    org["kpp"] = "9901" + org["kpp"][4:]
    first9 = "00" + org["inn"][2:9]
    org["inn"] = first9 + str(ids.inn_org_check_digit(first9))


def _not_json(_f: FactFactory, fact: dict[str, Any]) -> bytes:
    return json.dumps(fact, ensure_ascii=False).encode()[:-40]


def _not_object(_f: FactFactory, fact: dict[str, Any]) -> bytes:
    return json.dumps(["og.fact/1", fact["card_id"]]).encode()


INVALID_KINDS: dict[str, tuple[Callable[[FactFactory, dict[str, Any]], bytes | None], str]] = {
    "not_json": (_not_json, "payload: invalid_json"),
    "not_object": (_not_object, "payload: bad_type"),
    "schema": (_set("schema", "og.fact/0"), "schema: not_allowed"),
    "card_id_missing": (_drop("card_id"), "card_id: required"),
    "card_id_format": (_set("card_id", "карточка 1"), "card_id: bad_format"),
    "level": (_set("survey_level", "global"), "survey_level: not_allowed"),
    "unknown_field": (_set("priority", "high"), "priority: unknown_field"),
    "service_date_format": (_set("service.date", "20.11.2026"), "service.date: bad_date"),
    "service_date_future": (_future, "service.date: in_future"),
    "service_date_old": (_too_old, "service.date: too_old"),
    "org_name_missing": (_drop("organization.name"), "organization.name: required"),
    "inn_checksum": (_inn_bad, "organization.inn: bad_checksum"),
    "inn_length": (_set("organization.inn", "77070838"), "organization.inn: bad_length"),
    "inn_format": (_set("organization.inn", "77O7083893"), "organization.inn: bad_format"),
    "ogrn_checksum": (_ogrn_bad, "organization.ogrn: bad_checksum"),
    "kpp_format": (_set("organization.kpp", "77AB01001"), "organization.kpp: bad_format"),
    "kpp_missing": (_drop("organization.kpp"), "organization.kpp: required"),
    "kpp_for_individual": (_individual_with_kpp, "organization.kpp: not_allowed_for_individual"),
    "type_unknown": (_set("organization.type_code", "spaceport"), "organization.type_code: unknown_type"),
    "region_unknown": (_set("organization.region_code", "88"), "organization.region_code: unknown_region"),
    "region_unresolvable": (_unresolvable_region, "organization.region_code: unresolved"),
    "snils_checksum": (_snils_bad, "citizen.snils: bad_checksum"),
    "snils_length": (_set("citizen.snils", "112-233-445"), "citizen.snils: bad_length"),
    "last_name_missing": (_drop("citizen.last_name"), "citizen.last_name: required"),
    "first_name_format": (_set("citizen.first_name", "<script>"), "citizen.first_name: bad_format"),
    "birth_date_implausible": (_set("citizen.birth_date", "1812-09-07"), "citizen.birth_date: implausible"),
    "birth_after_service": (_born_after, "citizen.birth_date: after_service_date"),
}


def regions_covered(factory: FactFactory) -> set[str]:
    return {o.region_code for o in factory.organizations if regions.is_region_code(o.region_code)}


__all__ = ["INVALID_KINDS", "FactFactory", "Organization"]
