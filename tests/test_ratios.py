"""rates_ratios(): reference equality, planted effects, and the publication's 126 stars."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

from _stats_helpers import assert_rows_equal, cube_inputs, make_cube, make_population
from didcore import refdata, stats
from didcore.errors import ZeroPopulationError
from didcore.population import AGE_BANDS
from didcore.ratios import BROAD_AGE_BANDS, BROAD_AGE_OF_BAND, rates_ratios
from didcore.reference import stats as ref

COLUMNS = [
    "factor", "level", "measure", "kind", "observed", "expected", "standardised_rate", "ratio",
    "chi2", "p_value", "stars", "chi2_counts", "p_value_counts", "ratio_lower_95",
    "ratio_upper_95",
]  # fmt: skip
LEVELS = {
    "sex": ["female", "male"],
    "imd_quintile": ["1", "2", "3", "4", "5"],
    "age": list(BROAD_AGE_BANDS),
}


@given(cube_inputs())
def test_equals_reference(inputs: tuple[np.ndarray, np.ndarray]) -> None:
    counts, pop = inputs
    cube = make_cube(counts)
    got = rates_ratios(cube, make_population(pop))
    want = ref.rates_ratios(counts, pop, cube.measures, cube.measure_kinds)
    assert got.column_names == COLUMNS
    assert_rows_equal(got.to_pylist(), want)


@given(cube_inputs(max_icb=3, max_measure=2))
def test_structure_and_invariant(inputs: tuple[np.ndarray, np.ndarray]) -> None:
    counts, pop = inputs
    cube = make_cube(counts)
    rows = rates_ratios(cube, pop).to_pylist()
    i = 0
    for factor in ("sex", "imd_quintile", "age"):
        for measure in cube.measures:
            block = rows[i : i + len(LEVELS[factor])]
            i += len(block)
            assert [r["level"] for r in block] == LEVELS[factor]
            assert {(r["factor"], r["measure"]) for r in block} == {(factor, measure)}
            base = block[0]
            assert base["ratio"] == 1.0 and base["stars"] == "" and base["chi2"] is None
            assert base["p_value_counts"] is None and base["ratio_lower_95"] is None
            # every level's tests are counted once, and sum E = sum O across levels
            total = int(counts[..., cube.measures.index(measure)].sum())
            assert sum(r["observed"] for r in block) == total
            assert sum(r["expected"] for r in block) == pytest.approx(total, rel=1e-9, abs=1e-6)
    assert i == len(rows)


def _product_population(total: float, age_share: np.ndarray) -> np.ndarray:
    """One ICB whose people split 50/50 by sex, 20% per IMD quintile, by age as given."""
    return total * np.einsum("s,a,q->saq", [0.5, 0.5], age_share, [0.2] * 5)[None]


def test_planted_effects_are_recovered_exactly() -> None:
    """With a product-form population and rates base x sex x age x IMD x ICB, the rates
    ratios are the planted effects (age: the population-weighted mean of the 5-year effects
    in each broad band)."""
    rng = np.random.default_rng(11)
    size = np.array([1.0, 2.5, 0.7])
    age_share = rng.uniform(0.5, 1.5, 19)
    structure = np.einsum("s,a,q->saq", [0.49, 0.51], age_share, rng.uniform(0.8, 1.2, 5))
    pop = 1e7 * size[:, None, None, None] * structure
    sex = np.array([0.7, 1.0])  # male, female
    age = rng.uniform(0.5, 8.0, 19)
    imd = np.array([1.0, 0.9, 0.85, 0.7, 0.6])
    icb = np.array([1.0, 1.3, 0.8])
    rate = 0.01 * np.einsum("i,s,a,q->isaq", icb, sex, age, imd)
    counts = np.rint(pop * rate)[..., None].astype(np.int64)
    rows = rates_ratios(make_cube(counts), pop).to_pylist()
    got = {(r["factor"], r["level"]): r["ratio"] for r in rows}
    assert got[("sex", "male")] == pytest.approx(0.7, rel=1e-6)
    for q in range(5):
        assert got[("imd_quintile", str(q + 1))] == pytest.approx(imd[q], rel=1e-6)
    broad = np.asarray(BROAD_AGE_OF_BAND)
    mean_effect = [np.average(age[broad == b], weights=age_share[broad == b]) for b in range(5)]
    for b, label in enumerate(BROAD_AGE_BANDS):
        assert got[("age", label)] == pytest.approx(mean_effect[b] / mean_effect[0], rel=1e-6)


def test_planted_effects_poisson_sample_within_confidence_intervals() -> None:
    """A realistic population (not of product form, so indirect standardisation is only
    nearly unbiased) with Poisson counts: planted ratios inside the 99.8% intervals."""
    rng = np.random.default_rng(12)
    pop = rng.uniform(1e3, 2e4, (42, 2, 19, 5))
    sex = np.array([0.8, 1.0])
    imd = np.array([1.0, 0.92, 0.86, 0.8, 0.75])
    rate = 0.004 * np.einsum("s,q->sq", sex, imd)[None, :, None, :] * np.ones((1, 1, 19, 1))
    planted = {("sex", "male"): 0.8} | {("imd_quintile", str(q + 1)): imd[q] for q in range(1, 5)}
    sampled = rng.poisson(pop * rate)[..., None].astype(np.int64)
    for r in rates_ratios(make_cube(sampled), pop, conf=0.998).to_pylist():
        key = (r["factor"], r["level"])
        if key in planted:
            assert r["ratio_lower_95"] < planted[key] < r["ratio_upper_95"], r
        if r["factor"] == "age" and r["level"] != "0-<45":  # no age effect planted
            assert r["ratio_lower_95"] < 1.0 < r["ratio_upper_95"], r
    # without sampling noise the bias of the method is small here (under 0.1%)
    expected = np.rint(pop * rate)[..., None].astype(np.int64)
    for r in rates_ratios(make_cube(expected), pop).to_pylist():
        key = (r["factor"], r["level"])
        assert r["ratio"] == pytest.approx(planted.get(key, 1.0), rel=1e-3), r


def _england_broad_age_shares() -> np.ndarray:
    """Shares of England's people (ONS mid-2022) in the 19 five-year bands."""
    table = refdata.icb_population()
    bands = table.column("age_band").to_pylist()
    people = table.column("population").to_numpy()
    share = np.array([people[[b == band for b in bands]].sum() for band in AGE_BANDS])
    return share / share.sum()


def test_publication_stars_follow_from_its_rates() -> None:
    """Every one of the 126 non-base stars of the publication's rates-ratio Tables 1-6.

    Derivation of the rates behind each table: for any factor, the national rate is the
    expected-count-weighted mean of the levels' standardised rates, N = sum_f w_f SR_f with
    w_f = E_f / sum E (because sum_f O_f = sum_f E_f), and SR_f = ratio_f x SR_base. So
    SR_base = N / sum_f w_f ratio_f, with N from Tables 1-2 (per 10,000) and the published
    (two-decimal) ratios. The weights are population shares: sexes 50/50; IMD quintiles 20%
    each (quintiles of LSOAs hold about a fifth of the people each); age bands England's shares
    (ONS mid-2022: 55.9% under 45, 12.9%, 12.7%, 9.6%, 9.0%). The publication's test is then
    applied to SR_base and SR_f. (The publication's example, female 3,894 and male 3,087 X-rays
    per 10,000, implies a female weight of 0.57 rather than 0.5: its rates are not needed
    exactly, since no star is within that distance of a threshold.)

    Then the same rates are produced end to end: one ICB whose population has exactly those
    shares (and is large, so rounding the counts moves no rate by more than 1e-6) and rates
    multiplicative in the published ratios, through rates_ratios().
    """
    pub = refdata.publication()
    national = pub["national_rate_per_10000"]
    measures = list(national)
    age5 = _england_broad_age_shares()
    broad = np.asarray(BROAD_AGE_OF_BAND)
    weights = {
        "sex": np.array([0.5, 0.5]),
        "imd_quintile": np.full(5, 0.2),
        "age": np.array([age5[broad == b].sum() for b in range(5)]),
    }
    np.testing.assert_allclose(weights["age"], [0.5585, 0.1286, 0.1267, 0.0960, 0.0901], atol=1e-4)

    n_cells = 0
    for factor, w in weights.items():
        table = pub["rates_ratios"][factor]
        assert table["levels"] == LEVELS[factor]
        for m in measures:
            ratio = np.asarray(table["ratio"][m])
            base = national[m] / np.dot(w, ratio)
            _, p = stats.published_chi2_test(base, ratio[1:] * base)
            assert list(stats.significance_stars(p)) == table["stars"][m][1:], (factor, m, p)
            n_cells += len(ratio) - 1
    assert n_cells == 126

    # end to end: 57 billion people keep even SPECT cells at ~10^5 tests
    pop = _product_population(5.7e10, age5)
    effect = np.ones((len(measures), 2, 19, 5))
    for j, m in enumerate(measures):
        sex_r = pub["rates_ratios"]["sex"]["ratio"][m]
        imd_r = pub["rates_ratios"]["imd_quintile"]["ratio"][m]
        age_r = np.asarray(pub["rates_ratios"]["age"]["ratio"][m])[broad]
        effect[j] = np.einsum("s,a,q->saq", [sex_r[1], sex_r[0]], age_r, imd_r)
        mean_effect = np.einsum("saq,saq->", effect[j], pop[0]) / pop.sum()
        effect[j] *= national[m] / 1e4 / mean_effect
    counts = np.rint(pop[..., None] * np.moveaxis(effect, 0, -1)[None]).astype(np.int64)
    kinds = ["modality"] * 9 + ["edoc"] * 5
    rows = rates_ratios(make_cube(counts, ["QOQ"], measures, kinds), pop).to_pylist()
    for r in rows:
        table = pub["rates_ratios"][r["factor"]]
        f = table["levels"].index(r["level"])
        assert r["ratio"] == pytest.approx(table["ratio"][r["measure"]][f], rel=1e-5)
        assert r["stars"] == table["stars"][r["measure"]][f], r
        if f:
            # on the counts of a national year, every difference is overwhelmingly significant
            assert r["p_value_counts"] < 1e-6


def test_published_test_depends_on_the_rate_unit() -> None:
    """The same rates per 100,000 would have starred Brain MRI for sex; per 1,000, X-ray
    deprivation quintile 2 would lose its stars."""
    pub = refdata.publication()
    n = pub["national_rate_per_10000"]["Brain MRI"]
    male = pub["rates_ratios"]["sex"]["ratio"]["Brain MRI"][1]
    female_rate = 2 * n / (1 + male)
    for scale, stars in ((1.0, ""), (10.0, "***")):
        _, p = stats.published_chi2_test(female_rate * scale, male * female_rate * scale)
        assert str(stats.significance_stars(p)) == stars
    n = pub["national_rate_per_10000"]["X-ray"]
    ratios = np.asarray(pub["rates_ratios"]["imd_quintile"]["ratio"]["X-ray"])
    base = n / ratios.mean()
    for scale, stars in ((1.0, "***"), (0.1, "")):
        _, p = stats.published_chi2_test(base * scale, ratios[1] * base * scale)
        assert str(stats.significance_stars(p)) == stars


def test_zero_population_stratum_is_named() -> None:
    pop = np.full((1, 2, 19, 5), 5.0)
    pop[0, 0, 3, 4] = 0
    counts = np.zeros((1, 2, 19, 5, 1), dtype=np.int64)
    counts[0, 0, 3, 4, 0] = 2
    with pytest.raises(ZeroPopulationError, match=r"sex male, age band 15-19, IMD quintile 5"):
        rates_ratios(make_cube(counts), pop)


def test_units_in_schema() -> None:
    pop = np.full((1, 2, 19, 5), 100.0)
    counts = np.ones((1, 2, 19, 5, 1), dtype=np.int64)
    t = rates_ratios(make_cube(counts), make_population(pop))
    assert t.schema.metadata[b"didcore.rate_unit"] == b"per 10,000 population"
    assert t.schema.field("standardised_rate").metadata == {b"unit": b"per 10,000 population"}
    assert t.column("standardised_rate").to_pylist()[0] == pytest.approx(100.0)
