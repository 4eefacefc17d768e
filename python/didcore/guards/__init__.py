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

This package runs the guards (:func:`cube_verdicts`, :func:`population_verdicts`,
:func:`enforce`, :func:`early_guard`); each name of ``__all__`` is importable from here. The
guards live by concern: names, thresholds and verdicts in :mod:`didcore.guards.common`, the
coding guards in :mod:`didcore.guards.coding`, the count guards in
:mod:`didcore.guards.counts`, the population and financial-year guards in
:mod:`didcore.guards.population`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from didcore.errors import GuardError
from didcore.guards.coding import check_modality_coding, check_sex_coding
from didcore.guards.common import (
    CODING_SHARE,
    EARLY_SHARE,
    EMPTY_MEASURE_MIN_RECORDS,
    EXCLUSION_SHARE,
    GUARDS,
    MISSING_SEX_SHARE,
    NO_MEASURE_SHARE,
    STRATA_SHARE,
    GuardThresholds,
    Verdict,
    _thresholds,
    check_allow,
)
from didcore.guards.counts import _total, check_empty_measure, check_exclusions, check_no_measure
from didcore.guards.population import (
    check_population_icbs,
    check_population_strata,
    check_population_year,
    check_single_year,
)
from didcore.profile import ValueProfile

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
