"""Personal data at rest (SPEC §10): AES-256-GCM bound to a context, key rotation by key id, the keyed
СНИЛС hash, and the settings that refuse to run production without real keys."""

from __future__ import annotations

import base64
import os
import re

import pytest
from pydantic import ValidationError

from posog.core.pii import NONCE_BYTES, PiiCipher, PiiError
from posog.settings import DEV_IAS_USER_KEY, DEV_PII_KEYS, DEV_SERVICE_KEYS, DEV_SNILS_HASH_KEY, Settings

K1 = b"k" * 32
K2 = b"K" * 32
HASH_KEY = b"unit-test-snils-hash-key"
SNILS_DIGITS = "11223344595"


def _cipher(keys: dict[str, bytes] | None = None, active: str = "k1", hash_key: bytes = HASH_KEY) -> PiiCipher:
    return PiiCipher(keys if keys is not None else {"k1": K1}, active, hash_key)


# --- Sealing -------------------------------------------------------------------------------------


def test_seal_and_open_round_trip() -> None:
    cipher = _cipher()
    plaintext = "Иванов Иван Иванович 1980-05-17 112-233-445 95".encode()
    key_id, blob = cipher.seal(plaintext, context="MFC-77-2026-000123")
    assert key_id == "k1"
    assert plaintext not in blob
    assert cipher.open(key_id, blob, context="MFC-77-2026-000123") == plaintext


def test_json_round_trip() -> None:
    cipher = _cipher()
    record = {"last_name": "Иванов", "snils": SNILS_DIGITS, "middle_name": None}
    key_id, blob = cipher.seal_json(record, context="card-1")
    assert "Иванов".encode() not in blob
    assert cipher.open_json(key_id, blob, context="card-1") == record


def test_ciphertext_is_bound_to_its_context() -> None:
    cipher = _cipher()
    key_id, blob = cipher.seal(b"personal data", context="card-1")
    with pytest.raises(PiiError, match="failed authentication"):
        cipher.open(key_id, blob, context="card-2")


@pytest.mark.parametrize("position", [0, NONCE_BYTES, NONCE_BYTES + 3, -1])
def test_tampering_with_one_byte_is_detected(position: int) -> None:
    cipher = _cipher()
    key_id, blob = cipher.seal(b"personal data", context="card-1")
    tampered = bytearray(blob)
    tampered[position] ^= 0x01
    with pytest.raises(PiiError):
        cipher.open(key_id, bytes(tampered), context="card-1")


def test_truncated_blob_is_refused() -> None:
    cipher = _cipher()
    key_id, blob = cipher.seal(b"personal data", context="card-1")
    with pytest.raises(PiiError):
        cipher.open(key_id, blob[:-1], context="card-1")


def test_two_seals_of_the_same_plaintext_differ() -> None:
    cipher = _cipher()
    _, first = cipher.seal(b"same", context="card-1")
    _, second = cipher.seal(b"same", context="card-1")
    assert first != second
    assert first[:NONCE_BYTES] != second[:NONCE_BYTES], "a fresh random nonce for every seal"
    assert cipher.open("k1", first, context="card-1") == cipher.open("k1", second, context="card-1")


# --- Key rotation ----------------------------------------------------------------------------------


def test_key_rotation_keeps_old_data_readable_and_seals_new_data_with_the_new_key() -> None:
    before = _cipher({"k1": K1}, "k1")
    old_key_id, old_blob = before.seal(b"sealed under k1", context="card-1")
    assert old_key_id == "k1"

    after = _cipher({"k1": K1, "k2": K2}, "k2")
    assert after.active_key_id == "k2"
    assert after.open(old_key_id, old_blob, context="card-1") == b"sealed under k1"

    new_key_id, new_blob = after.seal(b"sealed under k2", context="card-2")
    assert new_key_id == "k2"
    assert after.open(new_key_id, new_blob, context="card-2") == b"sealed under k2"
    # The old key alone cannot open what the new key sealed, even under the new key's id.
    with pytest.raises(PiiError):
        before.open("k1", new_blob, context="card-2")


def test_a_cipher_without_the_old_key_names_the_missing_key_id() -> None:
    old_key_id, old_blob = _cipher({"k1": K1}, "k1").seal(b"sealed under k1", context="card-1")
    rotated_out = _cipher({"k2": K2}, "k2")
    with pytest.raises(PiiError, match="'k1'"):
        rotated_out.open(old_key_id, old_blob, context="card-1")


def test_the_active_key_must_be_among_the_keys() -> None:
    with pytest.raises(ValueError, match="k3"):
        _cipher({"k1": K1, "k2": K2}, "k3")


def test_from_settings_decodes_base64_keys() -> None:
    encoded = {"k1": base64.b64encode(K1).decode()}
    from_settings = PiiCipher.from_settings(encoded, "k1", HASH_KEY.decode())
    key_id, blob = from_settings.seal(b"x", context="c")
    assert _cipher().open(key_id, blob, context="c") == b"x"
    assert from_settings.snils_hash(SNILS_DIGITS) == _cipher().snils_hash(SNILS_DIGITS)


# --- СНИЛС hash ------------------------------------------------------------------------------------


def test_snils_hash_is_stable_hex_and_keyed() -> None:
    cipher = _cipher()
    digest = cipher.snils_hash(SNILS_DIGITS)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert cipher.snils_hash(SNILS_DIGITS) == digest
    assert _cipher({"k2": K2}, "k2").snils_hash(SNILS_DIGITS) == digest, "survives PII key rotation"
    assert _cipher(hash_key=b"another-hash-key").snils_hash(SNILS_DIGITS) != digest
    assert cipher.snils_hash("12345678964") != digest
    assert SNILS_DIGITS not in digest
    for start in range(0, len(SNILS_DIGITS) - 5):
        assert SNILS_DIGITS[start : start + 6] not in digest


# --- Settings --------------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No POSOG_* variables from the surrounding environment (CI) leak into these settings."""
    for name in list(os.environ):
        if name.startswith("POSOG_"):
            monkeypatch.delenv(name)


PRODUCTION_SERVICES = {
    "database_url": "postgresql+asyncpg://posog@db/posog",
    "amqp_url": "amqp://posog:secret@mq/",
    "redis_url": "redis://:secret@redis/0",
    "lkp_base_url": "https://lkp.example.gov.ru",
    "ias_vendor_id": "4242",
    "ias_user_key": "a-real-ias-user-key",
}


def _production(**values: object) -> Settings:
    return Settings(env="production", _env_file=None, **(PRODUCTION_SERVICES | values))  # type: ignore[arg-type, call-arg]


@pytest.mark.usefixtures("clean_env")
def test_production_without_keys_refuses_to_start() -> None:
    with pytest.raises(ValidationError) as caught:
        _production()
    message = str(caught.value)
    assert "POSOG_PII_KEYS" in message
    assert "POSOG_SNILS_HASH_KEY" in message
    assert "POSOG_SERVICE_KEYS" in message


@pytest.mark.usefixtures("clean_env")
def test_production_without_pii_keys_names_them() -> None:
    with pytest.raises(ValidationError, match="POSOG_PII_KEYS") as caught:
        _production(snils_hash_key="a-real-hash-key", service_keys={"module": "m"})
    assert "POSOG_SNILS_HASH_KEY" not in str(caught.value)


@pytest.mark.usefixtures("clean_env")
def test_production_refuses_the_development_snils_hash_key() -> None:
    with pytest.raises(ValidationError, match="development"):
        _production(
            pii_keys={"p1": base64.b64encode(K1).decode()},
            snils_hash_key=DEV_SNILS_HASH_KEY,
            service_keys={"module": "m"},
        )


@pytest.mark.usefixtures("clean_env")
def test_production_with_real_keys_starts() -> None:
    settings = _production(
        pii_keys={"p1": base64.b64encode(K1).decode(), "p2": base64.b64encode(K2).decode()},
        snils_hash_key="a-real-hash-key",
        service_keys={"module": "m"},
    )
    assert settings.pii_active_key == "p2", "the newest key id is active unless configured"
    assert set(settings.pii_keys) == {"p1", "p2"}


@pytest.mark.usefixtures("clean_env")
def test_production_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSOG_ENV", "production")
    monkeypatch.setenv("POSOG_PII_KEYS", f'{{"p1": "{base64.b64encode(K1).decode()}"}}')
    monkeypatch.setenv("POSOG_PII_ACTIVE_KEY", "p1")
    monkeypatch.setenv("POSOG_SNILS_HASH_KEY", "a-real-hash-key")
    monkeypatch.setenv("POSOG_SERVICE_KEYS", '{"module": "m"}')
    for name, value in PRODUCTION_SERVICES.items():
        monkeypatch.setenv(f"POSOG_{name.upper()}", value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.env == "production"
    assert settings.pii_active_key == "p1"
    assert settings.pii_keys["p1"].get_secret_value() == base64.b64encode(K1).decode()


@pytest.mark.usefixtures("clean_env")
def test_active_key_must_be_configured() -> None:
    with pytest.raises(ValidationError, match="POSOG_PII_ACTIVE_KEY"):
        _production(
            pii_keys={"p1": base64.b64encode(K1).decode()},
            pii_active_key="p9",
            snils_hash_key="a-real-hash-key",
            service_keys={"module": "m"},
        )


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("not base64 at all!", r"POSOG_PII_KEYS\[bad\] is not valid base64"),
        ("abc", r"POSOG_PII_KEYS\[bad\] is not valid base64"),
        (base64.b64encode(b"x" * 16).decode(), r"POSOG_PII_KEYS\[bad\] must be 32 bytes \(AES-256\), got 16"),
        (base64.b64encode(b"x" * 33).decode(), r"POSOG_PII_KEYS\[bad\] must be 32 bytes \(AES-256\), got 33"),
    ],
)
def test_a_malformed_pii_key_is_refused_with_a_clear_message(key: str, expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        Settings(env="test", pii_keys={"bad": key}, _env_file=None)  # type: ignore[call-arg]


@pytest.mark.usefixtures("clean_env")
def test_development_defaults_apply_in_test() -> None:
    settings = Settings(env="test", _env_file=None)  # type: ignore[call-arg]
    assert {k: v.get_secret_value() for k, v in settings.pii_keys.items()} == DEV_PII_KEYS
    assert settings.pii_active_key == "dev1"
    assert settings.snils_hash_key is not None
    assert settings.snils_hash_key.get_secret_value() == DEV_SNILS_HASH_KEY
    assert {k: v.get_secret_value() for k, v in settings.service_keys.items()} == DEV_SERVICE_KEYS
    assert settings.embedded
    assert settings.resolved_database_url.startswith("sqlite+aiosqlite:///")


@pytest.mark.usefixtures("clean_env")
def test_secrets_are_not_shown_in_the_settings_repr() -> None:
    settings = Settings(env="test", _env_file=None)  # type: ignore[call-arg]
    text = repr(settings)
    assert DEV_SNILS_HASH_KEY not in text
    assert DEV_PII_KEYS["dev1"] not in text


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"database_url": None}, "POSOG_DATABASE_URL must point at PostgreSQL"),
        ({"database_url": "sqlite+aiosqlite:///var/posog.sqlite3"}, "POSOG_DATABASE_URL must point at PostgreSQL"),
        ({"amqp_url": None}, "POSOG_AMQP_URL must point at RabbitMQ"),
        ({"redis_url": None}, "POSOG_REDIS_URL must point at Redis"),
        ({"lkp_base_url": "http://127.0.0.1:8000/lkp"}, "POSOG_LKP_BASE_URL must be ЛКП's public address"),
        ({"pii_keys": DEV_PII_KEYS}, "POSOG_PII_KEYS holds the development key"),
        ({"service_keys": {"module": "m", "lkp": "dev-lkp-key"}}, "development keys for lkp"),
        ({"lko_url": "  "}, "POSOG_LKO_URL is set but empty"),
    ],
)
def test_production_refuses_the_demo_fallbacks(change: dict[str, object], named: str) -> None:
    """Each embedded fallback or published development secret is refused in production, by name."""
    values: dict[str, object] = {
        "pii_keys": {"p1": base64.b64encode(K1).decode()},
        "snils_hash_key": "a-real-hash-key",
        "service_keys": {"module": "m"},
    }
    with pytest.raises(ValidationError, match=re.escape(named)):
        _production(**(values | change))
    _production(**values)  # and without the change it starts


@pytest.mark.usefixtures("clean_env")
def test_production_needs_the_ias_vendor_and_a_real_pseudonym_key() -> None:
    """INTEGRATION.md §4: every RatesRequest names the supplier ИАС registered, and user@id is a keyed
    hash whose key is the deployment's own."""
    keys = {
        "pii_keys": {"p1": base64.b64encode(K1).decode()},
        "snils_hash_key": "a-real-hash-key",
        "service_keys": {"module": "m"},
    }
    for missing in ("ias_vendor_id", "ias_user_key"):
        values = {k: v for k, v in PRODUCTION_SERVICES.items() if k != missing}
        with pytest.raises(ValidationError, match=f"POSOG_{missing.upper()}"):
            Settings(env="production", _env_file=None, **(values | keys))  # type: ignore[arg-type, call-arg]
    with pytest.raises(ValidationError, match="development ИАС pseudonym key"):
        _production(**keys, ias_user_key=DEV_IAS_USER_KEY)
    assert _production(**keys).ias_vendor_id == 4242
    development = Settings(_env_file=None)  # type: ignore[call-arg]
    assert development.ias_vendor_id == 1
    assert development.ias_user_key is not None
    assert development.ias_user_key.get_secret_value() == DEV_IAS_USER_KEY
