"""Модуль аналитики — indicator calculation: rollups and ratings (Block 3)."""
