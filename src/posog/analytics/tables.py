"""Every ORM model of analytics, so that Alembic's env (and tests) import one module to see all its tables."""

from __future__ import annotations

from posog.analytics.rollups import model as rollups_model

MODEL_MODULES = (rollups_model,)

__all__ = ["MODEL_MODULES"]
