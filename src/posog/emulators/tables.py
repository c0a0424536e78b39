"""Every table of the emulators, for Alembic."""

from posog.emulators.epgu.model import InboxNotification

__all__ = ["InboxNotification"]
