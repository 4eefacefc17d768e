"""Guard rails: refuse an input that would give a confident, wrong publication.

Each guard is a small function that raises :class:`~didcore.errors.GuardError` (exit status 2
on the command line) with one line naming the guard, the column, its top values with counts
and shares, and what to do: a value map (``--map sex=M:1,F:2``), a column name
(``--column sex=gender``), or the guard's override (``--allow NAME``). An overridden guard
that trips is not an error: it becomes a warning line that the command line prints and every
output records, so a publication always says what was let through.

=======================  ==================================================================
guard (``--allow NAME``) trips when (default threshold: module constant)
=======================  ==================================================================
``sex-coding``           sex values other than NHS gender codes (1, 2; 0, 9 and blank are
                         ordinary missing values and never count) cover more than
                         :data:`CODING_SHARE` (1%) of rows: ``M``/``F``, ``Male``, ``U``...;
                         or the missing values are more than :data:`MISSING_SEX_SHARE` (20%)
                         of rows: then they are not missing data but another coding (``0``/
                         ``1``) or an empty column
``modality-coding``      non-blank modality values in no measure cover more than
                         :data:`CODING_SHARE` of rows (short codes ``XR``, ``US`` with
                         measures that spell modalities otherwise)
``exclusions``           any exclusion reason (no ICB, no IMD, no sex, no age) is more than
                         :data:`EXCLUSION_SHARE` (5%) of the rows read, in any financial year
                         or in total; or rows with no usable test date are. Rows whose sex is
                         0, 9 or blank do not count towards it (unless they are more than
                         :data:`MISSING_SEX_SHARE`, 20%, of all rows)
``no-measure``           records in no measure are more than :data:`NO_MEASURE_SHARE` (5%)
                         of the included records
``empty-measure``        a measure has no test at all in a year of at least
                         :data:`EMPTY_MEASURE_MIN_RECORDS` (100,000) included records
``population-icbs``      an ICB with tests has no population (a population file missing it)
``population-strata``    tests in strata (ICB x sex x age band x IMD quintile) with zero
                         population are more than :data:`STRATA_SHARE` (0.5%) of the tests
``population-year``      the population's year is unknown or differs from the published year
``multiple-years``       a cube given to :func:`~didcore.standardise` or
                         :func:`~didcore.rates_ratios` holds two or more financial years
                         (:attr:`Cube.year_rows <didcore.Cube.year_rows>`) each with at least
                         :data:`~didcore.years.MINOR_YEAR_SHARE` (1%) of the largest year's
                         rows: its tests over one year's population multiply every rate
=======================  ==================================================================

The early guards (:func:`early_guard`) check the sex and modality codings of the first batch
and stop a run when more than :data:`EARLY_SHARE` (50%) of its rows are coded otherwise, so a
wrong coding fails in seconds rather than after a 47-million-row count.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from didcore.errors import GuardError, InputError
from didcore.profile import ValueProfile, describe_values
from didcore.valuemaps import map_value

if TYPE_CHECKING:
    from didcore.cube import Cube
    from didcore.io import Columns
    from didcore.lookup import Lookups
    from didcore.population import Population

__all__ = [
    "CODING_SHARE",
    "EARLY_SHARE",
    "EMPTY_MEASURE_MIN_RECORDS",
    "EXCLUSION_SHARE",
    "GUARDS",
    "MISSING_SEX_SHARE",
    "NO_MEASURE_SHARE",
    "STRATA_SHARE",
    "GuardThresholds",
    "Verdict",
    "check_allow",
    "check_empty_measure",
    "check_exclusions",
    "check_modality_coding",
    "check_no_measure",
    "check_population_icbs",
    "check_population_strata",
    "check_population_year",
    "check_sex_coding",
    "check_single_year",
    "cube_verdicts",
    "early_guard",
    "enforce",
    "guard_cube",
    "guard_population",
    "population_verdicts",
    "verdicts_by_name",
]

#: Every guard's name, as ``--allow NAME`` and ``allow={...}`` take it.
GUARDS: tuple[str, ...] = (
    "sex-coding",
    "modality-coding",
    "exclusions",
    "no-measure",
    "population-icbs",
    "population-strata",
    "population-year",
    "empty-measure",
    "multiple-years",
)

#: Share of rows whose sex or modality is coded otherwise above which the coding guards trip.
CODING_SHARE = 0.01
#: Share of rows read above which one exclusion reason (or no test date) trips ``exclusions``.
EXCLUSION_SHARE = 0.05
#: Share of included records in no measure above which ``no-measure`` trips.
NO_MEASURE_SHARE = 0.05
#: Share of counted tests in zero-population strata above which ``population-strata`` trips.
#: Not zero: a practice's ICB and a patient's home LSOA (its IMD quintile) may put a few tests
#: in a stratum where the ICB has no residents; a population missing whole strata is far above.
STRATA_SHARE = 0.005
#: Share of the first batch's rows coded otherwise that stops a run before the rest is read.
EARLY_SHARE = 0.5
#: Sex 0, 9 and blank are ordinary missing values (left out of the ``exclusions`` guard's
#: no-sex share) up to this share of rows; beyond it they are another coding (``0``/``1``) or
#: an empty column, and ``sex-coding`` trips. (In the DID they are well under 1%.)
MISSING_SEX_SHARE = 0.2
#: Included records in a year from which a measure with no test at all trips
#: ``empty-measure``. The rarest published measure (SPECT) is about 1 test in 1,000, so at
#: 100,000 records an empty one is a coding (SPECT folded into ``NM``, exam codes spelt
#: otherwise), not chance.
EMPTY_MEASURE_MIN_RECORDS = 100_000


@dataclass(frozen=True)
class GuardThresholds:
    """The guards' thresholds (shares, 0..1); the defaults are the module constants."""

    coding_share: float = CODING_SHARE
    exclusion_share: float = EXCLUSION_SHARE
    no_measure_share: float = NO_MEASURE_SHARE
    strata_share: float = STRATA_SHARE
    early_share: float = EARLY_SHARE
    missing_sex_share: float = MISSING_SEX_SHARE

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not 0 <= value <= 1:
                raise InputError(
                    f"GuardThresholds.{name} must be a share from 0 to 1, not {value!r}"
                )


@dataclass(frozen=True)
class Verdict:
    """One guard's outcome: ``status`` is ``"pass"``, ``"fail"`` or ``"allowed"`` (tripped,
    overridden); ``message`` the one line it gave when it tripped.
    """

    guard: str
    status: str
    message: str = ""

    def to_dict(self) -> dict[str, str]:
        """JSON-ready: guard, status, message."""
        return {"guard": self.guard, "status": self.status, "message": self.message}


_DEFAULT = GuardThresholds()

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

_EXCLUSION_WHAT = {
    "no_icb": "no ICB (GP practice and LSOA match no lookup)",
    "no_imd": "no IMD quintile (LSOA not in lsoa_imd)",
    "no_sex": "no sex (not 1 or 2)",
    "no_age": "no usable age",
    "no_test_date": "no usable test date (in no financial year)",
}


def _thresholds(thresholds: GuardThresholds | None) -> GuardThresholds:
    if thresholds is None:
        return _DEFAULT
    if not isinstance(thresholds, GuardThresholds):
        raise InputError(
            "guard thresholds must be a didcore.guards.GuardThresholds, not "
            f"{type(thresholds).__name__}"
        )
    return thresholds


def _share(n: float, total: float) -> str:
    return f"{100 * n / total:.1f}%" if total else "0%"


def _rows(profile: ValueProfile) -> str:
    """``"rows"``, or for the early guards' profile of the first batch what it covers."""
    return "the first rows read" if profile.early else "rows"


def _norm(value: str | None) -> str:
    return (value or "").strip().upper()


def _allowed(allow: Iterable[str] | str | None) -> frozenset[str]:
    if allow is None:
        return frozenset()
    if isinstance(allow, str):  # one name
        return frozenset([allow])
    try:
        return frozenset(str(a) for a in allow)
    except TypeError:
        raise InputError(
            f"allow must be guard names, e.g. {{'sex-coding'}}; got {type(allow).__name__}"
        ) from None


def check_allow(allow: Iterable[str] | None) -> frozenset[str]:
    """``allow`` as a set of guard names; an unknown name is an :class:`InputError`."""
    names = _allowed(allow)
    unknown = sorted(names - set(GUARDS))
    if unknown:
        raise InputError(
            f"--allow {', '.join(unknown)}: no such guard; the guards are {', '.join(GUARDS)}"
        )
    return names


# ---------------------------------------------------------------------------- coding guards


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


# ---------------------------------------------------------------------------- count guards


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


# ---------------------------------------------------------------------------- population


def _modality_counts(cube: Cube) -> np.ndarray:
    """Tests by (ICB, sex, band, quintile): the modality measures' counts (each test once)."""
    kinds = np.asarray(cube.measure_kinds)
    pick = kinds == "modality"
    counts = cube.counts[..., pick] if pick.any() else cube.counts
    return np.asarray(counts.sum(axis=-1))


def _aligned(cube: Cube, pop: Population) -> np.ndarray:
    return np.asarray(pop.aligned(cube.icb_codes).values)


def check_population_icbs(cube: Cube, pop: Population) -> None:
    """``population-icbs``: ICBs of the cube with tests but no population at all."""
    tests = _modality_counts(cube).reshape(len(cube.icb_codes), -1).sum(axis=1)
    people = _aligned(cube, pop).reshape(len(cube.icb_codes), -1).sum(axis=1)
    missing = np.flatnonzero((tests > 0) & (people <= 0))
    if not len(missing):
        return
    total = int(tests.sum())
    shown = ", ".join(f"{cube.icb_codes[i]} ({int(tests[i]):,} tests)" for i in missing[:10])
    more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
    n = int(tests[missing].sum())
    raise GuardError(
        f"guard population-icbs: the population has no people in {len(missing)} ICB(s) with "
        f"tests: {shown}{more} ({_share(n, total)} of tests); their tests would count in the "
        "national rate but not their population: use a population file covering every ICB of "
        "the lookups (see docs/inputs.md), or --allow population-icbs",
        "population-icbs",
    )


def check_population_strata(cube: Cube, pop: Population, *, share: float = STRATA_SHARE) -> None:
    """``population-strata``: tests in strata (ICB x sex x age band x IMD quintile) whose
    population is zero, above ``share`` of all tests (ICBs with no population at all are
    ``population-icbs``'s).
    """
    from didcore.axes import AGE_BANDS, SEXES

    tests = _modality_counts(cube)
    people = _aligned(cube, pop)
    has_people = people.reshape(len(cube.icb_codes), -1).sum(axis=1) > 0
    bad = (tests > 0) & (people <= 0) & has_people[:, None, None, None]
    n = int(tests[bad].sum())
    total = int(tests.sum())
    if not total or n <= share * total:
        return
    idx = np.unravel_index(int(np.argmax(np.where(bad, tests, -1))), tests.shape)
    i, s, b, q = (int(k) for k in idx)
    raise GuardError(
        f"guard population-strata: {int(bad.sum()):,} strata with tests have no population "
        f"({n:,} tests, {_share(n, total)} of all), e.g. {cube.icb_codes[i]} {SEXES[s]} age "
        f"{AGE_BANDS[b]} IMD quintile {q + 1}: {int(tests[idx]):,} tests, population 0; is the "
        "population file complete (every ICB x sex x age band x IMD quintile)? Or --allow "
        "population-strata",
        "population-strata",
    )


def check_population_year(population_year: str | None, published_year: str | None) -> None:
    """``population-year``: the population's year is unknown, or not the published year."""
    if published_year is None:
        return
    if population_year is None:
        raise GuardError(
            f"guard population-year: the population's year is not known (publishing "
            f"{published_year}): add a year column to the population file or pass "
            f"--population-year {published_year} (API: Population.read(..., year=...)); or "
            "--allow population-year",
            "population-year",
        )
    if population_year != published_year:
        raise GuardError(
            f"guard population-year: the population is for {population_year} but the "
            f"publication is for {published_year}: use the {published_year} population (or "
            "publish its year with --year), or --allow population-year to use it anyway",
            "population-year",
        )


def check_single_year(cube: Any, allow: Iterable[str] | None = None) -> None:
    """``multiple-years``: ``cube`` holds several financial years of tests.

    Trips when :attr:`Cube.year_rows <didcore.Cube.year_rows>` has two or more years each
    holding at least :data:`~didcore.years.MINOR_YEAR_SHARE` (1%) of the largest year's rows
    (fewer are stray dates, as :attr:`YearCubes.minor <didcore.YearCubes.minor>` treats
    them). Rates are tests per resident per year: two years' tests over one year's
    population double every rate, silently. Objects without ``year_rows`` (a plain
    ``CubeLike``), or with it None (unknown: a cube from counts), pass. ``allow`` holding
    ``"multiple-years"`` lets it pass.
    """
    from didcore.years import MINOR_YEAR_SHARE

    if "multiple-years" in check_allow(allow):
        return
    rows = getattr(cube, "year_rows", None)
    if not rows:
        return
    largest = max(rows.values())
    years = {k: n for k, n in rows.items() if n > 0 and n >= MINOR_YEAR_SHARE * largest}
    if len(years) < 2:
        return
    listed = ", ".join(f"{k} ({n:,} rows)" for k, n in years.items())
    raise GuardError(
        f"guard multiple-years: the cube holds {len(years)} financial years, {listed}: a cube "
        "of several financial years over one year's population multiplies every rate: count "
        "with aggregate(..., by_year=True) and standardise one year "
        f"(years[{next(reversed(years))!r}]), or pass allow={{'multiple-years'}} to pool them "
        "(then the population must cover the same years)",
        "multiple-years",
    )


# ---------------------------------------------------------------------------- running guards


def _verdict(name: str, check: Callable[[], None], allow: frozenset[str]) -> Verdict:
    try:
        check()
    except GuardError as exc:
        return Verdict(name, "allowed" if name in allow else "fail", str(exc))
    return Verdict(name, "pass")


def cube_verdicts(
    result: Any,
    lookups: Lookups,
    *,
    columns: Columns | None = None,
    allow: Iterable[str] | None = None,
    thresholds: GuardThresholds | None = None,
) -> list[Verdict]:
    """The extract's guards (codings, exclusions, no measure) on a Cube or YearCubes."""
    from didcore.io import Columns

    cols = columns or Columns()
    th = _thresholds(thresholds)
    names = check_allow(allow)
    profile = _total(result).value_profile or ValueProfile()
    return [
        _verdict(
            "sex-coding",
            lambda: check_sex_coding(
                profile,
                column=cols.sex,
                share=th.coding_share,
                missing_share=th.missing_sex_share,
            ),
            names,
        ),
        _verdict(
            "modality-coding",
            lambda: check_modality_coding(
                profile, lookups, column=cols.modality, share=th.coding_share
            ),
            names,
        ),
        _verdict(
            "exclusions",
            lambda: check_exclusions(result, columns=cols, share=th.exclusion_share),
            names,
        ),
        _verdict(
            "no-measure",
            lambda: check_no_measure(result, lookups, columns=cols, share=th.no_measure_share),
            names,
        ),
        _verdict("empty-measure", lambda: check_empty_measure(result, lookups), names),
    ]


def population_verdicts(
    cube: Cube,
    pop: Population,
    *,
    published_year: str | None = None,
    population_year: str | None = None,
    allow: Iterable[str] | None = None,
    thresholds: GuardThresholds | None = None,
) -> list[Verdict]:
    """The population's guards for the cube of the published year. ``population_year``
    defaults to ``pop.year``.
    """
    th = _thresholds(thresholds)
    names = check_allow(allow)
    year = population_year if population_year is not None else getattr(pop, "year", None)
    return [
        _verdict("population-icbs", lambda: check_population_icbs(cube, pop), names),
        _verdict(
            "population-strata",
            lambda: check_population_strata(cube, pop, share=th.strata_share),
            names,
        ),
        _verdict("population-year", lambda: check_population_year(year, published_year), names),
    ]


def enforce(verdicts: Iterable[Verdict]) -> list[str]:
    """Raise the first failed verdict's :class:`GuardError`; return the allowed ones' lines
    (``"guard NAME allowed: ..."``) for the command line to print and the outputs to record.
    """
    verdicts = list(verdicts)
    for v in verdicts:
        if v.status == "fail":
            raise GuardError(v.message, v.guard)
    return [f"{v.message} (allowed)" for v in verdicts if v.status == "allowed"]


def guard_cube(result: Any, lookups: Lookups, **kwargs: Any) -> list[str]:
    """Run the extract's guards (:func:`cube_verdicts`): raise on a failure, return the
    warning lines of the allowed ones that tripped.
    """
    return enforce(cube_verdicts(result, lookups, **kwargs))


def guard_population(cube: Cube, pop: Population, **kwargs: Any) -> list[str]:
    """Run the population's guards (:func:`population_verdicts`); as :func:`guard_cube`."""
    return enforce(population_verdicts(cube, pop, **kwargs))


def early_guard(
    lookups: Lookups,
    *,
    columns: Columns | None = None,
    allow: Iterable[str] | None = None,
    thresholds: GuardThresholds | None = None,
) -> Callable[[ValueProfile], None]:
    """A hook for ``aggregate(on_first_batch=...)``: the sex and modality coding guards on the
    first batch, with the :data:`EARLY_SHARE` threshold, so that a wrong coding stops the run
    before the rest of the extract is read. Allowed guards are not checked early.
    """
    from didcore.io import Columns

    cols = columns or Columns()
    th = _thresholds(thresholds)
    names = check_allow(allow)

    def check(first: ValueProfile) -> None:
        if "sex-coding" not in names:
            check_sex_coding(
                first, column=cols.sex, share=th.early_share, missing_share=th.missing_sex_share
            )
        if "modality-coding" not in names:
            check_modality_coding(first, lookups, column=cols.modality, share=th.early_share)

    return check


def verdicts_by_name(verdicts: Iterable[Verdict]) -> Mapping[str, Verdict]:
    """Verdicts keyed by guard name."""
    return {v.guard: v for v in verdicts}
