"""Russian identifiers: СНИЛС, ИНН, ОГРН, ОГРНИП and КПП.

Every ``validate_*`` function returns the canonical form (digits only, or the
nine characters of a КПП) and raises :class:`IdError` with a machine-readable
``reason`` when the value is not acceptable. The ``make_*`` generators build
valid synthetic numbers for test data and emulators.
"""

from __future__ import annotations

import random
import re
from typing import Final, Literal

from stdnum import exceptions as stdnum_exceptions
from stdnum.ru import inn as stdnum_inn

IdErrorReason = Literal["required", "bad_format", "bad_length", "bad_checksum"]

_MESSAGES: Final[dict[str, str]] = {
    "required": "value is required",
    "bad_format": "value has an invalid format",
    "bad_length": "value has an invalid length",
    "bad_checksum": "check digits do not match",
}

_DIGITS = re.compile(r"[0-9]+")
_SNILS_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015]+")
_KPP = re.compile(r"[0-9]{4}[0-9A-Z]{2}[0-9]{3}")

#: СНИЛС numbers up to and including 001-001-998 were issued before the check
#: number was introduced; their check number is not defined.
SNILS_UNCHECKED_MAX: Final = 1_001_998

_OGRN_SIGNS: Final = frozenset("15")
_OGRNIP_SIGN: Final = "3"


class IdError(ValueError):
    """An identifier failed validation.

    ``reason`` is one of ``"required"``, ``"bad_format"``, ``"bad_length"``,
    ``"bad_checksum"``.
    """

    reason: IdErrorReason

    def __init__(self, reason: IdErrorReason, message: str | None = None) -> None:
        self.reason = reason
        super().__init__(message or _MESSAGES[reason])

    def __reduce__(self) -> tuple[type[IdError], tuple[IdErrorReason, str]]:
        """Keep ``reason`` across pickling (``ValueError`` would replay only the message)."""
        return (type(self), (self.reason, str(self)))


def _is_digits(value: str) -> bool:
    """True when ``value`` is one or more ASCII digits (``str.isdigit`` accepts e.g. '²')."""
    return _DIGITS.fullmatch(value) is not None


def _require_digits(value: str, lengths: tuple[int, ...], what: str) -> str:
    """Strip surrounding whitespace and check the value is ASCII digits of an allowed length."""
    stripped = value.strip()
    if not stripped:
        raise IdError("required", f"{what} is required")
    if not _is_digits(stripped):
        raise IdError("bad_format", f"{what} must contain digits only")
    if len(stripped) not in lengths:
        expected = " or ".join(str(n) for n in lengths)
        raise IdError("bad_length", f"{what} must have {expected} digits")
    return stripped


def _check_region_code(region_code: str) -> None:
    """Generators take a two-digit subject code such as ``"77"``."""
    if len(region_code) != 2 or not _is_digits(region_code):
        raise ValueError(f"region code must be two digits, got {region_code!r}")


# --------------------------------------------------------------------- СНИЛС


def snils_check_number(first9: str) -> int:
    """The two-digit СНИЛС check number (0..99) for the nine-digit number ``first9``.

    The sum of the digits weighted 9..1 is taken as is below 100, becomes 0 at
    100 and 101, and is reduced modulo 101 above that (a remainder of 100 also
    becoming 0). That is ``sum % 101 % 100`` in every case.
    """
    if len(first9) != 9 or not _is_digits(first9):
        raise ValueError("expected the nine digits of a СНИЛС number")
    total = sum(int(digit) * (9 - i) for i, digit in enumerate(first9))
    if total < 100:
        return total
    if total in (100, 101):
        return 0
    remainder = total % 101
    return 0 if remainder == 100 else remainder


def snils_is_checked(first9: str) -> bool:
    """Whether the check number is defined for this number (it is above 001-001-998)."""
    return int(first9) > SNILS_UNCHECKED_MAX


def normalize_snils(value: str) -> str:
    """Strip spaces and dashes from a СНИЛС and return its 11 digits.

    Accepts ``"112-233-445 95"``, ``"112 233 445 95"``, ``"11223344595"``.
    Raises ``IdError`` with reason ``required``, ``bad_format`` or ``bad_length``.
    """
    compact = _SNILS_SEPARATORS.sub("", value)
    if not compact:
        raise IdError("required", "СНИЛС is required")
    if not _is_digits(compact):
        raise IdError("bad_format", "СНИЛС must contain digits, spaces and dashes only")
    if len(compact) != 11:
        raise IdError("bad_length", "СНИЛС must have 11 digits")
    return compact


def validate_snils(value: str) -> str:
    """Normalize a СНИЛС and verify its check number; return the 11 digits.

    Numbers up to 001-001-998 carry no check number and are accepted as they are.
    """
    digits = normalize_snils(value)
    number, check = digits[:9], int(digits[9:])
    if snils_is_checked(number) and snils_check_number(number) != check:
        raise IdError("bad_checksum", "СНИЛС check number does not match")
    return digits


def format_snils(value: str) -> str:
    """Format a valid СНИЛС the usual way: ``"112-233-445 95"``."""
    d = validate_snils(value)
    return f"{d[0:3]}-{d[3:6]}-{d[6:9]} {d[9:11]}"


def make_snils(rng: random.Random) -> str:
    """A random valid СНИЛС (11 digits) whose number is above 001-001-998, so it is checked."""
    number = f"{rng.randint(SNILS_UNCHECKED_MAX + 1, 999_999_999):09d}"
    return f"{number}{snils_check_number(number):02d}"


# ----------------------------------------------------------------------- ИНН


def inn_org_check_digit(first9: str) -> int:
    """The check digit of an organisation's 10-digit ИНН from its first nine digits."""
    if len(first9) != 9 or not _is_digits(first9):
        raise ValueError("expected the first nine digits of an organisation's ИНН")
    return int(stdnum_inn.calc_company_check_digit(first9))


def inn_personal_check_digits(first10: str) -> str:
    """The two check digits of a 12-digit ИНН (individual) from its first ten digits."""
    if len(first10) != 10 or not _is_digits(first10):
        raise ValueError("expected the first ten digits of an individual's ИНН")
    return str(stdnum_inn.calc_personal_check_digits(first10))


def validate_inn(value: str, *, allow_individual: bool = True) -> str:
    """Validate an ИНН and return its digits.

    10 digits for an organisation; 12 digits for an individual (entrepreneur)
    only when ``allow_individual``. Surrounding whitespace is ignored; anything
    but digits inside is ``bad_format``.
    """
    lengths = (10, 12) if allow_individual else (10,)
    digits = _require_digits(value, lengths, "ИНН")
    try:
        return str(stdnum_inn.validate(digits))
    except stdnum_exceptions.InvalidChecksum as exc:
        raise IdError("bad_checksum", "ИНН check digit does not match") from exc
    except stdnum_exceptions.InvalidLength as exc:
        raise IdError("bad_length", "ИНН must have 10 or 12 digits") from exc
    except stdnum_exceptions.ValidationError as exc:
        raise IdError("bad_format", "ИНН has an invalid format") from exc


def make_inn_org(rng: random.Random, region_code: str) -> str:
    """A random valid organisation ИНН: region(2) + inspection(2) + number(5) + check."""
    _check_region_code(region_code)
    first9 = f"{region_code}{rng.randint(1, 99):02d}{rng.randint(0, 99_999):05d}"
    return f"{first9}{inn_org_check_digit(first9)}"


def make_inn_individual(rng: random.Random, region_code: str) -> str:
    """A random valid 12-digit ИНН of an individual registered in ``region_code``."""
    _check_region_code(region_code)
    first10 = f"{region_code}{rng.randint(1, 99):02d}{rng.randint(0, 999_999):06d}"
    return f"{first10}{inn_personal_check_digits(first10)}"


# ------------------------------------------------------------ ОГРН / ОГРНИП


def ogrn_check_digit(first12: str) -> int:
    """The ОГРН check digit: the first 12 digits as an integer, mod 11, mod 10."""
    if len(first12) != 12 or not _is_digits(first12):
        raise ValueError("expected the first twelve digits of an ОГРН")
    return int(first12) % 11 % 10


def ogrnip_check_digit(first14: str) -> int:
    """The ОГРНИП check digit: the first 14 digits as an integer, mod 13, mod 10."""
    if len(first14) != 14 or not _is_digits(first14):
        raise ValueError("expected the first fourteen digits of an ОГРНИП")
    return int(first14) % 13 % 10


def validate_ogrn(value: str) -> str:
    """Validate a 13-digit ОГРН of a legal entity (sign digit 1 or 5) and return its digits."""
    digits = _require_digits(value, (13,), "ОГРН")
    if digits[0] not in _OGRN_SIGNS:
        raise IdError("bad_format", "ОГРН must start with 1 or 5")
    if ogrn_check_digit(digits[:12]) != int(digits[12]):
        raise IdError("bad_checksum", "ОГРН check digit does not match")
    return digits


def validate_ogrnip(value: str) -> str:
    """Validate a 15-digit ОГРНИП of an individual entrepreneur (sign digit 3) and return its digits.

    Uses ``mod 13 mod 10``; python-stdnum compares the bare ``mod 13`` remainder,
    so it rejects valid numbers whose remainder is 10, 11 or 12.
    """
    digits = _require_digits(value, (15,), "ОГРНИП")
    if digits[0] != _OGRNIP_SIGN:
        raise IdError("bad_format", "ОГРНИП must start with 3")
    if ogrnip_check_digit(digits[:14]) != int(digits[14]):
        raise IdError("bad_checksum", "ОГРНИП check digit does not match")
    return digits


def make_ogrn(rng: random.Random, region_code: str) -> str:
    """A random valid ОГРН: sign 1 + year(2) + region(2) + inspection(2) + record(5) + check."""
    _check_region_code(region_code)
    year = rng.randint(2, 24)
    first12 = f"1{year:02d}{region_code}{rng.randint(1, 99):02d}{rng.randint(0, 99_999):05d}"
    return f"{first12}{ogrn_check_digit(first12)}"


def make_ogrnip(rng: random.Random, region_code: str) -> str:
    """A random valid ОГРНИП: sign 3 + year(2) + region(2) + inspection(2) + record(7) + check."""
    _check_region_code(region_code)
    year = rng.randint(4, 24)
    first14 = f"3{year:02d}{region_code}{rng.randint(1, 99):02d}{rng.randint(0, 9_999_999):07d}"
    return f"{first14}{ogrnip_check_digit(first14)}"


# ----------------------------------------------------------------------- КПП


def validate_kpp(value: str) -> str:
    """Validate a КПП (``^\\d{4}[\\dA-Z]{2}\\d{3}$``) and return it without surrounding whitespace."""
    stripped = value.strip()
    if not stripped:
        raise IdError("required", "КПП is required")
    if len(stripped) != 9:
        raise IdError("bad_length", "КПП must have 9 characters")
    if _KPP.fullmatch(stripped) is None:
        raise IdError("bad_format", "КПП must be 4 digits, 2 digits or capital letters, 3 digits")
    return stripped


def make_kpp(rng: random.Random, region_code: str) -> str:
    """A random КПП of an organisation at its place of registration: region(2) + inspection(2) + 01 + NNN."""
    _check_region_code(region_code)
    return f"{region_code}{rng.randint(1, 99):02d}01{rng.randint(1, 9):03d}"


__all__ = [
    "SNILS_UNCHECKED_MAX",
    "IdError",
    "IdErrorReason",
    "format_snils",
    "inn_org_check_digit",
    "inn_personal_check_digits",
    "make_inn_individual",
    "make_inn_org",
    "make_kpp",
    "make_ogrn",
    "make_ogrnip",
    "make_snils",
    "normalize_snils",
    "ogrn_check_digit",
    "ogrnip_check_digit",
    "snils_check_number",
    "snils_is_checked",
    "validate_inn",
    "validate_kpp",
    "validate_ogrn",
    "validate_ogrnip",
    "validate_snils",
]
