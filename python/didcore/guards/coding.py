"""The coding guards: ``sex-coding`` (sex not coded 1/2, or missing too often) and
``modality-coding`` (modality values in no measure), on a profile of the extract's values
(the whole extract's, or the first batch's for :func:`didcore.guards.early_guard`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from didcore.errors import GuardError
from didcore.guards.common import CODING_SHARE, MISSING_SEX_SHARE, _norm, _rows, _share
from didcore.profile import ValueProfile, describe_values
from didcore.valuemaps import map_value

if TYPE_CHECKING:
    from didcore.lookup import Lookups


# What the guards say a coding is, once normalised (trimmed, upper-cased).
_SEX_CODE = re.compile(r"\+?0*([0-9])(?:\.0*)?")
_SEX_SPELLINGS = {
    "M": "1",
    "MALE": "1",
    "MAN": "1",
    "F": "2",
    "FEMALE": "2",
    "W": "2",
    "WOMAN": "2",
    "U": "0",
    "UNKNOWN": "0",
    "NOT KNOWN": "0",
    "N": "0",
    "X": "9",
    "I": "9",
    "INDETERMINATE": "9",
    "O": "9",
    "OTHER": "9",
}


def _sex_kind(value: str | None) -> str:
    """``"code"`` (1, 2), ``"missing"`` (0, 9, null, blank) or ``"other"``."""
    text = _norm(value)
    if not text:
        return "missing"
    m = _SEX_CODE.fullmatch(text)
    if m and m.group(1) in "12":
        return "code"
    if m and m.group(1) in "09":
        return "missing"
    return "other"


def check_sex_coding(
    profile: ValueProfile,
    *,
    column: str = "sex",
    share: float = CODING_SHARE,
    missing_share: float = MISSING_SEX_SHARE,
) -> None:
    """``sex-coding``: sex values that are not NHS gender codes (after any value map) above
    ``share`` of the profile's rows; 0, 9, null and blank are missing values, not counted,
    unless they are above ``missing_share`` of rows (another coding, or an empty column).
    """
    mapping = profile.value_maps.get("sex")
    values = [(v, c, _sex_kind(map_value(v, mapping))) for v, c in profile.top("sex", 10_000)]
    other = [(v, c) for v, c, kind in values if kind == "other"]
    n_other = sum(c for _, c in other)
    if not profile.rows:
        return
    if n_other <= share * profile.rows:
        _check_missing_sex(values, profile, column, missing_share)
        return
    known = [(_norm(v), _SEX_SPELLINGS.get(_norm(v))) for v, _ in other]
    pairs = ",".join(dict.fromkeys(f"{k}:{t}" for k, t in known if t))
    fix = f"--map sex={pairs}" if pairs else "--map sex=VALUE:1,VALUE:2 (1 male, 2 female)"
    raise GuardError(
        f"guard sex-coding: column {column!r} is not coded 1 (male) / 2 (female) in "
        f"{_share(n_other, profile.rows)} of {_rows(profile)} ({n_other:,} of {profile.rows:,}): "
        f"{describe_values(other, profile.rows)}; recode it with {fix}, name another "
        f"column with --column sex=NAME, or --allow sex-coding to count them as missing sex",
        "sex-coding",
    )


def _check_missing_sex(
    values: Sequence[tuple[str | None, int, str]], profile: ValueProfile, column: str, share: float
) -> None:
    """Sex missing (0, 9, blank) in more than ``share`` of rows: another coding or column."""
    rows = profile.rows
    missing = [(v, c) for v, c, kind in values if kind == "missing"]
    n = sum(c for _, c in missing)
    if n <= share * rows:
        return

    def digit(v: str | None) -> str:
        m = _SEX_CODE.fullmatch(_norm(v))
        return m.group(1) if m else ""

    codes = {digit(v) for v, _, kind in values if kind == "code"}
    zero = any(digit(v) == "0" for v, _ in missing)
    if zero and codes == {"1"}:
        fix = (
            "if it is coded 0/1, recode it with --map sex=0:1,1:2 (0 male, 1 female) or "
            "--map sex=0:2 (0 female, 1 male); "
        )
    else:
        fix = ""
    raise GuardError(
        f"guard sex-coding: column {column!r} is missing (0, 9 or blank) in {_share(n, rows)} "
        f"of {_rows(profile)} ({n:,} of {rows:,}): {describe_values(missing, rows)}; that "
        "often it is not "
        f"missing data but another coding or another column: {fix}name the column with "
        "--column sex=NAME, or --allow sex-coding to count them as missing sex",
        "sex-coding",
    )


def _modality_keys(lookups: Lookups) -> frozenset[str]:
    return frozenset(r.modality for r in lookups.measure_rules)


def _unknown_modalities(
    profile: ValueProfile, lookups: Lookups, *, blank: bool = False
) -> list[tuple[str | None, int]]:
    """Raw modality values (with rows) in no measure after any value map."""
    from didcore.lookup import normalise_code

    keys = _modality_keys(lookups)
    mapping = profile.value_maps.get("modality")
    out = []
    for v, c in profile.top("modality", 10_000):
        mapped = normalise_code(map_value(v, mapping))
        if mapped is None:
            if blank:
                out.append((v, c))
        elif mapped not in keys:
            out.append((v, c))
    return out


def _modality_fix(values: Sequence[str | None], lookups: Lookups) -> str:
    """A ``--map modality=...`` for the values that are known spellings of a DID modality."""
    from didcore.lookup import MODALITY_SPELLINGS, normalise_code

    keys = _modality_keys(lookups)
    values = [v for v in values if normalise_code(v)]
    if not values:
        return (
            "the modality is blank in those rows: is it the right column (--column modality=NAME)?"
        )
    pairs = []
    for v in values:
        name = MODALITY_SPELLINGS.get(normalise_code(v) or "")
        if name and name.upper() in keys:
            pairs.append(f"{_norm(v)}:{name}")
    if pairs:
        return (
            f"they look like DID modalities under other names: recode them with "
            f"--map 'modality={','.join(dict.fromkeys(pairs))}'"
        )
    return (
        "recode them to the DID modality names with --map 'modality=VALUE:Plain Radiography,"
        "...' or add them to the measures file (see docs/inputs.md)"
    )


def check_modality_coding(
    profile: ValueProfile,
    lookups: Lookups,
    *,
    column: str = "modality",
    share: float = CODING_SHARE,
) -> None:
    """``modality-coding``: non-blank modality values in no measure (after any value map)
    above ``share`` of the profile's rows, with a hint when they are known abbreviations.
    """
    unknown = _unknown_modalities(profile, lookups)
    n = sum(c for _, c in unknown)
    if not profile.rows or n <= share * profile.rows:
        return
    raise GuardError(
        f"guard modality-coding: column {column!r} holds values in no measure in "
        f"{_share(n, profile.rows)} of {_rows(profile)} ({n:,} of {profile.rows:,}): "
        f"{describe_values(unknown, profile.rows)}; "
        f"{_modality_fix([v for v, _ in unknown], lookups)}"
        f"; or --allow modality-coding to leave them out of every measure",
        "modality-coding",
    )
