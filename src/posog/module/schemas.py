"""JSON Schemas of the module's v1 messages, published in ``docs/``.

Regenerate with ``python -m posog.module.schemas``; a test keeps ``docs/`` in step with the models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from posog.module.contracts import GepsNotification, OgFact

DOCS = Path(__file__).resolve().parents[3] / "docs"


def fact_schema() -> dict[str, Any]:
    schema = OgFact.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "og.fact/1"
    schema["title"] = "ОГ fact of a provided service (og.fact/1)"
    schema["description"] = (
        "A fact of a provided service sent through СМЭВ (вид сведений ОГ). Beyond this schema, intake "
        "checks ИНН/ОГРН/ОГРНИП/КПП/СНИЛС check digits, dates against today and the horizon, the "
        "organisation-type directory, and resolves the region; each failure is reported as 'field: reason'."
    )
    return schema


def notification_schema() -> dict[str, Any]:
    schema = GepsNotification.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "geps.notification/1"
    schema["title"] = "ГЭПС notification to the citizen (geps.notification/1)"
    return schema


SCHEMAS = {"og-fact.schema.json": fact_schema, "geps-notification.schema.json": notification_schema}


def render(name: str) -> str:
    return json.dumps(SCHEMAS[name](), ensure_ascii=False, indent=2) + "\n"


def main() -> None:
    for name in SCHEMAS:
        (DOCS / name).write_text(render(name), encoding="utf-8")


if __name__ == "__main__":
    main()
