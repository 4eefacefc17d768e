"""Pure-Python reference for the statistics layer: one value at a time, plain loops.

Every formula of :mod:`didcore.stats`, :mod:`didcore.standardise` (including the expected
counts that the Rust core computes) and :mod:`didcore.ratios` is written again here as directly
as possible, with :mod:`math`, :mod:`statistics` and scalar scipy calls only (scipy for the
incomplete gamma function and Poisson distribution function, which :mod:`math` lacks). Undefined
values are ``math.nan`` in the scalar functions and ``None`` in the table builders, matching
the ``to_pylist()`` of the fast path's Arrow tables. The tests hold the fast paths equal to
these functions (counts exactly, everything else to 1e-9 relative).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

__all__ = [
    "ESP2013",
    "byar_limits",
    "dsr",
    "exact_poisson_limits",
    "expected_counts",
    "funnel_flag",
    "funnel_limits",
    "funnel_z_score",
    "overdispersion",
    "poisson_funnel_limits",
    "published_chi2_test",
    "rate",
    "rates_ratios",
    "ratio_confidence_interval",
    "ratio_test_counts",
    "significance_stars",
    "standardise",
    "standardised_ratio_limits",
    "z_value",
]

NAN = math.nan
ESP2013 = [5000, 5500, 5500, 5500, 6000, 6000, 6500, 7000, 7000, 7000, 7000, 6500, 6000, 5500]
ESP2013 += [5000, 4000, 2500, 1500, 1000]
SEXES = ["male", "female"]
AGE_BANDS = [f"{lo}-{lo + 4}" for lo in range(0, 90, 5)] + ["90+"]
MULT = 10000.0


def _none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


# --------------------------------------------------------------------------------------------
# scalar formulas


def z_value(conf: float) -> float:
    """Two-sided normal quantile by the standard library's inverse normal CDF."""
    return statistics.NormalDist().inv_cdf(1 - (1 - conf) / 2)


def rate(observed: float, population: float, multiplier: float = MULT) -> float:
    """Crude rate per ``multiplier``; nan without population."""
    if population <= 0:
        return NAN
    return observed / population * multiplier


def exact_poisson_limits(count: float, conf: float = 0.95) -> tuple[float, float]:
    """Exact Poisson limits in the chi-square form: chi2(a/2, 2O)/2, chi2(1-a/2, 2O+2)/2."""
    from scipy.stats import chi2

    a = 1 - conf
    lower = 0.0 if count == 0 else float(chi2.ppf(a / 2, 2 * count)) / 2
    upper = float(chi2.ppf(1 - a / 2, 2 * count + 2)) / 2
    return lower, upper


def byar_limits(count: float, conf: float = 0.95) -> tuple[float, float]:
    """Byar's limits; the lower one nan when O = 0 or negative (as PHE)."""
    z = z_value(conf)
    if count > 0:
        lower = count * (1 - 1 / (9 * count) - z / (3 * math.sqrt(count))) ** 3
        if lower < 0:
            lower = NAN
    else:
        lower = NAN
    c1 = count + 1
    upper = c1 * (1 - 1 / (9 * c1) + z / (3 * math.sqrt(c1))) ** 3
    return lower, upper


def standardised_ratio_limits(
    observed: float, expected: float, conf: float = 0.95, byar_from: int = 10
) -> tuple[float, float]:
    """Limits of O/E: exact Poisson below ``byar_from`` observed, Byar's from it."""
    if expected <= 0:
        return NAN, NAN
    if observed < byar_from:
        lo, hi = exact_poisson_limits(observed, conf)
    else:
        lo, hi = byar_limits(observed, conf)
    return lo / expected, hi / expected


def dsr(
    observed: Sequence[float],
    population: Sequence[float],
    standard: Sequence[float],
    conf: float = 0.95,
    multiplier: float = MULT,
    min_count: float = 10,
    count_method: str = "byar",
) -> tuple[float, float, float]:
    """DSR with Dobson limits, as PHEindicatormethods ``calculate_dsr``."""
    total = 0.0
    for o in observed:
        total += o
    if total < min_count:
        return NAN, NAN, NAN
    for p in population:
        if p <= 0:
            return NAN, NAN, NAN
    w_total = 0.0
    weighted = 0.0
    var = 0.0
    for o, p, w in zip(observed, population, standard, strict=True):
        w_total += w
        weighted += w * o / p
        var += w * w * o / (p * p)
    value = weighted / w_total
    var = var / (w_total * w_total)
    if total == 0:
        return value * multiplier, NAN, NAN
    if count_method == "byar":
        lo_c, hi_c = byar_limits(total, conf)
    else:
        lo_c, hi_c = exact_poisson_limits(total, conf)
    spread = math.sqrt(var / total)
    lower = (value + spread * (lo_c - total)) * multiplier
    upper = (value + spread * (hi_c - total)) * multiplier
    return value * multiplier, lower, upper


def _poisson_cdf(r: int, mean: float) -> float:
    from scipy.special import pdtr

    return float(pdtr(r, mean)) if r >= 0 else 0.0


def _poisson_pmf(r: int, mean: float) -> float:
    return math.exp(r * math.log(mean) - mean - math.lgamma(r + 1))


def _poisson_quantile(p: float, mean: float) -> int:
    """Smallest integer r with P(Y <= r) >= p, by bisection."""
    lo, hi = -1, math.ceil(mean + 20 * math.sqrt(mean) + 20)
    while _poisson_cdf(hi, mean) < p:
        hi *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _poisson_cdf(mid, mean) >= p:
            hi = mid
        else:
            lo = mid
    return hi


def poisson_funnel_limits(expected: float, conf: float) -> tuple[float, float]:
    """Spiegelhalter's interpolated exact Poisson limits for O/E at expected count E."""
    if expected <= 0:
        return NAN, NAN
    a = 1 - conf
    out = []
    for p in (a / 2, 1 - a / 2):
        r = _poisson_quantile(p, expected)
        f_r = _poisson_cdf(r, expected)
        interp = (f_r - p) / _poisson_pmf(r, expected)
        out.append(max((r - interp) / expected, 0.0))
    return out[0], out[1]


def funnel_z_score(observed: float, expected: float, scale: str) -> float:
    """z-score of O/E against 1 on the sqrt or log scale."""
    if expected <= 0:
        return NAN
    if scale == "sqrt":
        # 2 sqrt(E) (sqrt(O/E) - 1), written without the division so that O = E gives 0 exactly
        return 2 * (math.sqrt(observed) - math.sqrt(expected))
    if observed == 0:
        return -math.inf
    return math.sqrt(expected) * math.log(observed / expected)


def _quantile_type7(values: list[float], prob: float) -> float:
    xs = sorted(values)
    h = (len(xs) - 1) * prob
    lo = math.floor(h)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (h - lo) * (xs[hi] - xs[lo])


def _average_ranks(values: list[float]) -> list[float]:
    ranks = []
    for v in values:
        below = sum(1 for u in values if u < v)
        equal = sum(1 for u in values if u == v)
        ranks.append(below + (equal + 1) / 2)
    return ranks


def overdispersion(
    observed: Sequence[float],
    expected: Sequence[float],
    scale: str = "sqrt",
    method: str = "winsorise",
    trim: float = 0.1,
) -> dict[str, Any]:
    """Spiegelhalter's phi and tau2 (winsorised) or the SHMI variant (truncated)."""
    zs, es = [], []
    for o, e in zip(observed, expected, strict=True):
        z = funnel_z_score(o, e, scale)
        if math.isfinite(z):
            zs.append(z)
            es.append(e)
    if method == "winsorise":
        if zs:
            lo = _quantile_type7(zs, trim)
            hi = _quantile_type7(zs, 1 - trim)
            zs = [min(max(z, lo), hi) for z in zs]
    else:
        k = round(1 / trim)
        ranks = _average_ranks(zs)
        kept = [
            (z, e)
            for z, e, r in zip(zs, es, ranks, strict=True)
            if 0 < math.floor(r * k / (len(zs) + 1)) < k - 1
        ]
        zs = [z for z, _ in kept]
        es = [e for _, e in kept]
    n = len(zs)
    phi = sum(z * z for z in zs) / n if n else NAN
    tau2 = 0.0
    if n >= 2 and n * phi > n - 1:
        ws = [4 * e if scale == "sqrt" else e for e in es]
        sw = sum(ws)
        sw2 = sum(w * w for w in ws)
        tau2 = (n * phi - (n - 1)) / (sw - sw2 / sw)
    return {"phi": phi, "tau2": tau2, "n": n}


def funnel_limits(
    expected: float, conf: float, tau2: float = 0.0, scale: str = "sqrt"
) -> tuple[float, float]:
    """Funnel limits: exact Poisson when tau2 = 0, else widened and back-transformed."""
    if tau2 == 0:
        return poisson_funnel_limits(expected, conf)
    if expected <= 0:
        return NAN, NAN
    z = z_value(conf)
    if scale == "sqrt":
        s = z * math.sqrt(1 / (4 * expected) + tau2)
        return max(1 - s, 0.0) ** 2, (1 + s) ** 2
    s = z * math.sqrt(1 / expected + tau2)
    # a huge tau2 (one wild unit among few) can put the upper limit beyond float range
    return math.exp(-s), math.exp(s) if s < 709 else math.inf


def funnel_flag(ratio: float, lower: float, upper: float) -> str | None:
    """'high', 'low', 'within', or None when anything is undefined."""
    if math.isnan(ratio) or math.isnan(lower) or math.isnan(upper):
        return None
    if ratio > upper:
        return "high"
    if ratio < lower:
        return "low"
    return "within"


def published_chi2_test(rate1: float, rate2: float) -> tuple[float, float]:
    """(r2 - r1)^2 / (r1 + r2) and its 1-df p-value, erfc(sqrt(chi2 / 2))."""
    if rate1 + rate2 <= 0 or math.isnan(rate1 + rate2):
        return NAN, NAN
    chi2 = (rate2 - rate1) ** 2 / (rate1 + rate2)
    return chi2, math.erfc(math.sqrt(chi2 / 2))


def significance_stars(p: float) -> str:
    """Stars of a p-value."""
    if p is None or math.isnan(p):
        return ""
    if p < 0.001:
        return "***"
    if p < 0.01:
        return "**"
    if p < 0.05:
        return "*"
    return ""


def ratio_test_counts(o1: float, e1: float, o2: float, e2: float) -> tuple[float, float]:
    """Log-ratio Wald chi-square and p-value."""
    if min(o1, e1, o2, e2) <= 0:
        return NAN, NAN
    lr = math.log((o2 / e2) / (o1 / e1))
    chi2 = lr * lr / (1 / o1 + 1 / o2)
    return chi2, math.erfc(math.sqrt(chi2 / 2))


def ratio_confidence_interval(
    o1: float, e1: float, o2: float, e2: float, conf: float = 0.95
) -> tuple[float, float]:
    """exp(log ratio +/- z sqrt(1/O1 + 1/O2))."""
    if min(o1, e1, o2, e2) <= 0:
        return NAN, NAN
    lr = math.log((o2 / e2) / (o1 / e1))
    half = z_value(conf) * math.sqrt(1 / o1 + 1 / o2)
    return math.exp(lr - half), math.exp(lr + half)


# --------------------------------------------------------------------------------------------
# expected counts


def expected_counts(
    observed: Any, population: Any, groups: Sequence[int], n_groups: int
) -> tuple[list[list[float]], list[list[float]]]:
    """Compute (E, O) per group and measure.

    ``observed`` is ``[unit][stratum][measure]``, ``population`` ``[unit][stratum]``. Raises
    ValueError naming the stratum and measure when tests meet zero national population.
    """
    obs = observed.tolist() if hasattr(observed, "tolist") else observed
    pop = population.tolist() if hasattr(population, "tolist") else population
    n_units = len(obs)
    n_strata = len(pop[0]) if n_units else 0
    n_measure = len(obs[0][0]) if n_units and n_strata else 0
    rates = [[0.0] * n_measure for _ in range(n_strata)]
    for s in range(n_strata):
        p_nat = 0.0
        for u in range(n_units):
            p_nat += pop[u][s]
        for m in range(n_measure):
            o_nat = 0.0
            for u in range(n_units):
                o_nat += obs[u][s][m]
            if p_nat > 0:
                rates[s][m] = o_nat / p_nat
            elif o_nat > 0:
                raise ValueError(f"stratum {s} measure {m}: {o_nat} tests, zero population")
    e_out = [[0.0] * n_measure for _ in range(n_groups)]
    o_out = [[0.0] * n_measure for _ in range(n_groups)]
    for u in range(n_units):
        g = groups[u]
        for s in range(n_strata):
            for m in range(n_measure):
                e_out[g][m] += rates[s][m] * pop[u][s]
                o_out[g][m] += obs[u][s][m]
    return e_out, o_out


# --------------------------------------------------------------------------------------------
# whole tables


def standardise(
    counts: Any,
    population: Any,
    icb_codes: Sequence[str],
    measures: Sequence[str],
    kinds: Sequence[str],
    overdispersion_method: str | None = None,
    funnel_scale: str = "sqrt",
    trim: float = 0.1,
    dsr_min_count: float = 10,
) -> dict[str, Any]:
    """Compute the rows of :func:`didcore.standardise`'s tables.

    Returns ``national``, ``icb`` and ``summary`` rows and, under ``funnel``, the per-measure
    funnel parameters (phi, tau2, n, method, scale).
    """
    c = counts.tolist() if hasattr(counts, "tolist") else counts
    p = population.tolist() if hasattr(population, "tolist") else population
    n_icb, n_measure = len(icb_codes), len(measures)
    # flatten strata in (sex, age, imd) order
    obs = [
        [
            [c[i][sx][a][q][m] for m in range(n_measure)]
            for sx in range(2)
            for a in range(19)
            for q in range(5)
        ]
        for i in range(n_icb)
    ]
    pop = [
        [p[i][sx][a][q] for sx in range(2) for a in range(19) for q in range(5)]
        for i in range(n_icb)
    ]
    expected, _ = expected_counts(obs, pop, list(range(n_icb)), n_icb)

    observed = [[0] * n_measure for _ in range(n_icb)]
    icb_pop = [0.0] * n_icb
    for i in range(n_icb):
        for s in range(190):
            icb_pop[i] += pop[i][s]
            for m in range(n_measure):
                observed[i][m] += int(obs[i][s][m])
    total_pop = sum(icb_pop)
    national = []
    nat_rate = []
    for m in range(n_measure):
        total = sum(observed[i][m] for i in range(n_icb))
        nat_rate.append(rate(total, total_pop))
        national.append(
            {
                "measure": measures[m],
                "kind": kinds[m],
                "observed": total,
                "population": total_pop,
                "rate_per_10000": _none(nat_rate[m]),
            }
        )

    icb_rows = []
    sr_by_measure: list[list[float]] = []
    within_by_measure: list[list[bool | None]] = []
    funnel = []
    for m in range(n_measure):
        o_m = [observed[i][m] for i in range(n_icb)]
        e_m = [expected[i][m] for i in range(n_icb)]
        od = None
        tau2 = 0.0
        if overdispersion_method is not None:
            od = overdispersion(o_m, e_m, funnel_scale, overdispersion_method, trim)
            tau2 = od["tau2"]
        funnel.append(
            {
                "method": overdispersion_method or "poisson",
                "scale": funnel_scale if od else None,
                "phi": od["phi"] if od else NAN,
                "tau2": tau2,
                "n": od["n"] if od else sum(1 for e in e_m if e > 0),
            }
        )
        srs, withins = [], []
        for i in range(n_icb):
            o, e = o_m[i], e_m[i]
            ratio = o / e if e > 0 else NAN
            sr = ratio * nat_rate[m]
            crude = rate(o, icb_pop[i])
            lim = {}
            for label, conf in (("95", 0.95), ("998", 0.998)):
                lo, hi = standardised_ratio_limits(o, e, conf)
                lim[label] = (lo * nat_rate[m], hi * nat_rate[m])
            within: bool | None = None
            if not (math.isnan(sr) or math.isnan(crude)):
                within = abs(sr - crude) <= 0.1 * crude * (1 + 1e-9)
            flags = {}
            for label, conf in (("95", 0.95), ("998", 0.998)):
                flo, fhi = funnel_limits(e, conf, tau2, funnel_scale)
                flags[label] = funnel_flag(ratio, flo, fhi)
            d_obs, d_pop, d_w = [], [], []
            for sx in range(2):
                for a in range(19):
                    d_obs.append(sum(c[i][sx][a][q][m] for q in range(5)))
                    d_pop.append(sum(p[i][sx][a][q] for q in range(5)))
                    d_w.append(ESP2013[a])
            dv, dlo, dhi = dsr(d_obs, d_pop, d_w, 0.95, MULT, dsr_min_count)
            icb_rows.append(
                {
                    "icb_code": icb_codes[i],
                    "measure": measures[m],
                    "kind": kinds[m],
                    "observed": o,
                    "population": icb_pop[i],
                    "crude_rate": _none(crude),
                    "expected": e,
                    "ratio": _none(ratio),
                    "standardised_rate": _none(sr),
                    "sr_lower_95": _none(lim["95"][0]),
                    "sr_upper_95": _none(lim["95"][1]),
                    "sr_lower_998": _none(lim["998"][0]),
                    "sr_upper_998": _none(lim["998"][1]),
                    "within_10pct_of_crude": within,
                    "funnel_95": flags["95"],
                    "funnel_998": flags["998"],
                    "dsr": _none(dv),
                    "dsr_lower_95": _none(dlo),
                    "dsr_upper_95": _none(dhi),
                }
            )
            srs.append(sr)
            withins.append(within)
        sr_by_measure.append(srs)
        within_by_measure.append(withins)

    summary = []
    for m in range(n_measure):
        values = [v for v in sr_by_measure[m] if not math.isnan(v)]
        mean = statistics.fmean(values) if values else NAN
        sd = statistics.stdev(values) if len(values) >= 2 else NAN
        share_1sd = (
            sum(1 for v in values if abs(v - mean) <= sd + 1e-9 * abs(mean)) / len(values)
            if len(values) >= 2
            else NAN
        )
        defined = [w for w in within_by_measure[m] if w is not None]
        share_10 = sum(1 for w in defined if w) / len(defined) if defined else NAN
        summary.append(
            {
                "measure": measures[m],
                "national_rate": _none(nat_rate[m]),
                "mean_sr": _none(mean),
                "sd_sr": _none(sd),
                "lower_1sd": _none(mean - sd),
                "upper_1sd": _none(mean + sd),
                "share_within_1sd": _none(share_1sd),
                "share_within_10pct_of_crude": _none(share_10),
                "n_icbs": len(values),
            }
        )
    return {"national": national, "icb": icb_rows, "summary": summary, "funnel": funnel}


def rates_ratios(
    counts: Any, population: Any, measures: Sequence[str], kinds: Sequence[str], conf: float = 0.95
) -> list[dict[str, Any]]:
    """Compute the rows of :func:`didcore.rates_ratios`."""
    c = counts.tolist() if hasattr(counts, "tolist") else counts
    p = population.tolist() if hasattr(population, "tolist") else population
    n_icb, n_measure = len(c), len(measures)
    # national counts and people by (sex, age, imd)
    o_nat = [[[[0] * n_measure for _ in range(5)] for _ in range(19)] for _ in range(2)]
    p_nat = [[[0.0] * 5 for _ in range(19)] for _ in range(2)]
    for i in range(n_icb):
        for sx in range(2):
            for a in range(19):
                for q in range(5):
                    p_nat[sx][a][q] += p[i][sx][a][q]
                    for m in range(n_measure):
                        o_nat[sx][a][q][m] += c[i][sx][a][q][m]
    total_pop = sum(p_nat[sx][a][q] for sx in range(2) for a in range(19) for q in range(5))
    broad = [0] * 9 + [1, 1, 2, 2, 3, 3, 4, 4, 4, 4]
    factors = {
        # level of each cell, level names
        "sex": (lambda sx, a, q: 1 - sx, ["female", "male"]),
        "imd_quintile": (lambda sx, a, q: q, ["1", "2", "3", "4", "5"]),
        "age": (lambda sx, a, q: broad[a], ["0-<45", "45-<55", "55-<65", "65-<75", "75+"]),
    }
    # the standardisation stratum g of each cell: the two factors other than F
    strata_of = {
        "sex": lambda sx, a, q: (a, q),
        "imd_quintile": lambda sx, a, q: (sx, a),
        "age": lambda sx, a, q: (sx, q),
    }
    cells = [(sx, a, q) for sx in range(2) for a in range(19) for q in range(5)]
    rows = []
    for factor, (level_of, levels) in factors.items():
        g_of = strata_of[factor]
        for m in range(n_measure):
            total_o = sum(o_nat[sx][a][q][m] for sx, a, q in cells)
            nat = rate(total_o, total_pop)
            og: dict[Any, float] = {}
            pg: dict[Any, float] = {}
            for sx, a, q in cells:
                g = g_of(sx, a, q)
                og[g] = og.get(g, 0) + o_nat[sx][a][q][m]
                pg[g] = pg.get(g, 0.0) + p_nat[sx][a][q]
            e_f = [0.0] * len(levels)
            o_f = [0] * len(levels)
            for sx, a, q in cells:
                g = g_of(sx, a, q)
                r_g = og[g] / pg[g] if pg[g] > 0 else 0.0
                f = level_of(sx, a, q)
                e_f[f] += r_g * p_nat[sx][a][q]
                o_f[f] += o_nat[sx][a][q][m]
            sr = [o_f[f] / e_f[f] * nat if e_f[f] > 0 else NAN for f in range(len(levels))]
            for f, level in enumerate(levels):
                row: dict[str, Any] = {
                    "factor": factor,
                    "level": level,
                    "measure": measures[m],
                    "kind": kinds[m],
                    "observed": o_f[f],
                    "expected": e_f[f],
                    "standardised_rate": _none(sr[f]),
                }
                if f == 0:
                    row.update(
                        ratio=1.0,
                        chi2=None,
                        p_value=None,
                        stars="",
                        chi2_counts=None,
                        p_value_counts=None,
                        ratio_lower_95=None,
                        ratio_upper_95=None,
                    )
                else:
                    ratio = sr[f] / sr[0] if sr[0] > 0 else NAN
                    chi2, pv = published_chi2_test(sr[0], sr[f])
                    chi2c, pc = ratio_test_counts(o_f[0], e_f[0], o_f[f], e_f[f])
                    lo, hi = ratio_confidence_interval(o_f[0], e_f[0], o_f[f], e_f[f], conf)
                    row.update(
                        ratio=_none(ratio),
                        chi2=_none(chi2),
                        p_value=_none(pv),
                        stars=significance_stars(pv),
                        chi2_counts=_none(chi2c),
                        p_value_counts=_none(pc),
                        ratio_lower_95=_none(lo),
                        ratio_upper_95=_none(hi),
                    )
                rows.append(row)
    return rows
