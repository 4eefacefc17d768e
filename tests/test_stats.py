"""didcore.stats: known values, properties, and equality with the pure-Python reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _stats_helpers import assert_arrays_close
from didcore import stats
from didcore.reference import stats as ref

counts = st.lists(
    st.one_of(st.integers(0, 30), st.integers(0, 10**7)).map(float), min_size=1, max_size=12
)
positive = st.floats(1e-3, 1e7, allow_nan=False, allow_infinity=False)
confs = st.sampled_from([0.9, 0.95, 0.99, 0.998])


# --------------------------------------------------------------------------------------------
# known values


def test_z_values_are_exact_normal_quantiles() -> None:
    assert stats.z_value(0.95) == pytest.approx(1.959963984540054, rel=1e-15)
    assert stats.z_value(0.998) == pytest.approx(3.090232306167813, rel=1e-15)


def test_exact_poisson_limits_match_garwood_and_phe_test_data() -> None:
    # O = 0: lower 0, upper -ln(0.025) (the Poisson mean with P(Y = 0) = 0.025)
    lo, hi = stats.exact_poisson_limits([0.0], 0.95)
    assert lo[0] == 0.0
    assert hi[0] == pytest.approx(-math.log(0.025), rel=1e-12)
    # O = 1: the lower limit solves P(Y >= 1) = a/2, i.e. -ln(1 - a/2)
    lo, _ = stats.exact_poisson_limits(1, 0.998)
    assert float(lo) == pytest.approx(-math.log(1 - 0.001), rel=1e-12)
    # PHEindicatormethods tests/testthat/testdata_funnel_ratio_outputs.csv (expected events at
    # which O is on the 2- and 3-sigma limits): their bisection stops at ~1e-7 absolute
    published = {
        # O: (lower 95, upper 95, lower 99.8, upper 99.8)
        1: (0.025317898, 5.571644585, 0.001000547, 9.233410143),
        10: (4.795387629, 18.39035799, 2.960519925, 24.13397235),
        100: (81.36400699, 121.6268111, 71.92139974, 134.9243187),
    }
    for o, (lo95, hi95, lo998, hi998) in published.items():
        lo, hi = stats.exact_poisson_limits(o, 0.95)
        assert (float(lo), float(hi)) == pytest.approx((lo95, hi95), rel=1e-6, abs=1e-7)
        lo, hi = stats.exact_poisson_limits(o, 0.998)
        assert (float(lo), float(hi)) == pytest.approx((lo998, hi998), rel=1e-6, abs=1e-7)


def test_byar_limits_by_hand() -> None:
    z = 1.959963984540054
    # O = 10: 10 (1 - 1/90 - z / (3 sqrt 10))^3 and 11 (1 - 1/99 + z / (3 sqrt 11))^3
    lo, hi = stats.byar_limits(10, 0.95)
    assert float(lo) == pytest.approx(10 * (1 - 1 / 90 - z / (3 * math.sqrt(10))) ** 3, rel=1e-14)
    assert float(hi) == pytest.approx(11 * (1 - 1 / 99 + z / (3 * math.sqrt(11))) ** 3, rel=1e-14)
    assert float(lo) == pytest.approx(4.787450, abs=1e-6)
    assert float(hi) == pytest.approx(18.391459, abs=1e-6)
    # undefined at 0 (PHE returns NA)
    lo, _ = stats.byar_limits(0, 0.95)
    assert math.isnan(float(lo))


def test_isr_limits_switch_from_exact_to_byar_at_10() -> None:
    lo, hi = stats.standardised_ratio_limits([9, 10], [4.5, 5.0], 0.95)
    ex = stats.exact_poisson_limits(9, 0.95)
    by = stats.byar_limits(10, 0.95)
    assert lo[0] == pytest.approx(float(ex[0]) / 4.5) and hi[0] == pytest.approx(float(ex[1]) / 4.5)
    assert lo[1] == pytest.approx(float(by[0]) / 5) and hi[1] == pytest.approx(float(by[1]) / 5)
    # rates: ratio limits times the reference rate
    rlo, rhi = stats.standardised_rate_limits([9, 10], [4.5, 5.0], 250.0, 0.95)
    assert_arrays_close(rlo, lo * 250)
    assert_arrays_close(rhi, hi * 250)
    # no expected count: undefined
    assert np.isnan(stats.standardised_ratio_limits(3, 0.0)[0])


def test_expected_count_and_standardised_rate_by_hand() -> None:
    # two strata: 6 tests in 100 people, 2 in 400 (the standard); an ICB with 10 and 20 people
    r = stats.stratum_rates([6.0, 2.0, 5.0], [100.0, 400.0, 0.0])
    assert r.tolist() == [0.06, 0.005, 0.0]  # tests per person; no people: rate 0
    e = stats.expected_count(r, [[10.0, 20.0, 7.0], [0.0, 0.0, 0.0]])
    assert e.tolist() == pytest.approx([0.06 * 10 + 0.005 * 20, 0.0], rel=1e-15)
    # SR = O / E * N: 1.4 observed where 0.7 expected, national 8 / 500 per person
    n = stats.rate(8.0, 500.0)  # per 10,000
    sr = stats.standardised_rate([1.4, 3.0], e, n)
    assert float(sr[0]) == pytest.approx(2.0 * 160.0, rel=1e-14)
    assert math.isnan(float(sr[1]))  # no expected tests: undefined
    assert stats.standardised_rate(3.0, 0.0, 160.0, undefined=0.0) == 0.0
    assert stats.standardised_ratio([1.4, 3.0], e)[0] == pytest.approx(2.0, rel=1e-14)
    # strata over several axes
    pop = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    rates = np.full((3, 4), 0.5)
    assert_arrays_close(stats.expected_count(rates, pop, axis=(1, 2)), pop.sum((1, 2)) / 2)


def test_dsr_dobson_by_hand() -> None:
    # two strata: O = (30, 20), P = (1000, 2000), weights (1, 3)
    value, lower, upper = stats.dsr([30, 20], [1000, 2000], [1, 3], multiplier=10_000)
    dsr = (1 * 30 / 1000 + 3 * 20 / 2000) / 4  # 0.015 per person
    var = (1 * 30 / 1000**2 + 9 * 20 / 2000**2) / 16  # 4.6875e-6
    z = 1.959963984540054
    byar_lo = 50 * (1 - 1 / 450 - z / (3 * math.sqrt(50))) ** 3
    byar_hi = 51 * (1 - 1 / 459 + z / (3 * math.sqrt(51))) ** 3
    assert float(value) == pytest.approx(150.0, rel=1e-14)
    assert float(lower) == pytest.approx(
        (dsr + math.sqrt(var / 50) * (byar_lo - 50)) * 10_000, rel=1e-13
    )
    assert float(upper) == pytest.approx(
        (dsr + math.sqrt(var / 50) * (byar_hi - 50)) * 10_000, rel=1e-13
    )


def test_dsr_suppression_and_undefined_strata() -> None:
    # fewer than 10 events: suppressed (PHE)
    assert np.isnan(stats.dsr([3, 4], [100, 100], [1, 1]).value)
    assert not np.isnan(stats.dsr([3, 4], [100, 100], [1, 1], min_count=0).value)
    # a stratum without people has no rate: undefined
    assert np.isnan(stats.dsr([30, 4], [100, 0], [1, 1]).value)
    # zero events with min_count 0: a DSR of 0 without limits
    r = stats.dsr([0, 0], [100, 100], [1, 1], min_count=0)
    assert float(r.value) == 0.0 and np.isnan(r.lower) and np.isnan(r.upper)
    # exact count limits on request
    assert float(stats.dsr([30, 20], [1000, 2000], [1, 3], count_method="exact").lower) < 150


def test_esp2013() -> None:
    assert stats.ESP2013.sum() == 100_000
    assert len(stats.ESP2013) == len(stats.ESP2013_AGE_BANDS) == 19
    assert stats.ESP2013_AGE_BANDS[0] == "0-4" and stats.ESP2013_AGE_BANDS[-1] == "90+"
    assert list(stats.ESP2013) == ref.ESP2013
    with pytest.raises(ValueError):
        stats.ESP2013[0] = 1


def test_confidence_level_is_validated() -> None:
    for bad in (95, 0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="confidence level"):
            stats.exact_poisson_limits(3, bad)


# --------------------------------------------------------------------------------------------
# fast path == reference


@given(counts, confs)
def test_count_limits_equal_reference(obs: list[float], conf: float) -> None:
    ex = stats.exact_poisson_limits(obs, conf)
    by = stats.byar_limits(obs, conf)
    assert_arrays_close(ex[0], [ref.exact_poisson_limits(o, conf)[0] for o in obs])
    assert_arrays_close(ex[1], [ref.exact_poisson_limits(o, conf)[1] for o in obs])
    assert_arrays_close(by[0], [ref.byar_limits(o, conf)[0] for o in obs])
    assert_arrays_close(by[1], [ref.byar_limits(o, conf)[1] for o in obs])
    # the exact interval contains the count, and Byar's is close to it from 10 up
    assert np.all(ex[0] <= np.asarray(obs)) and np.all(np.asarray(obs) <= ex[1])


@given(counts, st.lists(st.one_of(st.just(0.0), positive), min_size=12, max_size=12), confs)
def test_ratio_limits_equal_reference(obs: list[float], exp: list[float], conf: float) -> None:
    e = exp[: len(obs)]
    lo, hi = stats.standardised_ratio_limits(obs, e, conf)
    want = [ref.standardised_ratio_limits(o, x, conf) for o, x in zip(obs, e, strict=True)]
    assert_arrays_close(lo, [w[0] for w in want])
    assert_arrays_close(hi, [w[1] for w in want])


@given(
    st.integers(1, 6).flatmap(
        lambda s: st.tuples(
            st.lists(st.lists(st.integers(0, 500), min_size=s, max_size=s), min_size=1, max_size=4),
            st.lists(
                st.lists(st.sampled_from([0.0, 1.0, 7.5, 1e3, 1e5]), min_size=s, max_size=s),
                min_size=1,
                max_size=4,
            ),
            st.lists(st.sampled_from([1.0, 500.0, 7000.0]), min_size=s, max_size=s),
        )
    ),
    st.sampled_from([0, 10]),
    st.sampled_from(["byar", "exact"]),
    confs,
)
def test_dsr_equals_reference(
    data: tuple[list[list[int]], list[list[float]], list[float]],
    min_count: int,
    method: str,
    conf: float,
) -> None:
    obs, pop, std = data
    n = min(len(obs), len(pop))
    obs, pop = obs[:n], pop[:n]
    got = stats.dsr(obs, pop, std, conf=conf, min_count=min_count, count_method=method)  # type: ignore[arg-type]
    want = [
        ref.dsr(o, p, std, conf, 10_000, min_count, method) for o, p in zip(obs, pop, strict=True)
    ]
    for k in range(3):
        assert_arrays_close(got[k], [w[k] for w in want])


@given(st.lists(positive, min_size=1, max_size=8), confs)
def test_poisson_funnel_equals_reference(exp: list[float], conf: float) -> None:
    lo, hi = stats.poisson_funnel_limits(exp, conf)
    want = [ref.poisson_funnel_limits(e, conf) for e in exp]
    assert_arrays_close(lo, [w[0] for w in want])
    assert_arrays_close(hi, [w[1] for w in want])
    assert np.all(lo <= hi)
    # below E ~ 0.05, P(Y = 0) >= 1 - a/2 and the upper limit is 0: any test is "high"
    big = np.asarray(exp) >= 1
    assert np.all(lo[big] <= 1.0) and np.all(hi[big] >= 1.0)


@given(
    st.lists(
        st.tuples(st.integers(0, 5000), st.sampled_from([0.0, 0.3, 2.0, 50.0, 999.5, 4e3])),
        min_size=0,
        max_size=45,
    ),
    st.sampled_from(["sqrt", "log"]),
    st.sampled_from(["winsorise", "truncate"]),
    st.sampled_from([0.1, 0.2]),
    confs,
)
def test_overdispersion_and_limits_equal_reference(
    pairs: list[tuple[int, float]], scale: str, method: str, trim: float, conf: float
) -> None:
    obs = [float(o) for o, _ in pairs]
    exp = [e for _, e in pairs]
    od = stats.overdispersion(obs, exp, scale=scale, method=method, trim=trim)  # type: ignore[arg-type]
    want = ref.overdispersion(obs, exp, scale, method, trim)
    assert od.n == want["n"]
    assert_arrays_close(od.phi, want["phi"])
    assert_arrays_close(od.tau2, want["tau2"])
    # the one threshold rule
    assert od.adjusted == (od.n >= 2 and od.n * od.phi > od.n - 1)
    lo, hi = stats.funnel_limits(exp, conf, tau2=od.tau2, scale=scale)  # type: ignore[arg-type]
    lims = [ref.funnel_limits(e, conf, want["tau2"], scale) for e in exp]
    assert_arrays_close(lo, [w[0] for w in lims])
    assert_arrays_close(hi, [w[1] for w in lims])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(np.asarray(exp) > 0, np.asarray(obs) / np.asarray(exp), np.nan)
    flags = stats.funnel_flags(ratio, lo, hi)
    assert list(flags) == [ref.funnel_flag(r, a, b) for r, a, b in zip(ratio, lo, hi, strict=True)]


@given(
    st.lists(
        st.tuples(st.integers(0, 10**6), positive, st.integers(0, 10**6), positive),
        min_size=1,
        max_size=10,
    ),
    confs,
)
def test_comparisons_equal_reference(
    rows: list[tuple[int, float, int, float]], conf: float
) -> None:
    o1, e1, o2, e2 = (np.asarray(c, dtype=float) for c in zip(*rows, strict=True))
    r1, r2 = o1 / e1, o2 / e2
    chi2, p = stats.published_chi2_test(r1, r2)
    want = [ref.published_chi2_test(a, b) for a, b in zip(r1, r2, strict=True)]
    assert_arrays_close(chi2, [w[0] for w in want])
    assert_arrays_close(p, [w[1] for w in want])
    assert list(stats.significance_stars(p)) == [ref.significance_stars(w[1]) for w in want]
    chi2c, pc = stats.ratio_test_counts(o1, e1, o2, e2)
    lo, hi = stats.ratio_confidence_interval(o1, e1, o2, e2, conf)
    for i, row in enumerate(rows):
        w_chi, w_p = ref.ratio_test_counts(*row)
        w_lo, w_hi = ref.ratio_confidence_interval(*row, conf)
        assert_arrays_close(chi2c[i], w_chi)
        assert_arrays_close(pc[i], w_p)
        assert_arrays_close(lo[i], w_lo)
        assert_arrays_close(hi[i], w_hi)
        # the interval excludes 1 exactly when the test rejects at 1 - conf
        if not math.isnan(w_p) and abs(w_p - (1 - conf)) > 1e-9:
            assert (w_p < 1 - conf) == (lo[i] > 1 or hi[i] < 1)


# --------------------------------------------------------------------------------------------
# properties of the funnels and tests


def test_poisson_funnel_shape() -> None:
    e = np.geomspace(0.1, 1e7, 60)
    lo, hi = stats.poisson_funnel_limits(e, 0.998)
    # narrows as E grows, towards 1 +/- z / sqrt(E)
    assert np.all(np.diff(hi) < 0)
    assert np.all(np.diff(lo) >= 0)
    z = stats.z_value(0.998)
    assert hi[-1] == pytest.approx(1 + z / math.sqrt(1e7), rel=1e-4)
    assert lo[-1] == pytest.approx(1 - z / math.sqrt(1e7), rel=1e-4)
    assert lo[0] == 0.0  # clipped, never negative
    assert np.all(np.isnan(stats.poisson_funnel_limits([0.0, -1.0], 0.95)[0]))


def test_poisson_funnel_is_interpolated_exact_quantile() -> None:
    # at E = 10 the 97.5% point of Poisson(10) is 17: F(16) = 0.9730, F(17) = 0.9857
    f16 = sum(math.exp(-10) * 10**k / math.factorial(k) for k in range(17))
    f17 = f16 + math.exp(-10) * 10**17 / math.factorial(17)
    _, hi = stats.poisson_funnel_limits(10.0, 0.95)
    assert float(hi) == pytest.approx((17 - (f17 - 0.975) / (f17 - f16)) / 10, rel=1e-12)


def test_sqrt_scale_limits_are_squared_back_and_clipped() -> None:
    e = np.array([0.5, 100.0, 1e4])
    tau2 = 1e-9  # all but Poisson: must be close to 1 +/- z / sqrt(E), not 1 +/- z / (2 sqrt(E))
    lo, hi = stats.funnel_limits(e, 0.95, tau2=tau2, scale="sqrt")
    z = stats.z_value(0.95)
    assert hi[2] == pytest.approx((1 + z / 200) ** 2, rel=1e-6)
    assert lo[2] == pytest.approx((1 - z / 200) ** 2, rel=1e-6)
    assert lo[0] == 0.0  # 1 - z sqrt(1/2) < 0: clipped before squaring
    lo, hi = stats.funnel_limits(e, 0.95, tau2=0.01, scale="log")
    assert lo[1] == pytest.approx(math.exp(-z * math.sqrt(0.01 + 0.01)))
    with pytest.raises(ValueError):
        stats.funnel_limits(e, 0.95, tau2=-1.0)


def test_overdispersion_poisson_versus_overdispersed_data() -> None:
    rng = np.random.default_rng(20240601)
    e = rng.uniform(2e3, 5e4, 4200)
    o = rng.poisson(e).astype(float)
    od = stats.overdispersion(o, e)
    # winsorised at 10%/90%, z^2 of N(0, 1) data averages 0.8 - 2 q phi(q) + 0.2 q^2 = 0.679
    # (q = 1.2816): no adjustment on Poisson data
    assert 0.62 < od.phi < 0.74 and not od.adjusted
    lo, hi = stats.funnel_limits(e, 0.95, tau2=od.tau2)
    flagged = np.mean(stats.funnel_flags(o / e, lo, hi) != "within")
    assert 0.035 < flagged < 0.065  # about 5% outside the 95% limits on Poisson data
    # 20% between-ICB variation: phi >> 1, tau2 > 0 and far fewer flags than without adjustment
    o2 = rng.poisson(e * rng.gamma(25.0, 1 / 25.0, len(e))).astype(float)
    for scale in ("sqrt", "log"):
        od2 = stats.overdispersion(o2, e, scale=scale)  # type: ignore[arg-type]
        assert od2.phi > 20 and od2.adjusted
        lo2, hi2 = stats.funnel_limits(e, 0.95, tau2=od2.tau2, scale=scale)  # type: ignore[arg-type]
        flagged2 = np.mean(stats.funnel_flags(o2 / e, lo2, hi2) != "within")
        lo0, hi0 = stats.poisson_funnel_limits(e, 0.95)
        unadjusted = np.mean(stats.funnel_flags(o2 / e, lo0, hi0) != "within")
        assert flagged2 < 0.15 < 0.5 < unadjusted


def test_overdispersion_edge_cases() -> None:
    # O = 0 on the log scale is left out instead of making phi infinite
    od = stats.overdispersion([0, 10, 20, 30], [5, 10, 15, 40], scale="log")
    assert od.n == 3 and math.isfinite(od.phi)
    # one unit: no between-unit variance can be estimated
    od = stats.overdispersion([100], [10])
    assert od.n == 1 and od.tau2 == 0.0
    od = stats.overdispersion([], [])
    assert od.n == 0 and math.isnan(od.phi) and od.tau2 == 0.0
    # SHMI truncation drops about trim at each end
    rng = np.random.default_rng(3)
    e = rng.uniform(100, 1000, 100)
    od = stats.overdispersion(rng.poisson(e), e, method="truncate")
    assert od.n == 80
    with pytest.raises(ValueError):
        stats.overdispersion([1], [1], method="truncate", trim=0.3)
    with pytest.raises(ValueError):
        stats.overdispersion([1], [1], method="median")  # type: ignore[arg-type]


def test_published_chi2_depends_on_rate_unit_but_count_test_does_not() -> None:
    o1, e1, o2, e2 = 1200.0, 1000.0, 900.0, 1000.0
    r1, r2 = o1 / e1 * 500, o2 / e2 * 500  # rates per 10,000 with a national rate of 500
    chi_10k, _ = stats.published_chi2_test(r1, r2)
    chi_100k, _ = stats.published_chi2_test(r1 * 10, r2 * 10)  # the same rates per 100,000
    assert float(chi_100k) == pytest.approx(10 * float(chi_10k))
    assert float(chi_10k) == pytest.approx((450 - 600) ** 2 / 1050)
    c1, _ = stats.ratio_test_counts(o1, e1, o2, e2)
    c2, _ = stats.ratio_test_counts(o1, e1 * 10, o2, e2 * 10)  # expected counts rescaled
    assert float(c1) == pytest.approx(float(c2))
    assert float(c1) == pytest.approx(math.log(0.75) ** 2 / (1 / 1200 + 1 / 900))


def test_stars_thresholds() -> None:
    p = [0.2, 0.05, 0.0499, 0.01, 0.0099, 0.001, 0.00099, float("nan")]
    assert list(stats.significance_stars(p)) == ["", "", "*", "*", "**", "**", "***", ""]


def test_rate() -> None:
    assert_arrays_close(stats.rate([5, 5], [1000, 0]), [50.0, np.nan])
    assert float(stats.rate(5, 1000, multiplier=100_000)) == 500.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"standard": [1, -3]}, r"standard: .*>= 0.*-3\.0"),
        ({"standard": [0, 0]}, "standard: .*sum to 0"),
        ({"standard": [1, 2, 3]}, "standard: 3 weights"),
        ({"standard": [1, float("nan")]}, "standard: .*finite"),
        ({"multiplier": 0}, "multiplier: .*got 0"),
        ({"multiplier": -10}, "multiplier: .*got -10"),
        ({"multiplier": float("inf")}, "multiplier: "),
        ({"multiplier": True}, "multiplier: "),
        ({"observed": ["30", "20"]}, "observed: expected numbers, got str value '30'"),
        ({"population": ["1000", "2000"]}, "population: expected numbers, got str value '1000'"),
        ({"standard": ["1", "3"]}, "standard: expected numbers"),
        ({"observed": [True, False]}, "observed: expected numbers, got bool"),
        ({"observed": [30, -1]}, r"observed: counts must be >= 0; 1 are negative \(first: -1\.0\)"),
        ({"conf": 95}, "conf: confidence level"),
        ({"count_method": "wald"}, "count_method: "),
    ],
)
def test_dsr_refuses_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    """Negative or text standards, a zero multiplier and numeric text are InputErrors."""
    from didcore.errors import InputError

    args: dict[str, object] = {
        "observed": [30, 20],
        "population": [1000, 2000],
        "standard": [1, 3],
    }
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        stats.dsr(args.pop("observed"), args.pop("population"), args.pop("standard"), **args)  # type: ignore[arg-type]


def test_isr_with_reference_by_hand() -> None:
    """calculate_ISRatio / calculate_ISRate with x_ref, n_ref, worked from their formulas."""
    from scipy.stats import chi2

    n = [[1000, 2000, 500], [400, 100, 100]]
    x_ref, n_ref = [10, 60, 40], [10_000, 20_000, 4_000]  # rates 0.001, 0.003, 0.01
    r = stats.isr_with_reference([[3, 8, 9], [1, 1, 2]], n, x_ref, n_ref, multiplier=100_000)
    # E = 1000*.001 + 2000*.003 + 500*.01 = 12 and 400*.001 + 100*.003 + 100*.01 = 1.7
    np.testing.assert_allclose(r.expected, [12.0, 1.7], rtol=1e-15)
    np.testing.assert_array_equal(r.observed, [20.0, 4.0])
    np.testing.assert_allclose(r.ratio, [20 / 12, 4 / 1.7], rtol=1e-15)
    # O = 20 >= 10: Byar's limits of the count over E
    z = 1.959963984540054
    byar_lo = 20 * (1 - 1 / 180 - z / (3 * math.sqrt(20))) ** 3
    byar_hi = 21 * (1 - 1 / 189 + z / (3 * math.sqrt(21))) ** 3
    assert r.ratio_lower[0] == pytest.approx(byar_lo / 12, rel=1e-13)
    assert r.ratio_upper[0] == pytest.approx(byar_hi / 12, rel=1e-13)
    assert r.ratio_lower[0] == pytest.approx(1.017619, rel=1e-6)  # 12.211429 / 12
    # O = 4 < 10: exact limits qchisq(0.025, 8) / 2 = 1.089865, qchisq(0.975, 10) / 2 = 10.241589
    assert r.ratio_lower[1] == pytest.approx(chi2.ppf(0.025, 8) / 2 / 1.7, rel=1e-12)
    assert r.ratio_upper[1] == pytest.approx(chi2.ppf(0.975, 10) / 2 / 1.7, rel=1e-12)
    assert r.ratio_lower[1] * 1.7 == pytest.approx(1.089865, rel=1e-6)
    assert r.ratio_upper[1] * 1.7 == pytest.approx(10.241589, rel=1e-6)
    # ISRate: ratio * sum(x_ref) / sum(n_ref) * multiplier = ratio * 110 / 34000 * 1e5
    ref = 110 / 34_000 * 100_000
    assert r.reference_rate == pytest.approx(ref, rel=1e-15)
    np.testing.assert_allclose(r.rate, np.array([20 / 12, 4 / 1.7]) * ref, rtol=1e-14)
    np.testing.assert_allclose(r.rate_lower, r.ratio_lower * ref, rtol=1e-14)
    np.testing.assert_allclose(r.rate_upper, r.ratio_upper * ref, rtol=1e-14)
    # observed totals (PHE's observed_totals) give the same; refvalue scales the ratio only
    t = stats.isr_with_reference([20, 4], n, x_ref, n_ref, multiplier=100_000, refvalue=100)
    np.testing.assert_allclose(t.ratio, r.ratio * 100, rtol=1e-15)
    np.testing.assert_allclose(t.ratio_upper, r.ratio_upper * 100, rtol=1e-15)
    np.testing.assert_allclose(t.rate, r.rate, rtol=1e-15)


def test_isr_with_reference_edges() -> None:
    """O = 0 has lower limit 0; E = 0 is nan; bad references are InputErrors."""
    from didcore.errors import InputError

    r = stats.isr_with_reference([0, 5], [[100, 100], [0, 0]], [1, 2], [100, 100])
    assert r.ratio[0] == 0.0 and r.ratio_lower[0] == 0.0
    assert r.ratio_upper[0] == pytest.approx(3.688879 / 3.0, rel=1e-6)  # qchisq(.975, 2) / 2
    assert np.isnan(r.ratio[1]) and np.isnan(r.ratio_upper[1])
    good = ([5], [[100, 100]], [1, 2], [100, 100])
    for i, bad, match in [
        (3, [100, 0], r"ref_population: .*> 0.*first: 0\.0"),
        (2, [1, -2], "ref_observed: .*>= 0"),
        (2, [1, 2, 3], "ref_observed: 3 values"),
        (3, ["100", "100"], "ref_population: expected numbers"),
        (0, [[1, 2, 3]], "observed: shape"),
        (1, [[100, -1]], "population: .*>= 0"),
    ]:
        args = list(good)
        args[i] = bad
        with pytest.raises(InputError, match=match):
            stats.isr_with_reference(*args)
    with pytest.raises(InputError, match="multiplier"):
        stats.isr_with_reference(*good, multiplier=0)


def test_dsr_nonindependent_by_hand() -> None:
    """calculate_dsr(independent_events = FALSE): variance from people by event frequency."""
    # people with 1, 2 and 3 events in two strata; weights 1 and 3; populations 1000 and 2000
    persons = [[10, 8], [5, 2], [0, 2]]
    r = stats.dsr_nonindependent(persons, [1000, 2000], [1, 3], [1, 2, 3])
    # events: 10 + 2*5 = 20 and 8 + 2*2 + 3*2 = 18, O = 38; DSR as for independent events
    assert float(r.value) == pytest.approx((20 / 1000 + 3 * 18 / 2000) / 4 * 10_000, rel=1e-14)
    # var = [1^2 (10/1000^2 + 9*8/2000^2) + 2^2 (5/1000^2 + 9*2/2000^2) + 3^2 (9*2/2000^2)] / 4^2
    var = (2.8e-5 + 4 * 9.5e-6 + 9 * 4.5e-6) / 16
    assert var == pytest.approx(6.65625e-6, rel=1e-12)
    z = 1.959963984540054
    lo = 38 * (1 - 1 / (9 * 38) - z / (3 * math.sqrt(38))) ** 3
    hi = 39 * (1 - 1 / (9 * 39) + z / (3 * math.sqrt(39))) ** 3
    dsr = 117.5
    assert float(r.lower) == pytest.approx(dsr + math.sqrt(var / 38) * (lo - 38) * 1e4, rel=1e-12)
    assert float(r.upper) == pytest.approx(dsr + math.sqrt(var / 38) * (hi - 38) * 1e4, rel=1e-12)
    # wider than the independent-events interval of the same 38 events
    ind = stats.dsr([20, 18], [1000, 2000], [1, 3])
    assert float(r.lower) < float(ind.lower) and float(r.upper) > float(ind.upper)
    # everybody with one event: exactly the independent DSR; several units broadcast
    one = stats.dsr_nonindependent([[[20, 18]], [[30, 40]]], [1000, 2000], [1, 3], [1])
    both = stats.dsr([[20, 18], [30, 40]], [1000, 2000], [1, 3])
    for got, want in zip(one, both, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-14)
