"""The one configuration object of ПОС ОГ, read from the environment (prefix ``POSOG_``) and ``.env``."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from posog.core.clientaddr import parse_networks

# Development-only secrets: usable out of the box for `make demo` and the tests, refused in production.
DEV_PII_KEYS = {"dev1": base64.b64encode(b"posog-development-pii-key-32byte").decode()}
DEV_SNILS_HASH_KEY = "posog-development-snils-hash-key"
DEV_SERVICE_KEYS = {
    "module": "dev-module-key",
    "lkp": "dev-lkp-key",
    "analytics": "dev-analytics-key",
    "lko": "dev-lko-key",
    "admin": "dev-admin-key",
}
DEFAULT_LKP_BASE_URL = "http://127.0.0.1:8000/lkp"  # the demo's; production must name its own
DEV_IAS_VENDOR_ID = 1  # the ИАС emulator's vendor; production names the id ИАС registered for it
DEV_IAS_USER_KEY = "posog-development-ias-user-key"


class Settings(BaseSettings):
    """Everything configurable. Built by the caller (CLI, tests), never at import time."""

    model_config = SettingsConfigDict(env_prefix="POSOG_", env_file=".env", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    var_dir: Path = Path("var")
    database_url: str | None = None
    amqp_url: str | None = None
    db_pool_size: int = 10
    log_level: str = "INFO"
    log_json: bool = False

    # Messaging (SPEC §3, §4)
    facts_queue: str = "posog.og.facts"
    facts_dead_letter_exchange: str = "posog.og.facts.dlx"
    facts_dead_letter_queue: str = "posog.og.facts.dead"
    geps_exchange: str = "posog.geps"
    geps_routing_key: str = "notification"
    geps_inbox_queue: str = "posog.geps.epgu"
    # ГЭПС through СМЭВ (INTEGRATION §3): SERVER errors from ЕПГУ for one notification, the last of which
    # is final (the notification fails, its link is delivery_failed); each earlier one is sent again.
    geps_max_attempts: int = Field(default=8, ge=1, le=100)
    consumer_prefetch: int = Field(default=512, ge=1, le=10_000)
    intake_batch_size: int = Field(default=256, ge=1, le=5_000)
    intake_batch_wait_ms: int = Field(default=20, ge=0, le=5_000)
    # A fact is about 1 kB; a larger body is rejected unread (`payload: too_large`).
    fact_max_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # Attempts at one returned fact (its worker died) before intake quarantines it unhandled; the
    # queue's x-delivery-limit is max(20, 4 × this) (docs/deployment.md, "RabbitMQ").
    facts_delivery_limit: int = Field(default=5, ge=2, le=100)
    # The dead-letter queue's cap besides its TTL (the retention): the oldest go first beyond it.
    facts_dead_letter_max_bytes: int = Field(default=1024**3, ge=1024 * 1024)
    relay_batch_size: int = Field(default=500, ge=1, le=10_000)
    relay_idle_sleep_ms: int = Field(default=200, ge=1)
    relay_max_backoff_s: float = 60.0
    reconnect_max_backoff_s: float = 30.0

    # Intake rules
    fact_horizon_days: int = Field(default=365, ge=1)
    default_validity_days: int = Field(default=30, ge=1)
    pii_retention_days: int = Field(default=90, ge=0)
    pii_purge_interval_s: float = Field(default=3600.0, gt=0)
    timezone: str = "Europe/Moscow"

    # Analytics (SPEC §8): groups with fewer responses are flagged and not ranked; the worker polls the
    # cards and responses feeds every ``analytics_poll_interval_s`` and re-reads the changes of the last
    # ``analytics_feed_overlap_s`` (longer than any writer's transaction plus clock skew between hosts).
    analytics_min_responses: int = Field(default=10, ge=1)
    analytics_poll_interval_s: float = Field(default=5.0, gt=0)
    analytics_feed_overlap_s: float = Field(default=30.0, ge=0)
    analytics_page_size: int = Field(default=500, ge=1, le=500)
    # Consecutive pages applied in one transaction, up to this many items (their deltas summed first).
    analytics_batch_items: int = Field(default=5000, ge=1)
    # Answers of the analytics API kept per rollup version (never stale: a change to the rollups is a
    # new version); how many, at most, per process. 0: none kept.
    analytics_cache_entries: int = Field(default=4096, ge=0)

    # Export to ИАС МКГУ (SPEC §9). ``ias_url`` unset: the in-process ИАС emulator. The worker makes the
    # previous day's (``ias_export_daily``) and previous month's (``ias_export_monthly``) batches of each
    # kind once the Moscow hour is ``ias_export_after_hour`` or later, checking every
    # ``ias_export_interval_s``; a failing delivery is retried after ``ias_retry_base_s · 2^(n−1)`` (at most
    # ``ias_retry_max_s``) until ``ias_max_attempts``.
    ias_url: str | None = None
    # RatesRequest 1.2.0 (INTEGRATION.md §4, docs/ias.md): ``vendor@id`` as registered in ИАС; the key of
    # the citizens' pseudonyms (``user@id``, a keyed hash, never a СНИЛС or ЕСИА id): both required in
    # production. The form whose indicator and value ids the ratings are sent with: ``ias_form_type``,
    # from ``ias_forms_file`` (forms as ИАС serves them) if set, else as last fetched from ИАС (``posog
    # export forms --refresh``), else the federal form "direct" 0.0.4. Forms per RatesRequest; how often
    # a packet's status is asked (``PacketsRequest``) until final.
    ias_vendor_id: int | None = Field(default=None, ge=1)
    ias_user_key: SecretStr | None = None
    ias_form_type: str = Field(default="direct", min_length=1, max_length=50)
    ias_forms_file: Path | None = None
    ias_forms_per_packet: int = Field(default=1000, ge=1, le=10_000)
    ias_status_poll_s: float = Field(default=60.0, gt=0)
    # A packet handed to the СМЭВ adapter whose RatesResponse has not come in this long is sent again.
    ias_reply_timeout_s: float = Field(default=3600.0, gt=0)
    ias_export_kinds: list[Literal["aggregates", "rates"]] = Field(
        default_factory=lambda: ["aggregates", "rates"]  # type: ignore[arg-type]
    )
    ias_export_daily: bool = True
    ias_export_monthly: bool = True
    ias_export_after_hour: int = Field(default=2, ge=0, le=23)
    ias_export_interval_s: float = Field(default=60.0, gt=0)
    ias_retry_base_s: float = Field(default=30.0, gt=0)
    ias_retry_max_s: float = Field(default=3600.0, gt=0)
    ias_max_attempts: int = Field(default=20, ge=1)
    # How long a worker that claimed a batch holds it: should it die mid-send, another worker (or
    # itself, restarted) sends the batch once this has passed.
    ias_lease_s: float = Field(default=300.0, gt=0)

    # The СМЭВ 3 adapter (INTEGRATION.md §5, docs/integration.md). ``none``: only the JSON channel;
    # ``amqp``: the adapter's RabbitMQ interface (QueryResult in ``smev_in_queue``, ClientMessage out to
    # ``smev_out_queue``); ``soap``: its web service at ``smev_adapter_url``, polled with ``Get``. With a
    # transport set, every outgoing exchange goes through the adapter and ``posog worker smev`` runs.
    smev_transport: Literal["none", "amqp", "soap"] = "none"
    smev_adapter_url: str | None = None
    smev_in_queue: str = "posog.smev.in"
    smev_out_queue: str = "posog.smev.out"
    smev_it_system: str = Field(default="POSOG", min_length=1, max_length=50)
    # Inbound documents the СМЭВ worker kept unhandled (``module_smev_unmatched``) and dead-lettered.
    smev_in_dead_letter_exchange: str = "posog.smev.in.dlx"
    smev_in_dead_letter_queue: str = "posog.smev.in.dead"
    # An adapter document is at most this large; a larger one is refused unread (``too_large``).
    smev_max_bytes: int = Field(default=1024 * 1024, ge=4096, le=64 * 1024 * 1024)
    # The web-service poller: ``Get`` until the adapter's queue is empty, then this pause.
    smev_poll_interval_s: float = Field(default=1.0, gt=0)
    smev_http_timeout_s: float = Field(default=30.0, gt=0)

    # Personal-data protection (SPEC §10)
    pii_keys: dict[str, SecretStr] = Field(default_factory=dict)
    pii_active_key: str | None = None
    snils_hash_key: SecretStr | None = None

    # Systems and their addresses. Unset URLs mean "the same process" (embedded mode).
    lkp_base_url: str = DEFAULT_LKP_BASE_URL
    lko_url: str | None = None
    module_url: str | None = None
    analytics_url: str | None = None
    questionnaire_cache_s: float = 5.0
    # Failed link look-ups (unknown or expired tokens) a client may make per minute before the module
    # answers 429 to everything it asks (SPEC §6); a citizen opening a valid link is never counted.
    link_attempts_per_minute: int = Field(default=30, ge=1)
    service_keys: dict[str, SecretStr] = Field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 8000

    # ЛКО cabinet (SPEC §10). Secure cookies unless set otherwise; unset means "secure except in
    # development", so `make demo` works over http://127.0.0.1. Production refuses insecure cookies.
    cabinet_cookie_secure: bool | None = None
    cabinet_session_hours: float = Field(default=12, gt=0, le=24 * 7)
    cabinet_idle_minutes: float = Field(default=30, gt=0)
    # Failed sign-ins of one login from one client before each further attempt of that pair waits
    # (1, 2, 4 … s, see cabinet_login_delay_max_s below); the login is never locked for that alone.
    cabinet_login_max_failures: int = Field(default=5, ge=1)
    # How often ЛКО re-sends publication announcements the module did not receive.
    announcement_retry_s: float = Field(default=30, gt=0)
    # How long a process that claimed announcements holds them (a process that died mid-send: another
    # one, or itself restarted, re-sends them once this has passed).
    announcement_lease_s: float = Field(default=60, gt=0)
    # ЛКО's link completions left pending (`posog worker lko-completions`): looked at every
    # ``lko_completion_interval_s``, once older than ``lko_completion_grace_s`` (the requests that stored
    # them complete their own links meanwhile), each claimed for ``lko_completion_lease_s``.
    lko_completion_interval_s: float = Field(default=60, gt=0)
    lko_completion_grace_s: float = Field(default=60, ge=0)
    lko_completion_lease_s: float = Field(default=120, gt=0)
    # Strict-Transport-Security on the pages of ЛКП and ЛКО in production (browsers then refuse plain
    # http for that long); 0: not sent (e.g. when the TLS proxy adds it). Never sent outside production.
    hsts_max_age_s: int = Field(default=31_536_000, ge=0)

    # Sign-in throttle (ЛКО, kept in the database: every ЛКО process sees the same state). Beyond the
    # free failures of a (login, client) pair (cabinet_login_max_failures) or of a client over every
    # login (cabinet_login_client_max_failures), each attempt waits twice as long as the last, from 1 s
    # to cabinet_login_delay_max_s; a pair's or a client's failures are forgotten after
    # cabinet_login_forget_minutes without one. A login (existing or not) is locked only after
    # cabinet_login_lock_failures failures from all clients within cabinet_login_lock_window_hours, for
    # cabinet_login_lock_hours or until an operator runs `posog users unlock LOGIN`.
    cabinet_login_client_max_failures: int = Field(default=20, ge=1)
    cabinet_login_delay_max_s: float = Field(default=60, ge=1)
    cabinet_login_forget_minutes: float = Field(default=15, gt=0)
    cabinet_login_lock_failures: int = Field(default=50, ge=1)
    cabinet_login_lock_window_hours: float = Field(default=24, gt=0)
    cabinet_login_lock_hours: float = Field(default=24, gt=0)
    # The reverse proxies whose X-Forwarded-For is believed (IP addresses or CIDR networks, comma-separated
    # or a JSON list). A request from anywhere else is the client itself; from a trusted proxy, the client
    # is the right-most address of X-Forwarded-For that is not a trusted proxy. Empty: none is trusted.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Redis, for limits shared by every process (the module's failed link look-ups per client). Unset:
    # each process counts alone (embedded mode); production requires it. Keys start with the prefix.
    redis_url: str | None = None
    redis_key_prefix: str = "posog:"
    # How long one Redis command may take; and after a failure, how long Redis is not asked (each
    # process counts alone meanwhile, with a warning and posog_rate_limit_store_errors_total).
    redis_timeout_s: float = Field(default=0.25, gt=0)
    redis_retry_after_s: float = Field(default=5, gt=0)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxies_list(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: list[str]) -> list[str]:
        try:
            parse_networks(value)
        except ValueError as exc:
            raise ValueError(f"POSOG_TRUSTED_PROXIES: {exc}") from None
        return value

    @field_validator("pii_keys")
    @classmethod
    def _keys_are_aes256(cls, keys: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for key_id, key in keys.items():
            try:
                raw = base64.b64decode(key.get_secret_value(), validate=True)
            except ValueError as exc:
                raise ValueError(f"POSOG_PII_KEYS[{key_id}] is not valid base64") from exc
            if len(raw) != 32:
                raise ValueError(f"POSOG_PII_KEYS[{key_id}] must be 32 bytes (AES-256), got {len(raw)}")
        return keys

    @model_validator(mode="after")
    def _secrets_or_development_defaults(self) -> Settings:
        if self.env == "production":
            missing = [
                name
                for name, value in (
                    ("POSOG_PII_KEYS", self.pii_keys),
                    ("POSOG_SNILS_HASH_KEY", self.snils_hash_key),
                    ("POSOG_SERVICE_KEYS", self.service_keys),
                    ("POSOG_IAS_VENDOR_ID", self.ias_vendor_id),
                    ("POSOG_IAS_USER_KEY", self.ias_user_key),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"refusing to start in production without {', '.join(missing)}")
            if self.snils_hash_key and self.snils_hash_key.get_secret_value() == DEV_SNILS_HASH_KEY:
                raise ValueError("refusing to start in production with the development СНИЛС hash key")
            if self.ias_user_key and self.ias_user_key.get_secret_value() == DEV_IAS_USER_KEY:
                raise ValueError("refusing to start in production with the development ИАС pseudonym key")
            if self.cabinet_cookie_secure is False:
                raise ValueError("refusing to start in production with POSOG_CABINET_COOKIE_SECURE=false")
            self._production_is_not_a_demo()
        else:
            if not self.pii_keys:
                self.pii_keys = {k: SecretStr(v) for k, v in DEV_PII_KEYS.items()}
            if self.snils_hash_key is None:
                self.snils_hash_key = SecretStr(DEV_SNILS_HASH_KEY)
            if not self.service_keys:
                self.service_keys = {k: SecretStr(v) for k, v in DEV_SERVICE_KEYS.items()}
            if self.ias_vendor_id is None:
                self.ias_vendor_id = DEV_IAS_VENDOR_ID
            if self.ias_user_key is None:
                self.ias_user_key = SecretStr(DEV_IAS_USER_KEY)
        if self.pii_active_key is None:
            self.pii_active_key = sorted(self.pii_keys)[-1]
        if self.pii_active_key not in self.pii_keys:
            raise ValueError(f"POSOG_PII_ACTIVE_KEY={self.pii_active_key} is not among POSOG_PII_KEYS")
        return self

    def _production_is_not_a_demo(self) -> None:
        """Production runs on PostgreSQL and RabbitMQ with its own secrets and its own public address:
        the embedded fallbacks and the published development keys are refused, each by name."""
        problems = []
        if not self.database_url or not self.database_url.startswith("postgresql"):
            problems.append("POSOG_DATABASE_URL must point at PostgreSQL (postgresql+asyncpg://…)")
        if not self.amqp_url:
            problems.append("POSOG_AMQP_URL must point at RabbitMQ (amqp://…)")
        if not self.redis_url:
            problems.append("POSOG_REDIS_URL must point at Redis (redis://…): processes share their limits there")
        if self.lkp_base_url == DEFAULT_LKP_BASE_URL:
            problems.append("POSOG_LKP_BASE_URL must be ЛКП's public address (links go to citizens)")
        dev_pii = set(DEV_PII_KEYS.values())
        if any(key.get_secret_value() in dev_pii for key in self.pii_keys.values()):
            problems.append("POSOG_PII_KEYS holds the development key")
        dev_service = set(DEV_SERVICE_KEYS.values())
        leaked = sorted(caller for caller, key in self.service_keys.items() if key.get_secret_value() in dev_service)
        if leaked:
            problems.append(f"POSOG_SERVICE_KEYS holds development keys for {', '.join(leaked)}")
        for name, url in (("POSOG_LKO_URL", self.lko_url), ("POSOG_MODULE_URL", self.module_url)):
            if url is not None and not url.strip():
                problems.append(f"{name} is set but empty (unset it to serve that system in this process)")
        if self.smev_transport == "soap" and not self.smev_adapter_url:
            problems.append("POSOG_SMEV_ADAPTER_URL must point at the СМЭВ adapter (POSOG_SMEV_TRANSPORT=soap)")
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))

    @property
    def resolved_database_url(self) -> str:
        """The database to use: the configured one, or the embedded SQLite file under ``var/``."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.var_dir / 'posog.sqlite3').resolve()}"

    @property
    def embedded(self) -> bool:
        return self.amqp_url is None

    @property
    def cabinet_cookies_secure(self) -> bool:
        """Whether the cabinet's cookies carry ``Secure`` (see ``cabinet_cookie_secure``)."""
        if self.cabinet_cookie_secure is not None:
            return self.cabinet_cookie_secure
        return self.env != "development"
