"""standardise(): equal to the pure-Python reference, invariants, planted effects, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _stats_helpers import (
    assert_arrays_close,
    assert_rows_equal,
    cube_inputs,
    icb_codes,
    make_cube,
    make_population,
)
from didcore import stats
from didcore.errors import PopulationError, ZeroPopulationError
from didcore.reference import stats as ref
from didcore.standardise import (
    StandardisedRates,
    _expected_counts_numpy,
    expected_counts,
    standardise,
)

ICB_COLUMNS = [
    "icb_code", "measure", "kind", "observed", "population", "crude_rate", "expected", "ratio",
    "standardised_rate", "sr_lower_95", "sr_upper_95", "sr_lower_998", "sr_upper_998",
    "within_10pct_of_crude", "funnel_95", "funnel_998", "dsr", "dsr_lower_95", "dsr_upper_95",
]  # fmt: skip
SUMMARY_COLUMNS = [
    "measure", "national_rate", "mean_sr", "sd_sr", "lower_1sd", "upper_1sd", "share_within_1sd",
    "share_within_10pct_of_crude", "n_icbs",
]  # fmt: skip
NATIONAL_COLUMNS = ["measure", "kind", "observed", "population", "rate_per_10000"]


def _run(counts: np.ndarray, pop: np.ndarray, **kw: object) -> StandardisedRates:
    return standardise(make_cube(counts), make_population(pop), **kw)  # type: ignore[arg-type]


@given(
    cube_inputs(),
    st.sampled_from([None, "winsorise", "truncate"]),
    st.sampled_from(["sqrt", "log"]),
)
def test_equals_reference(
    inputs: tuple[np.ndarray, np.ndarray], od: str | None, scale: str
) -> None:
    counts, pop = inputs
    cube = make_cube(counts)
    got = standardise(cube, make_population(pop), overdispersion=od, funnel_scale=scale)  # type: ignore[arg-type]
    want = ref.standardise(
        counts, pop, cube.icb_codes, cube.measures, cube.measure_kinds, od, scale
    )
    assert_rows_equal(got.national.to_pylist(), want["national"])
    assert_rows_equal(got.icb.to_pylist(), want["icb"])
    assert_rows_equal(got.summary.to_pylist(), want["summary"], scale={"sd_sr": "mean_sr"})
    # per-measure funnel parameters, as repeated on the funnel table's grid rows
    funnel = got.funnel.to_pylist()
    for m, measure in enumerate(cube.measures):
        rows = [r for r in funnel if r["measure"] == measure]
        w = want["funnel"][m]
        if not rows:  # no ICB has an expected count: nothing to draw
            n_icb = len(cube.icb_codes)
            expected = got.icb.column("expected").to_numpy()[m * n_icb : (m + 1) * n_icb]
            assert not np.any(expected > 0)
            continue
        assert {r["method"] for r in rows} == {w["method"]}
        assert {r["scale"] for r in rows} == {w["scale"]}
        assert {r["n_units"] for r in rows} == {w["n"]}
        assert_arrays_close(rows[0]["tau2"], w["tau2"])
        assert_arrays_close(
            np.nan if rows[0]["phi"] is None else rows[0]["phi"], w["phi"], atol=1e-12
        )
        # the grid's limits are the limits at those expected counts
        e = np.array([r["expected"] for r in rows])
        lo, hi = stats.funnel_limits(e, 0.998, tau2=w["tau2"], scale=scale)  # type: ignore[arg-type]
        assert_arrays_close([r["lower_998"] for r in rows], lo)
        assert_arrays_close([r["upper_998"] for r in rows], hi)


@given(cube_inputs(max_icb=5, max_measure=3))
def test_expected_counts_rust_numpy_reference_agree(inputs: tuple[np.ndarray, np.ndarray]) -> None:
    counts, pop = inputs
    n_icb, n_measure = counts.shape[0], counts.shape[-1]
    observed = counts.reshape(n_icb, 190, n_measure).astype(float)
    people = pop.reshape(n_icb, 190)
    rng = np.random.default_rng(n_icb * 7 + n_measure)
    n_groups = int(rng.integers(1, n_icb + 1))
    groups = rng.integers(0, n_groups, n_icb).astype(np.int64)
    e_rust, o_rust = expected_counts(observed, people, groups, n_groups)
    e_np, o_np = _expected_counts_numpy(observed, people, groups, n_groups)
    e_ref, o_ref = ref.expected_counts(observed, people, groups.tolist(), n_groups)
    np.testing.assert_array_equal(o_rust, o_ref)  # sums of whole numbers: exact
    np.testing.assert_array_equal(o_np, o_ref)
    assert_arrays_close(e_rust, e_ref)
    assert_arrays_close(e_np, e_ref)
    # invariant: every stratum's tests are redistributed, so sum E = sum O per measure
    assert_arrays_close(e_rust.sum(axis=0), o_rust.sum(axis=0), rel=1e-9, atol=1e-6)


def test_zero_population_stratum_is_named() -> None:
    pop = np.full((2, 2, 19, 5), 10.0)
    pop[:, 1, 18, 2] = 0.0  # nobody: female, 90+, IMD 3
    counts = np.zeros((2, 2, 19, 5, 2), dtype=np.int64)
    counts[0, 1, 18, 2, 1] = 4
    cube = make_cube(counts, measures=("X-ray", "MRI"))
    with pytest.raises(
        ZeroPopulationError, match=r"sex female, age band 90\+, IMD quintile 3: 4 'MRI' tests"
    ):
        standardise(cube, make_population(pop))
    # the same people missing but no tests there: fine
    counts[0, 1, 18, 2, 1] = 0
    counts[0, 0, 0, 0, 0] = 3
    assert standardise(cube, make_population(pop)).national.column("observed").to_pylist() == [3, 0]


def test_rust_zero_population_error_is_mapped_to_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """The core's own check (stratum and measure indices) is translated into names."""
    import importlib

    # `didcore.standardise` is the function; the module is reached through importlib.
    standardise_module = importlib.import_module("didcore.standardise")
    ratios_module = importlib.import_module("didcore.ratios")

    pop = np.full((1, 2, 19, 5), 10.0)
    pop[0, :, 2, 4] = 0.0  # nobody aged 10-14 in IMD quintile 5
    counts = np.zeros((1, 2, 19, 5, 2), dtype=np.int64)
    counts[0, 0, 2, 4, 1] = 6
    cube = make_cube(counts, measures=("X-ray", "CT Scan"))
    for module in (standardise_module, ratios_module):
        monkeypatch.setattr(module, "check_zero_population", lambda *a, **k: None)
    with pytest.raises(
        ZeroPopulationError, match=r"sex male, age band 10-14, IMD quintile 5: 6 'CT Scan' tests"
    ):
        standardise(cube, make_population(pop))
    # rates ratios by sex standardise by age x IMD: the stratum is named without the sex
    with pytest.raises(
        ZeroPopulationError, match=r"age band 10-14, IMD quintile 5: 6 'CT Scan' tests"
    ):
        ratios_module.rates_ratios(cube, make_population(pop))


def test_single_icb_is_the_nation() -> None:
    rng = np.random.default_rng(1)
    pop = rng.uniform(100, 1000, (1, 2, 19, 5))
    counts = rng.poisson(pop[..., None] * [0.2, 0.01]).astype(np.int64)
    r = _run(counts, pop)
    icb = r.icb.to_pylist()
    for row, nat in zip(icb, r.national.to_pylist(), strict=True):
        assert row["expected"] == pytest.approx(row["observed"], rel=1e-12)
        assert row["ratio"] == pytest.approx(1.0, rel=1e-12)
        assert row["standardised_rate"] == pytest.approx(nat["rate_per_10000"], rel=1e-12)
        assert row["crude_rate"] == pytest.approx(nat["rate_per_10000"], rel=1e-12)
        assert row["within_10pct_of_crude"] is True
        assert row["funnel_95"] == "within"
    summary = r.summary.to_pylist()
    assert [s["n_icbs"] for s in summary] == [1, 1]
    assert summary[0]["sd_sr"] is None and summary[0]["share_within_1sd"] is None


def test_measure_nobody_had_and_icb_without_people() -> None:
    rng = np.random.default_rng(2)
    pop = rng.uniform(100, 1000, (3, 2, 19, 5))
    pop[2] = 0.0  # an ICB with no population
    counts = rng.poisson(pop[..., None] * [0.3, 0.0]).astype(np.int64)
    counts[2, 0, 5, 1, 0] = 7  # ... but some tests
    r = _run(counts, pop, overdispersion="winsorise")
    rows = {(x["icb_code"], x["measure"]): x for x in r.icb.to_pylist()}
    nobody = rows[("Q00", "M1")]
    assert nobody["observed"] == 0 and nobody["expected"] == 0.0
    for col in ("ratio", "standardised_rate", "sr_lower_95", "funnel_95", "dsr"):
        assert nobody[col] is None
    no_people = rows[("Q02", "M0")]
    assert no_people["population"] == 0.0 and no_people["crude_rate"] is None
    assert no_people["expected"] == 0.0 and no_people["standardised_rate"] is None
    assert no_people["within_10pct_of_crude"] is None
    national = r.national.to_pylist()
    assert national[1]["observed"] == 0 and national[1]["rate_per_10000"] == 0.0
    summary = r.summary.to_pylist()
    assert summary[1]["n_icbs"] == 0 and summary[1]["mean_sr"] is None
    assert summary[0]["n_icbs"] == 2
    # no ICB with an expected count: no funnel rows for that measure
    assert set(r.funnel.column("measure").to_pylist()) == {"M0"}


def test_planted_icb_effects_are_recovered() -> None:
    """rate = base x sex x age x IMD x ICB on a population of product form.

    With every ICB sharing one sex x age x IMD structure (sizes differ), the standardised ratio
    of ICB i is exactly icb_i / mean_P(icb), so SR_i / SR_j = icb_i / icb_j, and the DSRs (age
    and sex standardised, same IMD mix) have the same ratios.
    """
    rng = np.random.default_rng(3)
    size = rng.uniform(0.5, 3.0, 6)
    structure = rng.uniform(0.2, 1.0, (2, 19, 5))
    pop = 2e5 * size[:, None, None, None] * structure
    sex = np.array([0.8, 1.0])
    age = np.linspace(0.5, 6.0, 19)
    imd = np.array([1.3, 1.15, 1.0, 0.9, 0.8])
    icb = np.array([1.0, 1.25, 0.8, 1.1, 0.95, 1.5])
    rate = 0.02 * icb[:, None, None, None] * sex[:, None, None] * age[:, None] * imd
    counts = np.rint(pop * rate)[..., None].astype(np.int64)  # ~1e3 per cell: rounding 1e-4
    r = _run(counts, pop)
    sr = np.array(r.icb.column("standardised_rate").to_pylist())
    ratio = np.array(r.icb.column("ratio").to_pylist())
    pbar = (icb * pop.sum(axis=(1, 2, 3))).sum() / pop.sum()
    np.testing.assert_allclose(ratio, icb / pbar, rtol=2e-4)
    np.testing.assert_allclose(sr / sr[0], icb / icb[0], rtol=2e-4)
    dsr = np.array(r.icb.column("dsr").to_pylist())
    np.testing.assert_allclose(dsr / dsr[0], icb / icb[0], rtol=2e-4)
    # crude rates also differ by the ICB effect only (same structure), so within 10% of SR
    assert all(r.icb.column("within_10pct_of_crude").to_pylist())


def test_invariant_and_national_rate_on_poisson_cube() -> None:
    rng = np.random.default_rng(4)
    pop = rng.uniform(0, 3000, (42, 2, 19, 5))
    counts = rng.poisson(pop[..., None] * rng.uniform(0.001, 0.4, 14)).astype(np.int64)
    r = _run(counts, pop)
    e = np.array(r.icb.column("expected").to_pylist()).reshape(14, 42)
    o = np.array(r.icb.column("observed").to_pylist()).reshape(14, 42)
    np.testing.assert_allclose(e.sum(axis=1), o.sum(axis=1), rtol=1e-12)
    nat = np.array(r.national.column("rate_per_10000").to_pylist())
    np.testing.assert_allclose(nat, counts.sum(axis=(0, 1, 2, 3)) / pop.sum() * 1e4)
    # ~95% of ICBs' 95% intervals contain the national rate (no real ICB effect here)
    lo = np.array(r.icb.column("sr_lower_95").to_pylist()).reshape(14, 42)
    hi = np.array(r.icb.column("sr_upper_95").to_pylist()).reshape(14, 42)
    covered = np.mean((lo <= nat[:, None]) & (nat[:, None] <= hi))
    assert covered > 0.9


def test_schema_units_and_options() -> None:
    rng = np.random.default_rng(5)
    pop = rng.uniform(10, 100, (3, 2, 19, 5))
    counts = rng.poisson(pop[..., None] * [0.1]).astype(np.int64)
    r = _run(counts, pop, funnel_points=7)
    assert r.icb.column_names == ICB_COLUMNS
    assert r.summary.column_names == SUMMARY_COLUMNS
    assert r.national.column_names == NATIONAL_COLUMNS
    assert r.funnel.num_rows == 7
    assert r.icb.schema.metadata[b"didcore.rate_unit"] == b"per 10,000 population"
    assert r.icb.schema.field("standardised_rate").metadata == {b"unit": b"per 10,000 population"}
    assert r.icb.column("icb_code").to_pylist()[:3] == list(icb_codes(3))
    with pytest.raises(ValueError, match="overdispersion"):
        _run(counts, pop, overdispersion="spiegelhalter")
    with pytest.raises(ValueError, match="funnel_scale"):
        _run(counts, pop, funnel_scale="arcsine")


def test_population_is_aligned_to_the_cube() -> None:
    rng = np.random.default_rng(6)
    pop = rng.uniform(10, 100, (3, 2, 19, 5))
    counts = rng.poisson(pop[..., None] * [0.1, 0.5]).astype(np.int64)
    cube = make_cube(counts)
    base = standardise(cube, make_population(pop))
    shuffled = make_population(pop[[2, 0, 1]], [cube.icb_codes[i] for i in (2, 0, 1)])
    assert standardise(cube, shuffled).icb.equals(base.icb)
    assert standardise(cube, pop).icb.equals(base.icb)  # a bare array in cube order
    with pytest.raises(PopulationError, match="'Q02'"):
        standardise(cube, make_population(pop[:2], cube.icb_codes[:2]))
    with pytest.raises(PopulationError, match="shape"):
        standardise(cube, pop[:2])


def test_external_reference() -> None:
    """reference=(x_ref, n_ref): the cube's own totals give the default; other rates scale E."""
    from didcore.errors import InputError

    rng = np.random.default_rng(16)
    pop = rng.uniform(50, 500, size=(4, 2, 19, 5))
    counts = rng.poisson(pop[..., None] * np.array([0.01, 0.03]))
    base = _run(counts, pop)
    x_nat = counts.sum(axis=0).astype(float)  # (2, 19, 5, n_measure)
    n_nat = pop.sum(axis=0)
    same = _run(counts, pop, reference=(x_nat, n_nat))
    assert_rows_equal(same.icb.to_pylist(), base.icb.to_pylist())
    assert_rows_equal(same.summary.to_pylist(), base.summary.to_pylist())
    assert_rows_equal(same.national.to_pylist(), base.national.to_pylist())
    # a reference with twice the stratum rates (same people): E doubles, the ratio halves,
    # N doubles, so SR = O / E * N is unchanged; flat form (190, n_measure) accepted
    twice = _run(counts, pop, reference=(2 * x_nat.reshape(190, -1), n_nat.reshape(190)))
    got, want = twice.icb.to_pydict(), base.icb.to_pydict()
    assert_arrays_close(np.array(got["expected"]), 2 * np.array(want["expected"]))
    assert_arrays_close(np.array(got["ratio"]), np.array(want["ratio"]) / 2)
    assert_arrays_close(np.array(got["standardised_rate"]), np.array(want["standardised_rate"]))
    assert_arrays_close(
        np.array(twice.summary["national_rate"]), 2 * np.array(base.summary["national_rate"])
    )
    # by hand for ICB 0, measure 0: E = sum_s x_ref_s / n_ref_s * P_0s (reference rate 0.02
    # everywhere, so E = 0.02 * P_0), SR = O / E * 200 per 10,000
    flat = np.full((2, 19, 5, 2), 0.02) * n_nat[..., None]
    r = _run(counts, pop, reference=(flat, n_nat)).icb.to_pydict()
    assert r["expected"][0] == pytest.approx(0.02 * pop[0].sum(), rel=1e-12)
    o0 = counts[0, ..., 0].sum()
    assert r["standardised_rate"][0] == pytest.approx(o0 / (0.02 * pop[0].sum()) * 200, rel=1e-12)
    zero = n_nat.copy()
    zero[1, 18, 4] = 0
    with pytest.raises(InputError, match=r"female, age band 90\+.*0 people"):
        _run(counts, pop, reference=(x_nat + 1, zero))
    with pytest.raises(InputError, match="ref_observed: shape"):
        _run(counts, pop, reference=(x_nat[..., :1], n_nat))
    with pytest.raises(InputError, match="ref_population: shape"):
        _run(counts, pop, reference=(x_nat, n_nat[0]))
