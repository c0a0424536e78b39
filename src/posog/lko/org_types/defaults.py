"""The organisation types ПОС ОГ ships with: the social sphere and public administration.

Codes are stable identifiers used by the facts (SPEC §3) and by questionnaires; names are what people see.
"""

from __future__ import annotations

from posog.lko.contracts import OrgType

SPHERES: dict[str, str] = {
    "health": "Здравоохранение",
    "education": "Образование",
    "social": "Социальная защита и социальное обслуживание",
    "culture": "Культура",
    "sport": "Физическая культура и спорт",
    "employment": "Занятость населения",
    "public_administration": "Государственное и муниципальное управление",
}

DEFAULT_ORG_TYPES: tuple[OrgType, ...] = tuple(
    OrgType(code=code, name=name, sphere=sphere)
    for code, name, sphere in (
        ("mfc", "МФЦ", "public_administration"),
        ("polyclinic", "Поликлиника", "health"),
        ("hospital", "Больница", "health"),
        ("dental", "Стоматологическая поликлиника", "health"),
        ("school", "Общеобразовательная школа", "education"),
        ("kindergarten", "Детский сад", "education"),
        ("college", "Колледж / техникум", "education"),
        ("university", "Вуз", "education"),
        ("additional_education", "Организация дополнительного образования", "education"),
        ("social_service", "Организация социального обслуживания", "social"),
        ("social_protection", "Орган социальной защиты населения", "social"),
        ("pension_fund", "Клиентская служба Социального фонда", "social"),
        ("culture", "Учреждение культуры", "culture"),
        ("library", "Библиотека", "culture"),
        ("museum", "Музей", "culture"),
        ("theatre", "Театр", "culture"),
        ("sport", "Спортивная организация", "sport"),
        ("employment", "Центр занятости населения", "employment"),
        ("tax", "Налоговая инспекция", "public_administration"),
        ("registry_office", "ЗАГС", "public_administration"),
        ("traffic_police", "Подразделение Госавтоинспекции", "public_administration"),
        ("migration", "Подразделение по вопросам миграции", "public_administration"),
        ("rosreestr", "Росреестр", "public_administration"),
        ("municipal_admin", "Местная администрация", "public_administration"),
    )
)
