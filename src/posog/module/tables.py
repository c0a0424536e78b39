"""Every table of the module, for Alembic."""

from posog.module.ias_export.model import IasExport
from posog.module.intake.model import FactConflict, RejectedFact, ServiceCard
from posog.module.links.model import SurveyLink
from posog.module.notifications.model import OutboxMessage
from posog.module.smev.model import SmevAnswer
from posog.module.smev.spool import SmevSpooled
from posog.module.smev.unmatched import SmevUnmatched

__all__ = [
    "FactConflict",
    "IasExport",
    "OutboxMessage",
    "RejectedFact",
    "ServiceCard",
    "SmevAnswer",
    "SmevSpooled",
    "SmevUnmatched",
    "SurveyLink",
]
