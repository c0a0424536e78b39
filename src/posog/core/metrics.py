"""Prometheus metrics of every process (SPEC §10: intake rate, rejections, queue lag, link outcomes,
relay backlog). Collectors are passive objects; exposition is wired by the web app and workers."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FACTS = Counter("posog_facts_total", "ОГ facts processed by intake, by outcome", ["outcome"])
FACT_REJECTIONS = Counter(
    "posog_fact_rejections_total", "Validation failures, by field and reason", ["field", "reason"]
)
INTAKE_BATCH_SECONDS = Histogram(
    "posog_intake_batch_seconds",
    "Time to apply one intake batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
INTAKE_FAILURES = Counter(
    "posog_intake_failures_total", "Intake attempts that failed on the database or ЛКО and will be retried"
)
INTAKE_DEAD_LETTERS = Counter(
    "posog_intake_dead_letters_total",
    "Messages intake dead-lettered (sealed), by why: rejected (invalid), processing_error (broke the "
    "handler), delivery_limit (delivered too often: killed a process), storage_failed (not even "
    "quarantined in the database)",
    ["reason"],
)
QUEUE_DEPTH = Gauge("posog_queue_depth", "Messages waiting in a queue", ["queue"])
OUTBOX_PUBLISHED = Counter("posog_outbox_published_total", "Outbox messages published with confirms", ["topic"])
OUTBOX_FAILURES = Counter("posog_outbox_publish_failures_total", "Outbox publishes that failed and will be retried")
OUTBOX_BACKLOG = Gauge("posog_outbox_backlog", "Outbox messages not yet published")
LINK_OUTCOMES = Counter("posog_link_outcomes_total", "Link resolutions, by outcome", ["outcome"])
RATE_LIMIT_STORE_ERRORS = Counter(
    "posog_rate_limit_store_errors_total",
    "Failures of the shared rate-limit store; each process counted alone meanwhile",
    ["store"],
)
DELIVERY_ATTEMPTS = Counter(
    "posog_delivery_attempts_total",
    "Delivery attempts (core.outbox), by delivery and outcome: sent, retry (scheduled after a backoff), dead",
    ["delivery", "outcome"],
)
DELIVERY_BACKLOG = Gauge("posog_delivery_backlog", "Rows of a delivery neither sent nor dead", ["delivery"])
DELIVERY_OLDEST_DUE = Gauge(
    "posog_delivery_oldest_due_seconds", "How long the most overdue row of a delivery has been due", ["delivery"]
)
DELIVERY_DEAD = Gauge(
    "posog_delivery_dead", "Rows of a delivery that will never be sent unless re-driven", ["delivery"]
)
GEPS_DELIVERY_REPORTS = Counter(
    "posog_geps_delivery_reports_total",
    "What ЕПГУ reported about ГЭПС notifications through СМЭВ: delivered, failed, retry (a SERVER error), progress",
    ["report"],
)
