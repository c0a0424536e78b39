"""Export to ИАС МКГУ (SPEC §9): a period's aggregates (JSON) and individual ratings in the vashkontrol
"rates" form (XML), sent in batches with deterministic ids, retried with backoff while the receiver
fails, and logged in ``module_ias_exports``."""
