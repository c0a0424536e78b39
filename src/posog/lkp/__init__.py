"""ЛКП ПОС ОГ — the citizen survey pages (Block 2)."""
