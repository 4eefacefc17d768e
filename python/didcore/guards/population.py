"""The population guards (``population-icbs``, ``population-strata``, ``population-year``)
and ``multiple-years``, the guard on a cube holding several financial years that
:func:`didcore.standardise` and :func:`didcore.rates_ratios` run themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from didcore.errors import GuardError
from didcore.guards.common import STRATA_SHARE, _share, check_allow

if TYPE_CHECKING:
    from didcore.cube import Cube
    from didcore.population import Population


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
