"""The statistics of docs/statistics.md, the reference data and the calibrated model.

:func:`spec_statistics` computes the publication's statistics; :func:`_model` builds (once) the
:class:`_Model`: population, rates raked so that those statistics equal the publication,
providers, practices, LSOAs, days and exam codes, all independent of ``rows`` and ``seed``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from didcore import refdata, stats
from didcore.axes import AGE_BANDS
from didcore.errors import InternalError
from didcore.synth.params import (
    _BROAD_OF_BAND,
    _EDOC_CODE_DECAY,
    _FY_DAYS,
    _FY_MONTHS,
    _FY_START,
    _ICB_FLOOR,
    _LONDON_LIST_INFLATION,
    _N_AGE,
    _N_IMD,
    _N_SEX,
    _N_WELSH_LSOA,
    _NATIONAL_PROVIDERS,
    _NO_IMD_BY_PROVIDER,
    _NO_PRACTICE_BY_PROVIDER,
    _NO_PRACTICE_SHARE,
    _NO_SEX_BY_PROVIDER,
    _OTHER_EXAM_CODES,
    _PSEUDO_LSOAS,
    _PSEUDO_PRACTICES,
    _REGION_TILT,
    _SEX_SPECIFIC_EXAMS,
    _UNKNOWN_BY_PROVIDER,
    _WEEKEND_FACTOR,
)

# =============================================================================================
# Statistics of docs/statistics.md (used to calibrate the model and to report what was realised)
# =============================================================================================


def spec_statistics(observed: np.ndarray, population: np.ndarray) -> dict[str, np.ndarray]:
    """Indirectly standardised rates of docs/statistics.md for one measure, as the publication does.

    ``observed`` and ``population`` have shape ``(n_icb, 2, 19, 5)`` (ICB x sex (male, female) x
    5-year age band x IMD quintile). Rates are per person (multiply by 10,000 for the
    publication's unit). Returns:

    * ``national``: ``N = sum O / sum P`` (shape ``()``);
    * ``sex``: standardised rates for (female, male), with age band x IMD as the standard;
    * ``imd_quintile``: for quintiles 1..5, with sex x age band as the standard;
    * ``age``: for the broad bands ``0-<45`` .. ``75+``, with sex x IMD as the standard;
    * ``icb``: for each ICB, with sex x age band x IMD as the standard; ``icb_expected``: ``E_i``.

    For a factor level ``f`` with the other factors as ``g``: ``R_g = O_g / P_g`` (national),
    ``E_f = sum_g R_g P_{f,g}``, ``SR_f = O_f / E_f * N``. Rates ratios are ``SR_f / SR_base``.
    Strata with zero national population contribute nothing (the pipeline treats observed tests
    in such a stratum as an input error; the synthetic data never has them).
    """
    o = np.asarray(observed, dtype=np.float64)
    p = np.asarray(population, dtype=np.float64)
    national = o.sum() / p.sum()

    def standardised(o_fg: np.ndarray, p_fg: np.ndarray) -> np.ndarray:
        # o_fg, p_fg: (levels of f, strata g); 0 for a level that expects nothing
        r_g = stats.stratum_rates(o_fg.sum(0), p_fg.sum(0))
        expected = stats.expected_count(r_g, p_fg, axis=1)
        return stats.standardised_rate(o_fg.sum(1), expected, national, undefined=0.0)

    o_sa_q = o.sum(0)  # sex x age x imd
    p_sa_q = p.sum(0)
    sex = standardised(o_sa_q.reshape(2, -1), p_sa_q.reshape(2, -1))[::-1]  # female, male
    imd = standardised(
        np.moveaxis(o_sa_q, 2, 0).reshape(5, -1), np.moveaxis(p_sa_q, 2, 0).reshape(5, -1)
    )
    o_b = np.zeros((5, 2, 5))
    p_b = np.zeros((5, 2, 5))
    np.add.at(o_b, _BROAD_OF_BAND, np.moveaxis(o_sa_q, 1, 0))
    np.add.at(p_b, _BROAD_OF_BAND, np.moveaxis(p_sa_q, 1, 0))
    age = standardised(o_b.reshape(5, -1), p_b.reshape(5, -1))
    o_i = o.reshape(o.shape[0], -1)
    p_i = p.reshape(p.shape[0], -1)
    r_s = stats.stratum_rates(o_i.sum(0), p_i.sum(0))
    icb_expected = stats.expected_count(r_s, p_i, axis=1)
    icb = stats.standardised_rate(o_i.sum(1), icb_expected, national, undefined=0.0)
    return {
        "national": np.asarray(national),
        "sex": sex,
        "imd_quintile": imd,
        "age": age,
        "icb": icb,
        "icb_expected": icb_expected,
    }


# =============================================================================================
# Reference data and the calibrated model
# =============================================================================================


@dataclass(frozen=True)
class _Measures:
    names: tuple[str, ...]  # in file order: the 9 modalities, then the 5 EDOC tests
    kinds: tuple[str, ...]  # "modality" or "edoc"
    modality: tuple[str, ...]  # DID modality of each measure
    edoc_codes: dict[str, tuple[str, ...]]  # EDOC measure -> its exam codes


def _measures_file() -> Path | Any:
    return files("didcore").joinpath("data", "measures.csv")


def _read_measures() -> _Measures:
    names: list[str] = []
    kinds: list[str] = []
    modality: list[str] = []
    codes: dict[str, list[str]] = {}
    with _measures_file().open("r", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            name = row["measure"].strip()
            if name not in names:
                names.append(name)
                kinds.append(row["kind"].strip())
                modality.append(row["modality"].strip())
            listed = codes.setdefault(name, []) if row["kind"].strip() == "edoc" else None
            # the file lists each EDOC code once per spelling of its modality: keep one
            if listed is not None and row["exam_code"].strip() not in listed:
                listed.append(row["exam_code"].strip())
    modalities = [n for n, k in zip(names, kinds, strict=True) if k == "modality"]
    if len(modalities) != 9 or len(names) != 14 or kinds[:9] != ["modality"] * 9:
        raise InternalError(
            "the shipped measures.csv must list the 9 modality measures, then the 5 EDOC tests"
        )
    return _Measures(
        names=tuple(names),
        kinds=tuple(kinds),
        modality=tuple(modality),
        edoc_codes={k: tuple(v) for k, v in codes.items()},
    )


def _column(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False)


@dataclass(frozen=True)
class _Model:
    """Everything that does not depend on ``rows`` or ``seed``: reference data and rates."""

    measures: _Measures
    icb_codes: np.ndarray  # (42,) str, sorted
    icb_names: np.ndarray
    icb_regions: np.ndarray
    population: np.ndarray  # (42, 2, 19, 5) persons, unscaled
    rate: np.ndarray  # (14, 42, 2, 19, 5) tests per person for each measure
    kind_rate: np.ndarray  # (14, 42, 2, 19, 5): modality tests that are no EDOC, then EDOC tests
    kind_modality: np.ndarray  # (14,) modality index (0..8) of each kind
    factors: dict[str, dict[str, Any]]  # planted factors per measure
    icb_target: np.ndarray  # (14, 42) planted standardised rate / national rate
    provider_codes: np.ndarray  # (n_prov,) str
    provider_names: np.ndarray
    provider_prob: np.ndarray  # (14, 42, n_prov): P(provider | kind, ICB)
    no_practice_prob: np.ndarray  # (n_prov,) probability that a test has no practice code
    practice_codes: np.ndarray  # all practice-like codes used, see _practice_pools
    practice_icb: np.ndarray  # (n_practice,) ICB index of english practices, -1 otherwise
    practice_weight: np.ndarray  # relative list sizes of english practices
    practice_kind: np.ndarray  # 0 english, 1 welsh, 2 justice, 3 closed, 4 pseudo
    lsoa_codes: np.ndarray  # English LSOAs, then Welsh, then pseudo codes
    lsoa_icb: np.ndarray  # (n_english_lsoa,) ICB index
    lsoa_quintile: np.ndarray  # (n_english_lsoa,) 0..4
    lsoa_decile: np.ndarray
    lsoa_weight: np.ndarray  # mid-2015 population
    day_weight: np.ndarray  # (14, 366) relative activity by day of the FY for each kind
    exam_codes: tuple[tuple[str, ...], ...]  # per kind
    exam_weights: tuple[np.ndarray, ...]  # per kind: (2, n_codes), for male and female tests
    neighbour_weight: np.ndarray  # (42, 42): other ICBs of the same region, by population


def _population_by_imd(
    icb_codes: np.ndarray, lsoa_icb: np.ndarray, lsoa_q: np.ndarray, lsoa_pop: np.ndarray
) -> np.ndarray:
    """ICB x sex x age band x IMD quintile persons (see the package docstring and the docs).

    ``lsoa_pop``: (n_lsoa, 3) mid-2015 persons aged 0-15, 16-59 and 60+. Within an ICB and a
    broad age group the quintile mix is the LSOA mix of that group; bands 0-4..10-14 use 0-15,
    15-19 is 1/5 the 0-15 mix and 4/5 the 16-59 mix, 20-24..55-59 use 16-59, 60+ use 60+.
    """
    index = {c: i for i, c in enumerate(icb_codes)}
    table = refdata.icb_population()
    pop = np.zeros((len(icb_codes), _N_SEX, _N_AGE))
    band = {b: j for j, b in enumerate(AGE_BANDS)}
    for code, sex, age_band, value in zip(
        *(table.column(c).to_pylist() for c in ("icb_code", "sex", "age_band", "population")),
        strict=True,
    ):
        pop[index[code], sex - 1, band[age_band]] += value
    mix = np.zeros((len(icb_codes), 3, _N_IMD))
    for g in range(3):
        np.add.at(mix[:, g, :], (lsoa_icb, lsoa_q), lsoa_pop[:, g])
    mix /= mix.sum(2, keepdims=True)
    group_weight = np.zeros((_N_AGE, 3))
    group_weight[0:3, 0] = 1.0
    group_weight[3] = (0.2, 0.8, 0.0)
    group_weight[4:12, 1] = 1.0
    group_weight[12:, 2] = 1.0
    share = np.einsum("ag,igq->iaq", group_weight, mix)
    return pop[:, :, :, None] * share[:, None, :, :]


def _calibrate(
    population: np.ndarray,
    national: float,
    sex_ratio: float,
    imd_ratio: np.ndarray,
    age_ratio: np.ndarray,
    icb_target: np.ndarray | None,
) -> dict[str, Any]:
    """Rake the multiplicative factors until the statistics equal the targets.

    ``national`` is per person; ratios as published (male/female, quintile/quintile 1,
    broad band/0-<45); ``icb_target`` the relative standardised rate wanted for each ICB (its
    E-weighted mean is normalised to 1, as indirect standardisation implies). Age starts as a
    piecewise log-linear curve through the broad bands' ratios at their mid-ages (flat outside),
    so 5-year bands within a broad band differ; each broad band is then scaled as a whole.
    """
    band_mid = np.array([22.5, 50.0, 60.0, 70.0, 82.0])
    age_mid = np.array([2.5 + 5 * a for a in range(18)] + [92.0])
    sex = np.array([sex_ratio, 1.0])
    imd = imd_ratio.astype(np.float64).copy()
    age = np.exp(np.interp(age_mid, band_mid, np.log(age_ratio)))
    icb = np.ones(population.shape[0]) if icb_target is None else icb_target.copy()
    base = 1.0
    for _ in range(1000):
        rate = (
            base
            * icb[:, None, None, None]
            * sex[None, :, None, None]
            * age[None, None, :, None]
            * imd[None, None, None, :]
        )
        st = spec_statistics(rate * population, population)
        n = float(st["national"])
        f_sex = sex_ratio / (st["sex"][1] / st["sex"][0])
        f_imd = imd_ratio / (st["imd_quintile"] / st["imd_quintile"][0])
        f_age = age_ratio / (st["age"] / st["age"][0])
        sex[0] *= f_sex
        imd *= f_imd
        age *= f_age[_BROAD_OF_BAND]
        change = [abs(np.log(f_sex)), np.abs(np.log(f_imd)).max(), np.abs(np.log(f_age)).max()]
        if icb_target is not None:
            e = st["icb_expected"]
            wanted = icb_target * e.sum() / (e * icb_target).sum()
            f_icb = wanted / (st["icb"] / n)
            icb *= f_icb
            change.append(np.abs(np.log(f_icb)).max())
        change.append(abs(np.log(national / n)))
        base *= national / n
        if max(change) < 1e-12:
            break
    else:
        raise InternalError("synthetic model calibration did not converge")
    return {"rate": rate, "base": base, "sex": sex, "imd": imd, "age": age, "icb": icb}


def _cv_matched(t: np.ndarray, cv: float) -> np.ndarray:
    """Stretch ``log t`` about its mean so that SD/mean of the result equals ``cv``."""
    d = np.log(t) - np.log(t).mean()

    def cv_of(lam: float) -> float:
        x = np.exp(lam * d)
        return float(x.std() / x.mean())

    lo, hi = 0.0, 4.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cv_of(mid) < cv else (lo, mid)
    return np.exp((lo + hi) / 2 * d)


def _rake_providers(prob: np.ndarray, icb_tests: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """Iterative proportional fitting of P(provider | kind, ICB).

    ``prob``: (kind, icb, provider) starting probabilities; ``icb_tests``: (kind, icb) expected
    tests; ``volume``: (kind, provider) published volumes. Returns probabilities whose expected
    provider totals approach ``volume`` scaled to each kind's total, keeping each ICB's tests
    (rows sum to 1) and never giving a provider an ICB its catchment does not cover.
    """
    total = icb_tests.sum(1, keepdims=True)
    target = volume / np.maximum(volume.sum(1, keepdims=True), 1e-300) * total
    # a floor keeps every provider that serves an ICB in play, so no ICB row can empty out
    target = np.maximum(target, 1e-9 * total)
    for _ in range(200):
        flow = icb_tests[:, :, None] * prob
        got = flow.sum(1)
        factor = np.divide(target, got, out=np.ones_like(got), where=got > 0)
        prob = _grouped_cdf_weights(prob * factor[:, None, :])
    return prob


def _grouped_cdf_weights(weights: np.ndarray) -> np.ndarray:
    """Normalise the last axis to probabilities; all-zero rows stay zero."""
    total = weights.sum(-1, keepdims=True)
    return np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)


@cache
def _model() -> _Model:
    """Load the reference data and calibrate the rates (once per process, ~1 s)."""
    pub = refdata.publication()
    measures = _read_measures()
    icb_t = refdata.icbs()
    icb_codes = _column(icb_t, "icb_code").astype(str)
    order = np.argsort(icb_codes)
    icb_codes = icb_codes[order]
    icb_names = _column(icb_t, "icb_name").astype(str)[order]
    icb_regions = _column(icb_t, "region").astype(str)[order]
    icb_region_codes = _column(icb_t, "region_code").astype(str)[order]
    n_icb = len(icb_codes)
    icb_index = {c: i for i, c in enumerate(icb_codes)}

    lsoa_t = refdata.lsoas()
    lsoa_codes = _column(lsoa_t, "lsoa11").astype(str)
    lsoa_icb = np.array([icb_index[c] for c in lsoa_t.column("icb_code").to_pylist()])
    lsoa_decile = _column(lsoa_t, "imd_decile").astype(np.int64)
    lsoa_q = (lsoa_decile + 1) // 2 - 1
    lsoa_pop = np.stack(
        [_column(lsoa_t, c) for c in ("pop2015_0_15", "pop2015_16_59", "pop2015_60plus")], 1
    ).astype(np.float64)
    population = _population_by_imd(icb_codes, lsoa_icb, lsoa_q, lsoa_pop)

    # Providers, their 2023-24 volumes by measure and where their patients live.
    prov_t = refdata.providers()
    provider_codes = _column(prov_t, "provider_code").astype(str)
    provider_names = _column(prov_t, "provider_name").astype(str)
    provider_region = _column(prov_t, "region_code").astype(str)
    p_index = {c: j for j, c in enumerate(provider_codes)}
    n_prov = len(provider_codes)
    group_of = {m: j for j, m in enumerate(measures.modality[:9])}
    group_of.update({m: 9 + j for j, m in enumerate(measures.names[9:])})
    volume = np.zeros((n_prov, 14))
    monthly = np.zeros((14, 12))
    vol_t = refdata.did_volumes()
    for code, group, month, count in zip(
        *(vol_t.column(c).to_pylist() for c in ("provider_code", "group", "month", "count")),
        strict=True,
    ):
        k = group_of[group]
        if code == "ENGLAND":
            monthly[k, _FY_MONTHS.index(month)] += count
        elif code in p_index:
            volume[p_index[code], k] += count
    icb_pop = population.sum((1, 2, 3))
    catchment = np.zeros((n_prov, n_icb))
    cat_t = refdata.catchment()
    for code, icb, share in zip(
        *(cat_t.column(c).to_pylist() for c in ("provider_code", "icb_code", "share")), strict=True
    ):
        if code in p_index:
            catchment[p_index[code], icb_index[icb]] += share
    for j, code in enumerate(provider_codes):
        if catchment[j].sum() == 0:
            area = (
                np.ones(n_icb, bool)
                if code in _NATIONAL_PROVIDERS
                else icb_region_codes == provider_region[j]
            )
            catchment[j, area] = icb_pop[area] / icb_pop[area].sum()
    catchment /= catchment.sum(1, keepdims=True)
    implied = catchment.T @ volume  # (icb, measure): published activity spread by catchment

    # Calibrate each measure: demography first, then the ICB pattern relative to it.
    rr = pub["rates_ratios"]
    spread = pub["icb_spread"]
    rate = np.zeros((14, *population.shape))
    icb_target = np.zeros((14, n_icb))
    factors: dict[str, dict[str, Any]] = {}
    for k, name in enumerate(measures.names):
        targets = {
            "national": pub["national_rate_per_10000"][name] / 10_000,
            "sex_ratio": rr["sex"]["ratio"][name][1],
            "imd_ratio": np.array(rr["imd_quintile"]["ratio"][name]),
            "age_ratio": np.array(rr["age"]["ratio"][name]),
        }
        demographic = _calibrate(population, icb_target=None, **targets)
        expected = stats.expected_count(demographic["rate"], population, axis=(1, 2, 3))
        t = (implied[:, k] / expected) / (implied[:, k].sum() / expected.sum())
        t = np.where(icb_regions == "London", t / _LONDON_LIST_INFLATION, t)
        for region, tilt in _REGION_TILT.get(name, {}).items():
            t = np.where(icb_regions == region, t * tilt, t)
        t = np.maximum(t, _ICB_FLOOR * t.mean())
        if name in spread:
            lo, hi = spread[name]["lower_1sd"], spread[name]["upper_1sd"]
            t = _cv_matched(t, (hi - lo) / (hi + lo))
        fit = _calibrate(population, icb_target=t, **targets)
        rate[k] = fit["rate"]
        icb_target[k] = (
            spec_statistics(fit["rate"] * population, population)["icb"] / (targets["national"])
        )
        factors[name] = {
            "base_per_10000": fit["base"] * 10_000,
            "sex": {"male": fit["sex"][0], "female": fit["sex"][1]},
            "imd_quintile": dict(zip(("1", "2", "3", "4", "5"), fit["imd"].tolist(), strict=True)),
            "age_band": dict(zip(AGE_BANDS, fit["age"].tolist(), strict=True)),
            "icb": dict(zip(icb_codes.tolist(), fit["icb"].tolist(), strict=True)),
        }

    # Kinds of complete test: modality tests that are in no EDOC (kinds 0..8), EDOC tests
    # (kinds 9..13). Each EDOC is a subset of its modality in every cell.
    kind_modality = np.array(
        [*range(9), *(measures.modality.index(measures.modality[k]) for k in range(9, 14))]
    )
    kind_rate = rate.copy()
    for k in range(9, 14):
        kind_rate[kind_modality[k]] -= rate[k]
    if (kind_rate < -1e-15).any():
        raise InternalError("an EDOC's planted rate exceeds its modality's in some cell")
    kind_rate = np.maximum(kind_rate, 0.0)

    # Provider of a test given its kind and ICB: start from volume x catchment share, then rake
    # so that each provider's expected tests of each kind are its published 2023-24 volume
    # (scaled to the planted national total); the ICB totals are fixed by the rates.
    kind_volume = volume.copy()  # (provider, kind): modality tests in no EDOC, EDOC tests
    for k in range(9, 14):
        kind_volume[:, kind_modality[k]] -= volume[:, k]
    kind_volume = np.maximum(kind_volume, 0.0)
    # Providers that Annex A names for missing data lose those tests from the cube: only the
    # complete share of their volume is planted as complete tests (the rest are added as
    # excluded rows, see _problem_shares).
    named_excluded = np.zeros(n_prov)
    for table in (_NO_SEX_BY_PROVIDER, _NO_IMD_BY_PROVIDER, _UNKNOWN_BY_PROVIDER):
        for code, share in table.items():
            if code in p_index:
                named_excluded[p_index[code]] += share
    kind_volume *= (1 - named_excluded)[:, None]
    weight = kind_volume.T[:, None, :] * catchment.T[None, :, :]  # (kind, icb, provider)
    fallback = volume.sum(1)[None, :] * catchment.T  # any provider serving the ICB
    empty = weight.sum(-1) == 0
    weight[empty] = np.broadcast_to(fallback, weight.shape)[empty]
    provider_prob = _rake_providers(
        _grouped_cdf_weights(weight), (kind_rate * population).sum((2, 3, 4)), kind_volume.T
    )

    # No-practice probability by provider: Table A.1, and a baseline for everyone else so that
    # the national share is _NO_PRACTICE_SHARE of the expected rows.
    prov_volume = np.einsum("kiv,ki->v", provider_prob, (kind_rate * population).sum((2, 3, 4)))
    no_practice = np.zeros(n_prov)
    listed = np.zeros(n_prov, bool)
    for code, share in _NO_PRACTICE_BY_PROVIDER.items():
        if code in p_index:
            no_practice[p_index[code]] = share
            listed[p_index[code]] = True
    wanted = _NO_PRACTICE_SHARE * prov_volume.sum() - (no_practice * prov_volume).sum()
    no_practice[~listed] = max(wanted, 0.0) / prov_volume[~listed].sum()

    # Practices: English GP practices with list-size-like weights (fixed, not seeded, so every
    # seed shares one realistic "practice size" pattern), then the other code pools.
    prac_t = refdata.gp_practices()
    prac_codes = _column(prac_t, "gp_practice_code").astype(str)
    prac_kind_s = _column(prac_t, "kind").astype(str)
    prac_icb_s = prac_t.column("icb_code").to_pylist()
    kind_code = {"english_gp": 0, "welsh_gp": 1, "justice": 2, "closed_gp": 3}
    practice_kind = np.array([kind_code[k] for k in prac_kind_s])
    practice_icb = np.array([icb_index.get(c, -1) if c else -1 for c in prac_icb_s])
    practice_codes = np.concatenate([prac_codes, np.array(_PSEUDO_PRACTICES)])
    practice_kind = np.concatenate([practice_kind, np.full(len(_PSEUDO_PRACTICES), 4)])
    practice_icb = np.concatenate([practice_icb, np.full(len(_PSEUDO_PRACTICES), -1)])
    size_rng = np.random.default_rng(20230401)
    practice_weight = np.where(
        practice_kind == 0, size_rng.lognormal(0.0, 0.55, len(practice_codes)), 0.0
    )

    welsh_lsoa = np.array([f"W01{n:06d}" for n in range(1, _N_WELSH_LSOA + 1)])
    all_lsoa = np.concatenate([lsoa_codes, welsh_lsoa, np.array(_PSEUDO_LSOAS)])

    # Test dates: DID monthly seasonality of each measure, uniform days within a month, fewer
    # tests at weekends.
    days = _FY_START + np.arange(_FY_DAYS)
    month_of_day = (days.astype("datetime64[M]") - np.datetime64("2023-04", "M")).astype(int)
    weekday = (days.astype(np.int64) + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)
    day_factor = np.ones(_FY_DAYS)
    day_factor[weekday == 5] = _WEEKEND_FACTOR[0]
    day_factor[weekday == 6] = _WEEKEND_FACTOR[1]
    day_weight = np.zeros((14, _FY_DAYS))
    for k in range(14):
        per_day = day_factor / np.bincount(month_of_day, weights=day_factor)[month_of_day]
        day_weight[k] = monthly[k, month_of_day] * per_day

    exam_codes: list[tuple[str, ...]] = []
    exam_weights: list[np.ndarray] = []
    all_edoc = {c for codes in measures.edoc_codes.values() for c in codes}
    for k in range(14):
        if k < 9:
            table = _OTHER_EXAM_CODES[measures.modality[k]]
            if all_edoc & set(table):
                raise InternalError("a non-EDOC exam code is also an EDOC code")
            codes = tuple(table)
            w = np.array([table[c] for c in codes], dtype=np.float64)
        else:
            codes = measures.edoc_codes[measures.names[k]]
            w = _EDOC_CODE_DECAY ** np.arange(len(codes), dtype=np.float64)
        by_sex = np.stack([w, w])
        for j, code in enumerate(codes):
            if code in _SEX_SPECIFIC_EXAMS:
                by_sex[1 - _SEX_SPECIFIC_EXAMS[code], j] = 0.0
        exam_codes.append(codes)
        exam_weights.append(by_sex / by_sex.sum(1, keepdims=True))

    same_region = icb_regions[:, None] == icb_regions[None, :]
    neighbour = np.where(same_region & ~np.eye(n_icb, dtype=bool), icb_pop[None, :], 0.0)

    return _Model(
        measures=measures,
        icb_codes=icb_codes,
        icb_names=icb_names,
        icb_regions=icb_regions,
        population=population,
        rate=rate,
        kind_rate=kind_rate,
        kind_modality=kind_modality,
        factors=factors,
        icb_target=icb_target,
        provider_codes=provider_codes,
        provider_names=provider_names,
        provider_prob=provider_prob,
        no_practice_prob=no_practice,
        practice_codes=practice_codes,
        practice_icb=practice_icb,
        practice_weight=practice_weight,
        practice_kind=practice_kind,
        lsoa_codes=all_lsoa,
        lsoa_icb=lsoa_icb,
        lsoa_quintile=lsoa_q,
        lsoa_decile=lsoa_decile,
        lsoa_weight=lsoa_pop.sum(1),
        day_weight=day_weight,
        exam_codes=tuple(exam_codes),
        exam_weights=tuple(exam_weights),
        neighbour_weight=neighbour,
    )
