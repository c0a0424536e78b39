"""Russian identifier checks on real public numbers and on every single-digit mutation of them.

A check digit computed as ``x mod m mod 10`` cannot catch every single-digit
error: a one-digit change always moves ``x mod m`` (for m = 11, 13, 101 no
digit change is a multiple of m), but the final ``mod 10`` (or ``mod 100`` for
СНИЛС) folds some remainders together. The mutation tests below assert exactly
that property: a mutation passes if and only if the old and the new remainders
fold to the same check value, and every other mutation is rejected.
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Callable, Iterator

import pytest
from stdnum.ru import ogrn as stdnum_ogrn

from posog.core.ids import (
    SNILS_UNCHECKED_MAX,
    IdError,
    format_snils,
    inn_org_check_digit,
    inn_personal_check_digits,
    make_inn_individual,
    make_inn_org,
    make_kpp,
    make_ogrn,
    make_ogrnip,
    make_snils,
    normalize_snils,
    ogrn_check_digit,
    ogrnip_check_digit,
    snils_check_number,
    validate_inn,
    validate_kpp,
    validate_ogrn,
    validate_ogrnip,
    validate_snils,
)

# Public registration data of well-known organisations (ЕГРЮЛ is public).
REAL_ORGS: list[tuple[str, str, str]] = [
    ("ПАО Сбербанк", "7707083893", "1027700132195"),
    ("ПАО «Газпром»", "7736050003", "1027700070518"),
    ("ООО «Яндекс»", "7736207543", "1027700229193"),
    ("ПАО «Аэрофлот»", "7712040126", "1027700092661"),
    ("ОАО «РЖД»", "7708503727", "1037739877295"),
    ("ПАО «Лукойл»", "7708004767", "1027700035769"),
    ("ФНС России", "7707329152", "1047707030513"),
    ("ПАО «НК «Роснефть»", "7706107510", "1027700043502"),
    ("ПАО «МТС»", "7740000076", "1027700149124"),
    ("Банк ВТБ (ПАО)", "7702070139", "1027739609391"),
    ("ПАО «Татнефть»", "1644003838", "1021601623702"),
    ("ПАО «Сургутнефтегаз»", "8602060555", "1028600584540"),
    ("ПАО «Новатэк»", "6316031581", "1026303117642"),
    ("ПАО «КАМАЗ»", "1650032058", "1021602013971"),
    ("ПАО «ГМК «Норильский никель»", "8401005730", "1028400000298"),
    ("ПАО «Северсталь»", "3528000597", "1023501236901"),
]
REAL_INNS = [inn for _, inn, _ in REAL_ORGS]
REAL_OGRNS = [ogrn for _, _, ogrn in REAL_ORGS]
REAL_KPPS = ["773601001", "770401001", "997250001", "784201001"]  # Сбербанк, Яндекс, Газпром, ВТБ

# ОГРНИП published as examples (ru.wikipedia, validator test suites, python-stdnum's docs).
PUBLISHED_OGRNIPS = ["304500116000157", "309565808600188", "319631300041247", "385768585948949"]

# "112-233-445 95" is the canonical example (weighted sum 95); "087-654-303 00" has
# weighted sum 202, so 202 mod 101 = 0; "123-456-789 64" has sum 165 → 64.
PUBLIC_SNILS = ["112-233-445 95", "087-654-303 00", "123-456-789 64"]
# Synthetic 12-digit ИНН (python-stdnum's documentation example and two made-up ones):
# individuals' numbers are personal data, so none are used here.
INDIVIDUAL_INNS = ["123456789047", "770712345633", "165500000190"]


def mutations(number: str) -> Iterator[tuple[int, str]]:
    """Every string differing from ``number`` in exactly one digit: (position, mutant)."""
    for pos, old in enumerate(number):
        for new in "0123456789":
            if new != old:
                yield pos, number[:pos] + new + number[pos + 1 :]


def reason_of(check: Callable[[str], str], value: str) -> str | None:
    """None if ``check`` accepts ``value``, else the ``IdError.reason``."""
    try:
        check(value)
    except IdError as exc:
        return exc.reason
    return None


# ----------------------------------------------------------------- IdError


def test_id_error_is_value_error_with_reason() -> None:
    err = IdError("bad_checksum")
    assert isinstance(err, ValueError)
    assert err.reason == "bad_checksum"
    assert str(err)


def test_id_error_survives_pickling() -> None:
    err = IdError("bad_length", "ИНН must have 10 or 12 digits")
    copy = pickle.loads(pickle.dumps(err))
    assert copy.reason == "bad_length"
    assert str(copy) == "ИНН must have 10 or 12 digits"


# ------------------------------------------------------------------- СНИЛС


def _snils_rule(first9: str) -> int:
    """The check number exactly as the regulation words it."""
    total = sum(int(d) * w for d, w in zip(first9, range(9, 0, -1), strict=True))
    if total < 100:
        return total
    if total in (100, 101):
        return 0
    return 0 if total % 101 == 100 else total % 101


def _with_weighted_sum(target: int) -> str:
    """A nine-digit number whose weighted sum (weights 9..1) is ``target``."""
    digits = []
    for weight in range(9, 0, -1):
        digit = min(9, target // weight)
        digits.append(str(digit))
        target -= digit * weight
    assert target == 0
    return "".join(digits)


@pytest.mark.parametrize("snils", PUBLIC_SNILS)
def test_public_snils_examples_are_valid(snils: str) -> None:
    digits = snils.replace("-", "").replace(" ", "")
    assert validate_snils(snils) == digits
    assert validate_snils(digits) == digits
    assert format_snils(digits) == snils


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("112-233-445 95", "11223344595"),
        ("11223344595", "11223344595"),
        (" 112 233 445 95 ", "11223344595"),
        ("112-233-445-95", "11223344595"),
        ("112–233–445 95", "11223344595"),  # en dashes
    ],
)
def test_normalize_snils_accepts_usual_spellings(raw: str, expected: str) -> None:
    assert normalize_snils(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "required"),
        ("  - ", "required"),
        ("112-233-445 9a", "bad_format"),
        ("112.233.445 95", "bad_format"),
        ("١١٢٢٣٣٤٤٥٩٥", "bad_format"),  # Arabic-Indic digits are not ASCII digits
        ("112-233-445 9", "bad_length"),
        ("112-233-445 955", "bad_length"),
    ],
)
def test_normalize_snils_rejects(raw: str, reason: str) -> None:
    with pytest.raises(IdError) as info:
        normalize_snils(raw)
    assert info.value.reason == reason
    assert reason_of(validate_snils, raw) == reason


@pytest.mark.parametrize("target", [*range(0, 406, 7), 99, 100, 101, 102, 201, 202, 302, 303, 405])
def test_snils_check_number_matches_the_rule(target: int) -> None:
    number = _with_weighted_sum(target)
    assert snils_check_number(number) == _snils_rule(number) == target % 101 % 100


def test_snils_check_number_random_agreement() -> None:
    rng = random.Random(20240601)
    for _ in range(2000):
        number = f"{rng.randint(0, 999_999_999):09d}"
        assert snils_check_number(number) == _snils_rule(number)


def test_snils_sums_100_and_101_give_00() -> None:
    for target in (100, 101):
        number = _with_weighted_sum(target)
        assert int(number) > SNILS_UNCHECKED_MAX
        assert validate_snils(f"{number}00") == f"{number}00"
        for wrong in ("01", "10", "99"):  # e.g. a naive "sum mod 100" would give 01 for 101
            assert reason_of(validate_snils, f"{number}{wrong}") == "bad_checksum"


def test_snils_boundary_numbers_carry_no_check() -> None:
    # Up to 001-001-998 any check number is accepted.
    for check in ("00", "42", "99"):
        assert validate_snils(f"001-001-998 {check}") == f"001001998{check}"
        assert validate_snils(f"000-000-001 {check}") == f"000000001{check}"
    # From 001-001-999 on the check applies: weighted sum 7 + 4 + 27 + 18 + 9 = 65.
    assert snils_check_number("001001999") == 65
    assert validate_snils("001-001-999 65") == "00100199965"
    for check in ("00", "64", "66", "99"):
        assert reason_of(validate_snils, f"001-001-999 {check}") == "bad_checksum"


@pytest.mark.parametrize("snils", PUBLIC_SNILS)
def test_every_single_digit_snils_mutation(snils: str) -> None:
    digits = normalize_snils(snils)
    old_residue = sum(int(d) * w for d, w in zip(digits[:9], range(9, 0, -1), strict=True)) % 101
    accepted = 0
    for pos, mutant in mutations(digits):
        reason = reason_of(validate_snils, mutant)
        if int(mutant[:9]) <= SNILS_UNCHECKED_MAX:
            assert reason is None  # not checked at all
            continue
        if pos >= 9:
            assert reason == "bad_checksum", mutant  # the number is unchanged, the check is not
            continue
        new_residue = sum(int(d) * w for d, w in zip(mutant[:9], range(9, 0, -1), strict=True)) % 101
        # |weight * delta| <= 81 < 101, so the residue mod 101 always moves ...
        assert new_residue != old_residue
        # ... and only 0 and 100 share a check number (00).
        if {old_residue, new_residue} == {0, 100}:
            assert reason is None, mutant
            accepted += 1
        else:
            assert reason == "bad_checksum", mutant
    assert accepted == 0 or old_residue in (0, 100)


def test_snils_collision_really_happens() -> None:
    # 087-654-303 00 has residue 0; raising the weight-1 digit 3 → 2 lowers the sum to 201
    # (residue 100, check 00 too), so that typo goes unnoticed — a property of the scheme.
    assert validate_snils("087-654-302 00") == "08765430200"


def test_make_snils_is_valid_and_checked() -> None:
    rng = random.Random(1)
    seen = set()
    for _ in range(500):
        snils = make_snils(rng)
        assert len(snils) == 11
        assert snils.isdigit()
        assert int(snils[:9]) > SNILS_UNCHECKED_MAX
        assert validate_snils(snils) == snils
        seen.add(snils)
    assert len(seen) > 490
    assert make_snils(random.Random(7)) == make_snils(random.Random(7))


# --------------------------------------------------------------------- ИНН


def _inn_residue(digits: str, weights: tuple[int, ...]) -> int:
    return sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11


_INN10_WEIGHTS = (2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN12_WEIGHTS_1 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN12_WEIGHTS_2 = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)


@pytest.mark.parametrize(("name", "inn", "ogrn"), REAL_ORGS)
def test_real_inn_and_ogrn_are_valid(name: str, inn: str, ogrn: str) -> None:
    assert validate_inn(inn) == inn, name
    assert validate_inn(inn, allow_individual=False) == inn
    assert validate_inn(f"  {inn}\n") == inn
    assert validate_ogrn(ogrn) == ogrn, name
    assert inn_org_check_digit(inn[:9]) == int(inn[9])
    assert ogrn_check_digit(ogrn[:12]) == int(ogrn[12])


@pytest.mark.parametrize("inn", REAL_INNS)
def test_every_single_digit_inn10_mutation(inn: str) -> None:
    old_residue = _inn_residue(inn[:9], _INN10_WEIGHTS)
    for pos, mutant in mutations(inn):
        reason = reason_of(validate_inn, mutant)
        if pos == 9:
            assert reason == "bad_checksum", mutant
            continue
        new_residue = _inn_residue(mutant[:9], _INN10_WEIGHTS)
        assert new_residue != old_residue  # no weight is a multiple of 11
        if {old_residue, new_residue} == {0, 10}:
            assert reason is None, mutant
        else:
            assert reason == "bad_checksum", mutant


def test_inn10_collisions_exist_on_real_numbers() -> None:
    # Роснефть's ИНН has residue 10 (check digit 0): a typo that moves the residue to 0 passes.
    collisions = [m for _, m in mutations("7706107510") if reason_of(validate_inn, m) is None]
    assert collisions
    assert all(_inn_residue(m[:9], _INN10_WEIGHTS) == 0 for m in collisions)
    # Сбербанк's residue is 3: every single-digit typo is caught.
    assert all(reason_of(validate_inn, m) == "bad_checksum" for _, m in mutations("7707083893"))


@pytest.mark.parametrize("inn", INDIVIDUAL_INNS)
def test_individual_inn(inn: str) -> None:
    assert validate_inn(inn) == inn
    assert inn_personal_check_digits(inn[:10]) == inn[10:]
    with pytest.raises(IdError) as info:
        validate_inn(inn, allow_individual=False)
    assert info.value.reason == "bad_length"


@pytest.mark.parametrize("inn", INDIVIDUAL_INNS)
def test_every_single_digit_inn12_mutation(inn: str) -> None:
    r1_old = _inn_residue(inn[:10], _INN12_WEIGHTS_1)
    r2_old = _inn_residue(inn[:11], _INN12_WEIGHTS_2)
    for pos, mutant in mutations(inn):
        reason = reason_of(validate_inn, mutant)
        if pos >= 10:
            assert reason == "bad_checksum", mutant
            continue
        r1_new = _inn_residue(mutant[:10], _INN12_WEIGHTS_1)
        assert r1_new != r1_old
        if {r1_old, r1_new} != {0, 10}:
            assert reason == "bad_checksum", mutant
            continue
        # The first check digit survives; the second one is computed over the
        # mutated ten digits plus the (unchanged) first check digit.
        r2_new = _inn_residue(mutant[:11], _INN12_WEIGHTS_2)
        assert r2_new != r2_old
        expected = None if {r2_old, r2_new} == {0, 10} else "bad_checksum"
        assert reason == expected, mutant


@pytest.mark.parametrize(
    ("raw", "reason", "allow_individual"),
    [
        ("", "required", True),
        ("   ", "required", True),
        ("7707 083893", "bad_format", True),
        ("77070838-93", "bad_format", True),
        ("770708389X", "bad_format", True),
        ("770708389", "bad_length", True),
        ("77070838931", "bad_length", True),
        ("1234567890471", "bad_length", True),
        ("123456789047", "bad_length", False),
        ("7707083894", "bad_checksum", True),
        ("123456789037", "bad_checksum", True),
    ],
)
def test_validate_inn_rejects(raw: str, reason: str, allow_individual: bool) -> None:
    with pytest.raises(IdError) as info:
        validate_inn(raw, allow_individual=allow_individual)
    assert info.value.reason == reason


def test_make_inn() -> None:
    rng = random.Random(2)
    for region in ("01", "16", "50", "77", "86", "95", "99"):
        for _ in range(50):
            inn = make_inn_org(rng, region)
            assert len(inn) == 10
            assert inn.startswith(region)
            assert validate_inn(inn, allow_individual=False) == inn
            person = make_inn_individual(rng, region)
            assert len(person) == 12
            assert person.startswith(region)
            assert validate_inn(person) == person
    with pytest.raises(ValueError, match="two digits"):
        make_inn_org(rng, "7")


# -------------------------------------------------------------------- ОГРН


def _mod(digits: str, m: int) -> int:
    return int(digits) % m


@pytest.mark.parametrize("ogrn", REAL_OGRNS)
def test_every_single_digit_ogrn_mutation(ogrn: str) -> None:
    old_residue = _mod(ogrn[:12], 11)
    for pos, mutant in mutations(ogrn):
        reason = reason_of(validate_ogrn, mutant)
        if pos == 0 and mutant[0] not in "15":
            assert reason == "bad_format", mutant  # not the sign of a legal entity's ОГРН
            continue
        if pos == 12:
            assert reason == "bad_checksum", mutant
            continue
        new_residue = _mod(mutant[:12], 11)
        # The change is delta * 10**k with 0 < |delta| <= 9, never a multiple of 11 ...
        assert new_residue != old_residue
        # ... but 0 and 10 both give check digit 0.
        if {old_residue, new_residue} == {0, 10}:
            assert reason is None, mutant
        else:
            assert reason == "bad_checksum", mutant


def test_ogrn_collisions_exist_on_real_numbers() -> None:
    # Сургутнефтегаз's ОГРН has residue 10 (check digit 0): typos reaching residue 0 pass.
    ogrn = "1028600584540"
    assert _mod(ogrn[:12], 11) == 10
    collisions = [m for _, m in mutations(ogrn) if reason_of(validate_ogrn, m) is None]
    assert collisions
    assert all(_mod(m[:12], 11) == 0 for m in collisions)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "required"),
        ("102770013219", "bad_length"),
        ("10277001321950", "bad_length"),
        ("102770013219 5", "bad_format"),
        ("1027700132I95", "bad_format"),
        ("2027700132195", "bad_format"),  # sign 2 is a ГРН (a later record), not an ОГРН
        ("304500116000157", "bad_length"),  # an ОГРНИП
        ("1027700132196", "bad_checksum"),
    ],
)
def test_validate_ogrn_rejects(raw: str, reason: str) -> None:
    assert reason_of(validate_ogrn, raw) == reason


def test_ogrn_sign_5_is_accepted() -> None:
    first12 = "507774672596"
    ogrn = f"{first12}{ogrn_check_digit(first12)}"
    assert ogrn == "5077746725964"  # a published example
    assert validate_ogrn(ogrn) == ogrn


def test_make_ogrn_structure() -> None:
    rng = random.Random(3)
    for region in ("02", "23", "47", "77", "78", "89", "92"):
        for _ in range(50):
            ogrn = make_ogrn(rng, region)
            assert len(ogrn) == 13
            assert ogrn[0] == "1"
            assert 2 <= int(ogrn[1:3]) <= 24
            assert ogrn[3:5] == region
            assert validate_ogrn(ogrn) == ogrn


# ------------------------------------------------------------------ ОГРНИП


@pytest.mark.parametrize("ogrnip", PUBLISHED_OGRNIPS)
def test_published_ogrnip_are_valid(ogrnip: str) -> None:
    assert validate_ogrnip(ogrnip) == ogrnip
    assert ogrnip_check_digit(ogrnip[:14]) == int(ogrnip[14])


@pytest.mark.parametrize("ogrnip", PUBLISHED_OGRNIPS)
def test_every_single_digit_ogrnip_mutation(ogrnip: str) -> None:
    old_residue = _mod(ogrnip[:14], 13)
    for pos, mutant in mutations(ogrnip):
        reason = reason_of(validate_ogrnip, mutant)
        if pos == 0:
            assert reason == "bad_format", mutant  # only 3 marks an ОГРНИП
            continue
        if pos == 14:
            assert reason == "bad_checksum", mutant
            continue
        new_residue = _mod(mutant[:14], 13)
        assert new_residue != old_residue  # 13 is prime and divides no delta * 10**k
        # mod 10 folds 10 → 0, 11 → 1, 12 → 2.
        if new_residue % 10 == old_residue % 10:
            assert {old_residue, new_residue} in ({0, 10}, {1, 11}, {2, 12})
            assert reason is None, mutant
        else:
            assert reason == "bad_checksum", mutant


def test_ogrnip_remainders_10_to_12_use_mod_10() -> None:
    # Search deterministically for numbers whose remainder mod 13 is 10, 11 and 12.
    found: dict[int, str] = {}
    serial = 0
    while len(found) < 3:
        first14 = f"3047700{serial:07d}"
        residue = int(first14) % 13
        if residue >= 10:
            found.setdefault(residue, first14)
        serial += 1
    for residue, first14 in found.items():
        ogrnip = f"{first14}{residue % 10}"
        assert validate_ogrnip(ogrnip) == ogrnip
        # python-stdnum compares the bare remainder and rejects these valid numbers.
        assert not stdnum_ogrn.is_valid(ogrnip)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "required"),
        ("30450011600015", "bad_length"),
        ("1027700132195", "bad_length"),
        ("30450011600015a", "bad_format"),
        ("404500116000157", "bad_format"),  # sign 4 is a ГРНИП, not an ОГРНИП
        ("304500116000158", "bad_checksum"),
    ],
)
def test_validate_ogrnip_rejects(raw: str, reason: str) -> None:
    assert reason_of(validate_ogrnip, raw) == reason


def test_make_ogrnip() -> None:
    rng = random.Random(4)
    for region in ("16", "50", "66", "77"):
        for _ in range(100):
            ogrnip = make_ogrnip(rng, region)
            assert len(ogrnip) == 15
            assert ogrnip[0] == "3"
            assert ogrnip[3:5] == region
            assert validate_ogrnip(ogrnip) == ogrnip


# --------------------------------------------------------------------- КПП


@pytest.mark.parametrize("kpp", [*REAL_KPPS, "7736AB001", "502401001", " 773601001 "])
def test_valid_kpp(kpp: str) -> None:
    assert validate_kpp(kpp) == kpp.strip()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "required"),
        ("77360100", "bad_length"),
        ("7736010011", "bad_length"),
        ("7736ab001", "bad_format"),  # letters must be capitals
        ("773601A01", "bad_format"),  # letters only in positions 5 and 6
        ("A73601001", "bad_format"),
        ("7736 1001", "bad_format"),
        ("7736ЖЖ001", "bad_format"),  # Cyrillic is not A-Z
    ],
)
def test_validate_kpp_rejects(raw: str, reason: str) -> None:
    assert reason_of(validate_kpp, raw) == reason


def test_make_kpp() -> None:
    rng = random.Random(5)
    for region in ("03", "50", "77", "91"):
        for _ in range(50):
            kpp = make_kpp(rng, region)
            assert validate_kpp(kpp) == kpp
            assert kpp[:2] == region
            assert kpp[4:6] == "01"
            assert kpp.isdigit()


# ----------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("helper", "arg"),
    [
        (snils_check_number, "12345678"),
        (snils_check_number, "12345678a"),
        (inn_org_check_digit, "77070838"),
        (inn_personal_check_digits, "12345678904"),
        (ogrn_check_digit, "1027700132195"),
        (ogrnip_check_digit, "3045001160001"),
    ],
)
def test_check_helpers_reject_wrong_input(helper: Callable[[str], object], arg: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        helper(arg)
