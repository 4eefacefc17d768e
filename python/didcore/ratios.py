"""Rates ratios by sex, deprivation and age, with significance tests (docs/statistics.md).

For each factor ``F`` in {sex, IMD quintile, age} the other two factors form ``G``:

* national rates by ``G``: ``R_g = O_g / P_g`` (sums over ICBs and over ``F``);
* expected counts per level ``f``: ``E_f = sum_g R_g P_{f,g}``;
* standardised rates ``SR_f = O_f / E_f * N`` per 10,000, ``N`` the national rate;
* ratio ``SR_f / SR_base``; bases ``female``, quintile ``1`` (most deprived) and ``0-<45``.

Age is standardised in 5-year bands: ``E`` and ``O`` are computed per 5-year band and then summed
into the broad bands 0-<45 (bands 0-4 .. 40-44), 45-<55, 55-<65, 65-<75 and 75+ before
``SR = O / E * N``. When age is part of ``G`` (for sex and IMD) it is in 5-year bands.

Two tests of each non-base level against the base:

* ``chi2``/``p_value``/``stars``: the publication's Pearson chi-square with one degree of
  freedom on the two standardised rates per 10,000 treated as counts,
  ``chi2 = (r2 - r1)^2 / (r1 + r2)``; stars ``*`` p < 0.05, ``**`` p < 0.01, ``***`` p < 0.001.
  It reproduces every star of the publication's six tables, but it depends on the rate unit:
  a rate is not a count, so the same rates per 100,000 would give a chi2 ten times larger
  (per 1,000 ten times smaller) and different stars. It ignores how many tests lie behind a
  rate: Medical Photography and X-ray rates of the same size get the same chi2.
* ``chi2_counts``/``p_value_counts``: a Wald test on the counts,
  ``z = log((O2/E2) / (O1/E1)) / sqrt(1/O1 + 1/O2)``, ``chi2_counts = z^2``, with the 95%
  confidence interval ``exp(log ratio +/- 1.96 sqrt(1/O1 + 1/O2))`` in ``ratio_lower_95`` and
  ``ratio_upper_95``. It does not depend on the unit and uses the real sample sizes; with the
  millions of tests in a national year almost every difference is significant, which says
  that the differences are real, not that they are large.

Base rows have ratio 1 and null tests (``stars`` is ``""``). See ``docs/statistics.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from didcore import stats
from didcore.axes import AGE_BANDS, BROAD_AGE_BANDS, BROAD_AGE_OF_BAND, IMD_QUINTILES, SEXES
from didcore.population import Population
from didcore.standardise import (
    N_STRATA,
    RATE_UNIT,
    CubeLike,
    check_zero_population,
    cube_counts,
    describe_stratum,
    expected_counts,
    population_values,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from numpy.typing import NDArray

__all__ = ["BROAD_AGE_BANDS", "FACTORS", "RATIO_COLUMNS", "rates_ratios"]

#: The factors, in output order.
FACTORS: tuple[str, ...] = ("sex", "imd_quintile", "age")


def _factor_layout(factor: str) -> tuple[int, tuple[str, ...], NDArray[np.int64]]:
    """Axis of the factor in ``(sex, age band, IMD)``, its output levels, unit -> level index."""
    if factor == "sex":
        # base first: female (cube index 1) is level 0, male (cube index 0) level 1
        return 0, ("female", "male"), np.array([1, 0], dtype=np.int64)
    if factor == "imd_quintile":
        return 2, tuple(str(q) for q in IMD_QUINTILES), np.arange(len(IMD_QUINTILES))
    if factor == "age":
        return 1, BROAD_AGE_BANDS, np.asarray(BROAD_AGE_OF_BAND, dtype=np.int64)
    raise ValueError(f"unknown factor {factor!r}")


def _describe_other_factors(factor: str) -> Callable[[int], str]:
    """Name a standardisation stratum of ``factor``: a cell of the other two factors."""
    dims: list[tuple[str, Sequence[object]]] = [
        ("sex", SEXES),
        ("age band", AGE_BANDS),
        ("IMD quintile", IMD_QUINTILES),
    ]
    del dims[_factor_layout(factor)[0]]

    def describe(s: int) -> str:
        index = np.unravel_index(s, tuple(len(values) for _, values in dims))
        parts = zip(dims, index, strict=True)
        return ", ".join(f"{name} {values[int(i)]}" for (name, values), i in parts)

    return describe


def rates_ratios(
    cube: CubeLike,
    population: Population | NDArray[np.float64],
    *,
    conf: float = 0.95,
    allow: Iterable[str] | None = None,
) -> pa.Table:
    """Rates ratios for sex, IMD quintile and age, as in section 3 of the publication.

    Args:
        cube: a :class:`didcore.Cube` (``counts``, ``icb_codes``, ``measures``,
            ``measure_kinds``).
        population: a :class:`~didcore.Population` covering the cube's ICBs, or an array
            ``(n_icb, 2, 19, 5)`` in cube order.
        conf: confidence level of ``ratio_lower_95``/``ratio_upper_95`` (the names keep 95).
        allow: guard names to let pass; ``{"multiple-years"}`` pools a cube of several
            financial years (then the population must cover the same years).

    Returns:
        A table with one row per factor, measure and level (factor-major, then measure in
        cube order, then level with the base first): ``factor`` (``sex``, ``imd_quintile``,
        ``age``), ``level`` (``female``/``male``, ``1``..``5``, ``0-<45`` .. ``75+``),
        ``measure``, ``kind``, ``observed``, ``expected``, ``standardised_rate`` (per 10,000),
        ``ratio``, ``chi2``, ``p_value``, ``stars``, ``chi2_counts``, ``p_value_counts``,
        ``ratio_lower_95``, ``ratio_upper_95``. Undefined values are null.

    Raises:
        GuardError: ``multiple-years``: the cube holds several financial years
            (:func:`didcore.guards.check_single_year`); count with
            ``aggregate(..., by_year=True)`` and take one year.
        ZeroPopulationError: tests observed in a stratum with no national population.
        MissingExtraError: scipy is not installed (``pip install "didcore[stats]"``).
    """
    from didcore.extras import require
    from didcore.guards import check_single_year

    check_single_year(cube, allow)
    require("stats", "didcore.rates_ratios")
    counts = cube_counts(cube)
    pop = population_values(population, cube.icb_codes)
    measures, kinds = tuple(cube.measures), tuple(cube.measure_kinds)
    n_measure = len(measures)
    check_zero_population(
        counts.reshape(-1, N_STRATA, n_measure).sum(axis=0).astype(np.float64),
        pop.reshape(-1, N_STRATA).sum(axis=0),
        measures,
        describe_stratum,
    )
    # national counts and people by (sex, age band, IMD)
    obs_nat = counts.sum(axis=0)  # (2, 19, 5, n_measure), int64
    pop_nat = pop.sum(axis=0)  # (2, 19, 5)
    national_rate = stats.rate(obs_nat.sum(axis=(0, 1, 2)), pop_nat.sum())  # per 10,000

    rows: dict[str, list[Any]] = {k: [] for k in RATIO_COLUMNS}
    for factor in FACTORS:
        axis, levels, level_of_unit = _factor_layout(factor)
        n_units, n_levels = obs_nat.shape[axis], len(levels)
        units_obs = np.moveaxis(obs_nat, axis, 0)  # (units, G..., n_measure)
        units_pop = np.moveaxis(pop_nat, axis, 0)  # (units, G...)
        expected, _ = expected_counts(
            units_obs.reshape(n_units, -1, n_measure).astype(np.float64),
            units_pop.reshape(n_units, -1),
            level_of_unit,
            n_levels,
            describe=_describe_other_factors(factor),
            measures=measures,
        )
        # exact integer observed counts per level
        observed = np.zeros((n_levels, n_measure), dtype=np.int64)
        np.add.at(observed, level_of_unit, units_obs.reshape(n_units, -1, n_measure).sum(axis=1))
        sr = stats.standardised_rate(observed, expected, national_rate)  # (levels, measure)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(sr[0] > 0, sr / np.where(sr[0] > 0, sr[0], 1.0), np.nan)
        chi2, p = stats.published_chi2_test(sr[0], sr)
        chi2_counts, p_counts = stats.ratio_test_counts(
            observed[0], expected[0], observed, expected
        )
        ci_lo, ci_hi = stats.ratio_confidence_interval(
            observed[0], expected[0], observed, expected, conf
        )
        base = np.zeros((n_levels, 1), dtype=bool)
        base[0] = True
        nulls = np.broadcast_to(base, (n_levels, n_measure))
        tests = {
            "chi2": chi2,
            "p_value": p,
            "chi2_counts": chi2_counts,
            "p_value_counts": p_counts,
            "ratio_lower_95": ci_lo,
            "ratio_upper_95": ci_hi,
        }
        tests = {k: np.where(nulls, np.nan, v) for k, v in tests.items()}
        ratio = np.where(nulls, 1.0, ratio)
        stars = np.where(nulls, "", stats.significance_stars(tests["p_value"]))
        for m in range(n_measure):
            for f in range(n_levels):
                rows["factor"].append(factor)
                rows["level"].append(levels[f])
                rows["measure"].append(measures[m])
                rows["kind"].append(kinds[m])
                rows["observed"].append(int(observed[f, m]))
                rows["expected"].append(expected[f, m])
                rows["standardised_rate"].append(sr[f, m])
                rows["ratio"].append(ratio[f, m])
                rows["stars"].append(str(stars[f, m]))
                for k, v in tests.items():
                    rows[k].append(v[f, m])
    return _table(rows)


#: Columns of the table :func:`rates_ratios` returns, in order.
RATIO_COLUMNS: tuple[str, ...] = (
    "factor",
    "level",
    "measure",
    "kind",
    "observed",
    "expected",
    "standardised_rate",
    "ratio",
    "chi2",
    "p_value",
    "stars",
    "chi2_counts",
    "p_value_counts",
    "ratio_lower_95",
    "ratio_upper_95",
)


def _table(rows: dict[str, list[Any]]) -> pa.Table:
    import pyarrow as pa

    units = {
        "observed": "tests",
        "expected": "tests",
        "standardised_rate": RATE_UNIT,
        "ratio": "SR / SR of the base level",
        "chi2": "published Pearson chi-square (1 df) on rates per 10,000",
        "chi2_counts": "Wald chi-square (1 df) on log(SR2/SR1), variance 1/O1 + 1/O2",
        "ratio_lower_95": "SR / SR of the base level",
        "ratio_upper_95": "SR / SR of the base level",
    }
    fields, arrays = [], []
    for name in RATIO_COLUMNS:
        unit = units.get(name)
        meta = {"unit": unit} if unit else None
        if name in ("factor", "level", "measure", "kind", "stars"):
            typ: pa.DataType = pa.string()
            array = pa.array(rows[name], typ)
        elif name == "observed":
            typ = pa.int64()
            array = pa.array(rows[name], typ)
        else:
            typ = pa.float64()
            array = pa.array(np.asarray(rows[name], dtype=np.float64), typ, from_pandas=True)
        fields.append(pa.field(name, typ, metadata=meta))
        arrays.append(array)
    metadata = {
        "didcore.table": "rates_ratios",
        "didcore.rate_unit": RATE_UNIT,
        "didcore.bases": "sex female; imd_quintile 1 (most deprived); age 0-<45",
        "didcore.age": "standardised in 5-year bands, reported in broad bands",
        "didcore.tests": (
            "chi2: (r2 - r1)^2 / (r1 + r2) on standardised rates per 10,000 (as published; "
            "depends on the rate unit); chi2_counts: log-ratio Wald test on the counts"
        ),
    }
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=metadata))
