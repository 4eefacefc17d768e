"""Checks for synthetic extracts: SPEC sections 2 and 3 re-derived from the written files.

The recount reads the written Parquet and lookup CSV files and applies the derivation rules
with the reference package's vectorised re-count (didcore.reference.recount), the one the
generator's tally uses too: against truth.json it checks that the files say what the generator
meant to write; against the pipeline's Cube (the Rust core, which shares no code with it) it
checks the counting itself. Code normalisation (didcore.codes) and the expected count /
standardised rate (didcore.stats) come from their one home too, pinned by tests/test_codes.py
and by hand-worked values in tests/test_stats.py; the statistics are otherwise the
publication's method written out level by level.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.stats import chi2

from didcore import stats
from didcore.axes import STRATA_SHAPE
from didcore.codes import normalise_array_or_null, normalise_text
from didcore.reference.recount import count_cube, derive_rows

AGE_BANDS = [f"{lo}-{lo + 4}" for lo in range(0, 90, 5)] + ["90+"]
BROAD = np.array([0] * 9 + [1, 1, 2, 2, 3, 3, 4, 4, 4, 4])
LEVELS = {
    "sex": ["female", "male"],
    "imd_quintile": ["1", "2", "3", "4", "5"],
    "age": ["0-<45", "45-<55", "55-<65", "65-<75", "75+"],
}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def norm(array: pa.ChunkedArray) -> pa.ChunkedArray:
    """Codes as the pipeline compares them (didcore.codes): text, trimmed, ASCII upper-case;
    blank -> null."""
    return normalise_array_or_null(array.cast(pa.string()))


@dataclass
class Recount:
    """SPEC section 2 applied to an extract folder."""

    icb_codes: list[str]
    measures: list[str]
    cube: np.ndarray  # (icb, sex (male, female), age band, quintile, measure)
    population: np.ndarray  # (icb, sex, age band, quintile)
    exclusions: dict[str, int]
    icb_source: dict[str, int]
    provider: dict[str, dict[str, int]]
    icb_missing: dict[str, dict[str, int]]
    table: pa.Table


def recount(root: Path) -> Recount:
    lookups = root / "lookups"
    icb_codes = [r["icb_code"] for r in read_csv(lookups / "icb.csv")]
    icb_index = {c: i for i, c in enumerate(icb_codes)}
    practice = {
        r["gp_practice_code"]: icb_index[r["icb_code"]]
        for r in read_csv(lookups / "practice_icb.csv")
    }
    other = {r["gp_practice_code"]: 1 for r in read_csv(lookups / "other_practices.csv")}
    lsoa_icb = {r["lsoa11"]: icb_index[r["icb_code"]] for r in read_csv(lookups / "lsoa_icb.csv")}
    lsoa_q = {
        r["lsoa11"]: (int(r["imd_decile"]) + 1) // 2 - 1 for r in read_csv(lookups / "lsoa_imd.csv")
    }
    measures: list[str] = []
    modality_measure: dict[str, int] = {}
    edoc: dict[tuple[str, str], int] = {}
    for r in read_csv(lookups / "measures.csv"):
        if r["measure"] not in measures:
            measures.append(r["measure"])
        k = measures.index(r["measure"])
        if r["kind"] == "modality":
            modality_measure[normalise_text(r["modality"])] = k
        else:
            edoc[(normalise_text(r["modality"]), normalise_text(r["exam_code"]))] = k

    table = pq.read_table(root / "extract")
    n = table.num_rows
    rows = derive_rows(
        table,
        practice_icb=practice,
        other_practices=other,
        lsoa_icb=lsoa_icb,
        lsoa_quintile=lsoa_q,
        modality_measure=modality_measure,
        edoc_measure=edoc,
    )
    icb, quint, sex, age_ok = rows.icb, rows.quintile, rows.sex, rows.age_ok
    src_gp, src_other, src_lsoa = rows.src_gp, rows.src_other, rows.src_lsoa
    no_icb, no_imd, no_sex, no_age = rows.no_icb, rows.no_imd, rows.no_sex, rows.no_age
    included = rows.counted  # past the exclusions, with a modality in some measure
    cube = count_cube(rows, len(icb_codes), len(measures))

    population = np.zeros((len(icb_codes), *STRATA_SHAPE))
    for r in read_csv(root / "population.csv"):
        population[
            icb_index[r["icb_code"]],
            int(r["sex"]) - 1,
            AGE_BANDS.index(r["age_band"]),
            int(r["imd_quintile"]) - 1,
        ] += float(r["population"])

    no_practice, no_lsoa = rows.no_practice, rows.no_lsoa
    missing_imd = quint < 0
    missing_sex = sex < 0
    flags = {
        "rows": np.ones(n, dtype=bool),
        "no_practice": no_practice,
        "no_lsoa": no_lsoa,
        "no_practice_no_lsoa": no_practice & no_lsoa,
        "missing_imd": missing_imd,
        "missing_sex": missing_sex,
        "missing_age": ~age_ok,
        "missing_any": missing_imd | missing_sex | ~age_ok,
        "excl_no_icb": no_icb,
        "excl_no_imd": no_imd,
        "excl_no_sex": no_sex,
        "excl_no_age": no_age,
        "included": included,
    }
    providers = norm(table["provider_code"]).to_numpy(zero_copy_only=False).astype(str)
    codes, inverse = np.unique(providers, return_inverse=True)
    provider = {
        str(c): {k: int(v) for k, v in zip(flags, row, strict=True)}
        for c, row in zip(
            codes,
            np.stack(
                [np.bincount(inverse, weights=f, minlength=len(codes)) for f in flags.values()], 1
            ),
            strict=True,
        )
    }
    key = np.where(icb >= 0, icb, len(icb_codes))
    icb_missing = {
        c: {k: int(v) for k, v in zip(flags, row, strict=True)}
        for c, row in zip(
            [*icb_codes, "(none)"],
            np.stack(
                [np.bincount(key, weights=f, minlength=len(icb_codes) + 1) for f in flags.values()],
                1,
            ),
            strict=True,
        )
    }
    return Recount(
        icb_codes=icb_codes,
        measures=measures,
        cube=cube,
        population=population,
        exclusions={
            "rows_read": n,
            "no_icb": int(no_icb.sum()),
            "no_imd": int(no_imd.sum()),
            "no_sex": int(no_sex.sum()),
            "no_age": int(no_age.sum()),
            "included": int(included.sum()),
        },
        icb_source={
            "gp_practice": int(src_gp.sum()),
            "other_valid_practice": int(src_other.sum()),
            "lsoa": int(src_lsoa.sum()),
            "unknown": int((~(src_gp | src_other | src_lsoa)).sum()),
        },
        provider=provider,
        icb_missing=icb_missing,
        table=table,
    )


def standardised(o: np.ndarray, p: np.ndarray, factor: str) -> np.ndarray:
    """Standardised rates per 10,000 for each level of ``factor`` (publication method).

    ``o``, ``p``: (icb, sex, age band, quintile) for one measure. Levels are in LEVELS order
    (female first for sex; broad bands for age).
    """
    national = o.sum() / p.sum()
    o_s, p_s = o.sum(0), p.sum(0)  # sex, age, quintile
    if factor == "sex":
        levels = [(1, slice(None), slice(None)), (0, slice(None), slice(None))]
    elif factor == "imd_quintile":
        levels = [(slice(None), slice(None), q) for q in range(5)]
    else:
        levels = [(slice(None), np.flatnonzero(b == BROAD), slice(None)) for b in range(5)]
    # Summing over the factor's own axis gives the national rate in each stratum of the other
    # two factors (age in 5-year bands; sex x quintile when age is the factor).
    own_axis = {"sex": 0, "imd_quintile": 2, "age": 1}[factor]
    rate_g = stats.stratum_rates(o_s.sum(own_axis, keepdims=True), p_s.sum(own_axis, keepdims=True))
    out = []
    for level in levels:
        o_f = np.zeros_like(o_s)
        p_f = np.zeros_like(p_s)
        o_f[level] = o_s[level]
        p_f[level] = p_s[level]
        expected = stats.expected_count(rate_g, p_f, axis=None)
        out.append(stats.standardised_rate(o_f.sum(), expected, national * 10_000))
    return np.array(out)


def stars_of(r1: float, r2: float) -> str:
    """Stars of the publication's test: chi-square on two rates per 10,000 treated as counts."""
    p = chi2.sf((r2 - r1) ** 2 / (r1 + r2), 1)
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""
