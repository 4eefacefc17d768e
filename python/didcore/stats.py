"""Array-level statistics for standardised rates (docs/statistics.md).

Every function here is vectorised over numpy arrays (inputs broadcast against each other) and
returns float64 arrays, with ``nan`` where a value is undefined (say, a ratio whose expected count
is zero). The methods follow the Public Health England / OHID indicator methods as implemented in
the PHEindicatormethods R package (``byars_lower``/``byars_upper``, ``calculate_ISRatio``,
``calculate_dsr``), Spiegelhalter's funnel plots (Stat Med 2005;24:1185-1202) and his
overdispersion adjustment (Qual Saf Health Care 2005;14:347-351); ``docs/statistics.md`` states
each formula with its source and the conventions chosen. For users who must reproduce the R
packages' funnels there are PHEindicatormethods' (:func:`phe_funnel_limits`,
:func:`phe_funnel_points`, :func:`phe_funnel_significance`, :func:`proportion_funnel_limits`) and
a FunnelPlotR 0.6.0-compatible mode (:func:`funnelplotr_overdispersion`,
``funnel_limits(method="funnelplotr")``), quirks included (docs/statistics.md 5.3-5.6).

Units: counts are numbers of tests; populations are people; *ratios* are observed / expected
(dimensionless, 1 = as expected); *rates* are per ``multiplier`` population, 10,000 unless
stated (the publication's unit). Confidence levels are fractions, e.g. ``0.95`` or ``0.998``.

scipy is imported inside the functions that need it, so ``import didcore.stats`` stays cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from didcore.errors import InputError, InternalError

__all__ = [
    "ESP2013",
    "ESP2013_AGE_BANDS",
    "RATE_MULTIPLIER",
    "DSRResult",
    "ISRResult",
    "Overdispersion",
    "byar_limits",
    "dsr",
    "dsr_nonindependent",
    "exact_poisson_limits",
    "expected_count",
    "funnel_flags",
    "funnel_limits",
    "funnel_z_scores",
    "funnelplotr_overdispersion",
    "isr_with_reference",
    "overdispersion",
    "phe_funnel_limits",
    "phe_funnel_points",
    "phe_funnel_significance",
    "poisson_funnel_limits",
    "proportion_funnel_limits",
    "published_chi2_test",
    "rate",
    "ratio_confidence_interval",
    "ratio_test_counts",
    "significance_stars",
    "standardised_rate",
    "standardised_rate_limits",
    "standardised_ratio",
    "standardised_ratio_limits",
    "stratum_rates",
    "z_value",
]

FloatArray = NDArray[np.float64]
FunnelScale = Literal["sqrt", "log"]
OverdispersionMethod = Literal["winsorise", "truncate"]
FunnelMethod = Literal["didcore", "funnelplotr"]

#: Rates are expressed per this many people unless a function is told otherwise.
RATE_MULTIPLIER: float = 10_000.0

#: Age bands of the 2013 European Standard Population, the same 19 bands as the cube.
ESP2013_AGE_BANDS: tuple[str, ...] = (
    *(f"{lo}-{lo + 4}" for lo in range(0, 90, 5)),
    "90+",
)

#: The 2013 European Standard Population (Eurostat 2013), persons per band, total 100,000.
ESP2013: FloatArray = np.array(
    [
        *(5000, 5500, 5500, 5500, 6000, 6000, 6500, 7000, 7000, 7000),
        *(7000, 6500, 6000, 5500, 5000, 4000, 2500, 1500, 1000),
    ],
    dtype=np.float64,
)
ESP2013.flags.writeable = False


class DSRResult(NamedTuple):
    """A directly standardised rate and its confidence limits, per ``multiplier`` population."""

    value: FloatArray
    lower: FloatArray
    upper: FloatArray


class ISRResult(NamedTuple):
    """Indirectly standardised ratio and rate of each unit against an external reference.

    Attributes:
        observed: ``O``, observed events of the unit (tests).
        expected: ``E = sum_s x_ref_s / n_ref_s * n_s``, events expected at the reference's
            stratum rates (tests).
        ratio, ratio_lower, ratio_upper: ``O / E * refvalue`` and its limits (PHEindicatormethods
            ``calculate_ISRatio``).
        reference_rate: ``sum x_ref / sum n_ref * multiplier``, the reference's crude rate.
        rate, rate_lower, rate_upper: ``O / E * reference_rate`` and its limits, per
            ``multiplier`` people (PHEindicatormethods ``calculate_ISRate``).
    """

    observed: FloatArray
    expected: FloatArray
    ratio: FloatArray
    ratio_lower: FloatArray
    ratio_upper: FloatArray
    reference_rate: float
    rate: FloatArray
    rate_lower: FloatArray
    rate_upper: FloatArray


@dataclass(frozen=True)
class Overdispersion:
    """Spiegelhalter's overdispersion estimate for one set of O/E ratios (one measure).

    Attributes:
        phi: overdispersion ratio, the mean of the squared (winsorised or truncated) z-scores;
            ``nan`` when no unit has a usable z-score.
        tau2: additive between-unit variance on the transformed scale (DerSimonian-Laird);
            0 unless ``n * phi > n - 1`` (the one threshold rule), in which case the funnel
            limits are widened; with ``tau2 == 0`` the exact Poisson limits stand.
        n: number of units (ICBs) whose z-scores entered ``phi`` and ``tau2``.
        scale: ``"sqrt"`` or ``"log"``, the variance-stabilising scale of the z-scores.
        method: ``"winsorise"`` (Spiegelhalter) or ``"truncate"`` (the SHMI method).
        trim: the fraction winsorised or truncated at each tail.
        limits: ``"didcore"`` (:func:`overdispersion`) or ``"funnelplotr"``
            (:func:`funnelplotr_overdispersion`, FunnelPlotR 0.6.0's estimate and rules).
    """

    phi: float
    tau2: float
    n: int
    scale: FunnelScale
    method: OverdispersionMethod
    trim: float
    limits: FunnelMethod = "didcore"

    @property
    def adjusted(self) -> bool:
        """Whether the funnel limits are widened for overdispersion.

        didcore: ``tau2 > 0`` (the one rule ``n phi > n - 1``). FunnelPlotR: ``phi > 1`` (its
        fall-back draws unadjusted limits when ``phi <= 1``, even where its ``tau2 > 0``).
        """
        if self.limits == "funnelplotr":
            return bool(self.phi > 1.0)
        return self.tau2 > 0.0

    @property
    def limit_tau2(self) -> float:
        """The ``tau2`` the funnel limits use: ``tau2`` when :attr:`adjusted`, else 0."""
        return self.tau2 if self.adjusted else 0.0


# --------------------------------------------------------------------------------------------
# helpers


def _float(x: ArrayLike) -> FloatArray:
    return np.asarray(x, dtype=np.float64)


def _check_conf(conf: float) -> float:
    """Validate a two-sided confidence level and return alpha = 1 - conf."""
    if not (
        isinstance(conf, (int, float, np.floating))
        and not isinstance(conf, bool)
        and 0.0 < float(conf) < 1.0
    ):
        raise InputError(
            f"conf: confidence level must be a fraction in (0, 1), e.g. 0.95; got {conf!r}"
        )
    return 1.0 - float(conf)


def _numeric(x: ArrayLike, name: str) -> FloatArray:
    """``x`` as float64, refusing what is not already numbers.

    ``np.asarray(["12"], dtype=float)`` silently parses text and ``True`` becomes 1.0; a
    statistic given text or booleans has almost certainly been handed the wrong column, so
    both are an :class:`~didcore.errors.InputError` naming the argument and the first value.
    """
    raw = np.asarray(x)
    if raw.dtype.kind not in "iuf":
        flat = raw.reshape(-1)
        bad = next(
            (v for v in flat if isinstance(v, (str, bytes, bool, np.bool_)) or v is None),
            flat[0] if flat.size else raw.dtype,
        )
        if isinstance(bad, np.generic):
            bad = bad.item()
        raise InputError(
            f"{name}: expected numbers, got {type(bad).__name__} value {bad!r} "
            f"(convert the column to numbers first)"
        )
    return np.asarray(raw, dtype=np.float64)


def _check_multiplier(multiplier: float) -> float:
    """A rate multiplier must be a finite positive number (10,000 = per 10,000 people)."""
    if (
        isinstance(multiplier, bool)
        or not isinstance(multiplier, (int, float, np.integer, np.floating))
        or not math.isfinite(float(multiplier))
        or float(multiplier) <= 0
    ):
        raise InputError(
            f"multiplier: must be a finite number > 0, e.g. 10000 for a rate per 10,000; "
            f"got {multiplier!r}"
        )
    return float(multiplier)


def _check_standard(standard: ArrayLike) -> FloatArray:
    """Standard population weights: numbers, finite, non-negative, summing to more than 0."""
    w = _numeric(standard, "standard")
    bad = ~np.isfinite(w) | (w < 0)
    if np.any(bad):
        first = float(w[bad].reshape(-1)[0])
        raise InputError(
            f"standard: standard population weights must be finite and >= 0; "
            f"{int(bad.sum())} are not (first: {first!r}), e.g. use stats.ESP2013"
        )
    if not w.sum() > 0:
        raise InputError("standard: standard population weights sum to 0; give at least one > 0")
    return w


def _check_counts(x: FloatArray, what: str) -> None:
    if np.any(x < 0):
        raise ValueError(f"{what} must be non-negative")


def z_value(conf: float) -> float:
    """Two-sided standard normal quantile ``z = Phi^-1(1 - (1 - conf) / 2)``.

    Exact quantiles are used everywhere (1.959963984540054 for 95%, 3.090232306167813 for
    99.8%), never rounded constants.
    """
    from scipy.special import ndtri

    alpha = _check_conf(conf)
    return float(ndtri(1.0 - alpha / 2.0))


def rate(
    observed: ArrayLike, population: ArrayLike, multiplier: float = RATE_MULTIPLIER
) -> FloatArray:
    """Crude rate ``O / P * multiplier`` (per 10,000 by default); ``nan`` where ``P <= 0``."""
    o = _float(observed)
    p = _float(population)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, o / np.where(p > 0, p, 1.0) * multiplier, np.nan)


# --------------------------------------------------------------------------------------------
# indirect standardisation: the one home of E_i = sum_s R_s P_{i,s} and SR_i = O_i / E_i * N


def stratum_rates(observed: ArrayLike, population: ArrayLike) -> FloatArray:
    """Stratum rates ``R_s = O_s / P_s`` of the standard population, in tests per person.

    ``observed`` (tests) and ``population`` (people) broadcast against each other; ``R_s = 0``
    where ``P_s <= 0``: a stratum with no people contributes nothing to an expected count
    (tests observed in such a stratum are refused earlier, as
    :class:`didcore.errors.ZeroPopulationError`).
    """
    o = _float(observed)
    p = _float(population)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, o / np.where(p > 0, p, 1.0), 0.0)


def expected_count(
    rates: ArrayLike, population: ArrayLike, axis: int | tuple[int, ...] = -1
) -> FloatArray:
    """Expected count ``E_i = sum_s R_s P_{i,s}``, in tests.

    ``rates`` are the standard's stratum rates ``R_s`` in tests per person
    (:func:`stratum_rates`), ``population`` the unit's people ``P_{i,s}``; the two broadcast
    against each other and ``axis`` names the strata axis (or axes) summed over. (The
    pipeline's counts come from the Rust core, ``didcore.standardise.expected_counts``, which
    computes the same sum and is held to this one by tests/test_standardise.py.)
    """
    return np.asarray(np.sum(_float(rates) * _float(population), axis=axis), dtype=np.float64)


def standardised_ratio(
    observed: ArrayLike, expected: ArrayLike, *, undefined: float = math.nan
) -> FloatArray:
    """Indirectly standardised ratio ``O_i / E_i`` (dimensionless, 1 = as expected).

    ``undefined`` (``nan`` unless stated) where ``E_i <= 0``: a unit that expects no tests has
    no ratio.
    """
    o = _float(observed)
    e = _float(expected)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(e > 0, o / np.where(e > 0, e, 1.0), undefined)


def standardised_rate(
    observed: ArrayLike,
    expected: ArrayLike,
    reference_rate: ArrayLike,
    *,
    undefined: float = math.nan,
) -> FloatArray:
    """Indirectly standardised rate ``SR_i = O_i / E_i * N``.

    ``O_i`` observed and ``E_i`` expected tests (:func:`expected_count`), ``N`` the reference
    (national) rate ``sum O / sum P``; ``SR_i`` has ``N``'s unit: per 10,000 people when ``N`` is
    (:func:`rate`), per person when ``N`` is. ``undefined`` times ``N`` where ``E_i <= 0``
    (``nan`` unless stated).
    """
    return standardised_ratio(observed, expected, undefined=undefined) * _float(reference_rate)


# --------------------------------------------------------------------------------------------
# confidence limits for counts and indirectly standardised ratios


def exact_poisson_limits(count: ArrayLike, conf: float = 0.95) -> tuple[FloatArray, FloatArray]:
    """Exact (Garwood) Poisson confidence limits for an observed count.

    ``lower = chi2_{a/2}(2 O) / 2`` and ``upper = chi2_{1-a/2}(2 O + 2) / 2`` with
    ``a = 1 - conf``, computed in the equivalent gamma form ``lower = G^-1(a/2; O)``,
    ``upper = G^-1(1 - a/2; O + 1)`` (unit-scale gamma quantiles). ``lower = 0`` when ``O = 0``.
    Units: counts. Source: Armitage & Berry; PHEindicatormethods ``calculate_ISRatio``.
    """
    from scipy.special import gammaincinv

    alpha = _check_conf(conf)
    o = _float(count)
    _check_counts(o, "counts")
    positive = o > 0
    lower = np.where(positive, gammaincinv(np.where(positive, o, 1.0), alpha / 2.0), 0.0)
    upper = gammaincinv(o + 1.0, 1.0 - alpha / 2.0)
    return np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)


def byar_limits(count: ArrayLike, conf: float = 0.95) -> tuple[FloatArray, FloatArray]:
    """Byar's approximation to the exact Poisson limits of an observed count ``O``.

    ``lower = O (1 - 1/(9 O) - z / (3 sqrt(O)))^3``,
    ``upper = (O + 1) (1 - 1/(9 (O + 1)) + z / (3 sqrt(O + 1)))^3``, ``z = z_value(conf)``.
    As in PHEindicatormethods ``byars_lower``, the lower limit is ``nan`` where the formula is
    undefined (``O = 0``) or negative (very small ``O``); use :func:`exact_poisson_limits` there.
    Units: counts. Source: Breslow & Day (1987), vol. II.
    """
    z = z_value(conf)
    o = _float(count)
    _check_counts(o, "counts")
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = o * (1.0 - 1.0 / (9.0 * o) - z / (3.0 * np.sqrt(o))) ** 3
        lower = np.where((o > 0) & (lower >= 0), lower, np.nan)
    o1 = o + 1.0
    upper = o1 * (1.0 - 1.0 / (9.0 * o1) + z / (3.0 * np.sqrt(o1))) ** 3
    return np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)


def standardised_ratio_limits(
    observed: ArrayLike, expected: ArrayLike, conf: float = 0.95, *, byar_from: int = 10
) -> tuple[FloatArray, FloatArray]:
    """Confidence limits for an indirectly standardised ratio ``O / E``.

    The count's limits are exact Poisson (:func:`exact_poisson_limits`) when ``O < byar_from``
    and Byar's (:func:`byar_limits`) when ``O >= byar_from``, then divided by ``E``: exactly
    PHEindicatormethods ``calculate_ISRatio`` (its threshold is 10). ``nan`` where ``E <= 0``.
    Units: ratio (multiply by 100 for an SMR in per cent, or see
    :func:`standardised_rate_limits`).
    """
    o = _float(observed)
    e = _float(expected)
    o, e = np.broadcast_arrays(o, e)
    ex_lo, ex_hi = exact_poisson_limits(o, conf)
    by_lo, by_hi = byar_limits(np.where(o >= byar_from, o, byar_from), conf)
    small = o < byar_from
    lo = np.where(small, ex_lo, by_lo)
    hi = np.where(small, ex_hi, by_hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = e > 0
        safe_e = np.where(ok, e, 1.0)
        return np.where(ok, lo / safe_e, np.nan), np.where(ok, hi / safe_e, np.nan)


def standardised_rate_limits(
    observed: ArrayLike,
    expected: ArrayLike,
    reference_rate: ArrayLike,
    conf: float = 0.95,
    *,
    byar_from: int = 10,
) -> tuple[FloatArray, FloatArray]:
    """Confidence limits for an indirectly standardised rate ``SR = O / E * N``.

    The ratio limits of :func:`standardised_ratio_limits` times the reference (national) rate
    ``N``, in whatever unit ``N`` is given (per 10,000 in didcore). ``N`` is treated as fixed,
    as PHEindicatormethods ``calculate_ISRate`` does.
    """
    lo, hi = standardised_ratio_limits(observed, expected, conf, byar_from=byar_from)
    n = _float(reference_rate)
    return lo * n, hi * n


def _check_nonnegative(x: FloatArray, name: str, *, positive: bool = False) -> None:
    """Refuse ``nan``/infinite values and values below 0 (or <= 0 with ``positive``)."""
    bad = ~np.isfinite(x) | ((x <= 0) if positive else (x < 0))
    if np.any(bad):
        first = float(x[bad].reshape(-1)[0])
        need = "> 0" if positive else ">= 0"
        raise InputError(
            f"{name}: every value must be finite and {need}; {int(bad.sum())} are not "
            f"(first: {first!r})"
        )


def isr_with_reference(
    observed: ArrayLike,
    population: ArrayLike,
    ref_observed: ArrayLike,
    ref_population: ArrayLike,
    *,
    conf: float = 0.95,
    multiplier: float = RATE_MULTIPLIER,
    refvalue: float = 1.0,
    byar_from: int = 10,
) -> ISRResult:
    """Indirect standardisation against an external reference population given by stratum.

    The counterpart of PHEindicatormethods ``calculate_ISRatio`` and ``calculate_ISRate`` with
    ``x_ref`` / ``n_ref``: the reference is not the units' own total (as in
    :func:`didcore.standardise.standardise`) but any population whose events
    ``x_ref_s`` (``ref_observed``) and people ``n_ref_s`` (``ref_population``) are known by
    stratum ``s`` (e.g. England's tests by age band when standardising one region's ICBs):

    * ``E = sum_s x_ref_s / n_ref_s * n_s`` (expected events; ``n_s`` = ``population``);
    * ratio ``= O / E * refvalue`` (``refvalue`` 1, or 100 for an SMR in per cent);
    * rate ``= O / E * (sum_s x_ref_s / sum_s n_ref_s) * multiplier``;
    * limits: the count ``O``'s exact Poisson limits when ``O < byar_from`` (10) and Byar's
      when ``O >= 10``, divided by ``E`` and scaled as the value
      (:func:`standardised_ratio_limits`), exactly as the R functions do.

    Strata run along the last axis of ``population``; ``ref_observed`` and ``ref_population``
    hold one value per stratum (shape ``(n_strata,)``). ``observed`` is either by stratum (the
    shape of ``population``; summed over strata) or the units' totals (its shape without the
    last axis; PHE's ``observed_totals``). Value and limits are ``nan`` where ``E = 0``.
    Units: ratio dimensionless; rate per ``multiplier`` people (10,000 here, where
    PHEindicatormethods defaults to 100,000).

    Raises:
        InputError: text or booleans for numbers, negative or non-finite counts or
            populations, a reference population of 0 in any stratum (its rate is undefined),
            mismatched strata, ``multiplier`` or ``refvalue`` not a positive number, or a bad
            ``conf``.
    """
    _check_conf(conf)
    multiplier = _check_multiplier(multiplier)
    if isinstance(refvalue, bool) or not (
        isinstance(refvalue, (int, float, np.integer, np.floating))
        and math.isfinite(float(refvalue))
        and float(refvalue) > 0
    ):
        raise InputError(f"refvalue: must be a finite number > 0, e.g. 1 or 100; got {refvalue!r}")
    o = _numeric(observed, "observed")
    n = _numeric(population, "population")
    x_ref = _numeric(ref_observed, "ref_observed")
    n_ref = _numeric(ref_population, "ref_population")
    if n.ndim == 0:
        raise InputError("population: give one value per stratum (strata on the last axis)")
    strata = n.shape[-1]
    for arr, name in ((x_ref, "ref_observed"), (n_ref, "ref_population")):
        if arr.shape != (strata,):
            raise InputError(
                f"{name}: {arr.size} values in shape {arr.shape} for {strata} strata; give "
                "one value per stratum, in the order of population's last axis"
            )
    _check_nonnegative(o, "observed")
    _check_nonnegative(n, "population")
    _check_nonnegative(x_ref, "ref_observed")
    _check_nonnegative(n_ref, "ref_population", positive=True)
    if o.shape == n.shape:
        total = o.sum(axis=-1)
    elif o.shape == n.shape[:-1]:
        total = o
    else:
        raise InputError(
            f"observed: shape {o.shape} fits neither population {n.shape} (counts by stratum) "
            f"nor {n.shape[:-1]} (the units' totals)"
        )
    expected = expected_count(x_ref / n_ref, n)
    ratio = standardised_ratio(total, expected) * refvalue
    lo, hi = standardised_ratio_limits(total, expected, conf, byar_from=byar_from)
    ref_rate = float(x_ref.sum() / n_ref.sum() * multiplier)
    return ISRResult(
        observed=np.asarray(total, dtype=np.float64),
        expected=expected,
        ratio=ratio,
        ratio_lower=lo * refvalue,
        ratio_upper=hi * refvalue,
        reference_rate=ref_rate,
        rate=ratio / refvalue * ref_rate,
        rate_lower=lo * ref_rate,
        rate_upper=hi * ref_rate,
    )


# --------------------------------------------------------------------------------------------
# directly standardised rates


def dsr(
    observed: ArrayLike,
    population: ArrayLike,
    standard: ArrayLike,
    *,
    conf: float = 0.95,
    multiplier: float = RATE_MULTIPLIER,
    min_count: float = 10,
    count_method: Literal["byar", "exact"] = "byar",
) -> DSRResult:
    """Directly standardised rate with Dobson et al. (1991) confidence limits.

    Strata run along the last axis of ``observed`` (``O_s``) and ``population`` (``P_s``);
    ``standard`` holds the standard population weights ``w_s`` (e.g. :data:`ESP2013`):

    * ``DSR = sum_s w_s O_s / P_s / sum_s w_s * multiplier``;
    * ``var = sum_s w_s^2 O_s / P_s^2 / (sum_s w_s)^2`` (variance of the weighted sum of
      Poisson rates, per person squared);
    * with ``O = sum_s O_s`` and ``(O_L, O_U)`` the confidence limits of the count ``O``
      (Byar's by default, as PHEindicatormethods ``calculate_dsr``; ``count_method="exact"``
      uses exact Poisson limits, as Dobson's paper):
      ``lower = DSR + sqrt(var / O) (O_L - O) * multiplier``, likewise ``upper`` with ``O_U``.

    The value and limits are ``nan`` (suppressed) where ``O < min_count`` (PHE suppresses
    DSRs of fewer than 10 events), where any stratum has ``P_s <= 0`` (a stratum rate is then
    undefined; PHE requires every denominator to be positive), and the limits are ``nan`` where
    ``O = 0``. Units: per ``multiplier`` population (10,000 unless stated).
    """
    o = _numeric(observed, "observed")
    p = _numeric(population, "population")
    w = _check_standard(standard)
    if np.any(o < 0):
        raise InputError(
            f"observed: counts must be >= 0; {int((o < 0).sum())} are negative "
            f"(first: {float(o[o < 0].reshape(-1)[0])!r})"
        )
    _check_conf(conf)
    multiplier = _check_multiplier(multiplier)
    if count_method not in ("byar", "exact"):
        raise InputError(f"count_method: must be 'byar' or 'exact', not {count_method!r}")
    o, p = np.broadcast_arrays(o, p)
    if w.ndim != 1 or o.ndim == 0 or w.shape[0] != o.shape[-1]:
        raise InputError(
            f"standard: {w.size} weights in shape {w.shape} for "
            f"{o.shape[-1] if o.ndim else 1} strata; give one weight per stratum "
            "(the last axis of observed and population)"
        )
    valid = np.all(p > 0, axis=-1)
    safe_p = np.where(p > 0, p, 1.0)
    w_total = w.sum()
    value = (w * o / safe_p).sum(axis=-1) / w_total
    var = (w**2 * o / safe_p**2).sum(axis=-1) / w_total**2
    total = o.sum(axis=-1)
    if count_method == "byar":
        lo_count, hi_count = byar_limits(total, conf)
    elif count_method == "exact":
        lo_count, hi_count = exact_poisson_limits(total, conf)
    else:
        raise ValueError(f"count_method must be 'byar' or 'exact', not {count_method!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.sqrt(var / total)
        lower = (value + spread * (lo_count - total)) * multiplier
        upper = (value + spread * (hi_count - total)) * multiplier
    keep = valid & (total >= min_count)
    value = np.where(keep, value * multiplier, np.nan)
    limits_ok = keep & (total > 0)
    return DSRResult(
        np.asarray(value, dtype=np.float64),
        np.asarray(np.where(limits_ok, lower, np.nan), dtype=np.float64),
        np.asarray(np.where(limits_ok, upper, np.nan), dtype=np.float64),
    )


def dsr_nonindependent(
    persons: ArrayLike,
    population: ArrayLike,
    standard: ArrayLike,
    event_frequency: ArrayLike,
    *,
    conf: float = 0.95,
    multiplier: float = RATE_MULTIPLIER,
    min_count: float = 10,
    count_method: Literal["byar", "exact"] = "byar",
) -> DSRResult:
    """Directly standardised rate of events that people can have more than once.

    PHEindicatormethods ``calculate_dsr(..., independent_events = FALSE, eventfreq, ageband)``:
    when one person can have several events (several tests), the events are not independent
    Poisson counts and Dobson's variance understates the spread. The data are counts of
    *people* by how many events each had: ``persons[..., f, s]`` people in stratum ``s`` with
    ``event_frequency[f]`` events (shape ``(..., n_freq, n_strata)``; ``population`` (people,
    ``n_s``) and ``standard`` (weights ``w_s``) by stratum as in :func:`dsr`). Then

    * events ``O_s = sum_f f persons_{f,s}``, ``O = sum_s O_s``, and the value is the usual DSR
      of ``O_s`` (:func:`dsr`);
    * ``var = sum_f f^2 sum_s w_s^2 persons_{f,s} / n_s^2 / (sum_s w_s)^2``: Dobson's variance
      computed for the people of each frequency, multiplied by ``f^2`` (an event count of
      ``f`` per person scales a person's variance by ``f^2``) and summed over frequencies;
    * ``lower = DSR + sqrt(var / O) (O_L - O) * multiplier`` with ``O_L`` the Byar (or exact)
      limit of ``O``, likewise ``upper``.

    With every ``f = 1`` this is :func:`dsr`. PHE computes each frequency's variance over the
    rows it is given, so in R every stratum must appear for every frequency (zero rows where
    nobody had that many events); here the array holds every stratum for every frequency, so the
    divisor is always the full ``sum_s w_s``. Suppression (``min_count`` events) and ``nan`` as in
    :func:`dsr`. Units: per ``multiplier`` people.
    """
    x = _numeric(persons, "persons")
    f = _numeric(event_frequency, "event_frequency")
    if x.ndim < 2:
        raise InputError(
            "persons: give people by event frequency and stratum, shape (..., n_freq, n_strata)"
        )
    if f.shape != (x.shape[-2],):
        raise InputError(
            f"event_frequency: {f.size} values for {x.shape[-2]} frequency rows of persons; "
            "give one frequency per row"
        )
    _check_nonnegative(f, "event_frequency")
    _check_nonnegative(x, "persons")
    events = np.einsum("f,...fs->...s", f, x)
    result = dsr(
        events,
        population,
        standard,
        conf=conf,
        multiplier=multiplier,
        min_count=min_count,
        count_method=count_method,
    )
    n = np.broadcast_to(_float(population), events.shape)
    w = _float(standard)
    safe_n = np.where(n > 0, n, 1.0)
    per_person = (w**2 / safe_n**2)[..., None, :] * x  # (..., n_freq, n_strata)
    var = np.einsum("f,...fs->...", f**2, per_person) / w.sum() ** 2
    total = events.sum(axis=-1)
    if count_method == "byar":
        lo_count, hi_count = byar_limits(total, conf)
    else:
        lo_count, hi_count = exact_poisson_limits(total, conf)
    mult = float(multiplier)
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.sqrt(var / total) * mult
        lower = result.value + spread * (lo_count - total)
        upper = result.value + spread * (hi_count - total)
    ok = np.isfinite(result.value) & (total > 0)
    return DSRResult(
        result.value,
        np.asarray(np.where(ok, lower, np.nan), dtype=np.float64),
        np.asarray(np.where(ok, upper, np.nan), dtype=np.float64),
    )


# --------------------------------------------------------------------------------------------
# funnel plots


def poisson_funnel_limits(expected: ArrayLike, conf: float) -> tuple[FloatArray, FloatArray]:
    """Funnel control limits for ``O / E`` without overdispersion: exact Poisson quantiles.

    For a count ``Y ~ Poisson(E)`` and ``p`` in ``(a/2, 1 - a/2)``: ``r`` is the smallest
    integer with ``F(r) >= p`` and the limit is ``(r - alpha) / E`` with the interpolation
    ``alpha = (F(r) - p) / (F(r) - F(r - 1))`` (Spiegelhalter 2005, Stat Med 24:1185, appendix),
    which makes the funnel a smooth function of ``E``. The lower limit is clipped at 0.
    ``nan`` where ``E <= 0``. Units: ratio (O/E), target 1.
    """
    from scipy.special import gammaln, xlogy

    alpha = _check_conf(conf)
    e = _float(expected)
    ok = e > 0
    safe_e = np.where(ok, e, 1.0)
    out = []
    for p in (alpha / 2.0, 1.0 - alpha / 2.0):
        r = _poisson_quantile(p, safe_e)
        f_r = _pdtr(r, safe_e)
        pmf_r = np.exp(xlogy(r, safe_e) - safe_e - gammaln(r + 1.0))
        interp = (f_r - p) / pmf_r
        limit = np.maximum((r - interp) / safe_e, 0.0)
        out.append(np.where(ok, limit, np.nan))
    return out[0], out[1]


def _pdtr(k: FloatArray, mean: FloatArray) -> FloatArray:
    """Poisson distribution function ``P(Y <= k)``, 0 for ``k < 0``."""
    from scipy.special import pdtr

    return np.where(k >= 0, pdtr(np.maximum(k, 0.0), mean), 0.0)


def _poisson_quantile(p: float, mean: FloatArray) -> FloatArray:
    """Smallest integer ``r >= 0`` with ``P(Y <= r) >= p`` for ``Y ~ Poisson(mean)``.

    Starts from the Cornish-Fisher approximation ``mean + z sqrt(mean) + (z^2 - 1) / 6`` and
    steps one integer at a time to the exact quantile (the same answer as
    ``scipy.stats.poisson.ppf``, several times faster for large means).
    """
    from scipy.special import ndtri

    z = float(ndtri(p))
    guess = np.floor(mean + z * np.sqrt(mean) + (z * z - 1.0) / 6.0)
    r = np.where(np.isfinite(guess), np.maximum(guess, 0.0), 0.0)
    for _ in range(10_000):
        up = _pdtr(r, mean) < p
        down = ~up & (r > 0) & (_pdtr(r - 1.0, mean) >= p)
        if not (up.any() or down.any()):
            return r
        r = r + up - down
    raise InternalError("Poisson quantile search did not converge")  # pragma: no cover


def funnel_z_scores(observed: ArrayLike, expected: ArrayLike, scale: FunnelScale) -> FloatArray:
    """Unadjusted z-scores of ``y = O / E`` against the target 1 on a variance-stabilised scale.

    * ``"sqrt"`` (CQC style): ``z = 2 sqrt(E) (sqrt(y) - 1) = 2 (sqrt(O) - sqrt(E))``,
      variance ``1 / (4 E)`` on the ``sqrt(y)`` scale;
    * ``"log"`` (SHMI style): ``z = sqrt(E) log(y)``, variance ``1 / E``; ``-inf`` when ``O = 0``.

    ``nan`` where ``E <= 0``.
    """
    o = _float(observed)
    e = _float(expected)
    ok = e > 0
    safe_e = np.where(ok, e, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if scale == "sqrt":
            z = 2.0 * (np.sqrt(o) - np.sqrt(safe_e))
        elif scale == "log":
            z = np.sqrt(safe_e) * np.log(o / safe_e)
        else:
            raise ValueError(f"funnel scale must be 'sqrt' or 'log', not {scale!r}")
    return np.where(ok, z, np.nan)


def _average_ranks(x: FloatArray) -> FloatArray:
    """Ranks 1..n of ``x``, ties given their average rank (R's ``rank(ties = "average")``)."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    # start of each run of equal values in sorted order
    new_run = np.r_[True, sorted_x[1:] != sorted_x[:-1]]
    run_id = np.cumsum(new_run) - 1
    starts = np.flatnonzero(new_run)
    ends = np.r_[starts[1:], len(x)]  # exclusive
    mean_rank = (starts + 1 + ends) / 2.0  # average of positions start+1 .. end
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = mean_rank[run_id]
    return ranks


def overdispersion(
    observed: ArrayLike,
    expected: ArrayLike,
    *,
    scale: FunnelScale = "sqrt",
    method: OverdispersionMethod = "winsorise",
    trim: float = 0.1,
) -> Overdispersion:
    """Estimate Spiegelhalter's overdispersion of one measure's O/E ratios across units.

    1. z-scores from :func:`funnel_z_scores`. Units with ``E <= 0`` are left out, and on the
       log scale so are units with ``O = 0`` (``z = -inf`` would make ``phi`` infinite).
    2. Robustness: ``"winsorise"`` (default, Spiegelhalter) replaces z-scores below the
       ``trim`` quantile by that quantile and above the ``1 - trim`` quantile by that quantile
       (quantiles by linear interpolation, R's type 7), keeping every unit; ``"truncate"`` is
       the SHMI method: units are put in ``k = 1 / trim`` groups by ``floor(rank k / (n + 1))``
       (average ranks) and the lowest and highest groups are dropped, which biases ``phi``
       downwards; it is offered for compatibility only.
    3. ``phi = mean(z^2)`` over the ``n`` units kept.
    4. One threshold rule: if ``n >= 2`` and ``n phi > n - 1``,
       ``tau2 = (n phi - (n - 1)) / (sum w - sum w^2 / sum w)`` with ``w = 4 E`` (sqrt scale) or
       ``w = E`` (log scale), over the units kept; otherwise ``tau2 = 0``.
    """
    if method not in ("winsorise", "truncate"):
        raise ValueError(f"overdispersion method must be 'winsorise' or 'truncate', not {method!r}")
    if not 0.0 < trim < 0.5:
        raise ValueError(f"trim must be in (0, 0.5), not {trim!r}")
    o = _float(observed).ravel()
    e = _float(expected).ravel()
    z = funnel_z_scores(o, e, scale)
    use = np.isfinite(z)
    z = z[use]
    e = e[use]
    if method == "winsorise":
        if len(z):
            lo, hi = np.quantile(z, [trim, 1.0 - trim])
            z = np.clip(z, lo, hi)
    else:
        k = round(1.0 / trim)
        if abs(k * trim - 1.0) > 1e-9:
            raise ValueError(f"truncation needs trim = 1/k for a whole number k, not {trim!r}")
        groups = np.floor(_average_ranks(z) * k / (len(z) + 1))
        keep = (groups > 0) & (groups < k - 1)
        z = z[keep]
        e = e[keep]
    n = len(z)
    phi = float(np.mean(z**2)) if n else math.nan
    tau2 = 0.0
    if n >= 2 and n * phi > n - 1:
        w = 4.0 * e if scale == "sqrt" else e
        tau2 = float((n * phi - (n - 1)) / (w.sum() - (w**2).sum() / w.sum()))
    return Overdispersion(phi=phi, tau2=tau2, n=n, scale=scale, method=method, trim=float(trim))


def funnel_limits(
    expected: ArrayLike,
    conf: float,
    *,
    tau2: float = 0.0,
    scale: FunnelScale = "sqrt",
    method: FunnelMethod = "didcore",
) -> tuple[FloatArray, FloatArray]:
    """Funnel control limits for ``O / E`` at expected counts ``E``, target 1.

    ``method="didcore"`` (default). With ``tau2 == 0``: the exact Poisson limits of
    :func:`poisson_funnel_limits`. With ``tau2 > 0`` (from :func:`overdispersion`), the limits
    ``0 +/- z sqrt(v + tau2)`` on the transformed scale, back-transformed to the ratio scale:

    * ``"sqrt"``: ``v = 1 / (4 E)``, limits ``(1 +/- z sqrt(v + tau2))^2``; the lower one is
      0 when ``1 - z sqrt(v + tau2) < 0`` (clipped before squaring);
    * ``"log"``: ``v = 1 / E``, limits ``exp(+/- z sqrt(v + tau2))``.

    ``z = z_value(conf)`` (exact).

    ``method="funnelplotr"`` reproduces FunnelPlotR 0.6.0 (``calculate_limits``) for users
    who must match an existing FunnelPlotR chart, quirks included (docs/statistics.md 5.3):
    with ``tau2 == 0`` its chi-square limits ``chi2_{a/2}(2E) / (2E)``,
    ``chi2_{1-a/2}(2E + 2) / (2E)``; with ``tau2 > 0`` (pass
    :attr:`Overdispersion.limit_tau2` of :func:`funnelplotr_overdispersion`, which is 0 when
    its ``phi <= 1``) ``z`` rounded to 6 decimals as FunnelPlotR hard-codes it (1.959964,
    3.090232) and

    * ``"sqrt"`` (its "CQC" method): ``1 +/- z sqrt(1/(4E) + tau2)``, limits on the
      ``sqrt(O/E)`` scale compared with ``O/E`` unsquared, and the lower one not clipped;
    * ``"log"`` (its "SHMI" method): ``exp(+/- z sqrt(1/E + tau2))`` (as didcore).

    ``nan`` where ``E <= 0``. Units: ratio; multiply by the national rate to plot rates.
    """
    if method not in ("didcore", "funnelplotr"):
        raise InputError(f"method: 'didcore' or 'funnelplotr', not {method!r}")
    if method == "funnelplotr":
        return _funnelplotr_limits(expected, conf, tau2, scale)
    if tau2 < 0 or not math.isfinite(tau2):
        raise ValueError(f"tau2 must be a finite non-negative number, not {tau2!r}")
    if tau2 == 0.0:
        return poisson_funnel_limits(expected, conf)
    z = z_value(conf)
    e = _float(expected)
    ok = e > 0
    safe_e = np.where(ok, e, 1.0)
    if scale == "sqrt":
        s = z * np.sqrt(1.0 / (4.0 * safe_e) + tau2)
        lower = np.maximum(1.0 - s, 0.0) ** 2
        upper = (1.0 + s) ** 2
    elif scale == "log":
        s = z * np.sqrt(1.0 / safe_e + tau2)
        lower = np.exp(-s)
        upper = np.exp(s)
    else:
        raise ValueError(f"funnel scale must be 'sqrt' or 'log', not {scale!r}")
    return np.where(ok, lower, np.nan), np.where(ok, upper, np.nan)


def funnel_flags(ratio: ArrayLike, lower: ArrayLike, upper: ArrayLike) -> NDArray[np.object_]:
    """Classify each ratio against its funnel limits.

    ``"high"`` above ``upper``, ``"low"`` below ``lower``, else ``"within"``; ``None`` where the
    ratio or a limit is undefined.
    """
    y, lo, hi = np.broadcast_arrays(_float(ratio), _float(lower), _float(upper))
    out = np.full(y.shape, "within", dtype=object)
    out[y < lo] = "low"
    out[y > hi] = "high"
    out[np.isnan(y) | np.isnan(lo) | np.isnan(hi)] = None
    return out


# --------------------------------------------------------------------------------------------
# FunnelPlotR-compatible overdispersion and limits (docs/statistics.md 5.3)

#: FunnelPlotR's two-sided z for the two levels it supports, rounded as it hard-codes them.
_FUNNELPLOTR_DECIMALS = 6


def _funnelplotr_limits(
    expected: ArrayLike, conf: float, tau2: float, scale: FunnelScale
) -> tuple[FloatArray, FloatArray]:
    """FunnelPlotR 0.6.0 ``calculate_limits`` for standardised ratios (target 1)."""
    from scipy.special import chdtri

    alpha = _check_conf(conf)
    if isinstance(tau2, bool) or not tau2 >= 0:  # nan and negatives; inf is FunnelPlotR's own
        raise InputError(f"tau2: a number >= 0, not {tau2!r}")
    if scale not in ("sqrt", "log"):
        raise InputError(f"scale: 'sqrt' (FunnelPlotR's CQC) or 'log' (SHMI), not {scale!r}")
    e = _float(expected)
    ok = e > 0
    safe_e = np.where(ok, e, 1.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if tau2 == 0.0:
            # qchisq(1 - a/2, 2E, lower.tail = FALSE) / 2 / E and qchisq(a/2, 2E + 2, ...)
            lower = chdtri(2.0 * safe_e, 1.0 - alpha / 2.0) / 2.0 / safe_e
            upper = chdtri(2.0 * (safe_e + 1.0), alpha / 2.0) / 2.0 / safe_e
        else:
            z = round(z_value(conf), _FUNNELPLOTR_DECIMALS)
            if scale == "sqrt":
                s = 1.0 / (2.0 * np.sqrt(safe_e))
                half = z * np.sqrt(s**2 + tau2)
                lower, upper = 1.0 - half, 1.0 + half
            else:
                half = z * np.sqrt(1.0 / safe_e + tau2)
                lower, upper = np.exp(-half), np.exp(half)
    return (
        np.asarray(np.where(ok, lower, np.nan), dtype=np.float64),
        np.asarray(np.where(ok, upper, np.nan), dtype=np.float64),
    )


def funnelplotr_overdispersion(
    observed: ArrayLike,
    expected: ArrayLike,
    *,
    sr_method: Literal["CQC", "SHMI"] = "SHMI",
    trim: float = 0.1,
    shmi_rounding: bool = True,
) -> Overdispersion:
    """Overdispersion of O/E ratios exactly as FunnelPlotR 0.6.0 estimates it (``data_type="SR"``).

    For users who must reproduce an existing FunnelPlotR chart; :func:`overdispersion` is
    didcore's own (recommended) estimate. Units with ``E <= 0`` are left out. Then:

    * ``"SHMI"`` (FunnelPlotR's default): with ``shmi_rounding`` ``E`` is first rounded to 2
      decimals; ``z = sqrt(E) log(O / E)`` (``-inf`` for ``O = 0``, kept, as in R); units are
      put in ``k = 1 / trim`` groups by ``floor(rank k / (n + 1))`` (average ranks) and the
      lowest and highest groups dropped (truncation); weights ``w = E``.
    * ``"CQC"``: ``z = 2 sqrt(E) (sqrt(O / E) - 1)``, winsorised at the ``trim`` and
      ``1 - trim`` quantiles (R's type 7); weights ``w = 4 E``.
    * ``phi = sum z^2 / n`` over the ``n`` units kept;
      ``tau2 = 0`` if ``n phi < n - 1``, else
      ``max(0, (n phi - (n - 1)) / (sum w - sum w^2 / sum w))``.

    FunnelPlotR then draws the adjusted limits only when ``phi > 1``; with ``phi <= 1`` it falls
    back to unadjusted limits while still reporting its ``tau2`` (which can be > 0 for ``phi``
    in ``(1 - 1/n, 1]``). The result's ``limits`` is ``"funnelplotr"``, its
    :attr:`~Overdispersion.adjusted` is ``phi > 1`` and :attr:`~Overdispersion.limit_tau2` the
    ``tau2`` to give :func:`funnel_limits` with ``method="funnelplotr"``. A zero count on the
    SHMI scale that survives truncation makes ``phi`` and ``tau2`` infinite, as in R (limits 0
    and infinity): use ``"CQC"`` for measures with zero counts.
    """
    if sr_method not in ("CQC", "SHMI"):
        raise InputError(f"sr_method: 'CQC' or 'SHMI' (FunnelPlotR's names), not {sr_method!r}")
    if isinstance(trim, bool) or not isinstance(trim, (int, float)) or not 0.0 < trim < 0.5:
        raise InputError(f"trim: a fraction in (0, 0.5), e.g. 0.1; got {trim!r}")
    o = _numeric(observed, "observed").ravel()
    e = _numeric(expected, "expected").ravel()
    if o.shape != e.shape:
        raise InputError(f"observed and expected: {o.size} and {e.size} values; give one each")
    _check_nonnegative(o, "observed")
    if np.any(~np.isfinite(e)):
        raise InputError("expected: every value must be finite")
    if sr_method == "SHMI" and shmi_rounding:
        e = np.round(e, 2)
    use = e > 0
    o, e = o[use], e[use]
    with np.errstate(divide="ignore", invalid="ignore"):
        if sr_method == "SHMI":
            z = np.sqrt(e) * np.log(o / e)
        else:
            z = (np.sqrt(o / e) - 1.0) / (1.0 / (2.0 * np.sqrt(e)))
    if sr_method == "SHMI":
        k = 1.0 / trim  # as R: not necessarily a whole number
        groups = np.floor(_average_ranks(z) * k / (len(z) + 1))
        keep = (groups > 0) & (groups < k - 1)
        z, e = z[keep], e[keep]
        scale: FunnelScale = "log"
        method: OverdispersionMethod = "truncate"
        w = e
    else:
        if len(z):
            lo, hi = np.quantile(z, [trim, 1.0 - trim])
            z = np.clip(z, lo, hi)
        scale, method, w = "sqrt", "winsorise", 4.0 * e
    n = len(z)
    with np.errstate(invalid="ignore", over="ignore"):
        phi = float(np.sum(z**2) / n) if n else math.nan
        tau2 = 0.0
        if n and not n * phi < n - 1:
            tau2 = max(0.0, float((n * phi - (n - 1)) / (w.sum() - (w**2).sum() / w.sum())))
    if math.isnan(tau2):
        tau2 = 0.0
    return Overdispersion(
        phi=phi, tau2=tau2, n=n, scale=scale, method=method, trim=float(trim), limits="funnelplotr"
    )


# --------------------------------------------------------------------------------------------
# PHEindicatormethods funnels: calculate_funnel_limits, calculate_funnel_points,
# assign_funnel_significance (docs/statistics.md 5.4)

#: The two levels PHE's funnels use, as (label, one-sided tail probability).
_PHE_LEVELS: tuple[tuple[str, float], ...] = (("2s", 0.025), ("3s", 0.001))

PHEStatistic = Literal["proportion", "rate", "ratio"]


def proportion_funnel_limits(
    denominator: ArrayLike,
    target: float,
    conf: float = 0.95,
    *,
    multiplier: float = 1.0,
) -> tuple[FloatArray, FloatArray]:
    """Funnel control limits for a proportion ``x / n`` around ``target``, by denominator ``n``.

    PHEindicatormethods' ``calculate_funnel_limits(statistic = "proportion")`` (its
    ``sigma_adjustment``, method "Wilson"): the limits are the observed proportions at which
    the Wilson score interval of ``x / n`` just reaches the target ``p0``, which simplifies to

        ``p0 +/- z sqrt(p0 (1 - p0) / n)``,  ``z = Phi^-1(1 - (1 - conf) / 2)``

    (PHE's quadratic-root expression equals this to about 1e-13 relative; this closed form does
    not lose digits to cancellation at very large ``n``). Limits are clipped to
    ``[0, 1] x multiplier``; PHE clips the upper one at 100 whatever the multiplier, so with
    ``multiplier = 1`` R gives upper limits above 1 at small ``n`` where didcore gives 1.

    Args:
        denominator: ``n`` (people, finite, > 0).
        target: ``p0``, the average proportion (a fraction in [0, 1]; PHE uses
            ``sum x / sum n`` over the areas).
        conf: two-sided confidence level, e.g. 0.95 or 0.998.
        multiplier: 1 for fractions, 100 for per cent (PHE's usual).

    Returns ``(lower, upper)`` in units of ``multiplier`` (a fraction times ``multiplier``).
    """
    n = _numeric(denominator, "denominator")
    _check_nonnegative(n, "denominator", positive=True)
    p0 = float(_numeric(target, "target"))
    if not 0.0 <= p0 <= 1.0:
        raise InputError(f"target: a proportion in [0, 1], got {p0!r}")
    mult = _check_multiplier(multiplier)
    z = z_value(conf)
    half = z * np.sqrt(p0 * (1.0 - p0) / n)
    lower = np.clip(p0 - half, 0.0, 1.0) * mult
    upper = np.clip(p0 + half, 0.0, 1.0) * mult
    return np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)


def _phe_poisson_funnel(events: FloatArray, p: float, side: Literal["low", "high"]) -> FloatArray:
    """PHE's ``poisson_funnel``: the Poisson mean ``m`` at which ``events`` is at tail ``p``.

    ``"high"``: ``P(X <= events; m) = p``, i.e. the exact (Garwood) upper limit of ``events``
    at ``1 - p``; ``"low"``: ``P(X >= events; m) = p``, the exact lower limit. Solved by the
    same bisection as PHE (23 halvings of ``v`` in (0, 1), ``m = (1 + events) v / (1 - v)``),
    so the values agree with R's to rounding rather than to the bisection's 1e-7 tolerance.
    """
    from scipy.special import pdtr, pdtrc

    v = np.full(events.shape, 0.5)
    dv = 0.5
    while dv > 1e-7:
        dv /= 2.0
        m = (1.0 + events) * v / (1.0 - v)
        if side == "low":
            tail = np.where(events > 0, pdtrc(np.maximum(events - 1.0, 0.0), m), 1.0)
            v = np.where(tail > p, v - dv, v + dv)
        else:
            v = np.where(pdtr(events, m) < p, v - dv, v + dv)
    return np.asarray((1.0 + events) * v / (1.0 - v), dtype=np.float64)


def _r_nchar_whole(x: float) -> int:
    """``nchar(x)`` in R for a whole number ``x >= 0``: R prints ``1e+05`` rather than ``100000``
    (scientific notation when it is narrower), and PHE's axis rounding counts those characters.
    """
    digits = str(int(x))
    sig = len(digits.rstrip("0")) or 1
    exponent = len(digits) - 1
    sci = sig + (1 if sig > 1 else 0) + 2 + (2 if exponent < 100 else 3)
    return len(digits) if len(digits) <= sci else sci


def _signif_floor(x: float) -> float:
    """PHE's ``signif.floor``: round 95% of ``x`` down to its leading digit (axis minimum)."""
    if x == 0:
        return 0.0
    n = _r_nchar_whole(math.floor(x * 0.95)) - 1
    return float(math.floor(x * 0.95 / 10.0**n) * 10.0**n)


def _signif_ceiling(x: float) -> float:
    """PHE's ``signif.ceiling``: round 105% of ``x`` up to two leading digits (axis maximum)."""
    if x == 0:
        return 0.0
    n = _r_nchar_whole(math.ceil(x * 1.05)) - 2
    return float(math.ceil(x * 1.05 / 10.0**n) * 10.0**n)


def _phe_rate_denominator(
    numerator: FloatArray,
    rate: FloatArray,
    denominator: FloatArray | None,
    rate_type: str,
    multiplier: float,
) -> FloatArray:
    """PHE's derived denominator of a rate: ``multiplier x O / rate``.

    For ``O = 0``: nan (DSR) or the given denominator (crude).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        derived = multiplier * numerator / rate
    zero = numerator == 0
    if rate_type == "dsr":
        return np.where(zero, np.nan, derived)
    if denominator is None:
        return derived
    return np.where(zero, denominator, derived)


def _check_phe_rate_args(
    numerator: FloatArray,
    denominator: ArrayLike | None,
    rate: ArrayLike | None,
    rate_type: str | None,
    multiplier: float | None,
) -> tuple[FloatArray, FloatArray | None, float]:
    if rate is None or rate_type is None or multiplier is None:
        raise InputError("for rates give rate, rate_type ('dsr' or 'crude') and multiplier")
    if rate_type not in ("dsr", "crude"):
        raise InputError(f"rate_type: 'dsr' or 'crude', not {rate_type!r}")
    r = _numeric(rate, "rate")
    if r.shape != numerator.shape:
        raise InputError(f"rate: {r.size} values for {numerator.size} numerators")
    den = None
    if denominator is not None:
        den = _numeric(denominator, "denominator")
        _check_nonnegative(den, "denominator", positive=True)
    elif np.any(numerator == 0):
        raise InputError(
            "denominator: some numerators are 0, so their rate gives no population; "
            "give the denominators too"
        )
    positive = numerator > 0
    if np.any(~(r[positive] > 0)):
        raise InputError("rate: where the numerator is above 0 the rate must be > 0")
    return r, den, _check_multiplier(multiplier)


def phe_funnel_points(
    numerator: ArrayLike,
    rate: ArrayLike,
    *,
    rate_type: Literal["dsr", "crude"],
    years_of_data: float,
    multiplier: float,
    denominator: ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Where each area sits on a PHE rate funnel: PHEindicatormethods ``calculate_funnel_points``.

    Returns ``(rate_chart, denominator_derived)``, the y and x of each area's point:

    * ``"dsr"``: areas with fewer than 10 events get ``nan`` for both (PHE does not chart DSRs
      of under 10 events); others ``y = rate``, ``x = multiplier O / rate / years_of_data``
      (the population that would give the DSR as a crude rate, per year);
    * ``"crude"``: ``y = rate``; ``x = multiplier O / rate / years_of_data``, or, for ``O = 0``,
      ``denominator / years_of_data`` (so a zero count needs ``denominator``).

    Units: ``rate`` per ``multiplier`` people; ``x`` people per year.
    """
    o = _numeric(numerator, "numerator")
    _check_nonnegative(o, "numerator")
    r, den, mult = _check_phe_rate_args(o, denominator, rate, rate_type, multiplier)
    years = _check_multiplier(years_of_data)
    if rate_type == "dsr":
        small = o < 10
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(small, np.nan, mult * o / r / years)
        return np.where(small, np.nan, r), np.asarray(x, dtype=np.float64)
    derived = _phe_rate_denominator(o, r, den, "crude", mult)
    return np.asarray(r, dtype=np.float64), np.asarray(derived / years, dtype=np.float64)


def phe_funnel_limits(
    numerator: ArrayLike,
    denominator: ArrayLike | None = None,
    *,
    statistic: PHEStatistic,
    multiplier: float,
    rate: ArrayLike | None = None,
    rate_type: Literal["dsr", "crude"] | None = None,
    ratio_type: Literal["count", "isr"] | None = None,
    years_of_data: float | None = None,
) -> dict[str, Any]:
    """PHE's 100-row table of funnel control limits (PHEindicatormethods
    ``calculate_funnel_limits``).

    Same arguments and columns as the R function (``type = "full"``), as a dict of arrays
    (``statistic`` and ``method`` strings):

    * ``"proportion"``: ``Population`` (x), ``lower_2s_limit`` ... ``upper_3s_limit`` from
      :func:`proportion_funnel_limits` at 95% (``2s``) and 99.8% (``3s``) around
      ``p0 = sum x / sum n``, and ``baseline = p0 x multiplier``; method "Wilson".
    * ``"rate"`` (``rate``, ``rate_type``, ``years_of_data`` required): each area's
      denominator is derived as ``multiplier O / rate`` (``O = 0``: dropped for DSRs, its
      ``denominator`` for crude rates), ``r0 = sum O / sum derived``. For each number of events
      ``O`` on the grid (``Events``) the limits are the rates at which ``O`` events' exact
      Poisson interval just reaches ``r0``: lower ``r0 O / U(O)``, upper ``r0 O / L(O)``
      (``U``, ``L`` the exact upper and lower limits of ``O``, PHE's bisection), times
      ``multiplier``, at populations ``U(O) / r0 / years_of_data`` and ``L(O) / r0 /
      years_of_data`` (the ``*_population_1_year`` columns); method "Poisson".
    * ``"ratio"`` (``ratio_type`` required): ``Observed_events`` ``O``, limits ``O / U(O)``,
      ``O / L(O)`` at expected counts ``U(O)``, ``L(O)`` (``*_exp_events``), minus 1 for
      ``"count"`` or times 100 for ``"isr"``; method "Poisson".

    The x grid is PHE's: from ``max(1, axis minimum)`` to the axis maximum in 100 geometric
    steps rounded to whole numbers (each at least 1 above the last), the axis rounded as R
    rounds it (``signif.floor``/``signif.ceiling``, R's ``nchar`` of ``1e+05`` included); the
    axis starts at 0 when the largest denominator is over twice the smallest. For rates the
    axis is of events: the denominators per year, rounded, times ``years_of_data x r0``.
    """
    if statistic not in ("proportion", "rate", "ratio"):
        raise InputError(f"statistic: 'proportion', 'rate' or 'ratio', not {statistic!r}")
    o = _numeric(numerator, "numerator")
    _check_nonnegative(o, "numerator")
    if o.ndim != 1 or not o.size:
        raise InputError("numerator: give one value per area (a non-empty 1-d array)")
    mult = _check_multiplier(multiplier)
    if statistic == "rate":
        r, den, mult = _check_phe_rate_args(o, denominator, rate, rate_type, multiplier)
        if years_of_data is None:
            raise InputError("years_of_data: required for rates (e.g. 1 or 3)")
        years = _check_multiplier(years_of_data)
        derived = _phe_rate_denominator(o, r, den, str(rate_type), mult)
    else:
        if denominator is None:
            raise InputError(f"denominator: required for {statistic}s")
        derived = _numeric(denominator, "denominator")
        if derived.shape != o.shape:
            raise InputError(f"denominator: {derived.size} values for {o.size} numerators")
        _check_nonnegative(derived, "denominator", positive=True)
        if statistic == "proportion" and np.any(o > derived):
            raise InputError("numerator: above its denominator, which a proportion cannot be")
        if statistic == "ratio" and ratio_type not in ("count", "isr"):
            raise InputError(f"ratio_type: 'count' or 'isr', not {ratio_type!r}")
        years = 1.0
    defined = derived[np.isfinite(derived)]
    if not defined.size:
        raise InputError("no area has a denominator (every DSR has 0 events)")
    av = float(o.sum() / defined.sum())
    lo_den, hi_den = float(defined.min()), float(defined.max())
    axis_min = 0.0 if hi_den > 2 * lo_den else _signif_floor(lo_den / years) * years
    axis_max = _signif_ceiling(hi_den / years) * years
    if statistic == "rate":
        axis_min = float(math.floor(axis_min * av))
        axis_max = float(math.ceil(axis_max * av))
    offset = 0 if statistic == "ratio" else 1
    grid = [max(1.0, axis_min)]
    for j in range(2, 101):
        prev = grid[-1]
        step = (axis_max / prev) ** (1.0 / (101 - (j - 1 + offset))) * prev
        grid.append(max(float(round(step)), prev + 1.0))
    x = np.asarray(grid)
    out: dict[str, Any]
    if statistic == "proportion":
        out = {"Population": x}
        for label, tail in _PHE_LEVELS:
            lo, hi = proportion_funnel_limits(x, av, 1.0 - 2.0 * tail, multiplier=mult)
            out[f"lower_{label}_limit"], out[f"upper_{label}_limit"] = lo, hi
        out["baseline"] = np.full(x.shape, av * mult)
        out["statistic"], out["method"] = "proportion", "Wilson"
        return out
    if statistic == "ratio":
        out = {"Observed_events": x}
        for label, tail in _PHE_LEVELS:
            upper_mean = _phe_poisson_funnel(x, tail, "high")
            lower_mean = _phe_poisson_funnel(x, tail, "low")
            out[f"lower_{label}_exp_events"] = upper_mean
            out[f"lower_{label}_limit"] = x / upper_mean
            out[f"upper_{label}_exp_events"] = lower_mean
            out[f"upper_{label}_limit"] = x / lower_mean
        for key in [k for k in out if k.endswith("limit")]:
            out[key] = out[key] - 1.0 if ratio_type == "count" else out[key] * 100.0
        out["statistic"], out["method"] = f"ratio ({ratio_type})", "Poisson"
        return out
    out = {"Events": x}
    for label, tail in _PHE_LEVELS:
        upper_pop = _phe_poisson_funnel(x, tail, "high") / av
        lower_pop = _phe_poisson_funnel(x, tail, "low") / av
        out[f"lower_{label}_population_1_year"] = upper_pop / years
        out[f"lower_{label}_limit"] = x / upper_pop * mult
        out[f"upper_{label}_population_1_year"] = lower_pop / years
        out[f"upper_{label}_limit"] = x / lower_pop * mult
    out["baseline"] = np.full(x.shape, av * mult)
    per = f"{mult:,.0f}" if mult.is_integer() else f"{mult:g}"
    out["statistic"], out["method"] = f"rate ({rate_type} per {per})", "Poisson"
    return out


def phe_funnel_significance(
    numerator: ArrayLike,
    denominator: ArrayLike | None = None,
    *,
    statistic: PHEStatistic,
    rate: ArrayLike | None = None,
    rate_type: Literal["dsr", "crude"] | None = None,
    multiplier: float | None = None,
) -> NDArray[np.object_]:
    """Each area's funnel significance: PHEindicatormethods ``assign_funnel_significance``.

    Labels ``"High (0.001)"``, ``"High (0.025)"``, ``"Low (0.001)"``, ``"Low (0.025)"``,
    ``"Not significant"`` (first that applies, in that order of strength):

    * ``"proportion"``: ``x / n`` against :func:`proportion_funnel_limits` at ``n`` around
      ``sum x / sum n`` (99.8%, then 95%);
    * ``"ratio"``: the exact (``O < 10``) or Byar's (``O >= 10``) interval of ``O`` divided by
      ``E`` (:func:`standardised_ratio_limits`) against 1;
    * ``"rate"``: the same interval of ``O`` divided by the derived denominator
      (``multiplier O / rate``; ``O = 0``: none for DSRs, ``denominator`` for crude rates)
      against ``sum O / sum derived``; DSRs of under 10 events are
      ``"Not applicable for events less than 10 for dsrs"``.

    Comparisons are strict (a value on a limit is not significant). Areas whose interval is
    undefined are ``"Not significant"``, as in R.
    """
    if statistic not in ("proportion", "rate", "ratio"):
        raise InputError(f"statistic: 'proportion', 'rate' or 'ratio', not {statistic!r}")
    o = _numeric(numerator, "numerator")
    _check_nonnegative(o, "numerator")
    if statistic == "rate":
        r, den, mult = _check_phe_rate_args(o, denominator, rate, rate_type, multiplier)
        derived = _phe_rate_denominator(o, r, den, str(rate_type), mult)
        target = float(o.sum() / np.nansum(derived))
    else:
        if denominator is None:
            raise InputError(f"denominator: required for {statistic}s")
        derived = _numeric(denominator, "denominator")
        _check_nonnegative(derived, "denominator", positive=True)
        if statistic == "proportion" and np.any(o > derived):
            raise InputError("numerator: above its denominator, which a proportion cannot be")
        target = 1.0 if statistic == "ratio" else float(o.sum() / derived.sum())
    out = np.full(o.shape, "Not significant", dtype=object)
    # weakest first, so the stronger label overwrites; lows then highs as R's case_when orders
    for tail_label, conf in (("0.025", 0.95), ("0.001", 0.998)):
        if statistic == "proportion":
            lo, hi = proportion_funnel_limits(derived, target, conf)
            with np.errstate(invalid="ignore"):
                y = o / derived
            low, high = y < lo, y > hi
        else:
            ci_lo, ci_hi = standardised_ratio_limits(o, np.nan_to_num(derived, nan=-1.0), conf)
            with np.errstate(invalid="ignore"):
                low, high = ci_hi < target, ci_lo > target
        out[low] = f"Low ({tail_label})"
        out[high] = f"High ({tail_label})"
    # R's case_when tests High (0.001), High (0.025), Low (0.001), Low (0.025) in turn
    if statistic == "rate" and rate_type == "dsr":
        out[o < 10] = "Not applicable for events less than 10 for dsrs"
    return out


# --------------------------------------------------------------------------------------------
# comparing two standardised rates


def published_chi2_test(rate1: ArrayLike, rate2: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Test two standardised rates as the publication does: ``chi2 = (r2 - r1)^2 / (r1 + r2)``.

    A Pearson chi-square with one degree of freedom that treats the two rates per 10,000 as if
    they were counts; ``p = P(chi2_1 > chi2)``. ``nan`` where ``r1 + r2 <= 0``. The statistic
    is proportional to the rate unit: the same rates per 100,000 give a chi2 ten times larger,
    so this is not a test of the counts; see :func:`ratio_test_counts` and
    ``docs/statistics.md``.
    """
    from scipy.special import chdtrc

    r1 = _float(rate1)
    r2 = _float(rate2)
    total = r1 + r2
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = np.where(total > 0, (r2 - r1) ** 2 / np.where(total > 0, total, 1.0), np.nan)
    return stat, np.asarray(chdtrc(1.0, stat), dtype=np.float64)


def significance_stars(p_value: ArrayLike) -> NDArray[np.str_]:
    """Label p-values with the publication's stars.

    ``"***"`` p < 0.001, ``"**"`` p < 0.01, ``"*"`` p < 0.05, else ``""`` (also for an undefined
    p-value).
    """
    p = _float(p_value)
    out = np.full(p.shape, "", dtype="<U3")
    out[p < 0.05] = "*"
    out[p < 0.01] = "**"
    out[p < 0.001] = "***"
    return out


def _log_ratio(
    o1: ArrayLike, e1: ArrayLike, o2: ArrayLike, e2: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """``log((O2 / E2) / (O1 / E1))`` and its variance ``1 / O1 + 1 / O2``; nan if undefined."""
    a1, b1, a2, b2 = np.broadcast_arrays(_float(o1), _float(e1), _float(o2), _float(e2))
    ok = (a1 > 0) & (a2 > 0) & (b1 > 0) & (b2 > 0)
    s = [np.where(ok, v, 1.0) for v in (a1, b1, a2, b2)]
    log_ratio = np.log(s[2] / s[3]) - np.log(s[0] / s[1])
    var = 1.0 / s[0] + 1.0 / s[2]
    return np.where(ok, log_ratio, np.nan), np.where(ok, var, np.nan)


def ratio_test_counts(
    o1: ArrayLike, e1: ArrayLike, o2: ArrayLike, e2: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Count-based test that two standardised ratios (or rates) are equal.

    Wald test on the log scale: ``z = log((O2/E2) / (O1/E1)) / sqrt(1/O1 + 1/O2)``, returned as
    ``chi2 = z^2`` (one degree of freedom, so it sits beside the published chi2) with
    ``p = P(chi2_1 > chi2)``. The variance is the delta-method variance of the log of a Poisson
    count, with the expected counts ``E`` treated as fixed (they come from national rates over
    the whole population). It does not depend on the rate unit. ``nan`` where any count or
    expected count is zero.
    """
    from scipy.special import chdtrc

    lr, var = _log_ratio(o1, e1, o2, e2)
    stat = lr**2 / var
    return stat, np.asarray(chdtrc(1.0, stat), dtype=np.float64)


def ratio_confidence_interval(
    o1: ArrayLike, e1: ArrayLike, o2: ArrayLike, e2: ArrayLike, conf: float = 0.95
) -> tuple[FloatArray, FloatArray]:
    """Confidence interval for the ratio of two standardised rates ``(O2/E2) / (O1/E1)``.

    ``exp(log ratio +/- z sqrt(1/O1 + 1/O2))`` with ``z = z_value(conf)``: the interval that
    matches :func:`ratio_test_counts` (it excludes 1 exactly when ``p < 1 - conf``).
    ``nan`` where any count or expected count is zero.
    """
    z = z_value(conf)
    lr, var = _log_ratio(o1, e1, o2, e2)
    half = z * np.sqrt(var)
    return np.exp(lr - half), np.exp(lr + half)
