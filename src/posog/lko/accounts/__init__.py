"""Cabinet accounts (учётные записи ЛКО): users with a role and its scope, their sessions, and the
throttle that slows down password guessing. Accounts are created with ``posog users create``."""
