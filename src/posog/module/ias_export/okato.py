"""ОКАТО (ОК 019-95) code of each subject of the Russian Federation, by its ФНС subject code (the
first two digits of ИНН/КПП, see :mod:`posog.core.regions`): the 89 subjects and 99 (Байконур).

The vashkontrol "rates" form wants an ОКАТО; we know only the subject, so the code is the subject's
level: its 2-digit ОКАТО prefix (5 digits for the autonomous districts inside another subject's
ОКАТО: Ненецкий 11100, Ханты-Мансийский 71100, Ямало-Ненецкий 71140) padded with zeros to 11 digits.
The four subjects of 2022 carry the ОКАТО codes assigned to them (ДНР 21, Запорожская 23,
ЛНР 43, Херсонская 74 — INTEGRATION.md §6; an earlier table here had 39, Калининградская's ФНС code,
by mistake); Байконур is 55. ``tests/unit/test_reference_data.py`` checks every subject against a
second public source that it names."""

from __future__ import annotations

from typing import Final

OKATO_PREFIX: Final[dict[str, str]] = {
    "01": "79", "02": "80", "03": "81", "04": "84", "05": "82", "06": "26", "07": "83", "08": "85",
    "09": "91", "10": "86", "11": "87", "12": "88", "13": "89", "14": "98", "15": "90", "16": "92",
    "17": "93", "18": "94", "19": "95", "20": "96", "21": "97", "22": "01", "23": "03", "24": "04",
    "25": "05", "26": "07", "27": "08", "28": "10", "29": "11", "30": "12", "31": "14", "32": "15",
    "33": "17", "34": "18", "35": "19", "36": "20", "37": "24", "38": "25", "39": "27", "40": "29",
    "41": "30", "42": "32", "43": "33", "44": "34", "45": "37", "46": "38", "47": "41", "48": "42",
    "49": "44", "50": "46", "51": "47", "52": "22", "53": "49", "54": "50", "55": "52", "56": "53",
    "57": "54", "58": "56", "59": "57", "60": "58", "61": "60", "62": "61", "63": "36", "64": "63",
    "65": "64", "66": "65", "67": "66", "68": "68", "69": "28", "70": "69", "71": "70", "72": "71",
    "73": "73", "74": "75", "75": "76", "76": "78", "77": "45", "78": "40", "79": "99", "83": "11100",
    "86": "71100", "87": "77", "89": "71140", "90": "23", "91": "35", "92": "67", "93": "21", "94": "43",
    "95": "74", "99": "55",
}  # fmt: skip

OKATO_LENGTH: Final = 11


def okato_for_region(region_code: str) -> str | None:
    """The subject-level ОКАТО (11 digits) of a ФНС subject code, or None for an unknown code."""
    prefix = OKATO_PREFIX.get(region_code)
    return None if prefix is None else prefix.ljust(OKATO_LENGTH, "0")
