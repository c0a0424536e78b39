"""The organisation-type directory (справочник типов организаций): the key that picks a questionnaire."""
