"""Every table of the emulators, for Alembic."""

from posog.emulators.epgu.model import InboxNotification
from posog.emulators.ias.model import IasBatch

__all__ = ["IasBatch", "InboxNotification"]
