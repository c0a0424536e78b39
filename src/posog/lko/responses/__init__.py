"""Citizens' responses (ответы граждан): validated against the questionnaire version the link pinned,
stored exactly once per card, listed within the reader's scope (SPEC §5, §7)."""
