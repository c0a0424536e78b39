"""Shared building blocks: database and unit of work, message bus port, identifiers, regions, crypto."""
