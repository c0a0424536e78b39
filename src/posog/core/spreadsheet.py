"""Spreadsheet-formula injection guard for every export (CSV and XLSX), in one place.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula, and a leading tab
or carriage return can smuggle one past a check (OWASP, "CSV Injection"). Text that people typed —
organisation names, citizens' comments — must never run:

- in CSV, such a value gets a leading apostrophe (:func:`guard_formula`), which spreadsheets take as
  "this is text"; an import of our own export takes it off again (:func:`unguard_formula`);
- in XLSX, a string cell is written as a string (:func:`as_text`), never as a formula — no apostrophe,
  the value stays exactly as typed."""

from __future__ import annotations

from openpyxl.cell.cell import Cell

FORMULA_START: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")


def guard_formula(text: str) -> str:
    """``text`` for a CSV cell: with a leading apostrophe if a spreadsheet could run it as a formula."""
    return "'" + text if text.startswith(FORMULA_START) else text


def unguard_formula(text: str) -> str:
    """The value :func:`guard_formula` was given (an apostrophe not added by it is kept)."""
    return text[1:] if text.startswith("'") and text[1:2] in FORMULA_START else text


def as_text(cell: Cell) -> Cell:
    """``cell`` (holding a string) written as text, never as a formula, whatever it starts with."""
    cell.data_type = "s"
    return cell
