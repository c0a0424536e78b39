"""Rollups: the cards and responses feeds read exactly once into counts at the grain (day, region, ИНН, type, level)."""
