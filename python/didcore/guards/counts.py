"""The count guards, on the counted cube (or each publishable year of a YearCubes):
``exclusions`` (an exclusion reason too common), ``no-measure`` (included records in no
measure) and ``empty-measure`` (a measure with no test at all).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from didcore.errors import GuardError
from didcore.guards.coding import _modality_fix, _modality_keys, _sex_kind, _unknown_modalities
from didcore.guards.common import (
    EMPTY_MEASURE_MIN_RECORDS,
    EXCLUSION_SHARE,
    MISSING_SEX_SHARE,
    NO_MEASURE_SHARE,
    _share,
)
from didcore.profile import ValueProfile, describe_values
from didcore.valuemaps import map_value

if TYPE_CHECKING:
    from didcore.cube import Cube
    from didcore.io import Columns
    from didcore.lookup import Lookups


_EXCLUSION_WHAT = {
    "no_icb": "no ICB (GP practice and LSOA match no lookup)",
    "no_imd": "no IMD quintile (LSOA not in lsoa_imd)",
    "no_sex": "no sex (not 1 or 2)",
    "no_age": "no usable age",
    "no_test_date": "no usable test date (in no financial year)",
}


def _periods(result: Any) -> list[tuple[str, Cube]]:
    """(label, cube) for each year of a YearCubes that could be published, or the one cube."""
    if hasattr(result, "undated") and hasattr(result, "minor"):
        minor = set(result.minor)
        return [(f"in {k}", c) for k, c in result.items() if k not in minor]
    return [("", result)]


def _total(result: Any) -> Cube:
    return result.total if hasattr(result, "undated") else result


def _exclusion_detail(reason: str, profile: ValueProfile | None, columns: Columns) -> str:
    """What to look at for one exclusion reason: the column and its top offending values."""
    if reason == "no_icb":
        cols = f"columns {columns.gp_practice_code!r} and {columns.lsoa11!r}"
        if profile is not None:
            top = profile.top("gp_practice_code_unmatched", 5)
            if top:
                cols += f" (practices in no lookup: {describe_values(top, profile.rows, 3)})"
            else:
                cols += " (didcore check lists the codes matching no lookup)"
        return f"{cols}: are the lookups those of this extract's years (--lookups)?"
    if reason == "no_imd":
        text = f"column {columns.lsoa11!r}"
        if profile is not None:
            top = profile.top("lsoa11_unmatched", 5)
            if top:
                text += f" (LSOAs in no lookup: {describe_values(top, profile.rows, 3)})"
            else:
                text += " (didcore check lists the codes matching no lookup)"
        return text + ": LSOA 2011 codes are expected"
    if reason == "no_sex":
        text = f"column {columns.sex!r}"
        if profile is not None:
            top = [(v, c) for v, c in profile.top("sex", 50) if _sex_kind(v) != "code"]
            if top:
                text += f" (values: {describe_values(top, profile.rows, 4)})"
        return text
    if reason == "no_age":
        return f"columns {columns.age!r} or {columns.date_of_birth!r} and {columns.test_date!r}"
    if reason == "no_test_date":
        return f"column {columns.test_date!r}"
    return ""


def check_exclusions(
    result: Any,
    *,
    columns: Columns | None = None,
    share: float = EXCLUSION_SHARE,
) -> None:
    """``exclusions``: an exclusion reason above ``share`` of the rows read, in any
    publishable year of a YearCubes (or the one Cube), or undated rows above ``share`` of all.
    """
    from didcore.cube import EXCLUSION_REASONS
    from didcore.io import Columns

    cols = columns or Columns()
    total = _total(result)
    profile = total.value_profile
    # sex 0, 9 and blank are ordinary missing values: never a reason to stop on their own
    ordinary = 0
    if profile is not None and profile.rows:
        mapping = profile.value_maps.get("sex")
        ordinary = sum(
            c
            for v, c in profile.top("sex", 10_000)
            if _sex_kind(map_value(v, mapping)) == "missing"
        )
        if ordinary > MISSING_SEX_SHARE * profile.rows:
            ordinary = 0  # that often they are not missing values (sex-coding says so)
    found: list[tuple[float, str, str, int, int]] = []
    for label, cube in _periods(result):
        ex = cube.exclusions
        read = ex["rows_read"]
        for reason in EXCLUSION_REASONS:
            n = ex[reason] - min(ex[reason], ordinary) if reason == "no_sex" else ex[reason]
            if read and n > share * read:
                found.append((ex[reason] / read, reason, label, ex[reason], read))
    if hasattr(result, "undated"):
        undated, read = result.undated.rows_read, total.rows_read
        if read and undated > share * read:
            found.append((undated / read, "no_test_date", "", undated, read))
    if not found:
        return
    _, reason, label, n, read = max(found)
    where = f" {label}" if label else ""
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    raise GuardError(
        f"guard exclusions: {_share(n, read)} of rows{where} ({n:,} of {read:,}) are excluded "
        f"for {_EXCLUSION_WHAT[reason]}{more}, above the {share:.0%} threshold; check "
        f"{_exclusion_detail(reason, profile, cols)}; or --allow exclusions",
        "exclusions",
    )


def check_no_measure(
    result: Any,
    lookups: Lookups,
    *,
    columns: Columns | None = None,
    share: float = NO_MEASURE_SHARE,
) -> None:
    """``no-measure``: included records in no measure above ``share`` of the included, in any
    publishable year; the message names the modality values (and exam codes) in no measure.
    """
    from didcore.io import Columns

    cols = columns or Columns()
    worst: tuple[float, str, int, int] | None = None
    for label, cube in _periods(result):
        ex = cube.exclusions
        inc, none = ex["included"], ex["no_measure"]
        if inc and none > share * inc and (worst is None or none / inc > worst[0]):
            worst = (none / inc, label, none, inc)
    if worst is None:
        return
    _, label, none, inc = worst
    profile = _total(result).value_profile
    where = f" {label}" if label else ""
    detail = ""
    if profile is not None:
        unknown = _unknown_modalities(profile, lookups, blank=True)
        if unknown:
            detail = (
                f"; column {cols.modality!r} values in no measure: "
                f"{describe_values(unknown, profile.rows)}; "
                f"{_modality_fix([v for v, _ in unknown], lookups)}"
            )
        else:
            exams = _exams_in_no_measure(profile, lookups)
            if not exams:
                detail = "; didcore check lists the exam codes in no measure"
            else:
                detail = (
                    f"; column {cols.exam_code!r} values in no measure: "
                    f"{describe_values(exams, profile.rows)}; add them to the measures file "
                    "or recode them with --map exam_code=FROM:TO"
                )
    raise GuardError(
        f"guard no-measure: {_share(none, inc)} of included records{where} ({none:,} of "
        f"{inc:,}) are in no measure, above the {share:.0%} threshold{detail}; or --allow "
        "no-measure",
        "no-measure",
    )


def _exams_in_no_measure(profile: ValueProfile, lookups: Lookups) -> list[tuple[str | None, int]]:
    """Exam codes in no rule, when some modality is counted only for listed exam codes."""
    from didcore.lookup import normalise_code

    whole = {r.modality for r in lookups.measure_rules if r.exam_code is None}
    if _modality_keys(lookups) <= whole:
        return []  # every modality is counted whatever its exam code
    codes = {r.exam_code for r in lookups.measure_rules if r.exam_code}
    mapping = profile.value_maps.get("exam_code")
    return [
        (v, c)
        for v, c in profile.top("exam_code", 10_000)
        if normalise_code(map_value(v, mapping)) not in codes
    ]


def check_empty_measure(
    result: Any, lookups: Lookups, *, min_records: int = EMPTY_MEASURE_MIN_RECORDS
) -> None:
    """``empty-measure``: a measure with no test at all in a publishable year of at least
    ``min_records`` included records. An early-diagnosis measure empty while its modality has
    tests says the exam codes are coded otherwise; an empty modality measure, that its
    modality values never occur (another coding, or a modality folded into another).
    """
    for label, cube in _periods(result):
        included = cube.exclusions["included"] if cube.has_records else int(cube.counts.sum())
        if included < min_records:
            continue
        totals = cube.counts.sum(axis=(0, 1, 2, 3))
        empty = [m for m, n in zip(cube.measures, totals, strict=True) if n == 0]
        if not empty:
            continue
        where = f" {label}" if label else ""
        kinds = dict(zip(cube.measures, cube.measure_kinds, strict=True))
        rules: dict[str, list[str]] = {}
        for r in lookups.measure_rules:
            if r.measure in empty:
                key = r.exam_code or r.modality
                if key not in rules.setdefault(r.measure, []):
                    rules[r.measure].append(key)
        said = "; ".join(
            f"{m!r} ({'exam codes' if kinds[m] == 'edoc' else 'modality values'} "
            f"{', '.join(rules.get(m, [])[:4])}{', ...' if len(rules.get(m, [])) > 4 else ''})"
            for m in empty
        )
        raise GuardError(
            f"guard empty-measure: {len(empty)} measure(s) have no test at all{where} among "
            f"{included:,} included records: {said}; their values never occur in the extract "
            "(another coding, or one modality folded into another): see didcore check, recode "
            "them with --map, or --allow empty-measure",
            "empty-measure",
        )
