"""The published JSON Schemas in docs/ are the ones the code validates with."""

from __future__ import annotations

from posog.module import schemas


def test_published_schemas_match_the_models() -> None:
    for name in schemas.SCHEMAS:
        published = (schemas.DOCS / name).read_text(encoding="utf-8")
        assert published == schemas.render(name), f"docs/{name} is stale: run python -m posog.module.schemas"


def test_fact_schema_names_the_required_fields() -> None:
    schema = schemas.fact_schema()
    assert set(schema["required"]) == {
        "schema",
        "message_id",
        "card_id",
        "survey_level",
        "service",
        "organization",
        "citizen",
    }
    citizen = schema["$defs"]["Citizen"]
    assert set(citizen["required"]) == {"last_name", "first_name", "birth_date", "snils"}
    organization = schema["$defs"]["Organization"]
    assert "region_code" not in organization["required"]
    assert schema["properties"]["survey_level"]["enum"] == ["federal", "regional", "municipal"]
