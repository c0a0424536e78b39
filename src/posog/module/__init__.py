"""Модуль оценки качества — the core: service cards, survey links, notifications, ИАС export."""
