"""Funnel plots beside PHEindicatormethods 2.1 and FunnelPlotR 0.6.0 (docs/statistics.md 5.3-5.4).

Expected values come from the packages' own documented examples: the PHEindicatormethods test
data (tests/testthat/testdata_funnel_*.csv, R outputs, quoted to the digits the CSV files hold)
and, for FunnelPlotR, its test example (num 100, 150, 180, 80, 120, 225 over expected 108, 112,
165, 95, 100, 220) worked here from its published formulas by plain loops.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from didcore import stats
from didcore.errors import InputError

# --------------------------------------------------------------------------------------------
# PHEindicatormethods: inputs of its rate funnel tests (testdata_funnel_rate_input_funnels.csv)

RATE_EV = [414, 462, 178, 525, 194, 937, 817, 117, 298, 228, 243, 13, 373, 664, 601, 602, 767]
RATE_EV += [708, 90, 952, 347, 648, 988, 354, 839, 25, 518, 425, 648, 765, 210, 931, 589, 592]
RATE_EV += [554, 870, 372, 843, 142, 543, 489, 620, 774, 904, 936, 841, 22, 922, 955, 308]
RATE = [184, 102, 83, 118, 121, 125, 112, 190, 146, 140, 87, 70, 90, 139, 109, 65, 165, 143]
RATE += [55, 135, 135, 88, 167, 99, 83, 53, 62, 118, 176, 101, 71, 138, 74, 84, 161, 79, 189]
RATE += [170, 159, 113, 191, 116, 200, 171, 128, 134, 185, 100, 123, 155]
POP = [5705, 3377, 5043, 1685, 7077, 6026, 7386, 8280, 5714, 1150, 7809, 9173, 7910, 3207]
POP += [2028, 9517, 8447, 8734, 9010, 2955, 9171, 6357, 6883, 5092, 1984, 7182, 1985, 5232]
POP += [2583, 5684, 8863, 5775, 7643, 1984, 9535, 8477, 3506, 1194, 4123, 7677, 5649, 3131]
POP += [4463, 4948, 8756, 3757, 4832, 1711, 6369, 4500]
LIMIT_COLUMNS = (
    "lower_2s_population_1_year",
    "lower_2s_limit",
    "upper_2s_population_1_year",
    "upper_2s_limit",
    "lower_3s_population_1_year",
    "lower_3s_limit",
    "upper_3s_population_1_year",
    "upper_3s_limit",
    "baseline",
)


def _row(table: dict[str, object], x_name: str, x: float) -> int:
    grid = np.asarray(table[x_name])
    (where,) = np.flatnonzero(grid == x)
    return int(where)


@pytest.mark.parametrize(
    ("events", "want"),
    [
        # testdata_funnel_rate_outputs.csv (calculate_funnel_limits, dsr per 100,000, 3 years)
        (1, (1598.675694, 20.85059119, 7.264481402, 4588.535848, 2649.348525, 12.58170943,
             0.287087625, 116108.569, 116.1720835)),
        (28, (11611.44963, 80.38043163, 5338.572981, 174.8282428, 13921.71041, 67.04157073,
              4143.443861, 225.2554553, 116.1720835)),
        (1360, (411529.9259, 110.158048, 369759.5622, 122.6021934, 424043.2424, 106.9073359,
                358342.3275, 126.5084525, 116.1720835)),
    ],
)  # fmt: skip
def test_phe_rate_limits_dsr_reproduce_phe_outputs(events: int, want: tuple[float, ...]) -> None:
    table = stats.phe_funnel_limits(
        RATE_EV, statistic="rate", rate=RATE, rate_type="dsr", multiplier=1e5, years_of_data=3
    )
    assert table["statistic"] == "rate (dsr per 100,000)"
    assert table["method"] == "Poisson"
    assert len(table["Events"]) == 100
    assert table["Events"][-1] == 1360  # ceiling(1,170,000 x 0.0011617...)
    i = _row(table, "Events", events)
    got = [float(table[c][i]) for c in LIMIT_COLUMNS]
    assert got == pytest.approx(list(want), rel=2e-9)


def test_phe_rate_limits_crude_with_fewer_than_ten_events() -> None:
    # testdata_funnel_rate_outputs_2.csv: the largest count replaced by 5, crude rates
    ev = [5 if e == max(RATE_EV) else e for e in RATE_EV]
    table = stats.phe_funnel_limits(
        ev, statistic="rate", rate=RATE, rate_type="crude", multiplier=1e5, years_of_data=3
    )
    assert table["statistic"] == "rate (crude per 100,000)"
    assert table["Events"][-1] == 1344
    for events, want in (
        (1, (1616.949526, 20.61494982, 7.347518827, 4536.678859)),
        (336, (108514.8167, 103.2117119, 87361.94327, 128.2022764)),
    ):
        i = _row(table, "Events", events)
        got = [float(table[c][i]) for c in LIMIT_COLUMNS[:4]]
        assert got == pytest.approx(list(want), rel=2e-9)
    assert float(table["baseline"][0]) == pytest.approx(114.8591735, rel=1e-9)


def test_phe_ratio_limits_reproduce_phe_test_outputs() -> None:
    # testdata_funnel_ratio_outputs.csv; only the axis (smallest and largest expected count of
    # testdata_funnel_ratio_inputs.csv) matters for the table
    obs, expected = [8.0, 893.0], [4.293052052, 706.7669173]
    count = stats.phe_funnel_limits(obs, expected, statistic="ratio", multiplier=100,
                                    ratio_type="count")  # fmt: skip
    isr = stats.phe_funnel_limits(obs, expected, statistic="ratio", multiplier=100,
                                  ratio_type="isr")  # fmt: skip
    assert count["Observed_events"][-1] == 716
    assert count["statistic"] == "ratio (count)" and isr["statistic"] == "ratio (isr)"
    for o, lo_e, lo_c, lo_i, hi_e, hi_c, hi_i in (
        (1, 5.571644585, -0.820519779, 17.94802207, 0.025317898, 38.49774946, 3949.774946),
        (35, 48.67652359, -0.28096755, 71.90324497, 24.37878318, 0.435674608, 143.5674608),
        (716, 770.4222128, -0.070639465, 92.93605352, 664.5083011, 0.077488421, 107.7488421),
    ):
        i = _row(count, "Observed_events", o)
        assert float(count["lower_2s_exp_events"][i]) == pytest.approx(lo_e, rel=2e-9)
        assert float(count["lower_2s_limit"][i]) == pytest.approx(lo_c, rel=2e-8)
        assert float(isr["lower_2s_limit"][i]) == pytest.approx(lo_i, rel=2e-9)
        assert float(count["upper_2s_exp_events"][i]) == pytest.approx(hi_e, rel=2e-8)
        assert float(count["upper_2s_limit"][i]) == pytest.approx(hi_c, rel=2e-8)
        assert float(isr["upper_2s_limit"][i]) == pytest.approx(hi_i, rel=2e-9)
    # 99.8%, first row: expected 9.233410143 and 0.001000547
    assert float(isr["lower_3s_exp_events"][0]) == pytest.approx(9.233410143, rel=2e-9)
    assert float(isr["upper_3s_exp_events"][0]) == pytest.approx(0.001000547, rel=1e-6)


def test_phe_poisson_funnel_is_the_exact_poisson_interval() -> None:
    # the bisection finds the Garwood limits qchisq(0.975, 2O + 2) / 2, qchisq(0.025, 2O) / 2 to
    # its tolerance (1e-7 on v = m / (1 + O + m)): for O = 1 the lower is 0.025317898 in R and
    # here (test_phe_ratio_limits_...), the exact value 0.0253178080
    o = np.array([1.0, 4.0, 50.0])
    lo, hi = stats.exact_poisson_limits(o, 0.95)
    assert stats._phe_poisson_funnel(o, 0.025, "high") == pytest.approx(hi, rel=1e-6)
    assert stats._phe_poisson_funnel(o, 0.025, "low") == pytest.approx(lo, rel=1e-5)


# --------------------------------------------------------------------------------------------
# proportions


@pytest.mark.parametrize(
    ("n", "want"),
    [
        # testdata_funnel_prop_outputs.csv: Population, 95% lower/upper, 99.8% lower/upper (%)
        (1, (3.204264, 100, 0, 100)),
        (3, (35.933491, 100, 10.150815, 100)),
        (18, (62.390093, 98.894803, 51.864359, 100)),
        (41, (68.548635, 92.73626, 61.574398, 99.710497)),
        (9998, (79.867989, 81.416907, 79.421375, 81.863521)),
        (110000, (80.408963, 80.875933, 80.274317, 81.010578)),
    ],
)
def test_phe_proportion_limits_reproduce_phe_test_outputs(
    n: int, want: tuple[float, float, float, float]
) -> None:
    # PHE's test areas have an average of 80.642448% and denominators 16,386 to 102,950: the
    # axis runs from 0 (largest over twice the smallest) to 110,000
    av = 0.80642448
    den = np.array([16386.0, 102950.0])
    table = stats.phe_funnel_limits(den * av, den, statistic="proportion", multiplier=100)
    assert table["method"] == "Wilson"
    assert table["Population"][0] == 1 and table["Population"][-1] == 110000
    assert list(table["Population"][12:16]) == [13, 14, 16, 18]
    i = _row(table, "Population", n)
    got = [float(table[k][i]) for k in
           ("lower_2s_limit", "upper_2s_limit", "lower_3s_limit", "upper_3s_limit")]  # fmt: skip
    assert got == pytest.approx(list(want), abs=2e-6)
    assert float(table["baseline"][i]) == pytest.approx(80.642448)


def test_phe_proportion_axis_variation() -> None:
    # testdata_funnel_prop_outputs_with_axis_variation.csv: denominators under 31,000 (largest
    # not twice the smallest), average 82.18033788%: axis 10,000 to 33,000
    av = 0.8218033788
    den = np.array([16386.0, 30929.0])
    table = stats.phe_funnel_limits(den * av, den, statistic="proportion", multiplier=100)
    assert list(table["Population"][:3]) == [10000, 10121, 10244]
    assert table["Population"][-1] == 33000
    i = _row(table, "Population", 16395)
    got = [float(table[k][i]) for k in
           ("lower_2s_limit", "upper_2s_limit", "lower_3s_limit", "upper_3s_limit")]  # fmt: skip
    assert got == pytest.approx([81.59456929, 82.76610646, 81.25676938, 83.10390638], abs=2e-7)


def test_proportion_limits_formula_and_multiplier() -> None:
    # p0 +/- z sqrt(p0 (1 - p0) / n), z = 1.959964, for p0 = 0.3, n = 100
    lo, hi = stats.proportion_funnel_limits([100.0], 0.3, 0.95)
    half = stats.z_value(0.95) * math.sqrt(0.3 * 0.7 / 100)
    assert (float(lo[0]), float(hi[0])) == pytest.approx((0.3 - half, 0.3 + half), rel=1e-14)
    _, hi100 = stats.proportion_funnel_limits([100.0], 0.3, 0.95, multiplier=100)
    assert float(hi100[0]) == pytest.approx(100 * float(hi[0]), rel=1e-14)
    # clipped to [0, 1] x multiplier at small n (R clips only at 100, whatever the multiplier)
    lo, hi = stats.proportion_funnel_limits([1.0, 2.0], 0.9, 0.998, multiplier=1)
    assert list(hi) == [1.0, 1.0] and float(lo[0]) == 0.0
    # the Wilson score interval of the limit just reaches p0 (PHE's sigma_adjustment)
    n, p0, z = 250.0, 0.2, stats.z_value(0.95)
    _, hi = stats.proportion_funnel_limits([n], p0, 0.95)
    x = float(hi[0])
    wilson_lower = (x + z * z / (2 * n) - z * math.sqrt(x * (1 - x) / n + z * z / (4 * n * n))) / (
        1 + z * z / n
    )
    assert wilson_lower == pytest.approx(p0, rel=1e-12)


@given(
    st.lists(st.floats(1, 1e7), min_size=1, max_size=20),
    st.floats(0, 1),
    st.sampled_from([0.9, 0.95, 0.998]),
)
def test_proportion_limits_properties(ns: list[float], p0: float, conf: float) -> None:
    n = np.sort(np.asarray(ns))
    lo, hi = stats.proportion_funnel_limits(n, p0, conf)
    assert np.all((lo >= 0) & (hi <= 1))  # proportions stay in [0, 1]
    assert np.all(lo <= p0 + 1e-15) and np.all(hi >= p0 - 1e-15)  # bracket the target
    # widen as the denominators shrink (n sorted up: limits narrow)
    assert np.all(np.diff(hi) <= 1e-15) and np.all(np.diff(lo) >= -1e-15)


# --------------------------------------------------------------------------------------------
# funnel points and significance (rates)


def test_phe_funnel_points_dsr_crude_and_zero_events() -> None:
    # testdata_funnel_rate_input_funnels.csv, calculate_funnel_points tests
    ev = np.array([5 if e == max(RATE_EV) else e for e in RATE_EV], dtype=float)
    y, x = stats.phe_funnel_points(ev, RATE, rate_type="dsr", years_of_data=3, multiplier=1e5)
    assert float(x[0]) == pytest.approx(75000.0) and float(y[0]) == 184
    assert float(x[1]) == pytest.approx(150980.3922, rel=1e-9)
    assert math.isnan(float(x[22])) and math.isnan(float(y[22]))  # 5 events: not charted
    y, x = stats.phe_funnel_points(RATE_EV, RATE, rate_type="crude", years_of_data=3,
                                   multiplier=1e5)  # fmt: skip
    assert float(x[22]) == pytest.approx(197205.5888, rel=1e-9) and float(y[22]) == 167
    ev0 = np.array([0 if e == max(RATE_EV) else e for e in RATE_EV], dtype=float)
    y, x = stats.phe_funnel_points(ev0, RATE, rate_type="crude", years_of_data=5,
                                   multiplier=1e5, denominator=POP)  # fmt: skip
    assert float(x[22]) == pytest.approx(1376.6)  # 6,883 people over 5 years
    assert float(x[0]) == pytest.approx(45000.0)
    with pytest.raises(InputError, match="denominator"):
        stats.phe_funnel_points(ev0, RATE, rate_type="crude", years_of_data=5, multiplier=1e5)


# testdata_funnel_rate_dsr_inputs.csv: count, DSR and population per 100,000, and the labels of
# assign_funnel_significance for DSRs and crude rates with the zero row and without it
# (H3 High (0.001), H2 High (0.025), L3, L2, NS Not significant, NA under 10 events for DSRs)
SIG_ROWS = """\
2419 907.6174266 264102 H3 H3 H3 H3
2337 948.5620216 259711 H3 H3 H3 H3
2291 799.9690496 289247 H3 H3 H3 H3
2242 852.5637927 265029 H3 H3 H3 H3
2218 868.5358183 284649 H3 H3 H3 H3
2159 769.6242217 293578 H3 H3 H3 H3
2130 752.3254955 286718 H2 H2 H3 H3
2111 710.2689402 307381 NS NS NS NS
2105 815.3530325 274145 H3 H3 H3 H3
2083 717.7035916 297424 NS NS H2 NS
2078 755.8016993 272628 H3 H3 H3 H3
2062 825.9742848 269656 H3 H3 H3 H3
2061 702.2972468 294692 NS NS H2 NS
2033 785.6210132 277710 H3 H3 H3 H2
2033 743.6763018 259213 H2 H2 H3 H3
2010 781.8323058 285516 H3 H3 H2 NS
2004 772.6781064 269449 H3 H3 H3 H3
2002 652.3391553 290888 L3 L3 NS NS
1977 648.4969973 287112 L3 L3 NS NS
1944 727.5777428 286492 NS NS NS NS
1932 625.6551186 287012 L3 L3 NS NS
1922 688.5582424 291277 NS NS NS NS
1912 662.4465438 289859 L2 L2 NS NS
1881 627.1624732 289653 L3 L3 NS L2
1844 657.1114147 282519 L2 L2 NS L2
1835 724.8456714 274220 NS NS NS NS
1833 659.7820553 280271 L2 L2 NS L2
1825 654.7053631 284206 L3 L3 NS L2
1816 624.4435507 274508 L3 L3 NS NS
1809 646.7588823 288384 L3 L3 L2 L3
1798 703.1689982 287072 NS NS L2 L3
1754 567.9922764 282744 L3 L3 L3 L3
1746 617.7750715 289208 L3 L3 L3 L3
1709 610.8327232 287736 L3 L3 L3 L3
1694 608.5089462 296175 L3 L3 L3 L3
1688 662.3775859 303255 L2 L2 L3 L3
1649 667.6454503 285959 L2 L2 L3 L3
1553 604.1141693 274661 L3 L3 L3 L3
1332 469.5645784 281425 L3 L3 L3 L3
0 nan 297820 NA NS L3 NS
"""
LABELS = {"H3": "High (0.001)", "H2": "High (0.025)", "L3": "Low (0.001)",
          "L2": "Low (0.025)", "NS": "Not significant",
          "NA": "Not applicable for events less than 10 for dsrs"}  # fmt: skip


def test_phe_rate_significance_reproduces_phe_test_labels() -> None:
    rows = [line.split() for line in SIG_ROWS.splitlines()]
    count = np.array([float(r[0]) for r in rows])
    dsr_rate = np.array([float(r[1]) for r in rows])
    pop = np.array([float(r[2]) for r in rows])
    crude = count / pop * 1e5
    want = [[LABELS[c] for c in r[3:]] for r in rows]
    dsr_with_0 = stats.phe_funnel_significance(count, pop, statistic="rate", rate=dsr_rate,
                                               rate_type="dsr", multiplier=1e5)  # fmt: skip
    assert list(dsr_with_0) == [w[0] for w in want]
    nz = count > 0
    dsr_without_0 = stats.phe_funnel_significance(count[nz], pop[nz], statistic="rate",
                                                  rate=dsr_rate[nz], rate_type="dsr",
                                                  multiplier=100)  # fmt: skip
    assert list(dsr_without_0) == [w[1] for w in want[:-1]]
    crude_with_0 = stats.phe_funnel_significance(count, pop, statistic="rate", rate=crude,
                                                 rate_type="crude", multiplier=1e5)  # fmt: skip
    assert list(crude_with_0) == [w[2] for w in want]
    crude_without_0 = stats.phe_funnel_significance(count[nz], pop[nz], statistic="rate",
                                                    rate=crude[nz] / 1000, rate_type="crude",
                                                    multiplier=100)  # fmt: skip
    assert list(crude_without_0) == [w[3] for w in want[:-1]]


def test_phe_significance_proportions_and_ratios() -> None:
    # assign_funnel_significance's documented example (areas A-D, proportion): p0 = 0.7315...
    num = np.array([10232.0, 12321, 15123, 13213])
    den = np.array([15232.0, 16123, 17932, 18475])
    got = stats.phe_funnel_significance(num, den, statistic="proportion")
    p0 = num.sum() / den.sum()
    y = num / den
    for yi, ni, label in zip(y, den, got, strict=True):
        lo3, hi3 = stats.proportion_funnel_limits([ni], p0, 0.998)
        assert (yi < lo3[0] and label == "Low (0.001)") or (yi > hi3[0] and label == "High (0.001)")
    # ratios: 12 observed for 5 expected (Byar's lower 6.20 > 5): high at 95%, not at 99.8%
    got = stats.phe_funnel_significance([12.0, 1.0, 5.0], [5.0, 9.0, 5.0], statistic="ratio")
    assert list(got) == ["High (0.025)", "Low (0.025)", "Not significant"]


# --------------------------------------------------------------------------------------------
# FunnelPlotR 0.6.0 compatibility

FPR_O = np.array([100.0, 150, 180, 80, 120, 225])
FPR_E = np.array([108.0, 112, 165, 95, 100, 220])


def _type7_quantile(x: list[float], p: float) -> float:
    s = sorted(x)
    h = (len(s) - 1) * p
    lo = math.floor(h)
    return s[lo] + (h - lo) * (s[min(lo + 1, len(s) - 1)] - s[lo])


def test_funnelplotr_cqc_overdispersion_by_hand() -> None:
    z = [2 * math.sqrt(e) * (math.sqrt(o / e) - 1) for o, e in zip(FPR_O, FPR_E, strict=True)]
    lo, hi = _type7_quantile(z, 0.1), _type7_quantile(z, 0.9)
    zw = [min(max(v, lo), hi) for v in z]
    phi = sum(v * v for v in zw) / 6
    w = [4 * e for e in FPR_E]
    tau2 = (6 * phi - 5) / (sum(w) - sum(v * v for v in w) / sum(w))
    od = stats.funnelplotr_overdispersion(FPR_O, FPR_E, sr_method="CQC")
    assert od.limits == "funnelplotr" and od.scale == "sqrt" and od.method == "winsorise"
    assert od.phi == pytest.approx(phi, rel=1e-13)
    assert od.tau2 == pytest.approx(tau2, rel=1e-12)
    assert od.phi > 1 and od.adjusted and od.limit_tau2 == od.tau2
    # the same phi and tau2 as didcore's winsorised sqrt-scale estimate
    mine = stats.overdispersion(FPR_O, FPR_E, scale="sqrt", method="winsorise")
    assert mine.phi == pytest.approx(od.phi, rel=1e-13)
    assert mine.tau2 == pytest.approx(od.tau2, rel=1e-13)
    # the CQC limits: 1 -/+ 1.959964 sqrt(1/(4E) + tau2), not squared back (FunnelPlotR's quirk)
    lo95, hi95 = stats.funnel_limits(FPR_E, 0.95, tau2=od.tau2, scale="sqrt", method="funnelplotr")
    half = 1.959964 * np.sqrt(1 / (4 * FPR_E) + od.tau2)
    assert lo95 == pytest.approx(1 - half, rel=1e-14)
    assert hi95 == pytest.approx(1 + half, rel=1e-14)
    lo998, _ = stats.funnel_limits(FPR_E, 0.998, tau2=od.tau2, method="funnelplotr")
    assert lo998 == pytest.approx(1 - 3.090232 * np.sqrt(1 / (4 * FPR_E) + od.tau2), rel=1e-14)
    # didcore squares back: a different (wider on top) funnel
    _, hi_didcore = stats.funnel_limits(FPR_E, 0.95, tau2=od.tau2, scale="sqrt")
    assert np.all(hi_didcore > hi95)


def test_funnelplotr_shmi_overdispersion_by_hand() -> None:
    # 6 units: floor(rank 10 / 7) is 1, 2, 4, 5, 7, 8, so truncation drops none
    e = np.round(FPR_E * 1.00123, 2)
    z = np.sqrt(e) * np.log(FPR_O / e)
    phi = float(np.mean(z**2))
    tau2 = (6 * phi - 5) / (e.sum() - (e**2).sum() / e.sum())
    od = stats.funnelplotr_overdispersion(FPR_O, FPR_E * 1.00123, sr_method="SHMI")
    assert (od.scale, od.method, od.n) == ("log", "truncate", 6)
    assert od.phi == pytest.approx(phi, rel=1e-13)
    assert od.tau2 == pytest.approx(max(tau2, 0.0), rel=1e-12)
    # shmi_rounding=False uses the expected counts as given
    raw = stats.funnelplotr_overdispersion(FPR_O, FPR_E * 1.00123, shmi_rounding=False)
    assert raw.phi != od.phi
    lo, hi = stats.funnel_limits([50.0], 0.998, tau2=0.01, scale="log", method="funnelplotr")
    half = 3.090232 * math.sqrt(1 / 50 + 0.01)
    assert (float(lo[0]), float(hi[0])) == pytest.approx((math.exp(-half), math.exp(half)))


def test_funnelplotr_phi_at_most_one_falls_back_to_unadjusted_limits() -> None:
    # phi in (1 - 1/n, 1]: FunnelPlotR's tau2 > 0 but it draws the unadjusted limits
    o = np.array([10.0, 12, 8, 11, 9, 10])
    e = np.full(6, 10.0)
    od = stats.funnelplotr_overdispersion(o, e, sr_method="CQC")
    assert od.phi <= 1
    assert not od.adjusted and od.limit_tau2 == 0.0
    # unadjusted: FunnelPlotR's chi-square limits, qchisq(0.025, 2E) / 2E, qchisq(0.975, 2E+2) / 2E
    from scipy.stats import chi2

    lo, hi = stats.funnel_limits([10.0, 3.5], 0.95, tau2=od.limit_tau2, method="funnelplotr")
    assert lo == pytest.approx(chi2.ppf(0.025, [20.0, 7.0]) / np.array([20.0, 7.0]), rel=1e-12)
    assert hi == pytest.approx(chi2.ppf(0.975, [22.0, 9.0]) / np.array([20.0, 7.0]), rel=1e-12)
    lo, hi = stats.funnel_limits([10.0], 0.998, method="funnelplotr")
    assert float(lo[0]) == pytest.approx(chi2.ppf(0.001, 20.0) / 20.0, rel=1e-12)
    assert float(hi[0]) == pytest.approx(chi2.ppf(0.999, 22.0) / 20.0, rel=1e-12)


def test_funnelplotr_zero_counts_on_the_log_scale_are_infinite_as_in_r() -> None:
    o = np.array([0.0, 0, 0, 5, 6, 7, 8, 9, 10, 11, 12, 40])
    od = stats.funnelplotr_overdispersion(o, np.full(12, 8.0), sr_method="SHMI")
    assert math.isinf(od.phi) and math.isinf(od.tau2) and od.adjusted
    lo, hi = stats.funnel_limits([8.0], 0.95, tau2=od.tau2, scale="log", method="funnelplotr")
    assert float(lo[0]) == 0.0 and math.isinf(float(hi[0]))


@given(
    st.lists(st.floats(0.05, 1e6), min_size=2, max_size=20),
    st.floats(0, 0.5),
    st.sampled_from(["didcore", "funnelplotr"]),
    st.sampled_from(["sqrt", "log"]),
)
def test_ratio_funnels_bracket_target_and_widen(
    es: list[float], tau2: float, method: str, scale: str
) -> None:
    e = np.sort(np.asarray(es))
    for conf in (0.95, 0.998):
        lo, hi = stats.funnel_limits(e, conf, tau2=tau2, scale=scale, method=method)  # type: ignore[arg-type]
        assert np.all(lo <= 1 + 1e-12) and np.all(hi >= 1 - 1e-12)
        if tau2 > 0 or method == "funnelplotr":  # the smooth forms: monotone in E
            assert np.all(np.diff(hi) <= 1e-12) and np.all(np.diff(lo) >= -1e-12)


# --------------------------------------------------------------------------------------------
# input validation


@pytest.mark.parametrize("conf", [0.0, 1.0, 1.5, -0.1, True])
def test_conf_outside_zero_one_is_refused(conf: float) -> None:
    with pytest.raises(InputError, match="conf"):
        stats.proportion_funnel_limits([10.0], 0.5, conf)
    with pytest.raises(InputError, match="conf"):
        stats.funnel_limits([10.0], conf, method="funnelplotr")


def test_bad_denominators_numerators_and_arguments_are_refused() -> None:
    with pytest.raises(InputError, match="denominator"):
        stats.proportion_funnel_limits([10.0, 0.0], 0.5)
    with pytest.raises(InputError, match="denominator"):
        stats.proportion_funnel_limits([-3.0], 0.5)
    with pytest.raises(InputError, match="target"):
        stats.proportion_funnel_limits([10.0], 1.2)
    with pytest.raises(InputError, match="multiplier"):
        stats.proportion_funnel_limits([10.0], 0.5, multiplier=0)
    with pytest.raises(InputError, match="denominator"):
        stats.phe_funnel_limits([1.0, 2.0], [5.0, 0.0], statistic="proportion", multiplier=100)
    with pytest.raises(InputError, match="numerator"):
        stats.phe_funnel_limits([-1.0, 2.0], [5.0, 6.0], statistic="proportion", multiplier=100)
    with pytest.raises(InputError, match="above its denominator"):
        stats.phe_funnel_significance([6.0, 2.0], [5.0, 6.0], statistic="proportion")
    with pytest.raises(InputError, match="statistic"):
        stats.phe_funnel_limits([1.0], [5.0], statistic="mean", multiplier=100)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="ratio_type"):
        stats.phe_funnel_limits([1.0], [5.0], statistic="ratio", multiplier=100)
    with pytest.raises(InputError, match="years_of_data"):
        stats.phe_funnel_limits([1.0], statistic="rate", rate=[5.0], rate_type="crude",
                                multiplier=100)  # fmt: skip
    with pytest.raises(InputError, match="rate_type"):
        stats.phe_funnel_points([1.0], [5.0], rate_type="isr", years_of_data=1, multiplier=100)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="numerator"):
        stats.phe_funnel_limits(["3"], [5.0], statistic="ratio", ratio_type="isr", multiplier=100)
    with pytest.raises(InputError, match="method"):
        stats.funnel_limits([10.0], 0.95, method="phe")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="sr_method"):
        stats.funnelplotr_overdispersion([1.0], [1.0], sr_method="sqrt")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="observed"):
        stats.funnelplotr_overdispersion([-1.0], [1.0])
    with pytest.raises(InputError, match="tau2"):
        stats.funnel_limits([10.0], 0.95, tau2=-1.0, method="funnelplotr")


# --------------------------------------------------------------------------------------------
# standardise(funnel_method=...)


def _one_stratum_run(observed: list[int], **kw: object) -> object:
    from _stats_helpers import SHAPE, make_cube, make_population
    from didcore.standardise import standardise

    n = len(observed)
    counts = np.zeros((n, *SHAPE, 1), dtype=np.int64)
    counts[:, 0, 0, 0, 0] = observed
    pop = np.zeros((n, *SHAPE))
    pop[:, 0, 0, 0] = 1000.0  # every ICB alike: E_i = mean O
    return standardise(make_cube(counts), make_population(pop), **kw)  # type: ignore[arg-type]


def test_standardise_funnelplotr_mode_flags_and_labels() -> None:
    observed = [40, 55, 61, 30, 90, 47, 52, 70, 20, 58, 66, 44]
    e = np.full(len(observed), np.mean(observed))
    o = np.asarray(observed, dtype=float)
    got = _one_stratum_run(observed, overdispersion="winsorise", funnel_method="funnelplotr")
    od = stats.funnelplotr_overdispersion(o, e, sr_method="CQC")
    assert od.adjusted
    lo, hi = stats.funnel_limits(e, 0.998, tau2=od.tau2, scale="sqrt", method="funnelplotr")
    want = stats.funnel_flags(o / e, lo, hi)
    assert got.icb.column("funnel_998").to_pylist() == list(want)  # type: ignore[attr-defined]
    meta = got.icb.schema.metadata[b"didcore.funnel"].decode()  # type: ignore[attr-defined]
    assert "FunnelPlotR-compatible limits" in meta
    funnel = got.funnel.to_pylist()  # type: ignore[attr-defined]
    assert {r["limits"] for r in funnel} == {"funnelplotr"}
    assert funnel[0]["phi"] == pytest.approx(od.phi) and funnel[0]["tau2"] == pytest.approx(od.tau2)
    # the default is unchanged and says so
    default = _one_stratum_run(observed, overdispersion="winsorise")
    assert {r["limits"] for r in default.funnel.to_pylist()} == {"didcore"}  # type: ignore[attr-defined]
    mine = stats.overdispersion(o, e)
    lo, hi = stats.funnel_limits(e, 0.998, tau2=mine.tau2)
    assert default.icb.column("funnel_998").to_pylist() == list(  # type: ignore[attr-defined]
        stats.funnel_flags(o / e, lo, hi)
    )


def test_standardise_funnelplotr_mode_refuses_pairings_funnelplotr_lacks() -> None:
    with pytest.raises(InputError, match="truncates on the log scale"):
        _one_stratum_run([5, 6, 7], overdispersion="winsorise", funnel_scale="log",
                         funnel_method="funnelplotr")  # fmt: skip
    with pytest.raises(InputError, match="funnel_method"):
        _one_stratum_run([5, 6, 7], funnel_method="R")


def test_report_note_when_many_icbs_record_no_tests() -> None:
    from didcore.report.pipeline import zero_count_notes

    observed = [0] * 6 + [3, 5, 8, 12, 30, 60, 90, 150]
    got = _one_stratum_run(observed, overdispersion="winsorise")
    (note,) = zero_count_notes(got.icb, got.funnel)  # type: ignore[attr-defined]
    assert note.startswith("M0: 6 of 14 ICBs recorded no tests.")
    od = stats.overdispersion(observed, np.full(14, np.mean(observed)))
    _, hi = stats.funnel_limits([np.mean(observed)], 0.998, tau2=od.tau2)
    assert f"{float(hi[0]):.1f} times the national rate" in note
    (masked,) = zero_count_notes(got.icb, got.funnel, disclosure=True)  # type: ignore[attr-defined]
    assert "At least a quarter of ICBs" in masked and "6 of 14" not in masked
    # no note without the adjustment, or with few zeros
    plain = _one_stratum_run(observed)
    assert zero_count_notes(plain.icb, plain.funnel) == []  # type: ignore[attr-defined]
    few = _one_stratum_run([0, 3, 5, 8, 12, 30, 60, 90, 150, 40], overdispersion="winsorise")
    assert zero_count_notes(few.icb, few.funnel) == []  # type: ignore[attr-defined]


def test_cli_funnel_method_option() -> None:
    from didcore.cli import _parser, _report_kwargs

    parser = _parser()
    args = parser.parse_args(["demo", "--out", "x", "--funnel-method", "funnelplotr"])
    assert _report_kwargs(args)["funnel_method"] == "funnelplotr"
    args = parser.parse_args(["report", "e.parquet", "--out", "x"])
    assert _report_kwargs(args)["funnel_method"] == "didcore"
    with pytest.raises(SystemExit):
        parser.parse_args(["demo", "--out", "x", "--funnel-method", "phe"])


def test_phe_proportion_significance_reproduces_phe_test_labels() -> None:
    # testdata_funnel_prop_inputs.csv: six areas and their labels; the other areas are
    # replaced by one large area that keeps PHE's average proportion, 80.642448%
    areas = [
        (35078.4880000, 41980, "High (0.001)"),  # New Forest PCT
        (24803.6256000, 31824, "Low (0.001)"),  # Norwich PCT
        (50050.7443000, 61921, "Not significant"),  # South Gloucestershire PCT
        (26789.2380000, 33012, "High (0.025)"),  # West Norfolk PCT
        (30277.5312000, 37828, "Low (0.025)"),  # North Devon PCT
        (21139.2936000, 25992, "High (0.025)"),  # East Devon PCT
    ]
    num = [a[0] for a in areas]
    den = [float(a[1]) for a in areas]
    rest = 1e7
    num.append(0.80642448 * (sum(den) + rest) - sum(num))
    den.append(rest)
    got = stats.phe_funnel_significance(num, den, statistic="proportion")
    assert list(got[:-1]) == [a[2] for a in areas]
