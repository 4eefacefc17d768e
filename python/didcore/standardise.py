"""Indirectly standardised ICB rates, confidence limits, funnels and DSRs (docs/statistics.md).

For a measure ``m`` and stratum ``s = (sex, age band, IMD quintile)`` (190 strata):

* national stratum rate ``R_s = O_s / P_s`` (sums over all ICBs; tests per person);
* national rate ``N = sum O / sum P * 10,000``;
* expected count of ICB ``i``: ``E_i = sum_s R_s P_{i,s}`` (computed by the Rust core,
  ``didcore._didcore.expected_counts``); invariant ``sum_i E_i = sum_i O_i``;
* ratio ``O_i / E_i`` and standardised rate ``SR_i = O_i / E_i * N`` per 10,000;
* confidence limits of ``SR_i`` at 95% and 99.8%: exact Poisson below 10 observed tests,
  Byar's from 10 (:func:`didcore.stats.standardised_rate_limits`);
* crude rate ``O_i / P_i * 10,000`` and whether ``|SR_i - crude_i| <= 0.1 crude_i``;
* funnel-plot flags for ``O_i / E_i`` (:func:`didcore.stats.funnel_limits`), optionally
  adjusted for overdispersion (:func:`didcore.stats.overdispersion`);
* directly standardised rates with the 2013 European Standard Population by age and sex
  (:func:`didcore.stats.dsr`), which, unlike ``SR_i``, compare ICBs with each other.

Undefined values (an ICB with no population, a measure nobody had, a suppressed DSR) are
null in the Arrow tables, never NaN. ``docs/statistics.md`` has every formula and convention.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from didcore import stats
from didcore.axes import AGE_BANDS, IMD_QUINTILES, N_STRATA, SEXES
from didcore.errors import InputError, InternalError, PopulationError, ZeroPopulationError
from didcore.population import Population

if TYPE_CHECKING:
    import pyarrow as pa
    from numpy.typing import ArrayLike, NDArray

__all__ = ["RATE_UNIT", "StandardisedRates", "standardise"]

#: Unit of every rate column (written into the tables' metadata too).
RATE_UNIT = "per 10,000 population"
#: The two confidence levels of the outputs: column suffixes ``_95`` and ``_998``.
CONFIDENCE_LEVELS: tuple[tuple[str, float], ...] = (("95", 0.95), ("998", 0.998))
_MULT = stats.RATE_MULTIPLIER
_SHOW = 5  # strata quoted in an error message
# Relative tolerance of the "within 10% of crude" and "within one SD" comparisons, so that
# values equal up to floating-point rounding (e.g. identical ICBs, SD ~ 1e-15) count as within.
_TOL = 1e-9


class CubeLike(Protocol):
    """What the statistics need of a :class:`didcore.Cube`: read-only attributes (properties
    here), so a frozen ``Cube`` and any object with plain attributes of these types both fit.
    """

    @property
    def counts(self) -> NDArray[np.int64]: ...
    @property
    def icb_codes(self) -> tuple[str, ...]: ...
    @property
    def measures(self) -> tuple[str, ...]: ...
    @property
    def measure_kinds(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class StandardisedRates:
    """The statistics of docs/statistics.md for every ICB and measure, as Arrow tables.

    Attributes:
        national: one row per measure: ``measure``, ``kind``, ``observed``, ``population``,
            ``rate_per_10000``.
        icb: one row per measure and ICB (measure-major, ICBs in cube order): ``icb_code``,
            ``measure``, ``kind``, ``observed``, ``population``, ``crude_rate``, ``expected``,
            ``ratio`` (O/E), ``standardised_rate``, ``sr_lower_95``, ``sr_upper_95``,
            ``sr_lower_998``, ``sr_upper_998``, ``within_10pct_of_crude``, ``funnel_95``,
            ``funnel_998`` (``"high"``, ``"low"`` or ``"within"``), ``dsr``,
            ``dsr_lower_95``, ``dsr_upper_95``. Rates per 10,000.
        summary: one row per measure: ``measure``, ``national_rate``, ``mean_sr``, ``sd_sr``
            (sample SD, ``ddof=1``, as Excel's STDEV), ``lower_1sd``, ``upper_1sd``,
            ``share_within_1sd``, ``share_within_10pct_of_crude`` (fractions 0-1), ``n_icbs``.
        funnel: the funnel limits of each measure on a grid of expected counts, with the
            overdispersion parameters: ``measure``, ``kind``, ``expected``, ``lower_95``,
            ``upper_95``, ``lower_998``, ``upper_998`` (ratio scale, O/E; multiply by
            ``national_rate`` to plot rates), ``national_rate``, ``method`` (``"poisson"``,
            ``"winsorise"`` or ``"truncate"``), ``scale`` (null for ``"poisson"``), ``phi``,
            ``tau2`` (the one the limits use), ``n_units``, ``limits`` (``"didcore"`` or
            ``"funnelplotr"``, see ``funnel_method``). :func:`didcore.stats.funnel_limits` with
            ``tau2``, ``scale`` and ``method=limits`` gives the limits at any other expected
            count.
    """

    national: pa.Table
    icb: pa.Table
    summary: pa.Table
    funnel: pa.Table

    def __repr__(self) -> str:
        """One line: measures, ICBs, how many ICBs lie outside the 99.8% funnel limits."""
        return (
            f"<didcore.StandardisedRates {self.national.num_rows} measures x "
            f"{self._n_icbs()} ICBs; {self._outside('998')} ICB-measure pairs outside the "
            "99.8% funnel limits; tables national, icb, summary, funnel>"
        )

    def _n_icbs(self) -> int:
        return self.icb.num_rows // max(self.national.num_rows, 1)

    def _outside(self, level: str) -> int:
        import pyarrow.compute as pc

        flags = self.icb.column(f"funnel_{level}")
        return int(pc.sum(pc.not_equal(flags, "within")).as_py() or 0)

    def _repr_html_(self) -> str:
        """A notebook summary: per measure, the national rate and the ICBs outside the funnel
        limits (high/low at 99.8%).
        """
        import pyarrow.compute as pc

        from didcore._display import html_table

        rows: list[tuple[str, object]] = [
            ("ICBs", self._n_icbs()),
            ("ICB-measure pairs outside the 95% limits", self._outside("95")),
            ("ICB-measure pairs outside the 99.8% limits", self._outside("998")),
        ]
        rates = self.national.column("rate_per_10000").to_pylist()
        for measure, rate in zip(self.national.column("measure").to_pylist(), rates, strict=True):
            mine = self.icb.filter(pc.equal(self.icb.column("measure"), measure))
            flags = mine.column("funnel_998").to_pylist()
            rows.append(
                (
                    str(measure),
                    f"{rate:,.1f} per 10,000; 99.8%: {flags.count('high')} high, "
                    f"{flags.count('low')} low",
                )
            )
        return html_table("didcore.StandardisedRates", rows)


def standardise(
    cube: CubeLike,
    population: Population | NDArray[np.float64],
    *,
    overdispersion: Literal["winsorise", "truncate"] | None = None,
    funnel_scale: Literal["sqrt", "log"] = "sqrt",
    trim: float = 0.1,
    dsr_min_count: float = 10,
    funnel_points: int = 100,
    allow: Iterable[str] | None = None,
    reference: tuple[ArrayLike, ArrayLike] | None = None,
    funnel_method: Literal["didcore", "funnelplotr"] = "didcore",
) -> StandardisedRates:
    """Indirectly standardise every measure of ``cube`` by sex, age band and IMD quintile.

    Args:
        cube: a :class:`didcore.Cube` (or anything with its ``counts``, ``icb_codes``,
            ``measures`` and ``measure_kinds``).
        population: a :class:`~didcore.Population` covering the cube's ICBs (reordered to the
            cube's order), or a float64 array of shape ``(n_icb, 2, 19, 5)`` in cube order.
        overdispersion: ``None`` for exact Poisson funnel limits; ``"winsorise"``
            (Spiegelhalter 2005, recommended) or ``"truncate"`` (the SHMI method) to estimate
            overdispersion per measure and widen the limits when ``n phi > n - 1``.
        funnel_scale: z-score scale of the overdispersion adjustment, ``"sqrt"`` or ``"log"``.
        trim: fraction winsorised or truncated at each tail (0.1).
        dsr_min_count: DSRs of ICBs with fewer tests are suppressed (PHE convention, 10).
        funnel_points: grid points per measure in the ``funnel`` table.
        allow: guard names to let pass; ``{"multiple-years"}`` pools a cube of several
            financial years (then the population must cover the same years).
        reference: ``None`` (default) to standardise against the cube's own national stratum
            rates; or ``(ref_observed, ref_population)``, an external reference population by
            stratum (PHEindicatormethods ``calculate_ISRate`` with ``x_ref``, ``n_ref``):
            ``ref_observed`` tests of shape ``(2, 19, 5, n_measure)`` (or
            ``(190, n_measure)``, strata in sex, age band, IMD order) and ``ref_population``
            people ``(2, 19, 5)`` (or ``(190,)``). Then ``E_i = sum_s x_ref_s / n_ref_s
            P_{i,s}`` and ``N`` (the ``national_rate`` of the summary and funnel tables and
            the SR's multiplier) is the reference's ``sum x_ref / sum n_ref`` per 10,000; the
            ``national`` table still describes the cube's own totals. ``sum_i E_i = sum_i
            O_i`` no longer holds (docs/statistics.md, section 3.1).
        funnel_method: ``"didcore"`` (default, docs/statistics.md 5.1-5.2) or
            ``"funnelplotr"``: FunnelPlotR 0.6.0's limits, to reproduce an existing FunnelPlotR
            chart (:func:`didcore.stats.funnelplotr_overdispersion`; its "CQC" method for
            ``funnel_scale="sqrt"`` with ``"winsorise"``, "SHMI" for ``"log"`` with
            ``"truncate"``, expected counts rounded to 2 decimals; unsquared CQC limits,
            z 1.959964 / 3.090232, unadjusted chi-square limits when ``phi <= 1``). The icb and
            funnel tables say so (``limits`` column, ``funnel`` metadata).

    Raises:
        GuardError: ``multiple-years``: the cube holds several financial years
            (:attr:`didcore.Cube.year_rows`; see :func:`didcore.guards.check_single_year`):
            their tests over one year's population would multiply every rate. Count with
            ``aggregate(..., by_year=True)`` and standardise one year.
        ZeroPopulationError: tests observed in a stratum with no national population (the
            message names the sex, age band, IMD quintile and measure).
        PopulationError: the population does not cover the cube's ICBs.
        MissingExtraError: scipy is not installed (``pip install "didcore[stats]"``).
    """
    from didcore.extras import require
    from didcore.guards import check_single_year

    check_single_year(cube, allow)
    require("stats", "didcore.standardise")
    if overdispersion not in (None, "winsorise", "truncate"):
        raise ValueError(
            f"overdispersion must be None, 'winsorise' or 'truncate', not {overdispersion!r}"
        )
    if funnel_scale not in ("sqrt", "log"):
        raise ValueError(f"funnel_scale must be 'sqrt' or 'log', not {funnel_scale!r}")
    _check_funnel_method(funnel_method, overdispersion, funnel_scale)
    counts = cube_counts(cube)
    pop = population_values(population, cube.icb_codes)
    n_icb, n_measure = counts.shape[0], counts.shape[-1]
    measures, kinds = tuple(cube.measures), tuple(cube.measure_kinds)

    observed_strata = counts.reshape(n_icb, N_STRATA, n_measure).astype(np.float64)
    pop_strata = pop.reshape(n_icb, N_STRATA)
    observed = counts.sum(axis=(1, 2, 3))  # (n_icb, n_measure), exact int64
    icb_pop = pop_strata.sum(axis=1)  # (n_icb,)
    total_observed = observed.sum(axis=0)
    total_pop = float(pop_strata.sum())
    if reference is None:
        check_zero_population(
            observed_strata.sum(axis=0), pop_strata.sum(axis=0), measures, describe_stratum
        )
        expected, _ = expected_counts(
            observed_strata,
            pop_strata,
            np.arange(n_icb, dtype=np.int64),
            n_icb,
            describe=describe_stratum,
            measures=measures,
        )
        national_rate = stats.rate(total_observed, total_pop)  # (n_measure,), per 10,000
    else:
        ref_rates, national_rate = _reference_rates(reference, n_measure)
        expected = stats.expected_count(ref_rates[None], pop_strata[:, :, None], axis=1)

    ratio = stats.standardised_ratio(observed, expected)
    sr = stats.standardised_rate(observed, expected, national_rate)  # per 10,000
    crude = stats.rate(observed, icb_pop[:, None])
    limits = {
        label: stats.standardised_rate_limits(observed, expected, national_rate, conf)
        for label, conf in CONFIDENCE_LEVELS
    }
    within_10 = np.abs(sr - crude) <= 0.1 * crude * (1 + _TOL)
    within_10_defined = np.isfinite(sr) & np.isfinite(crude)
    within_10_or_null = within_10.astype(object)  # True / False / None (undefined)
    within_10_or_null[~within_10_defined] = None

    # DSR by age and sex: the ESP has no deprivation dimension, so IMD is summed within ICBs.
    dsr_observed = counts.sum(axis=3).reshape(n_icb, -1, n_measure).transpose(0, 2, 1)
    dsr_pop = pop.sum(axis=3).reshape(n_icb, 1, -1)
    dsr_weights = np.tile(stats.ESP2013, len(SEXES))
    dsr = stats.dsr(dsr_observed, dsr_pop, dsr_weights, conf=0.95, min_count=dsr_min_count)

    funnel_flags: dict[str, NDArray[np.object_]] = {}
    for label, _ in CONFIDENCE_LEVELS:
        funnel_flags[label] = np.empty((n_icb, n_measure), dtype=object)
    grids: list[dict[str, Any]] = []
    for m in range(n_measure):
        od = _overdispersion(observed[:, m], expected[:, m], overdispersion, funnel_scale, trim,
                             funnel_method)  # fmt: skip
        tau2 = od.limit_tau2 if od is not None else 0.0
        # FunnelPlotR's SHMI method evaluates its limits at E rounded to 2 decimals
        at = np.round(expected[:, m], 2) if _shmi_rounding(funnel_method, funnel_scale) else None
        for label, conf in CONFIDENCE_LEVELS:
            lo, hi = stats.funnel_limits(
                expected[:, m] if at is None else at,
                conf,
                tau2=tau2,
                scale=funnel_scale,
                method=funnel_method,
            )
            funnel_flags[label][:, m] = stats.funnel_flags(ratio[:, m], lo, hi)
        grids.append(
            _funnel_grid(expected[:, m], od, tau2, funnel_scale, funnel_points, funnel_method)
        )

    national = _national_table(measures, kinds, total_observed, total_pop, national_rate)
    icb = _icb_table(
        cube.icb_codes,
        measures,
        kinds,
        {
            "observed": observed,
            "population": np.broadcast_to(icb_pop[:, None], observed.shape),
            "crude_rate": crude,
            "expected": expected,
            "ratio": ratio,
            "standardised_rate": sr,
            "sr_lower_95": limits["95"][0],
            "sr_upper_95": limits["95"][1],
            "sr_lower_998": limits["998"][0],
            "sr_upper_998": limits["998"][1],
            "within_10pct_of_crude": within_10_or_null,
            "funnel_95": funnel_flags["95"],
            "funnel_998": funnel_flags["998"],
            "dsr": dsr.value,
            "dsr_lower_95": dsr.lower,
            "dsr_upper_95": dsr.upper,
        },
        overdispersion,
        funnel_scale,
        funnel_method,
    )
    summary = _summary_table(measures, national_rate, sr, within_10, within_10_defined)
    funnel = _funnel_table(measures, kinds, national_rate, grids)
    return StandardisedRates(national=national, icb=icb, summary=summary, funnel=funnel)


def _check_funnel_method(method: str, overdispersion: str | None, scale: str) -> None:
    """``funnel_method`` is known, and FunnelPlotR's pairing of scale and robustness holds."""
    if method not in ("didcore", "funnelplotr"):
        raise InputError(f"funnel_method: 'didcore' or 'funnelplotr', not {method!r}")
    if method == "funnelplotr" and overdispersion is not None:
        pairs = {"winsorise": "sqrt", "truncate": "log"}
        if pairs[overdispersion] != scale:
            raise InputError(
                f"funnel_method 'funnelplotr': FunnelPlotR winsorises on the sqrt scale (its "
                f"CQC method) and truncates on the log scale (SHMI); {overdispersion!r} with "
                f"funnel_scale {scale!r} is neither: use overdispersion="
                f"{'truncate' if scale == 'log' else 'winsorise'!r}"
            )


def _shmi_rounding(method: str, scale: str) -> bool:
    """FunnelPlotR (SHMI_rounding = TRUE) rounds expected counts to 2 decimals on the log scale."""
    return method == "funnelplotr" and scale == "log"


def _overdispersion(
    observed: NDArray[Any],
    expected: NDArray[np.float64],
    overdispersion: str | None,
    scale: Literal["sqrt", "log"],
    trim: float,
    method: str,
) -> stats.Overdispersion | None:
    """One measure's overdispersion estimate, didcore's or FunnelPlotR's; None for Poisson."""
    if overdispersion is None:
        return None
    if method == "funnelplotr":
        return stats.funnelplotr_overdispersion(
            observed, expected, sr_method="CQC" if scale == "sqrt" else "SHMI", trim=trim
        )
    return stats.overdispersion(
        observed,
        expected,
        scale=scale,
        method=overdispersion,  # type: ignore[arg-type]
        trim=trim,
    )


# --------------------------------------------------------------------------------------------
# inputs


def cube_counts(cube: CubeLike) -> NDArray[np.int64]:
    """Return the cube's int64 counts ``(n_icb, 2, 19, 5, n_measure)``, checked against its axes."""
    counts = np.asarray(cube.counts)
    shape = (len(cube.icb_codes), len(SEXES), len(AGE_BANDS), len(IMD_QUINTILES))
    if counts.ndim != 5 or counts.shape[:4] != shape or counts.shape[4] != len(cube.measures):
        raise InternalError(
            f"cube counts have shape {counts.shape}, expected {(*shape, len(cube.measures))}"
        )
    if len(cube.measure_kinds) != len(cube.measures):
        raise InternalError("the cube has a different number of measures and measure kinds")
    if counts.size and counts.min() < 0:
        raise InternalError("the cube has negative counts")
    return counts.astype(np.int64, copy=False)


def population_values(
    population: Population | NDArray[np.float64], icb_codes: Sequence[str]
) -> NDArray[np.float64]:
    """Return the population array ``(n_icb, 2, 19, 5)`` aligned to ``icb_codes``.

    Raises:
        PopulationError: a :class:`Population` lacks some of ``icb_codes``, or an array has
            the wrong shape.
    """
    if isinstance(population, Population):
        return population.aligned(icb_codes).values
    values = np.asarray(population, dtype=np.float64)
    shape = (len(icb_codes), len(SEXES), len(AGE_BANDS), len(IMD_QUINTILES))
    if values.shape != shape:
        raise PopulationError(f"population array has shape {values.shape}; expected {shape}")
    return Population(values, tuple(icb_codes)).values


def describe_stratum(s: int) -> str:
    """Name the cube stratum with flat index ``s`` (sex-major, then age band, then IMD)."""
    sex, band, quintile = np.unravel_index(s, (len(SEXES), len(AGE_BANDS), len(IMD_QUINTILES)))
    return f"sex {SEXES[sex]}, age band {AGE_BANDS[band]}, IMD quintile {IMD_QUINTILES[quintile]}"


def check_zero_population(
    observed: NDArray[np.float64],
    population: NDArray[np.float64],
    measures: Sequence[str],
    describe: Callable[[int], str],
) -> None:
    """Raise :class:`ZeroPopulationError` for strata with tests but no national population.

    Args:
        observed: national observed counts ``(n_strata, n_measure)``.
        population: national population ``(n_strata,)``.
        measures: measure names, for the message.
        describe: ``describe(stratum_index) -> str`` naming a stratum.
    """
    bad = (observed > 0) & (population <= 0)[:, None]
    if not bad.any():
        return
    strata, meas = np.nonzero(bad)
    shown = "; ".join(
        f"{describe(int(s))}: {observed[s, m]:,.0f} {measures[m]!r} tests"
        for s, m in zip(strata[:_SHOW], meas[:_SHOW], strict=True)
    )
    more = f" (and {len(strata) - _SHOW} more)" if len(strata) > _SHOW else ""
    raise ZeroPopulationError(
        f"tests were observed in {len(np.unique(strata))} stratum/strata whose national "
        f"population is zero: {shown}{more}; the population file must cover every sex, age "
        "band and IMD quintile in which tests occur (check its age bands and IMD quintiles)"
    )


def expected_counts(
    observed: NDArray[np.float64],
    population: NDArray[np.float64],
    groups: NDArray[np.int64],
    n_groups: int,
    *,
    describe: Callable[[int], str] | None = None,
    measures: Sequence[str] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Expected and observed counts per group, computed by the Rust core.

    ``observed`` is ``(n_units, n_strata, n_measure)``, ``population`` ``(n_units, n_strata)``,
    ``groups`` ``(n_units,)`` with values in ``0..n_groups-1``. With
    ``R[s, m] = sum_u O[u, s, m] / sum_u P[u, s]`` (0 where both are 0),
    ``E[g, m] = sum_{u in g} sum_s R[s, m] P[u, s]`` and ``O[g, m] = sum_{u in g, s} O[u, s, m]``
    (the formulas of :func:`didcore.stats.stratum_rates` and :func:`didcore.stats.expected_count`,
    which :func:`_expected_counts_numpy` applies; the Rust core is held equal to it).
    Returns ``(E, O)``, each ``(n_groups, n_measure)``.

    Raises:
        ZeroPopulationError: a stratum has tests but no population; with ``describe`` (stratum
            index -> name) and ``measures`` the message names them. (Callers check first with
            :func:`check_zero_population`; this is the Rust core's own backstop.)
    """
    try:
        from didcore._didcore import expected_counts as rust_expected_counts
    except ImportError as exc:
        raise InternalError(
            "didcore's compiled core (didcore._didcore) is missing: reinstall didcore with pip, "
            "or build it with `maturin develop --release` in a source checkout"
        ) from exc
    _, n_strata, n_measure = observed.shape
    try:
        obs_flat, exp_flat = rust_expected_counts(
            np.ascontiguousarray(observed, dtype=np.float64).ravel(),
            np.ascontiguousarray(population, dtype=np.float64).ravel(),
            np.ascontiguousarray(groups, dtype=np.int64),
            n_strata,
            n_measure,
            n_groups,
        )
    except ZeroPopulationError as exc:
        # the core raises (message, stratum index, measure index, observed count)
        if describe is None or measures is None or len(exc.args) < 4:
            raise
        _, stratum, measure, count = exc.args[:4]
        raise ZeroPopulationError(
            f"tests were observed in a stratum whose national population is zero: "
            f"{describe(int(stratum))}: {float(count):,.0f} {measures[int(measure)]!r} tests"
        ) from exc
    shape = (n_groups, n_measure)
    return np.asarray(exp_flat).reshape(shape), np.asarray(obs_flat).reshape(shape)


def _expected_counts_numpy(
    observed: NDArray[np.float64],
    population: NDArray[np.float64],
    groups: NDArray[np.int64],
    n_groups: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Vectorised numpy twin of :func:`expected_counts` (same contract), for cross-checks."""
    o_nat = observed.sum(axis=0)  # (n_strata, n_measure)
    p_nat = population.sum(axis=0)  # (n_strata,)
    bad = (o_nat > 0) & (p_nat <= 0)[:, None]
    if bad.any():
        s, m = (int(v[0]) for v in np.nonzero(bad))
        raise ZeroPopulationError(
            f"stratum {s} has {o_nat[s, m]} observed tests for measure {m} but zero population",
            s,
            m,
            float(o_nat[s, m]),
        )
    rate = stats.stratum_rates(o_nat, p_nat[:, None])  # (n_strata, n_measure), per person
    one_hot = np.zeros((n_groups, len(groups)))
    one_hot[groups, np.arange(len(groups))] = 1.0
    e_units = stats.expected_count(rate[None], population[:, :, None], axis=1)  # (units, measure)
    return one_hot @ e_units, one_hot @ observed.sum(axis=1)


def _reference_rates(
    reference: tuple[ArrayLike, ArrayLike], n_measure: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Stratum rates ``x_ref / n_ref`` ``(190, n_measure)`` and the crude rate per 10,000.

    A stratum with no reference people and no reference tests has rate 0 (as
    :func:`didcore.stats.stratum_rates`); tests without people are an ``InputError``.
    """
    if not (isinstance(reference, tuple) and len(reference) == 2):
        raise InputError("reference: give a pair (ref_observed, ref_population), or None")
    x_ref = stats._numeric(reference[0], "reference ref_observed")
    n_ref = stats._numeric(reference[1], "reference ref_population")
    if x_ref.size != N_STRATA * n_measure or x_ref.shape[-1] != n_measure:
        raise InputError(
            f"reference ref_observed: shape {x_ref.shape}, expected (2, 19, 5, {n_measure}) or "
            f"({N_STRATA}, {n_measure}): tests by sex, age band, IMD quintile and measure"
        )
    if n_ref.size != N_STRATA:
        raise InputError(
            f"reference ref_population: shape {n_ref.shape}, expected (2, 19, 5) or "
            f"({N_STRATA},): people by sex, age band and IMD quintile"
        )
    x_ref = x_ref.reshape(N_STRATA, n_measure)
    n_ref = n_ref.reshape(N_STRATA)
    stats._check_nonnegative(x_ref, "reference ref_observed")
    stats._check_nonnegative(n_ref, "reference ref_population")
    orphan = (n_ref <= 0)[:, None] & (x_ref > 0)
    if orphan.any():
        s, m = (int(v[0]) for v in np.nonzero(orphan))
        raise InputError(
            f"reference ref_population: {describe_stratum(s)} has 0 people but "
            f"{x_ref[s, m]:,.0f} reference tests (measure {m}); "
            f"{int(orphan.any(axis=1).sum())} strata are affected"
        )
    if not n_ref.sum() > 0:
        raise InputError("reference ref_population: the reference has no people")
    rates = stats.stratum_rates(x_ref, n_ref[:, None])
    return rates, stats.rate(x_ref.sum(axis=0), float(n_ref.sum()))


# --------------------------------------------------------------------------------------------
# outputs


def _field(name: str, typ: pa.DataType, unit: str | None = None) -> pa.Field:
    import pyarrow as pa

    return pa.field(name, typ, metadata={"unit": unit} if unit else None)


def _metadata(table: str, **extra: str) -> dict[str, str]:
    return {
        "didcore.table": table,
        "didcore.rate_unit": RATE_UNIT,
        "didcore.method": "indirect standardisation by sex x 5-year age band x IMD quintile",
        **{f"didcore.{k}": v for k, v in extra.items()},
    }


def _float_array(values: NDArray[Any]) -> pa.Array:
    """Float column with NaN (undefined) as null."""
    import pyarrow as pa

    return pa.array(np.asarray(values, dtype=np.float64), pa.float64(), from_pandas=True)


def _national_table(
    measures: tuple[str, ...],
    kinds: tuple[str, ...],
    observed: NDArray[np.int64],
    population: float,
    rate: NDArray[np.float64],
) -> pa.Table:
    import pyarrow as pa

    schema = pa.schema(
        [
            _field("measure", pa.string()),
            _field("kind", pa.string()),
            _field("observed", pa.int64(), "tests"),
            _field("population", pa.float64(), "people"),
            _field("rate_per_10000", pa.float64(), RATE_UNIT),
        ],
        metadata=_metadata("national"),
    )
    return pa.Table.from_arrays(
        [
            pa.array(measures, pa.string()),
            pa.array(kinds, pa.string()),
            pa.array(observed, pa.int64()),
            pa.array(np.full(len(measures), population), pa.float64()),
            _float_array(rate),
        ],
        schema=schema,
    )


def _icb_table(
    icb_codes: Sequence[str],
    measures: tuple[str, ...],
    kinds: tuple[str, ...],
    columns: dict[str, NDArray[Any]],
    overdispersion: str | None,
    funnel_scale: str,
    funnel_method: str = "didcore",
) -> pa.Table:
    import pyarrow as pa

    n_icb, n_measure = len(icb_codes), len(measures)

    def flat(a: NDArray[Any]) -> NDArray[Any]:
        return np.asarray(a).T.ravel()  # measure-major, ICBs in cube order within a measure

    rate_cols = (
        "crude_rate",
        "standardised_rate",
        "sr_lower_95",
        "sr_upper_95",
        "sr_lower_998",
        "sr_upper_998",
        "dsr",
        "dsr_lower_95",
        "dsr_upper_95",
    )
    fields = [
        _field("icb_code", pa.string()),
        _field("measure", pa.string()),
        _field("kind", pa.string()),
        _field("observed", pa.int64(), "tests"),
        _field("population", pa.float64(), "people"),
    ]
    arrays = [
        pa.array(np.tile(np.asarray(icb_codes, dtype=object), n_measure), pa.string()),
        pa.array(np.repeat(np.asarray(measures, dtype=object), n_icb), pa.string()),
        pa.array(np.repeat(np.asarray(kinds, dtype=object), n_icb), pa.string()),
        pa.array(flat(columns["observed"]), pa.int64()),
        _float_array(flat(columns["population"])),
    ]
    for name in (
        "crude_rate",
        "expected",
        "ratio",
        "standardised_rate",
        "sr_lower_95",
        "sr_upper_95",
        "sr_lower_998",
        "sr_upper_998",
    ):
        unit = RATE_UNIT if name in rate_cols else ("tests" if name == "expected" else "O/E")
        fields.append(_field(name, pa.float64(), unit))
        arrays.append(_float_array(flat(columns[name])))
    fields.append(_field("within_10pct_of_crude", pa.bool_()))
    arrays.append(pa.array(flat(columns["within_10pct_of_crude"]).tolist(), pa.bool_()))
    for name in ("funnel_95", "funnel_998"):
        fields.append(_field(name, pa.string()))
        arrays.append(pa.array(flat(columns[name]).tolist(), pa.string()))
    for name in ("dsr", "dsr_lower_95", "dsr_upper_95"):
        fields.append(_field(name, pa.float64(), RATE_UNIT))
        arrays.append(_float_array(flat(columns[name])))
    metadata = _metadata(
        "icb",
        confidence_limits="exact Poisson for observed < 10, Byar's from 10 (as PHE)",
        funnel=(
            _funnelplotr_label(overdispersion, funnel_scale)
            if funnel_method == "funnelplotr"
            else "exact Poisson limits (Spiegelhalter 2005)"
            if overdispersion is None
            else f"{overdispersion}d overdispersion, {funnel_scale} scale (Spiegelhalter 2005)"
        ),
        dsr="2013 European Standard Population by age x sex, Dobson limits, null below 10 tests",
    )
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=metadata))


def _summary_table(
    measures: tuple[str, ...],
    national_rate: NDArray[np.float64],
    sr: NDArray[np.float64],
    within_10: NDArray[np.bool_],
    within_10_defined: NDArray[np.bool_],
) -> pa.Table:
    import pyarrow as pa

    n_measure = len(measures)
    mean = np.full(n_measure, np.nan)
    sd = np.full(n_measure, np.nan)
    share_1sd = np.full(n_measure, np.nan)
    share_10 = np.full(n_measure, np.nan)
    n_icbs = np.zeros(n_measure, dtype=np.int64)
    for m in range(n_measure):
        values = sr[:, m][np.isfinite(sr[:, m])]
        n_icbs[m] = len(values)
        if len(values):
            mean[m] = values.mean()
        if len(values) >= 2:
            sd[m] = values.std(ddof=1)
            share_1sd[m] = np.mean(np.abs(values - mean[m]) <= sd[m] + _TOL * abs(mean[m]))
        defined = within_10_defined[:, m]
        if defined.any():
            share_10[m] = np.mean(within_10[:, m][defined])
    schema = pa.schema(
        [
            _field("measure", pa.string()),
            _field("national_rate", pa.float64(), RATE_UNIT),
            _field("mean_sr", pa.float64(), RATE_UNIT),
            _field("sd_sr", pa.float64(), RATE_UNIT),
            _field("lower_1sd", pa.float64(), RATE_UNIT),
            _field("upper_1sd", pa.float64(), RATE_UNIT),
            _field("share_within_1sd", pa.float64(), "fraction of ICBs"),
            _field("share_within_10pct_of_crude", pa.float64(), "fraction of ICBs"),
            _field("n_icbs", pa.int64(), "ICBs with a standardised rate"),
        ],
        metadata=_metadata(
            "summary",
            sd="sample standard deviation (ddof=1, Excel STDEV) of the ICBs' standardised rates",
            mean="unweighted mean of the ICBs' standardised rates",
        ),
    )
    return pa.Table.from_arrays(
        [
            pa.array(measures, pa.string()),
            _float_array(national_rate),
            _float_array(mean),
            _float_array(sd),
            _float_array(mean - sd),
            _float_array(mean + sd),
            _float_array(share_1sd),
            _float_array(share_10),
            pa.array(n_icbs, pa.int64()),
        ],
        schema=schema,
    )


def _funnelplotr_label(overdispersion: str | None, scale: str) -> str:
    """The icb table's ``funnel`` metadata in FunnelPlotR-compatible mode."""
    if overdispersion is None:
        return "FunnelPlotR-compatible limits (FunnelPlotR 0.6.0, unadjusted chi-square limits)"
    name = "CQC, unsquared sqrt-scale limits" if scale == "sqrt" else "SHMI, truncated log scale"
    return (
        f"FunnelPlotR-compatible limits (FunnelPlotR 0.6.0 {name}, z 1.959964 / 3.090232, "
        "unadjusted limits when phi <= 1)"
    )


def _funnel_grid(
    expected: NDArray[np.float64],
    od: stats.Overdispersion | None,
    tau2: float,
    scale: Literal["sqrt", "log"],
    points: int,
    method: Literal["didcore", "funnelplotr"] = "didcore",
) -> dict[str, Any]:
    """Funnel limits on a log-spaced grid from half the smallest to 1.1 x the largest E."""
    positive = expected[expected > 0]
    if len(positive) and points > 0:
        grid = np.geomspace(positive.min() * 0.5, positive.max() * 1.1, points)
    else:
        grid = np.zeros(0)
    limits = {}
    for label, conf in CONFIDENCE_LEVELS:
        lo, hi = stats.funnel_limits(grid, conf, tau2=tau2, scale=scale, method=method)
        limits[f"lower_{label}"] = lo
        limits[f"upper_{label}"] = hi
    return {
        "expected": grid,
        **limits,
        "method": od.method if od is not None else "poisson",
        "scale": od.scale if od is not None else None,
        "phi": od.phi if od is not None else np.nan,
        "tau2": tau2,
        "n_units": od.n if od is not None else int(np.sum(expected > 0)),
        "limits": method,
    }


def _funnel_table(
    measures: tuple[str, ...],
    kinds: tuple[str, ...],
    national_rate: NDArray[np.float64],
    grids: list[dict[str, Any]],
) -> pa.Table:
    import pyarrow as pa

    sizes = [len(g["expected"]) for g in grids]

    def per_measure(values: Sequence[Any]) -> list[Any]:
        return [v for v, n in zip(values, sizes, strict=True) for _ in range(n)]

    def stacked(key: str) -> NDArray[np.float64]:
        return np.concatenate([g[key] for g in grids]) if grids else np.zeros(0)

    fields = [
        _field("measure", pa.string()),
        _field("kind", pa.string()),
        _field("expected", pa.float64(), "tests"),
        _field("lower_95", pa.float64(), "O/E"),
        _field("upper_95", pa.float64(), "O/E"),
        _field("lower_998", pa.float64(), "O/E"),
        _field("upper_998", pa.float64(), "O/E"),
        _field("national_rate", pa.float64(), RATE_UNIT),
        _field("method", pa.string()),
        _field("scale", pa.string()),
        _field("phi", pa.float64()),
        _field("tau2", pa.float64()),
        _field("n_units", pa.int64(), "ICBs in the overdispersion estimate"),
        _field("limits", pa.string()),
    ]
    arrays = [
        pa.array(per_measure(measures), pa.string()),
        pa.array(per_measure(kinds), pa.string()),
        _float_array(stacked("expected")),
        _float_array(stacked("lower_95")),
        _float_array(stacked("upper_95")),
        _float_array(stacked("lower_998")),
        _float_array(stacked("upper_998")),
        _float_array(np.asarray(per_measure(list(national_rate)), dtype=np.float64)),
        pa.array(per_measure([g["method"] for g in grids]), pa.string()),
        pa.array(per_measure([g["scale"] for g in grids]), pa.string()),
        _float_array(np.asarray(per_measure([g["phi"] for g in grids]), dtype=np.float64)),
        _float_array(np.asarray(per_measure([g["tau2"] for g in grids]), dtype=np.float64)),
        pa.array(per_measure([g["n_units"] for g in grids]), pa.int64()),
        pa.array(per_measure([g["limits"] for g in grids]), pa.string()),
    ]
    metadata = _metadata(
        "funnel",
        funnel=(
            "limits for O/E against target 1; tau2 > 0 only when n phi > n - 1 (limits "
            "'didcore'); limits 'funnelplotr': FunnelPlotR-compatible limits (FunnelPlotR 0.6.0: "
            "tau2 is the one its limits use, 0 when phi <= 1)"
        ),
    )
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=metadata))
