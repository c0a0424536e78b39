"""ЛКО ПОС ОГ — the organisation cabinet: organisation types, questionnaires, responses, reports."""
