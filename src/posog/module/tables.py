"""Every table of the module, for Alembic."""

from posog.module.intake.model import FactConflict, RejectedFact, ServiceCard
from posog.module.links.model import SurveyLink
from posog.module.notifications.model import OutboxMessage

__all__ = ["FactConflict", "OutboxMessage", "RejectedFact", "ServiceCard", "SurveyLink"]
