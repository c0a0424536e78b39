"""Defaults ЛКО ships with: the organisation-type directory and a federal questionnaire per type.

Run at every start (CLI, demo, tests). Idempotent and safe for processes starting together: rows are
inserted with ``ON CONFLICT DO NOTHING`` and the default questionnaire ids are deterministic.
"""

from __future__ import annotations

import structlog

from posog.core.clock import Clock, utcnow
from posog.core.db import Database
from posog.lko.org_types.defaults import DEFAULT_ORG_TYPES
from posog.lko.org_types.queries import active_org_type_codes
from posog.lko.questionnaires.defaults import default_questionnaire_draft, default_questionnaire_id
from posog.lko.questionnaires.queries import existing_ids, type_codes_with_active
from posog.lko.uow import LkoUnitOfWork

log = structlog.get_logger(__name__)


async def seed_defaults(db: Database, *, clock: Clock = utcnow) -> None:
    """Insert the missing default organisation types and, for every active organisation type without an
    active federal questionnaire, the default one published as version 1.

    Existing rows are never changed: an operator's renamed type or withdrawn default questionnaire
    stays as the operator left it.
    """
    now = clock()
    async with LkoUnitOfWork(db) as uow:
        session = uow.session
        # Writing first takes SQLite's write lock before any read, so concurrent seeders queue
        # on the busy timeout instead of failing to upgrade a read transaction.
        await uow.org_types.add_if_absent(
            [{**org_type.model_dump(), "created_at": now, "updated_at": now} for org_type in DEFAULT_ORG_TYPES]
        )
        covered = await type_codes_with_active(session, "federal")
        uncovered = [code for code in await active_org_type_codes(session) if code not in covered]
        ids = {code: default_questionnaire_id(code) for code in uncovered}
        already_there = await existing_ids(session, list(ids.values()))
        draft = default_questionnaire_draft()
        published = []
        for code in uncovered:
            if ids[code] in already_there:
                continue  # withdrawn by an operator: not ours to bring back
            if await uow.questionnaires.add_published_if_absent(
                questionnaire_id=ids[code], type_code=code, level="federal", draft=draft, now=now
            ):
                published.append(code)
        await uow.commit()
    if published:
        log.info("lko.seed.questionnaires_published", type_codes=published)
