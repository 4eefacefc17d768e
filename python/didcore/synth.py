"""Synthetic DID record-level extracts calibrated to the 2023/24 Standardised ICB rates publication.

:func:`write_synthetic` writes a folder that the whole pipeline can run on::

    out_dir/extract/part-00000.parquet   one row per imaging test (columns: docs/inputs.md)
    out_dir/lookups/                     practice_icb, other_practices, lsoa_icb, lsoa_imd,
                                         measures, icb (docs/inputs.md)
    out_dir/population.csv               icb_code, sex, age_band, imd_quintile, population
    out_dir/truth.json                   everything planted, and exact counts of the rows written

:func:`demo_inputs` makes (once, then caches) the embedded demo data set behind ``didcore demo``.

The model (``docs/synthetic-data.md`` has the full description and the assumptions):

* Population ``P[i, s, a, q]`` (persons): ONS mid-2022 ICB x sex x 5-year age populations, split
  into IMD quintiles with each ICB's LSOA population mix (IoD2019 mid-2015 denominators by broad
  age group), then multiplied by one scale factor so that the expected number of rows equals
  ``rows``. Scaling leaves every rate unchanged.
* Expected tests per person for measure ``m``:
  ``rate[m, i, s, a, q] = base[m] * sex[m, s] * age[m, a] * imd[m, q] * icb[m, i]``
  (the publication quotes rates per 10,000: ``rate * 10_000``). The factors are raked on the
  expected counts ``rate * P`` until the statistics of docs/statistics.md, computed exactly as the
  publication does, equal the publication: national rates (Tables 1-2), sex, deprivation and
  age rates ratios (rates-ratio Tables 1-6) and a target standardised rate for every ICB. The
  ICB targets come from the real DID 2023-24 provider volumes spread over ICBs with the OHID
  trust catchments, adjusted to the regional pattern and the spread the publication's text
  describes.
* An EDOC test is a test of its modality with one of the EDOC's exam codes: each modality's
  expected tests are split into each EDOC's expected tests and the rest, so the EDOC is a subset
  of the modality in every cell.
* Counts per cell are drawn by systematic sampling (cumulative rounding with one random offset
  per series, ordered broad age band > sex > age band > IMD quintile > ICB), which keeps every
  margin the statistics use within a count or two of its expectation: recovered national rates
  and rates ratios match the planted ones at any size, not only at tens of millions of rows.
* Data-quality problems of Annex A are planted on top: tests with no GP practice (by provider,
  most recoverable from the LSOA), Welsh and justice-estate practices ("other valid"), unknown
  ICB, missing LSOA, sex and age concentrated in the providers and ICBs Annex A names, and codes
  in mixed case or with stray spaces. Tests that the pipeline must exclude are generated in
  addition to the complete ones, so the cube keeps the planted rates.
* Rows are streamed: the per-category counts are split into row groups by multivariate
  hypergeometric draws, and each row group is expanded, shuffled, written and forgotten, so
  memory does not grow with ``rows``.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from didcore import refdata
from didcore.axes import AGE_BANDS, BROAD_AGE_BANDS, BROAD_AGE_OF_BAND
from didcore.cube import QUALITY_COUNTERS
from didcore.errors import InputError, InternalError

__all__ = [
    "AGE_BANDS",
    "BROAD_AGE_BANDS",
    "DEMO_ROWS",
    "DEMO_SEED",
    "SYNTH_VERSION",
    "SynthPaths",
    "demo_inputs",
    "spec_statistics",
    "write_synthetic",
]

#: Bump when the generator's output for a given (rows, seed) changes: invalidates demo caches.
SYNTH_VERSION = 2  # 2: the population file says its year
#: Size and seed of the embedded demo data set (:func:`demo_inputs`).
DEMO_ROWS = 1_000_000
DEMO_SEED = 2324

_BROAD_OF_BAND = np.array(BROAD_AGE_OF_BAND, dtype=np.int64)
_N_SEX, _N_AGE, _N_IMD = 2, len(AGE_BANDS), 5
_N_CELL = _N_SEX * _N_AGE * _N_IMD  # strata per ICB: 190

# Financial year 2023/24: 1 April 2023 .. 31 March 2024 (366 days: February 2024 is leap).
_FY_START = np.datetime64("2023-04-01", "D")
_FY_DAYS = 366
_FY_MONTHS = tuple(
    f"{y}-{m:02d}" for y, m in [*((2023, m) for m in range(4, 13)), (2024, 1), (2024, 2), (2024, 3)]
)
# Relative activity on Saturdays and Sundays (outpatient lists mostly run on weekdays).
_WEEKEND_FACTOR = (0.55, 0.45)

# ---------------------------------------------------------------------------------------------
# ICB pattern. Implied ICB activity = published provider volumes spread over ICBs by the OHID
# catchment shares; these providers are national independent-sector chains whose DID region is
# their head office, so they are spread over all ICBs by population instead.
_NATIONAL_PROVIDERS = frozenset({"NT2", "NT3", "NT4", "NT9", "NTP", "NV1", "NVC"})
# The publication divides by GP-registered lists, which exceed the ONS resident population most
# in London (list inflation, commuters treated in London trusts): without this the catchment-
# implied rates put London on top of most modalities, which the text does not describe.
_LONDON_LIST_INFLATION = 1.12
# Small regional tilts (multipliers) so the planted pattern says what section 2.2 says where the
# catchment-implied pattern alone is weaker than the text (e.g. X-ray "higher than average in
# the North East and Yorkshire, North West and Midlands", Nuclear Medicine "higher in some parts
# of the South East and East of England").
_REGION_TILT: dict[str, dict[str, float]] = {
    "X-ray": {
        "Midlands": 1.04,
        "North East and Yorkshire": 1.02,
        "North West": 1.01,
        "London": 0.98,
    },
    "CT Scan": {"London": 0.95, "North East and Yorkshire": 1.03},
    "MRI": {"South East": 1.04},
    "Nuclear Medicine": {"South East": 1.08, "East of England": 1.03},
    "PET Scan": {"South East": 1.05},
    "Brain MRI": {"South East": 1.05},
    "Chest X-ray": {
        "London": 0.94,
        "North West": 1.04,
        "Midlands": 1.03,
        "North East and Yorkshire": 1.02,
    },
    "Kidney or Bladder Ultrasound": {
        "Midlands": 1.06,
        "North East and Yorkshire": 0.97,
        "North West": 0.97,
    },
    "Abdomen or Pelvis Ultrasound": {"North West": 1.06, "London": 1.05},
}
# Lowest relative ICB rate planted (Medical Photography is near zero in most ICBs).
_ICB_FLOOR = 0.01

# ---------------------------------------------------------------------------------------------
# Data quality (Annex A). Shares are of all rows; the publication's denominators are the 47.16
# million tests of 2023/24 (DID Table 1).
_PUBLISHED_TOTAL = 47_160_300
_REASONS = ("complete", "other_valid_practice", "unknown", "no_imd", "no_sex", "no_age")
_R_COMPLETE, _R_OTHER, _R_UNKNOWN, _R_NO_IMD, _R_NO_SEX, _R_NO_AGE = range(6)
_EXCLUDED_SHARE = {
    _R_OTHER: 149_000 / _PUBLISHED_TOTAL,  # non-English or other valid practice
    _R_UNKNOWN: 126_000 / _PUBLISHED_TOTAL,  # no ICB from practice or LSOA
    _R_NO_IMD: 208_000 / _PUBLISHED_TOTAL,  # valid ICB, no deprivation from the LSOA
    _R_NO_SEX: 144_000 / _PUBLISHED_TOTAL,
    _R_NO_AGE: 500 / _PUBLISHED_TOTAL,
}
# No GP practice: Table A.1 shares by provider; every other provider gets one baseline share
# chosen so that 5.72% of complete tests have no practice: with the unrecognised practice codes
# that also fall back to the LSOA, 5.8% of all rows get their ICB from the LSOA (Annex A).
_NO_PRACTICE_SHARE = 0.0572
_NO_PRACTICE_BY_PROVIDER = {
    "RM3": 1.0, "RWF": 1.0, "REM": 0.61, "RCX": 0.26, "NT9": 0.54, "RVV": 0.14, "RN5": 0.18,
    "RJ1": 0.13, "NTP": 0.72, "RGP": 0.32, "NT4": 0.40,
}  # fmt: skip
# Unknown ICB (no practice and no LSOA): Table A.1 "of which no LSOA" as shares of all tests.
_UNKNOWN_BY_PROVIDER = {
    "RM3": 0.0115, "REM": 0.0094, "RWF": 0.0030, "RCX": 0.0006, "NT9": 0.0011, "RVV": 0.0020,
    "RN5": 0.0037, "RJ1": 0.0155, "NTP": 0.0045, "RGP": 0.0005, "NT4": 0.0,
}  # fmt: skip
# Missing sex and missing LSOA (with a valid ICB) by provider (Table A.2) and ICB (Table A.3).
_NO_SEX_BY_PROVIDER = {"RCB": 0.24, "RQ3": 0.21}
_NO_IMD_BY_PROVIDER = {"NYR": 0.30, "RJ2": 0.085, "NFO": 0.82, "RCB": 0.012, "RQ3": 0.016}
_NO_IMD_BY_ICB = {"QRV": 0.009, "QH8": 0.016, "QMM": 0.013, "QK1": 0.008}
# Welsh practices turn up at English providers near the border (relative intensity by ICB);
# justice-estate practices (prisons, YOIs, IRCs) everywhere.
_WELSH_BORDER_ICBS = {"QOC": 1.0, "QGH": 1.0, "QYG": 0.5, "QR1": 0.4, "QUY": 0.3}
_OTHER_VALID_JUSTICE_SHARE = 0.15
_UNRECOGNISED_PRACTICE_SHARE = 0.0015  # closed or pseudo practice codes, ICB from the LSOA
_CROSS_BORDER_LSOA_SHARE = 0.03  # "around 3% of patients living in a different ICB from their GP"
_SECONDARY_MISSING_SEX = 0.02  # excluded rows may carry a second, lower-precedence problem
_SECONDARY_MISSING_AGE = 0.001
_PSEUDO_PRACTICES = ("V81997", "V81998", "V81999")  # ODS pseudo codes: no registered GP known
_PSEUDO_LSOAS = ("L99999999", "M99999999")  # ONS pseudo codes: Channel Islands, Isle of Man
_N_WELSH_LSOA = 1909  # Welsh 2011 LSOAs (W01000001..): not in the English lookups
# Share of code strings written in lower case, with a leading space or a trailing space.
_CODE_VARIANTS = {
    "provider_code": (0.003, 0.0, 0.003),
    "gp_practice_code": (0.010, 0.005, 0.010),
    "lsoa11": (0.005, 0.0, 0.005),
}
_SEX_ODD_FORMS = 0.005  # " 1", "2 " and the like among valid sex codes

# Illustrative NICIP-style exam codes for the tests of each modality that are not EDOC tests
# (relative frequencies). The EDOC codes come from the measures file.
_OTHER_EXAM_CODES: dict[str, dict[str, float]] = {
    "Plain Radiography": {
        "XKNEL": 6, "XKNER": 6, "XHIPL": 4, "XHIPR": 4, "XPELV": 5, "XLSPI": 5, "XCSPI": 3,
        "XABDO": 3, "XSHOL": 4, "XSHOR": 4, "XHANL": 4, "XHANR": 4, "XWRIL": 3, "XWRIR": 3,
        "XANKL": 3, "XANKR": 3, "XFOOL": 4, "XFOOR": 4, "XOPTG": 2, "XSKUL": 1,
    },
    "Diagnostic Ultrasonography": {
        "UOBST": 20, "UOBDA": 8, "UBRES": 6, "UTHYR": 4, "UNECK": 3, "UTEST": 3, "USHOL": 4,
        "UDVTL": 6, "UCARO": 3, "UGYNT": 6, "USKIN": 2, "UHIPI": 1,
    },
    "Computerized Axial Tomography": {
        "CHEAD": 30, "CCTPA": 8, "CKUBU": 6, "CCOLO": 3, "CCORA": 4, "CSPIC": 3, "CSINU": 1,
        "CLSPI": 3, "CEXTR": 4, "CPELV": 3,
    },
    "Magnetic Resonance Imaging": {
        "MLSPI": 12, "MCSPI": 6, "MKNEL": 6, "MKNER": 6, "MSHOL": 3, "MSHOR": 3, "MPROS": 7,
        "MPELV": 5, "MBREB": 3, "MCARD": 4, "MLIVR": 4, "MIAMS": 2, "MWSPI": 2,
    },
    "Fluoroscopy": {
        "FBASW": 3, "FVIDS": 3, "FHSGU": 2, "FMCUG": 2, "FDEFP": 1, "FNJTU": 2, "FPICC": 3,
    },
    "Nuclear Medicine Procedure": {
        "NBONW": 5, "NTHYR": 2, "NRENM": 2, "NLUNV": 3, "NPARA": 1, "NGAST": 1, "NSENL": 2,
    },
    "Positron Emission Tomography": {
        "PWBOF": 10, "PPSMA": 2, "PBRAI": 1, "PCHOL": 1, "PDOTA": 1,
    },
    "Single Photon Emission Computerized Tomography": {
        "YMYOP": 6, "YDATS": 2, "YBONE": 2, "YPARA": 1,
    },
    "Medical Photography": {"ZDERM": 6, "ZWOUN": 3, "ZRETI": 2, "ZCLIN": 3},
}  # fmt: skip

# Exam codes for one sex only (0 male, 1 female): no obstetric scans of men.
_SEX_SPECIFIC_EXAMS = {
    "UOBST": 1,
    "UOBDA": 1,
    "UGYNT": 1,
    "FHSGU": 1,
    "UTEST": 0,
    "MPROS": 0,
    "PPSMA": 0,
}
# Within an EDOC, the codes in the measures file are used in falling proportions.
_EDOC_CODE_DECAY = 0.35


@dataclass(frozen=True)
class SynthPaths:
    """Where :func:`write_synthetic` put its outputs."""

    root: Path
    """The output folder."""
    extract: Path
    """Folder of Parquet file(s) with the record-level extract."""
    lookups: Path
    """Lookups folder (docs/inputs.md)."""
    population: Path
    """Population file (docs/inputs.md)."""
    truth: Path
    """JSON file with what was planted and exact counts of the rows written."""

    @classmethod
    def under(cls, root: str | Path) -> SynthPaths:
        """The paths :func:`write_synthetic` uses under ``root``."""
        root = Path(root)
        return cls(
            root=root,
            extract=root / "extract",
            lookups=root / "lookups",
            population=root / "population.csv",
            truth=root / "truth.json",
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
        # o_fg, p_fg: (levels of f, strata g)
        o_g, p_g = o_fg.sum(0), p_fg.sum(0)
        r_g = np.divide(o_g, p_g, out=np.zeros_like(o_g), where=p_g > 0)
        expected = (p_fg * r_g).sum(1)
        return (
            np.divide(o_fg.sum(1), expected, out=np.zeros_like(expected), where=expected > 0)
            * national
        )

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
    p_s = p_i.sum(0)
    r_s = np.divide(o_i.sum(0), p_s, out=np.zeros_like(p_s), where=p_s > 0)
    icb_expected = (p_i * r_s).sum(1)
    icb = np.divide(
        o_i.sum(1), icb_expected, out=np.zeros_like(icb_expected), where=icb_expected > 0
    )
    return {
        "national": np.asarray(national),
        "sex": sex,
        "imd_quintile": imd,
        "age": age,
        "icb": icb * national,
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
    """ICB x sex x age band x IMD quintile persons (see the module docstring and the docs).

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
        expected = (demographic["rate"] * population).sum((1, 2, 3))
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


# =============================================================================================
# Sampling helpers
# =============================================================================================


class _Sampler:
    """Draw one item per row from a categorical distribution that depends on the row's group.

    Vectorised: the within-group cumulative probabilities are laid end to end as
    ``group + cdf`` (monotone over all groups), so one :func:`numpy.searchsorted` of
    ``group + u`` (``u`` uniform on [0, 1)) draws every row at once. Items of zero weight are
    never drawn. Every group asked for must have positive total weight.
    """

    def __init__(self, group: np.ndarray, item: np.ndarray, weight: np.ndarray) -> None:
        keep = weight > 0
        group, item, weight = group[keep], item[keep], weight[keep].astype(np.float64)
        order = np.lexsort((item, group))
        group, item, weight = group[order], item[order], weight[order]
        first = np.r_[True, group[1:] != group[:-1]]
        last = np.r_[group[1:] != group[:-1], True]
        start = np.flatnonzero(first)
        cum = np.cumsum(weight)
        before = np.repeat(np.r_[0.0, cum[:-1]][start], np.diff(np.r_[start, len(group)]))
        total = np.repeat(
            cum[last] - np.r_[0.0, cum[:-1]][start], np.diff(np.r_[start, len(group)])
        )
        frac = (cum - before) / total
        frac[last] = 1.0  # exact, so rounding can never spill into the next group
        self.keys = group.astype(np.float64) + frac
        self.items = item

    @classmethod
    def dense(cls, weights: np.ndarray) -> _Sampler:
        """From a (groups, items) weight matrix."""
        g, i = np.nonzero(weights > 0)
        return cls(g, i, weights[g, i])

    def __call__(self, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        u = rng.random(len(groups))
        return self.items[np.searchsorted(self.keys, groups + u, side="right")]


def _choice(rng: np.random.Generator, n: int, probs: Mapping[int, float]) -> np.ndarray:
    """``n`` draws of the keys of ``probs`` (which sum to 1)."""
    keys = np.fromiter(probs.keys(), dtype=np.int64)
    p = np.fromiter(probs.values(), dtype=np.float64)
    return keys[np.searchsorted(np.cumsum(p), rng.random(n) * p.sum(), side="right")]


def _systematic(expected: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Integer counts with the given expectations whose running sums never stray by a whole test.

    ``counts[j] = floor(C_j + u) - floor(C_{j-1} + u)`` with ``C`` the cumulative expectation
    and one uniform ``u``: E[counts[j]] = expected[j], and the sum of any run of consecutive
    cells is within 1 of its expectation.
    """
    c = np.floor(np.cumsum(expected) + rng.random()).astype(np.int64)
    return np.diff(c, prepend=0)


def _largest_remainder(total: int, shares: np.ndarray) -> np.ndarray:
    """Split ``total`` into integers proportional to ``shares`` (Hamilton's method)."""
    exact = total * shares / shares.sum()
    out = np.floor(exact).astype(np.int64)
    out[np.argsort(-(exact - out), kind="stable")[: total - out.sum()]] += 1
    return out


# =============================================================================================
# The plan: how many rows of each category, for a given size and seed
# =============================================================================================


@dataclass(frozen=True)
class _Plan:
    scale: float  # persons in population.csv per person of the ONS population
    population: np.ndarray  # (42, 2, 19, 5) scaled persons, as written to population.csv
    expected: np.ndarray  # (14 kinds, 42, 2, 19, 5) expected complete tests
    reason: np.ndarray  # per category: index into _REASONS
    kind: np.ndarray
    icb: np.ndarray
    cell: np.ndarray  # (sex * 19 + age band) * 5 + quintile, or -1: drawn per row
    provider: np.ndarray  # provider index, or -1: drawn per row
    counts: np.ndarray  # rows of each category
    problem_share: dict[str, np.ndarray]  # planted share of rows by (provider, ICB) per reason


def _cell_order(n_icb: int) -> np.ndarray:
    """Flat cell indices (icb, sex, age, imd) ordered broad band > sex > imd > age > ICB.

    Systematic sampling in this order keeps the total of each broad age band, each (broad band,
    sex, quintile) and each (sex, age band, quintile) stratum within one test of its
    expectation, so the margins of every rates ratio are within a few tests of theirs.
    """
    i, s, a, q = np.meshgrid(
        np.arange(n_icb), np.arange(2), np.arange(_N_AGE), np.arange(_N_IMD), indexing="ij"
    )
    return np.lexsort((i.ravel(), a.ravel(), q.ravel(), s.ravel(), _BROAD_OF_BAND[a.ravel()]))


def _problem_shares(
    model: _Model, volume: np.ndarray, rows_expected: float
) -> dict[str, np.ndarray]:
    """Share of the rows at each (provider, ICB) that carry each exclusion reason.

    ``volume``: (n_prov, n_icb) expected complete tests. Shares are additive (baseline +
    provider excess + ICB excess, Annex A Tables A.1-A.3); the baselines are solved so that each
    reason's national total is its Annex A share of all rows. Extra rows at (p, i) for reason r
    are ``volume * share_r / (1 - sum of shares)``, so shares are of all rows there.
    """
    p_index = {c: j for j, c in enumerate(model.provider_codes)}
    i_index = {c: j for j, c in enumerate(model.icb_codes)}
    n_prov, n_icb = volume.shape

    def by_provider(table: Mapping[str, float]) -> np.ndarray:
        out = np.zeros((n_prov, 1))
        for code, share in table.items():
            if code in p_index:
                out[p_index[code]] = share
        return out

    def by_icb(table: Mapping[str, float]) -> np.ndarray:
        out = np.zeros((1, n_icb))
        for code, share in table.items():
            out[0, i_index[code]] = share
        return out

    border = by_icb(_WELSH_BORDER_ICBS)
    border = border / ((volume * border).sum() / volume.sum())
    # Other-valid practices and missing LSOA with a valid ICB need a practice code: none at
    # the providers that never send one (RM3, RWF: 100% without a practice in Table A.1).
    sends_practice = (model.no_practice_prob < 0.99)[:, None] * 1.0
    # (pattern multiplied by the solved baseline, fixed excess)
    design = {
        _R_OTHER: (
            sends_practice
            * ((1 - _OTHER_VALID_JUSTICE_SHARE) * border + _OTHER_VALID_JUSTICE_SHARE),
            np.zeros((1, 1)),
        ),
        _R_UNKNOWN: (np.ones((1, 1)), by_provider(_UNKNOWN_BY_PROVIDER)),
        _R_NO_IMD: (
            sends_practice,
            sends_practice * (by_provider(_NO_IMD_BY_PROVIDER) + by_icb(_NO_IMD_BY_ICB)),
        ),
        _R_NO_SEX: (np.ones((1, 1)), by_provider(_NO_SEX_BY_PROVIDER)),
        _R_NO_AGE: (np.ones((1, 1)), np.zeros((1, 1))),
    }
    base = dict.fromkeys(design, 0.0)
    shares: dict[int, np.ndarray] = {}
    for _ in range(50):
        shares = {
            r: np.broadcast_to(pat * base[r] + exc, volume.shape)
            for r, (pat, exc) in design.items()
        }
        inflate = volume / (1 - np.minimum(sum(shares.values()), 0.95))
        for r, (pat, exc) in design.items():
            wanted = _EXCLUDED_SHARE[r] * rows_expected - (inflate * exc).sum()
            base[r] = max(wanted, 0.0) / (inflate * pat).sum()
    return {_REASONS[r]: np.array(s) for r, s in shares.items()}


def _plan(model: _Model, rows: int, seed: int) -> _Plan:
    """Decide the number of rows of every category (deterministic for ``rows`` and ``seed``)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    n_icb = len(model.icb_codes)
    excluded_share = sum(_EXCLUDED_SHARE.values())
    per_person = model.kind_rate.sum(0)
    scale = rows * (1 - excluded_share) / float((per_person * model.population).sum())
    population = model.population * scale
    expected = model.kind_rate * population  # complete tests expected, per kind and cell

    order = _cell_order(n_icb)
    complete = np.zeros((14, n_icb * _N_CELL), dtype=np.int64)
    for k in range(14):
        complete[k, order] = _systematic(expected[k].ravel()[order], rng)
    surplus = int(complete.sum()) - rows
    if surplus > 0:  # only for tiny sizes, where rounding can exceed the total asked for
        flat = complete.ravel()
        flat -= rng.multivariate_hypergeometric(flat, surplus, method="marginals")
    n_extra = rows - int(complete.sum())
    reason_counts = _largest_remainder(
        n_extra, np.array([_EXCLUDED_SHARE[r] for r in range(1, len(_REASONS))])
    )

    # Extra (excluded) rows: reason -> (kind, ICB, provider) by the planted shares.
    kind_icb = expected.reshape(14, n_icb, -1).sum(2)
    per_provider = kind_icb[:, :, None] * model.provider_prob  # (kind, icb, provider)
    volume = per_provider.sum(0).T  # (provider, icb)
    shares = _problem_shares(model, volume, rows)
    inflate = 1 / (1 - np.minimum(sum(shares.values()), 0.95))
    cats = [
        (
            np.full(complete.size, _R_COMPLETE),
            np.repeat(np.arange(14), n_icb * _N_CELL),
            np.tile(np.repeat(np.arange(n_icb), _N_CELL), 14),
            np.tile(np.arange(_N_CELL), 14 * n_icb),
            np.full(complete.size, -1),
            complete.ravel(),
        )
    ]
    for r, n_r in zip(range(1, len(_REASONS)), reason_counts, strict=True):
        w = per_provider * (shares[_REASONS[r]] * inflate).T[None, :, :]
        counts = rng.multinomial(int(n_r), (w / w.sum()).ravel())
        kind_of, icb_of, provider_of = np.unravel_index(np.arange(w.size), w.shape)
        cats.append((np.full(w.size, r), kind_of, icb_of, np.full(w.size, -1), provider_of, counts))
    reason, kind, icb, cell, provider, counts = (np.concatenate(c) for c in zip(*cats, strict=True))
    keep = counts > 0
    return _Plan(
        scale=scale,
        population=population,
        expected=expected,
        reason=reason[keep].astype(np.int8),
        kind=kind[keep].astype(np.int16),
        icb=icb[keep].astype(np.int16),
        cell=cell[keep].astype(np.int32),
        provider=provider[keep].astype(np.int32),
        counts=counts[keep].astype(np.int64),
        problem_share=shares,
    )


# =============================================================================================
# Rows
# =============================================================================================

# Practice states of a row.
_PR_VALID, _PR_NONE, _PR_UNRECOGNISED, _PR_OTHER = range(4)
_BLANKS = ("", "   ")  # blank codes, counted as missing like nulls
_SEX_POOL = ("1", "2", "0", "9", "", " 1", " 2", "1 ", "2 ")
_SEX_MISSING = {2: 0.35, 3: 0.25, -1: 0.35, 4: 0.05}  # "0", "9", null, ""

_SCHEMA = pa.schema(
    [
        pa.field("provider_code", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("gp_practice_code", pa.dictionary(pa.int32(), pa.string())),
        pa.field("lsoa11", pa.dictionary(pa.int32(), pa.string())),
        pa.field("sex", pa.dictionary(pa.int32(), pa.string())),
        pa.field("age", pa.int32()),
        pa.field("date_of_birth", pa.date32()),
        pa.field("test_date", pa.date32(), nullable=False),
        pa.field("modality", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("exam_code", pa.dictionary(pa.int32(), pa.string()), nullable=False),
    ]
)


class _CodePool:
    """Strings of one column: the codes, blank values, then lower/leading/trailing variants."""

    def __init__(self, codes: np.ndarray, blanks: tuple[str, ...] = ()) -> None:
        codes = codes.astype(str)
        self.n = len(codes)
        self.blank0 = self.n
        self.values = pa.array(
            [
                *codes.tolist(),
                *blanks,
                *np.char.lower(codes).tolist(),
                *np.char.add(" ", codes).tolist(),  # (numpy < 2 has no "+" on text)
                *np.char.add(codes, " ").tolist(),
            ],
            pa.string(),
        )
        self.variant0 = self.n + len(blanks)

    def with_variants(
        self, code: np.ndarray, shares: tuple[float, float, float], rng: np.random.Generator
    ) -> tuple[np.ndarray, int]:
        """Indices of ``code`` (indices of codes), some turned into variants; and how many."""
        u = rng.random(len(code))
        variant = np.zeros(len(code), dtype=np.int64)
        edges = np.cumsum(shares)
        for v in range(3):
            variant[(u >= (edges[v - 1] if v else 0.0)) & (u < edges[v])] = v + 1
        out = np.where(variant > 0, self.variant0 + (variant - 1) * self.n + code, code)
        return out, int((variant > 0).sum())


def _dictionary_array(
    values: pa.Array, index: np.ndarray, null: np.ndarray | None = None
) -> pa.DictionaryArray:
    """Dictionary-encoded column holding only the strings this row group uses."""
    valid = index if null is None else index[~null]
    used = np.zeros(len(values), dtype=bool)
    used[valid] = True
    remap = np.cumsum(used, dtype=np.int64) - 1
    indices = pa.array(remap[index].astype(np.int32), mask=null)
    return pa.DictionaryArray.from_arrays(indices, values.filter(pa.array(used)))


def _dates_of_birth(test_day: np.ndarray, age: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dates of birth (days since 1970) giving exactly ``age`` whole years at ``test_day``.

    The last birthday is 0..364 days before the test (always within the past year); the date of
    birth is that day ``age`` years earlier, with 29 February moved to 28 February in years that
    are not leap years.
    """
    last_birthday = (test_day - rng.integers(0, 365, len(test_day))).astype("datetime64[D]")
    year = last_birthday.astype("datetime64[Y]")
    month = last_birthday.astype("datetime64[M]")
    day = (last_birthday - month.astype("datetime64[D]")).astype(np.int64)
    birth_month = (year - age.astype("timedelta64[Y]")).astype("datetime64[M]") + (
        month - year.astype("datetime64[M]")
    )
    month_length = (
        (birth_month + 1).astype("datetime64[D]") - birth_month.astype("datetime64[D]")
    ).astype(np.int64)
    birth = birth_month.astype("datetime64[D]") + np.minimum(day, month_length - 1)
    return birth.astype(np.int64)


class _RowMaker:
    """Expands a row group's categories into columns (all vectorised)."""

    def __init__(self, model: _Model, plan: _Plan) -> None:
        self.model = model
        self.plan = plan
        n_icb = len(model.icb_codes)
        self.n_icb = n_icb
        self.cell = _Sampler.dense(plan.expected.reshape(14 * n_icb, _N_CELL))
        self.provider = _Sampler.dense(model.provider_prob.reshape(14 * n_icb, -1))
        english = np.flatnonzero(model.practice_kind == 0)
        self.practice = _Sampler(
            model.practice_icb[english], english, model.practice_weight[english]
        )
        self.welsh_practices = np.flatnonzero(model.practice_kind == 1)
        self.justice_practices = np.flatnonzero(model.practice_kind == 2)
        self.closed_practices = np.flatnonzero(model.practice_kind == 3)
        self.pseudo_practices = np.flatnonzero(model.practice_kind == 4)
        n_eng = len(model.lsoa_icb)
        self.lsoa = _Sampler(
            model.lsoa_icb * _N_IMD + model.lsoa_quintile, np.arange(n_eng), model.lsoa_weight
        )
        self.welsh_lsoa0, self.n_welsh_lsoa = n_eng, _N_WELSH_LSOA
        self.pseudo_lsoa0 = n_eng + _N_WELSH_LSOA
        self.neighbour = _Sampler.dense(model.neighbour_weight)
        self.day = _Sampler.dense(model.day_weight)
        offsets = np.cumsum([0, *(len(c) for c in model.exam_codes)])
        # groups kind * 2 + sex (0 male, 1 female); items index the concatenated code lists
        self.exam = _Sampler(
            np.concatenate(
                [np.repeat([2 * k, 2 * k + 1], len(c)) for k, c in enumerate(model.exam_codes)]
            ),
            np.concatenate([np.tile(np.arange(a, b), 2) for a, b in itertools.pairwise(offsets)]),
            np.concatenate([w.ravel() for w in model.exam_weights]),
        )
        self.exam_values = pa.array([c for codes in model.exam_codes for c in codes], pa.string())
        self.modality_values = pa.array(list(model.measures.modality[:9]), pa.string())
        self.provider_pool = _CodePool(model.provider_codes)
        self.practice_pool = _CodePool(model.practice_codes, _BLANKS)
        self.lsoa_pool = _CodePool(model.lsoa_codes, ("",))
        self.sex_values = pa.array(list(_SEX_POOL), pa.string())
        self.fy_start = int(_FY_START.astype(np.int64))
        self.years = 1  # financial years the test dates span, ending 2023/24

    def make(
        self, category: np.ndarray, rng: np.random.Generator
    ) -> tuple[pa.Table, dict[str, int]]:
        """The rows of the given categories (already shuffled), and what was planted in them."""
        m, plan, n_icb = self.model, self.plan, self.n_icb
        n = len(category)
        reason = plan.reason[category].astype(np.int64)
        kind = plan.kind[category].astype(np.int64)
        icb = plan.icb[category].astype(np.int64)
        cell = plan.cell[category].astype(np.int64)
        extra = cell < 0
        cell[extra] = self.cell(kind[extra] * n_icb + icb[extra], rng)
        sex, band, quintile = cell // (_N_AGE * _N_IMD), (cell // _N_IMD) % _N_AGE, cell % _N_IMD
        provider = plan.provider[category].astype(np.int64)
        complete = provider < 0
        provider[complete] = self.provider(kind[complete] * n_icb + icb[complete], rng)
        planted: dict[str, int] = {}

        # GP practice: absent for the provider's share of tests; otherwise one of the ICB's
        # practices, with a few unrecognised (closed or pseudo) codes that leave the ICB to the
        # LSOA. Other-valid rows get a Welsh or justice-estate code.
        normal = (reason == _R_COMPLETE) | (reason == _R_NO_SEX) | (reason == _R_NO_AGE)
        u = rng.random(n)
        p_none = m.no_practice_prob[provider]
        state = np.full(n, _PR_VALID)
        state[normal & (u < p_none)] = _PR_NONE
        unrecognised = (u >= p_none) & (u < p_none + _UNRECOGNISED_PRACTICE_SHARE * (1 - p_none))
        state[normal & unrecognised] = _PR_UNRECOGNISED
        state[reason == _R_OTHER] = _PR_OTHER
        unknown = reason == _R_UNKNOWN
        state[unknown] = np.where(
            rng.random(n)[unknown] < np.maximum(0.75, p_none[unknown]), _PR_NONE, _PR_UNRECOGNISED
        )
        practice = np.zeros(n, dtype=np.int64)
        valid = state == _PR_VALID
        practice[valid] = self.practice(icb[valid], rng)
        unrec = np.flatnonzero(state == _PR_UNRECOGNISED)
        pseudo = rng.random(len(unrec)) < 0.2
        practice[unrec] = np.where(
            pseudo,
            rng.choice(self.pseudo_practices, len(unrec)),
            rng.choice(self.closed_practices, len(unrec)),
        )
        other = np.flatnonzero(state == _PR_OTHER)
        justice = rng.random(len(other)) < _OTHER_VALID_JUSTICE_SHARE
        practice[other] = np.where(
            justice,
            rng.choice(self.justice_practices, len(other)),
            rng.choice(self.welsh_practices, len(other)),
        )
        has_code = state != _PR_NONE
        practice[has_code], planted["variant_gp_practice_code"] = self.practice_pool.with_variants(
            practice[has_code], _CODE_VARIANTS["gp_practice_code"], rng
        )
        none = np.flatnonzero(~has_code)
        blank_kind = _choice(rng, len(none), {-1: 0.85, 0: 0.10, 1: 0.05})
        practice[none] = np.where(blank_kind >= 0, self.practice_pool.blank0 + blank_kind, 0)
        practice_null = np.zeros(n, dtype=bool)
        practice_null[none[blank_kind < 0]] = True
        planted["practice_none"] = int((~has_code).sum())
        planted["practice_unrecognised"] = len(unrec)
        planted["practice_other_valid_welsh"] = int((~justice).sum())
        planted["practice_other_valid_justice"] = int(justice.sum())

        # LSOA: in the row's ICB and quintile; for ~3% of tests with a practice, in another ICB
        # of the region (same quintile), as people registered across an ICB border.
        lsoa = np.zeros(n, dtype=np.int64)
        group = icb * _N_IMD + quintile
        cross = normal & valid & (rng.random(n) < _CROSS_BORDER_LSOA_SHARE)
        group[cross] = self.neighbour(icb[cross], rng) * _N_IMD + quintile[cross]
        planted["lsoa_cross_border"] = int(cross.sum())
        kinds_missing = np.full(n, -1)  # -1 English LSOA; 0 null; 1 blank; 2 Welsh; 3 pseudo
        for r, mix in (
            (_R_NO_IMD, {0: 0.82, 1: 0.05, 2: 0.10, 3: 0.03}),
            (_R_UNKNOWN, {0: 0.75, 1: 0.05, 2: 0.15, 3: 0.05}),
            (_R_OTHER, {-1: 0.15, 0: 0.25, 2: 0.60}),
        ):
            rows_r = np.flatnonzero(reason == r)
            kinds_missing[rows_r] = _choice(rng, len(rows_r), mix)
        english = kinds_missing == -1
        lsoa[english] = self.lsoa(group[english], rng)
        welsh = kinds_missing == 2
        lsoa[welsh] = self.welsh_lsoa0 + rng.integers(0, self.n_welsh_lsoa, int(welsh.sum()))
        pseudo_l = kinds_missing == 3
        lsoa[pseudo_l] = self.pseudo_lsoa0 + rng.integers(
            0, len(_PSEUDO_LSOAS), int(pseudo_l.sum())
        )
        coded = english | welsh | pseudo_l
        lsoa[coded], planted["variant_lsoa11"] = self.lsoa_pool.with_variants(
            lsoa[coded], _CODE_VARIANTS["lsoa11"], rng
        )
        lsoa[kinds_missing == 1] = self.lsoa_pool.blank0
        lsoa_null = kinds_missing == 0
        planted["lsoa_null_or_blank"] = int(((kinds_missing == 0) | (kinds_missing == 1)).sum())
        planted["lsoa_welsh"] = int(welsh.sum())
        planted["lsoa_pseudo"] = int(pseudo_l.sum())

        # Sex: NHS codes as strings, a few with stray spaces; missing (0, 9, null or blank) for
        # no_sex rows and for some rows already excluded for a higher-precedence reason.
        sex_code = sex.copy()  # "1" is pool index 0, "2" index 1
        odd = rng.random(n) < _SEX_ODD_FORMS
        sex_code[odd] = 5 + sex[odd] + 2 * rng.integers(0, 2, int(odd.sum()))
        planted["sex_odd_form"] = int(odd.sum())
        secondary = (reason == _R_OTHER) | (reason == _R_UNKNOWN) | (reason == _R_NO_IMD)
        no_sex = (reason == _R_NO_SEX) | (secondary & (rng.random(n) < _SECONDARY_MISSING_SEX))
        sex_code[no_sex] = _choice(rng, int(no_sex.sum()), _SEX_MISSING)
        planted["sex_missing"] = int(no_sex.sum())
        sex_null = sex_code < 0
        sex_code[sex_null] = 0

        # Age in whole years, uniform within its 5-year band; 90+ falls off geometrically.
        age = np.where(
            band < _N_AGE - 1,
            5 * band + rng.integers(0, 5, n),
            90 + np.minimum(rng.geometric(0.25, n) - 1, 15),
        )
        secondary |= reason == _R_NO_SEX
        age_null = (reason == _R_NO_AGE) | (secondary & (rng.random(n) < _SECONDARY_MISSING_AGE))
        planted["age_missing"] = int(age_null.sum())
        test_day = self.fy_start + self.day(kind, rng)
        if self.years > 1:
            test_day = _spread_over_years(test_day - self.fy_start, self.years, rng)
        birth = _dates_of_birth(test_day, age, rng)

        prov_idx, planted["variant_provider_code"] = self.provider_pool.with_variants(
            provider, _CODE_VARIANTS["provider_code"], rng
        )
        exam = self.exam(2 * kind + sex, rng)
        columns = [
            _dictionary_array(self.provider_pool.values, prov_idx),
            _dictionary_array(self.practice_pool.values, practice, practice_null),
            _dictionary_array(self.lsoa_pool.values, lsoa, lsoa_null),
            _dictionary_array(self.sex_values, sex_code, sex_null),
            pa.array(age.astype(np.int32), mask=age_null),
            pa.array(birth.astype(np.int32), mask=age_null).cast(pa.date32()),
            pa.array(test_day.astype(np.int32)).cast(pa.date32()),
            _dictionary_array(self.modality_values, m.kind_modality[kind]),
            _dictionary_array(self.exam_values, exam),
        ]
        for r, name in enumerate(_REASONS):
            planted[f"rows_{name}"] = int((reason == r).sum())
        return pa.Table.from_arrays(columns, schema=_SCHEMA), planted


# =============================================================================================
# Exact counts of what was written (the derivation rules applied to the written columns)
# =============================================================================================

# The cube's counters (docs/architecture.md), so truth.json and Cube compare key for key.
_COUNTERS = QUALITY_COUNTERS


def _normalised(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(row -> entry index or -1 for null, normalised entries) of a dictionary column.

    Normalisation is what the pipeline does to codes: trim whitespace, upper-case.
    """
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not isinstance(array, pa.DictionaryArray):
        array = array.dictionary_encode()
    index = pc.fill_null(array.indices, -1).to_numpy().astype(np.int64)
    entries = pc.utf8_upper(pc.utf8_trim_whitespace(array.dictionary))
    return index, np.asarray(entries.to_pylist(), dtype=object)


class _Tally:
    """Counts of a written extract by the derivation rules, independent of how rows were made.

    Applies the lookups written to ``lookups/`` to the written string columns: ICB from the
    practice, else nothing for an other-valid practice, else from the LSOA; IMD quintile from the
    LSOA; sex valid if "1" or "2"; age valid if present and not negative. Exclusions in order
    no_icb > no_imd > no_sex > no_age > no_measure.
    """

    def __init__(self, model: _Model) -> None:
        self.model = model
        icb_index = {c: i for i, c in enumerate(model.icb_codes)}
        english = model.practice_kind == 0
        self.practice_icb = dict(
            zip(model.practice_codes[english], model.practice_icb[english].tolist(), strict=True)
        )
        other = (model.practice_kind == 1) | (model.practice_kind == 2)
        self.other_practices = set(model.practice_codes[other].tolist())
        n_eng = len(model.lsoa_icb)
        self.lsoa = {
            code: (int(i), int(q))
            for code, i, q in zip(
                model.lsoa_codes[:n_eng], model.lsoa_icb, model.lsoa_quintile, strict=True
            )
        }
        # Matched like codes: trimmed and upper-cased.
        self.modality = {name.upper(): k for k, name in enumerate(model.measures.modality[:9])}
        self.edoc = {
            (model.measures.modality[k].upper(), code.upper()): k
            for k in range(9, 14)
            for code in model.measures.edoc_codes[model.measures.names[k]]
        }
        self.n_icb = len(icb_index)
        self.cube = np.zeros((self.n_icb, 2, _N_AGE, _N_IMD, 14), dtype=np.int64)
        self.provider: dict[str, np.ndarray] = {}
        self.icb = np.zeros((self.n_icb + 1, len(_COUNTERS)), dtype=np.int64)  # last: no ICB

    def add(self, table: pa.Table) -> None:
        """Count one row group."""
        n = table.num_rows
        p_row, p_entries = _normalised(table.column("gp_practice_code"))
        e_icb = np.array([self.practice_icb.get(c, -1) for c in p_entries], dtype=np.int64)
        e_other = np.array([c in self.other_practices for c in p_entries], dtype=bool)
        e_blank = np.array([c == "" for c in p_entries], dtype=bool)
        present = p_row >= 0
        safe = np.where(present, p_row, 0)
        practice_icb = np.where(present, e_icb[safe] if len(e_icb) else -1, -1)
        practice_other = present & (e_other[safe] if len(e_other) else False)
        no_practice = ~present | (e_blank[safe] if len(e_blank) else True)

        l_row, l_entries = _normalised(table.column("lsoa11"))
        looked = [self.lsoa.get(c, (-1, -1)) for c in l_entries]
        e_licb = np.array([x[0] for x in looked], dtype=np.int64)
        e_q = np.array([x[1] for x in looked], dtype=np.int64)
        e_lblank = np.array([c == "" for c in l_entries], dtype=bool)
        present = l_row >= 0
        safe = np.where(present, l_row, 0)
        lsoa_icb = np.where(present, e_licb[safe] if len(e_licb) else -1, -1)
        quintile = np.where(present, e_q[safe] if len(e_q) else -1, -1)
        no_lsoa = ~present | (e_lblank[safe] if len(e_lblank) else True)

        src_gp = practice_icb >= 0
        src_other = ~src_gp & practice_other
        src_lsoa = ~src_gp & ~src_other & (lsoa_icb >= 0)
        src_unknown = ~(src_gp | src_other | src_lsoa)
        icb = np.where(src_gp, practice_icb, np.where(src_lsoa, lsoa_icb, -1))

        s_row, s_entries = _normalised(table.column("sex"))
        e_sex = np.array([{"1": 0, "2": 1}.get(c, -1) for c in s_entries], dtype=np.int64)
        sex = np.where(s_row >= 0, e_sex[np.maximum(s_row, 0)] if len(e_sex) else -1, -1)
        age_col = table.column("age")
        age = pc.fill_null(age_col, -1).to_numpy().astype(np.int64)
        age_ok = age >= 0
        band = np.minimum(np.maximum(age, 0) // 5, _N_AGE - 1)

        m_row, m_entries = _normalised(table.column("modality"))
        modality = np.array([*(self.modality.get(c, -1) for c in m_entries), -1], dtype=np.int64)[
            m_row
        ]
        x_row, x_entries = _normalised(table.column("exam_code"))
        # EDOC measure of each (modality, exam code entry) pair; -1 for none.
        edoc_of = np.full((10, len(x_entries) + 1), -1, dtype=np.int64)  # row/col -1: unknown
        for (modality_name, code), k in self.edoc.items():
            edoc_of[self.modality[modality_name], np.flatnonzero(x_entries == code)] = k
        edoc = edoc_of[modality, x_row]
        no_icb = icb < 0
        no_imd = ~no_icb & (quintile < 0)
        no_sex = ~no_icb & ~no_imd & (sex < 0)
        no_age = ~no_icb & ~no_imd & ~no_sex & ~age_ok
        # "included" is every record past the four exclusions; "no_measure" is
        # the part of it whose modality is in no measure (none are generated, but count it).
        included = ~(no_icb | no_imd | no_sex | no_age)
        no_measure = included & (modality < 0)

        flags = np.stack(
            [
                np.ones(n, dtype=bool),
                no_practice,
                no_lsoa,
                no_practice & no_lsoa,
                src_gp,
                src_other,
                src_lsoa,
                src_unknown,
                no_icb,
                no_imd,
                no_sex,
                no_age,
                included,
                no_measure,
                quintile < 0,
                sex < 0,
                ~age_ok,
                (quintile < 0) | (sex < 0) | ~age_ok,
            ],
            axis=1,
        )

        pr_row, pr_entries = _normalised(table.column("provider_code"))
        keys, key_of_entry = np.unique(
            np.append(np.where(pr_entries == "", "(missing)", pr_entries), "(missing)").astype(str),
            return_inverse=True,
        )
        row_key = key_of_entry[pr_row]  # index -1 picks the appended "(missing)"
        for key in keys.tolist():
            self.provider.setdefault(key, np.zeros(len(_COUNTERS), dtype=np.int64))
        for c in range(len(_COUNTERS)):
            per_key = np.bincount(row_key, weights=flags[:, c], minlength=len(keys))
            for j, key in enumerate(keys.tolist()):
                self.provider[key][c] += int(per_key[j])
        icb_key = np.where(icb >= 0, icb, self.n_icb)
        for c in range(len(_COUNTERS)):
            self.icb[:, c] += np.bincount(
                icb_key, weights=flags[:, c], minlength=self.n_icb + 1
            ).astype(np.int64)

        inc = np.flatnonzero(included & ~no_measure)
        base = (((icb[inc] * 2 + sex[inc]) * _N_AGE + band[inc]) * _N_IMD + quintile[inc]) * 14
        flat = self.cube.reshape(-1)
        flat += np.bincount(base + modality[inc], minlength=flat.size)
        has_edoc = edoc[inc] >= 0
        flat += np.bincount(base[has_edoc] + edoc[inc][has_edoc], minlength=flat.size)

    def counters(self) -> dict[str, Any]:
        """Totals, exclusions, ICB sources and the per-provider and per-ICB counters."""
        total = self.icb.sum(0)
        named = dict(zip(_COUNTERS, total.tolist(), strict=True))
        icb_keys = [*self.model.icb_codes.tolist(), "(none)"]
        return {
            "rows_read": named["rows"],
            "exclusions": {
                "rows_read": named["rows"],
                "no_icb": named["excl_no_icb"],
                "no_imd": named["excl_no_imd"],
                "no_sex": named["excl_no_sex"],
                "no_age": named["excl_no_age"],
                "included": named["included"],
                "no_measure": named["no_measure"],
            },
            "icb_source": {
                "gp_practice": named["src_gp_practice"],
                "other_valid_practice": named["src_other_valid_practice"],
                "lsoa": named["src_lsoa"],
                "unknown": named["src_unknown"],
            },
            "totals": named,
            "provider_quality": {
                k: dict(zip(_COUNTERS, v.tolist(), strict=True))
                for k, v in sorted(self.provider.items())
                if v[0] > 0
            },
            "icb_quality": {
                k: dict(zip(_COUNTERS, v.tolist(), strict=True))
                for k, v in zip(icb_keys, self.icb, strict=True)
            },
        }


# =============================================================================================
# Writing
# =============================================================================================


def _write_csv(path: Path, header: list[str], rows: Iterator[list[Any]] | list[list[Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _write_lookups(model: _Model, folder: Path) -> None:
    """The lookups folder (docs/inputs.md) (deterministic: the same for every seed)."""
    folder.mkdir(parents=True, exist_ok=True)
    english = np.flatnonzero(model.practice_kind == 0)
    order = english[np.argsort(model.practice_codes[english])]
    _write_csv(
        folder / "practice_icb.csv",
        ["gp_practice_code", "icb_code"],
        [[model.practice_codes[j], model.icb_codes[model.practice_icb[j]]] for j in order],
    )
    other = np.flatnonzero((model.practice_kind == 1) | (model.practice_kind == 2))
    _write_csv(
        folder / "other_practices.csv",
        ["gp_practice_code"],
        [[c] for c in sorted(model.practice_codes[other].tolist())],
    )
    n_eng = len(model.lsoa_icb)
    codes = model.lsoa_codes[:n_eng]
    _write_csv(
        folder / "lsoa_icb.csv",
        ["lsoa11", "icb_code"],
        [[c, model.icb_codes[i]] for c, i in zip(codes, model.lsoa_icb, strict=True)],
    )
    _write_csv(
        folder / "lsoa_imd.csv",
        ["lsoa11", "imd_decile"],
        [[c, int(d)] for c, d in zip(codes, model.lsoa_decile, strict=True)],
    )
    (folder / "measures.csv").write_bytes(_measures_file().read_bytes())
    _write_csv(
        folder / "icb.csv",
        ["icb_code", "icb_name", "region"],
        [
            [c, n, r]
            for c, n, r in zip(model.icb_codes, model.icb_names, model.icb_regions, strict=True)
        ],
    )


def _spread_over_years(index: np.ndarray, years: int, rng: np.random.Generator) -> np.ndarray:
    """Test days (days since 1970) spread evenly at random over ``years`` financial years
    ending 2023/24: day ``index`` of 2023/24's calendar (0 = 1 April) put in a random year,
    31 March of 2023/24's leap year falling on 30 March in a year of 365 days.
    """
    first = 2023 - (years - 1)
    starts = np.array([f"{y}-04-01" for y in range(first, 2025)], "datetime64[D]").astype(np.int64)
    lengths = np.diff(starts)
    which = rng.integers(0, years, len(index))
    return starts[which] + np.minimum(index, lengths[which] - 1)


def _write_population(model: _Model, plan: _Plan, path: Path, years: int = 1) -> None:
    """The population file (docs/inputs.md): persons as shortest round-trip floats, with the
    financial year (2023/24) it is for. An extract spanning ``years`` years has a year's rows
    over this population: the planned population divided by ``years``.
    """
    rows = []
    for i, code in enumerate(model.icb_codes):
        for s in range(_N_SEX):
            for a, band in enumerate(AGE_BANDS):
                for q in range(_N_IMD):
                    people = float(plan.population[i, s, a, q]) / years
                    rows.append([code, s + 1, band, q + 1, repr(people), "2023/24"])
    header = ["icb_code", "sex", "age_band", "imd_quintile", "population", "year"]
    _write_csv(path, header, rows)


def _level_table(values: np.ndarray, levels: tuple[str, ...] | list[str]) -> dict[str, float]:
    return {lvl: float(v) for lvl, v in zip(levels, values, strict=True)}


def _statistics_json(model: _Model, cube: np.ndarray, population: np.ndarray) -> dict[str, Any]:
    """National rates, rates ratios and ICB standardised rates of a cube (per 10,000)."""
    levels = {
        "sex": ("female", "male"),
        "imd_quintile": ("1", "2", "3", "4", "5"),
        "age": BROAD_AGE_BANDS,
    }
    out: dict[str, Any] = {
        "national_rate_per_10000": {},
        "rates_ratios": {f: {} for f in levels},
        "standardised_rate_per_10000": {f: {} for f in levels},
        "icb_standardised_rate_per_10000": {},
        "icb_summary": {},
    }
    for k, name in enumerate(model.measures.names):
        st = spec_statistics(cube[..., k], population)
        out["national_rate_per_10000"][name] = float(st["national"]) * 10_000
        for f, lv in levels.items():
            sr = st[f] * 10_000
            out["standardised_rate_per_10000"][f][name] = _level_table(sr, lv)
            ratio = np.divide(sr, sr[0], out=np.full_like(sr, np.nan), where=sr[0] > 0)
            out["rates_ratios"][f][name] = _level_table(ratio, lv)
        sr = st["icb"] * 10_000
        out["icb_standardised_rate_per_10000"][name] = _level_table(sr, model.icb_codes.tolist())
        mean, sd = float(sr.mean()), float(sr.std(ddof=1))
        out["icb_summary"][name] = {
            "mean_sr": mean,
            "sd_sr": sd,
            "share_within_1sd": float((np.abs(sr - mean) <= sd).mean()),
        }
    return out


def _truth(
    model: _Model,
    plan: _Plan,
    tally: _Tally,
    planted: dict[str, int],
    settings: dict[str, Any],
) -> dict[str, Any]:
    pub = refdata.publication()
    names = model.measures.names
    rr = pub["rates_ratios"]
    counts = tally.counters()
    cube = tally.cube
    observed = cube.sum((0, 1, 2, 3))
    per_icb = cube.sum((1, 2, 3))
    expected_by_reason = {name: int(planted[f"rows_{name}"]) for name in _REASONS}
    p_index = {c: j for j, c in enumerate(model.provider_codes)}
    return {
        "generator": {"module": "didcore.synth", "synth_version": SYNTH_VERSION, **settings},
        "conventions": {
            "rates": "per 10,000 population",
            "population_scale": plan.scale,
            "annex_a_scale": settings["rows"] / _PUBLISHED_TOTAL,
            "annex_a_scale_note": (
                "rows / 47,160,300 (the 2023/24 DID total): multiply Annex A's absolute "
                "thresholds (10,000 and 5,000 tests) by this to list the same providers and ICBs"
            ),
            "population_note": (
                "population.csv = ONS mid-2022 persons split by IMD quintile, times "
                "population_scale, so that the expected number of rows equals rows"
            ),
            "code_normalisation": (
                "codes are compared after trimming whitespace and upper-casing; blank or "
                "whitespace-only codes count as missing; sex is valid when the trimmed value is "
                "'1' or '2'; age is valid when present and not negative"
            ),
            "counts": (
                "'counts' are exact: the derivation rules applied to the written columns with the "
                "written lookups"
            ),
        },
        "planted": {
            "national_rate_per_10000": {m: pub["national_rate_per_10000"][m] for m in names},
            "rates_ratios": {
                f: {m: _level_table(rr[f]["ratio"][m], rr[f]["levels"]) for m in names}
                for f in ("sex", "imd_quintile", "age")
            },
            "stars": {
                f: {m: dict(zip(rr[f]["levels"], rr[f]["stars"][m], strict=True)) for m in names}
                for f in ("sex", "imd_quintile", "age")
            },
            "icb_standardised_rate_per_10000": {
                m: _level_table(
                    model.icb_target[k] * pub["national_rate_per_10000"][m],
                    model.icb_codes.tolist(),
                )
                for k, m in enumerate(names)
            },
            "factors": model.factors,
            "expected_included_by_measure": {
                m: float((model.rate[k] * plan.population).sum()) for k, m in enumerate(names)
            },
            "rows_by_reason": expected_by_reason,
            "data_quality": {k: v for k, v in planted.items() if not k.startswith("rows_")},
            "no_practice_share_by_provider": {
                c: float(model.no_practice_prob[p_index[c]])
                for c in sorted(_NO_PRACTICE_BY_PROVIDER)
                if c in p_index
            },
            "excluded_share_by_provider": {
                reason: {
                    c: float(plan.problem_share[reason][p_index[c]].max())
                    for c in sorted(table)
                    if c in p_index
                }
                for reason, table in (
                    ("unknown", _UNKNOWN_BY_PROVIDER),
                    ("no_imd", _NO_IMD_BY_PROVIDER),
                    ("no_sex", _NO_SEX_BY_PROVIDER),
                )
            },
        },
        "counts": {
            **counts,
            "observed_by_measure": {m: int(observed[k]) for k, m in enumerate(names)},
            "observed_by_icb": {
                c: {m: int(per_icb[i, k]) for k, m in enumerate(names)}
                for i, c in enumerate(model.icb_codes.tolist())
            },
            "population_total": float(plan.population.sum()),
        },
        "realised": _statistics_json(model, cube, plan.population),
    }


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def write_synthetic(
    out_dir: str | Path,
    *,
    rows: int = 1_000_000,
    seed: int = 0,
    row_group_size: int = 1_000_000,
    progress: bool = False,
    years: int = 1,
) -> SynthPaths:
    """Write a synthetic DID extract with its lookups, population and ground truth.

    ``years`` > 1 spreads the rows evenly at random over that many financial years ending
    2023/24 (the same model each year) and writes one year's population (the planned one
    divided by ``years``), so each year's rates are the model's; ``truth.json`` describes all
    the rows over the planned population, i.e. the average year.

    ``rows`` is the exact number of rows of the extract (tests), ``seed`` makes everything
    random reproducible (the same arguments give byte-identical files), ``row_group_size`` is
    the rows per Parquet row group and per generated batch (memory use is proportional to it,
    not to ``rows``), ``progress`` shows a progress bar on stderr.

    The extract is ``out_dir/extract/part-00000.parquet`` (zstd, dictionary-encoded strings).
    ``truth.json`` is written last, so its presence marks a complete folder. Existing files of
    the same names are replaced. Raises :class:`didcore.errors.InputError` for bad arguments.
    """
    rows = _check_int("rows", rows, 1)
    seed = _check_int("seed", seed, 0)
    row_group_size = _check_int("row_group_size", row_group_size, 1)
    years = _check_int("years", years, 1)
    if years > 50:
        raise InputError(f"years={years}: at most 50 financial years are written")
    paths = SynthPaths.under(out_dir)
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.truth.unlink(missing_ok=True)
    model = _model()
    plan = _plan(model, rows, seed)
    _write_lookups(model, paths.lookups)
    _write_population(model, plan, paths.population, years)
    paths.extract.mkdir(exist_ok=True)
    for stale in paths.extract.glob("*.parquet"):
        stale.unlink()

    maker = _RowMaker(model, plan)
    maker.years = years
    tally = _Tally(model)
    planted: dict[str, int] = {}
    remaining = plan.counts.copy()
    split = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    bar = _progress(rows, progress)
    with pq.ParquetWriter(
        paths.extract / "part-00000.parquet",
        _SCHEMA,
        compression="zstd",
        use_dictionary=True,
        # Large enough that no string column falls back from dictionary to plain encoding.
        dictionary_pagesize_limit=64 << 20,
        write_statistics=True,
    ) as writer:
        for index, start in enumerate(range(0, rows, row_group_size)):
            size = min(row_group_size, rows - start)
            if size == int(remaining.sum()):
                take = remaining.copy()
            else:
                take = split.multivariate_hypergeometric(remaining, size, method="marginals")
            remaining -= take
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2, index)))
            category = np.repeat(np.arange(len(take)), take)
            rng.shuffle(category)
            table, counts = maker.make(category, rng)
            writer.write_table(table, row_group_size=size)
            tally.add(table)
            for key, value in counts.items():
                planted[key] = planted.get(key, 0) + value
            bar(size)
    bar(0, done=True)
    # No timings in truth.json: the same arguments must give byte-identical files.
    settings = {"rows": rows, "seed": seed, "row_group_size": row_group_size}
    if years > 1:
        settings["years"] = years
    truth = _truth(model, plan, tally, planted, settings)
    partial = paths.truth.with_suffix(".json.partial")
    partial.write_text(json.dumps(truth, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    partial.replace(paths.truth)
    return paths


def _progress(total: int, enabled: bool) -> Any:
    """A callable ``update(n, done=False)`` showing progress on stderr when ``enabled``."""
    if not enabled:
        return lambda n, done=False: None
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is a dependency, but a plain counter does the job without it
        state = {"n": 0}

        def plain(n: int, done: bool = False) -> None:
            state["n"] += n
            print(
                f"\rsynth: {state['n']:,}/{total:,} rows", end="\n" if done else "", file=sys.stderr
            )

        return plain
    bar = tqdm(total=total, unit="rows", unit_scale=True, desc="synth", file=sys.stderr)

    def update(n: int, done: bool = False) -> None:
        bar.update(n)
        if done:
            bar.close()

    return update


# =============================================================================================
# The embedded demo data set
# =============================================================================================


def _default_cache_dir() -> Path:
    try:
        from importlib.metadata import PackageNotFoundError, version

        package_version = version("didcore")
    except PackageNotFoundError:
        package_version = "dev"
    explicit = os.environ.get("DIDCORE_CACHE_DIR")
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = (
        Path(explicit) if explicit else (Path(xdg) if xdg else Path.home() / ".cache") / "didcore"
    )
    return base / f"demo-{package_version}-synth{SYNTH_VERSION}"


def _is_complete(paths: SynthPaths) -> bool:
    try:
        generator = json.loads(paths.truth.read_text(encoding="utf-8"))["generator"]
    except (OSError, ValueError, KeyError):
        return False
    wanted = {"rows": DEMO_ROWS, "seed": DEMO_SEED, "synth_version": SYNTH_VERSION}
    files_there = [
        paths.extract / "part-00000.parquet",
        paths.population,
        *(
            paths.lookups / f
            for f in ("practice_icb.csv", "lsoa_icb.csv", "lsoa_imd.csv", "measures.csv")
        ),
    ]
    return all(generator.get(k) == v for k, v in wanted.items()) and all(
        f.is_file() for f in files_there
    )


def demo_inputs(cache_dir: str | Path | None = None) -> SynthPaths:
    """The embedded demo data set: 1,000,000 rows, fixed seed, generated once and cached.

    ``cache_dir`` is the folder to hold it (default ``$DIDCORE_CACHE_DIR`` or
    ``~/.cache/didcore`` (``$XDG_CACHE_HOME`` honoured), subfolder
    ``demo-<didcore version>-synth<SYNTH_VERSION>``). A missing or incomplete folder is
    regenerated (a few seconds); concurrent callers each build in a private folder and the first
    to finish wins.
    """
    root = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    paths = SynthPaths.under(root)
    if _is_complete(paths):
        return paths
    root.parent.mkdir(parents=True, exist_ok=True)
    building = root.with_name(f".{root.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    write_synthetic(building, rows=DEMO_ROWS, seed=DEMO_SEED)
    if root.exists() and not _is_complete(paths):
        shutil.rmtree(root)
    try:
        building.rename(root)
    except OSError:
        shutil.rmtree(building, ignore_errors=True)
        if not _is_complete(paths):
            raise
    return paths
