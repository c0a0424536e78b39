"""Questionnaires (анкеты): an editable draft per (organisation type, survey level) and its immutable
published versions; at most one questionnaire is active per (type, level)."""
