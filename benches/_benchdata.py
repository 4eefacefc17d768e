"""A deterministic, realistic benchmark extract (Parquet) and the lookups folder that goes with it.

The extract has SPEC section 1.1's default columns and looks like a real DID extract as it
arrives: Parquet, zstd, string columns dictionary-encoded with one dictionary per 1M-row row
group (what Spark, DuckDB or pyarrow write; the dictionaries differ between row groups), plain
Parquet logical types only (no embedded Arrow schema, so every reader sees plain strings unless
it asks for dictionaries). Realistic cardinalities: ~170 providers, ~7,000 GP practices, ~33,000
LSOAs, 9 modalities, 40 exam codes; and realistic dirt: a few per cent nulls and blanks, codes
in lower case or with stray spaces, Welsh and prison practices (the
other-valid list), closed and pseudo practices (``V81999``), Welsh LSOAs, sex codes 0/9, ages
out of range, modalities and exam codes outside the measures.

Real codes come from ``shared/data`` beside the repository (``../shared/data`` from the repo
root) when it is there; otherwise everything is synthetic, with the same shape. Rows are
generated one row group at a time with vectorised numpy from a seed per row group, so a file of
any size is the same whatever the machine, and generating 50M rows runs in flat memory.

Only the lookups that a record can hit are written: ``practice_icb``, ``other_practices``,
``lsoa_icb``, ``lsoa_imd`` (deciles; 25 English LSOAs are left out on purpose, so "ICB but no
IMD" happens), ``measures`` (copied from the package) and ``icb`` (42 ICBs, real order).
"""

from __future__ import annotations

import csv
import os
import re
import shutil
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "DEFAULT_ROWS",
    "NEEDED_COLUMNS",
    "ROW_GROUP_ROWS",
    "SHARED_DATA",
    "STRING_COLUMNS",
    "BenchData",
    "ensure_bench_data",
    "parse_rows",
]

#: Bumped whenever the generator's output changes, so cached files are not reused wrongly.
GENERATOR_VERSION = 1
SEED = 20_240_331
DEFAULT_ROWS = 1_000_000
ROW_GROUP_ROWS = 1_000_000
#: ``shared/data`` beside the repository (the CI job puts a copy of ``shared/`` there too).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
#: The text columns didcore reads dictionary-encoded (``didcore.io``).
STRING_COLUMNS = ("provider_code", "gp_practice_code", "lsoa11", "modality", "exam_code", "sex")
#: The columns ``didcore.aggregate`` reads from this extract, in its order (``Columns.needed``).
NEEDED_COLUMNS = (
    "provider_code",
    "gp_practice_code",
    "lsoa11",
    "modality",
    "sex",
    "exam_code",
    "age",
)

# Text columns are plain strings here; the Parquet writer dictionary-encodes them.
SCHEMA = pa.schema(
    [
        ("provider_code", pa.string()),
        ("gp_practice_code", pa.string()),
        ("lsoa11", pa.string()),
        ("sex", pa.string()),
        ("age", pa.int32()),
        ("test_date", pa.date32()),
        ("modality", pa.string()),
        ("exam_code", pa.string()),
    ]
)

#: (modality, share of tests, [(exam code, weight within the modality), ...])
MODALITIES: tuple[tuple[str, float, tuple[tuple[str, float], ...]], ...] = (
    (
        "Plain Radiography",
        0.46,
        (
            ("XCHES", 33),
            ("XCHEP", 4),
            ("XKNEE", 12),
            ("XLSPI", 6),
            ("XPELV", 8),
            ("XHIPS", 9),
            ("XABDO", 4),
            ("XWRIS", 8),
            ("XFOOT", 9),
            ("XSHOU", 7),
        ),
    ),
    (
        "Diagnostic Ultrasonography",
        0.23,
        (
            ("UABPE", 5),
            ("UABDO", 5),
            ("UPELV", 2),
            ("UKIDB", 1),
            ("UKIDN", 0.5),
            ("UBLAD", 0.5),
            ("UOBST", 40),
            ("UBRTS", 12),
            ("UVDUL", 34),
        ),
    ),
    (
        "Computerized Axial Tomography",
        0.15,
        (
            ("CCHES", 4),
            ("CCHEC", 3),
            ("CCHAP", 2),
            ("CABDO", 1),
            ("CHEAD", 50),
            ("CSPIN", 20),
            ("CCOLO", 20),
        ),
    ),
    (
        "Magnetic Resonance Imaging",
        0.095,
        (
            ("MBRAI", 12),
            ("MBRAC", 5),
            ("MHEAD", 4),
            ("MKNEE", 20),
            ("MLSPI", 25),
            ("MPROS", 14),
            ("MCSPI", 20),
        ),
    ),
    ("Fluoroscopy", 0.012, (("FBASW", 60), ("FHSGP", 40))),
    ("Nuclear Medicine Procedure", 0.006, (("NBONE", 60), ("NMYOC", 40))),
    ("Positron Emission Tomography", 0.004, (("PWHOL", 1),)),
    ("Single Photon Emission Computerized Tomography", 0.0015, (("NSPEC", 1),)),
    ("Medical Photography", 0.0015, (("QPHOT", 1),)),
)

# How a code is dirtied: 0 clean, 1 lower case, 2 leading space, 3 trailing space,
# 4 lower case with spaces both sides, 5 spaces both sides. Stray white space is spaces only
# (tabs and the like would need DuckDB's trim(s, characters), which costs it 1.7x in the
# normalisation step; real extracts have spaces).
_VARIANTS = (
    lambda s: s,
    lambda s: s.lower(),
    lambda s: " " + s,
    lambda s: s + " ",
    lambda s: "  " + s.lower() + " ",
    lambda s: " " + s + "  ",
)
_CLEAN = np.array([1.0, 0, 0, 0, 0, 0])
_PROVIDER_DIRT = np.array([0.995, 0.002, 0.0, 0.002, 0.0, 0.001])
_PRACTICE_DIRT = np.array([0.972, 0.012, 0.004, 0.008, 0.003, 0.001])
_LSOA_DIRT = np.array([0.975, 0.010, 0.004, 0.008, 0.002, 0.001])
_MODALITY_DIRT = np.array([0.990, 0.004, 0.001, 0.003, 0.001, 0.001])
_EXAM_DIRT = np.array([0.980, 0.010, 0.002, 0.005, 0.002, 0.001])

_SEX_CODES = ("1", "2", "0", "9", " 1", "2 ", " 2 ")
_SEX_P = np.array([0.4420, 0.5455, 0.0040, 0.0030, 0.0020, 0.0020, 0.0015])


def parse_rows(text: str) -> int:
    """``1000000``, ``1_000_000``, ``1e6``, ``1M`` or ``50m`` -> number of rows."""
    t = text.strip().replace("_", "").replace(",", "")
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmM]?)", t)
    if m:
        scale = {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2).lower()]
        return int(float(m.group(1)) * scale)
    return int(float(t))


@dataclass(frozen=True)
class BenchData:
    """A generated extract and the lookups folder that goes with it."""

    extract: Path
    lookups: Path
    rows: int
    codes: str  # "shared/data" (real codes) or "synthetic"


@dataclass(frozen=True)
class _Codes:
    """Code lists the generator samples from, with the lookups' contents."""

    source: str
    icb_codes: tuple[str, ...]
    icb_names: tuple[str, ...]
    icb_regions: tuple[str, ...]
    providers: tuple[str, ...]
    practice_lookup: tuple[tuple[str, str], ...]  # practice_icb rows
    other_practices: tuple[str, ...]  # other_practices rows
    gp_practices: tuple[str, ...]  # practices the records use (all in the lookup)
    gp_practice_icb: np.ndarray  # ICB index of each of gp_practices
    unknown_practices: tuple[str, ...]  # closed / pseudo practices: in no lookup
    lsoas: tuple[str, ...]  # English LSOAs (lsoa_icb rows)
    lsoa_icb: np.ndarray  # ICB index of each LSOA
    lsoa_decile: np.ndarray  # IMD decile of each LSOA
    imd_left_out: frozenset[str]  # LSOAs left out of lsoa_imd on purpose
    welsh_lsoas: tuple[str, ...]


# ---------------------------------------------------------------------- reference codes


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _real_codes(data: Path) -> _Codes:
    icbs = _read_csv(data / "icb.csv")
    icb_codes = tuple(r["icb_code"] for r in icbs)
    icb_index = {c: i for i, c in enumerate(icb_codes)}
    providers = tuple(r["provider_code"] for r in _read_csv(data / "did_providers.csv"))

    practices = _read_csv(data / "gp_practice_epraccur_2023.csv")
    lookup: list[tuple[str, str]] = []
    used: list[str] = []
    used_icb: list[int] = []
    unknown: list[str] = ["V81997", "V81998", "V81999"]
    other: list[str] = []
    for r in practices:
        code, icb, setting = r["practice_code"], r["icb_code"], r["prescribing_setting"]
        if setting == "4" and icb in icb_index:
            lookup.append((code, icb))
            if r["status_code"] == "A":
                used.append(code)
                used_icb.append(icb_index[icb])
        elif setting == "4":
            unknown.append(code)  # closed GP practices with no ICB
        elif code.startswith("W") or (setting.isdigit() and 15 <= int(setting) <= 25):
            other.append(code)  # Welsh, prisons and the rest of the justice estate
    # A few English practices also on the other-valid list: rule 1 must win.
    other.extend(code for code, _ in lookup[::400])

    lsoa_rows = _read_csv(data / "lsoa11_sicbl22_icb22.csv")
    deciles = {
        r["lsoa11cd"]: int(r["imd19_decile"]) for r in _read_csv(data / "lsoa11_imd2019.csv")
    }
    lsoas = tuple(r["lsoa11cd"] for r in lsoa_rows if r["lsoa11cd"] in deciles)
    icb_of = {r["lsoa11cd"]: icb_index[r["icb22cdh"]] for r in lsoa_rows}
    return _Codes(
        source="shared/data",
        icb_codes=icb_codes,
        icb_names=tuple(r["icb_name"] for r in icbs),
        icb_regions=tuple(r["region_name"] for r in icbs),
        providers=providers,
        practice_lookup=tuple(lookup),
        other_practices=tuple(dict.fromkeys(other)),
        gp_practices=tuple(used),
        gp_practice_icb=np.asarray(used_icb, np.int64),
        unknown_practices=tuple(unknown),
        lsoas=lsoas,
        lsoa_icb=np.asarray([icb_of[c] for c in lsoas], np.int64),
        lsoa_decile=np.asarray([deciles[c] for c in lsoas], np.int64),
        imd_left_out=frozenset(lsoas[1000::1300][:25]),
        welsh_lsoas=tuple(f"W01{i:06d}" for i in range(1, 1910)),
    )


def _synthetic_codes() -> _Codes:
    rng = np.random.default_rng(SEED)
    letters = "ABCDEFGHJKLMNPRSTUVWXY"
    icb_codes = tuple(sorted({f"Q{a}{b}" for a in letters for b in letters}))[:42]
    n_lsoa, n_practice = 33_000, 7_000
    providers = tuple(f"R{letters[i // 10]}{i % 10}" for i in range(170))
    practices = tuple(f"{letters[i % 18]}{81000 + i}" for i in range(n_practice))
    practice_icb = rng.integers(0, 42, n_practice)
    lsoas = tuple(f"E01{i:06d}" for i in range(1, n_lsoa + 1))
    lsoa_icb = np.sort(rng.integers(0, 42, n_lsoa))
    lookup = tuple((p, icb_codes[i]) for p, i in zip(practices, practice_icb, strict=True))
    other = [f"W9{i:04d}" for i in range(400)] + [f"YP{i:04d}" for i in range(120)]
    other += [p for p, _ in lookup[::400]]
    return _Codes(
        source="synthetic",
        icb_codes=icb_codes,
        icb_names=tuple(f"NHS {c} Integrated Care Board" for c in icb_codes),
        icb_regions=tuple(f"Region {i % 7 + 1}" for i in range(42)),
        providers=providers,
        practice_lookup=lookup,
        other_practices=tuple(other),
        gp_practices=practices[:6_800],
        gp_practice_icb=practice_icb[:6_800].astype(np.int64),
        unknown_practices=("V81997", "V81998", "V81999", *(f"Z{99000 + i}" for i in range(1100))),
        lsoas=lsoas,
        lsoa_icb=lsoa_icb.astype(np.int64),
        lsoa_decile=rng.integers(1, 11, n_lsoa).astype(np.int64),
        imd_left_out=frozenset(lsoas[1000::1300][:25]),
        welsh_lsoas=tuple(f"W01{i:06d}" for i in range(1, 1910)),
    )


@cache
def _codes(data: Path | None) -> _Codes:
    if data is not None and (data / "lsoa11_sicbl22_icb22.csv").is_file():
        return _real_codes(data)
    return _synthetic_codes()


# ---------------------------------------------------------------------- lookups folder


def _write_csv(path: Path, header: list[str], rows: list[tuple[object, ...]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def _write_lookups(codes: _Codes, folder: Path) -> None:
    folder.mkdir(parents=True)
    _write_csv(
        folder / "practice_icb.csv", ["gp_practice_code", "icb_code"], list(codes.practice_lookup)
    )
    _write_csv(
        folder / "other_practices.csv", ["gp_practice_code"], [(c,) for c in codes.other_practices]
    )
    _write_csv(
        folder / "lsoa_icb.csv",
        ["lsoa11", "icb_code"],
        [(c, codes.icb_codes[i]) for c, i in zip(codes.lsoas, codes.lsoa_icb, strict=True)],
    )
    _write_csv(
        folder / "lsoa_imd.csv",
        ["lsoa11", "imd_decile"],
        [
            (c, int(d))
            for c, d in zip(codes.lsoas, codes.lsoa_decile, strict=True)
            if c not in codes.imd_left_out
        ],
    )
    _write_csv(
        folder / "icb.csv",
        ["icb_code", "icb_name", "region"],
        list(zip(codes.icb_codes, codes.icb_names, codes.icb_regions, strict=True)),
    )
    measures = resources.files("didcore") / "data" / "measures.csv"
    with resources.as_file(measures) as src:
        shutil.copyfile(src, folder / "measures.csv")


# ---------------------------------------------------------------------- rows


@dataclass(frozen=True)
class _Universe:
    """Every spelling of every code of a column: ``variants[k * n + i]`` is code i dirtied
    the k-th way (see ``_VARIANTS``)."""

    n: int
    variants: pa.Array

    @classmethod
    def of(cls, codes: tuple[str, ...]) -> _Universe:
        values = [v(c) for v in _VARIANTS for c in codes]
        return cls(len(codes), pa.array(values, pa.string()))


@dataclass(frozen=True)
class _Plan:
    """Everything the row generator needs, built once per process."""

    codes: _Codes
    providers: _Universe
    provider_p: np.ndarray
    practices: _Universe  # gp_practices, other, unknown, then two blanks
    practice_p: np.ndarray
    n_other: int
    n_unknown: int
    lsoas: _Universe  # English LSOAs, Welsh LSOAs, unknown, then blank
    lsoa_by_icb: np.ndarray  # LSOA indices sorted by ICB
    icb_start: np.ndarray
    icb_count: np.ndarray
    sexes: _Universe
    modalities: _Universe  # the 9 modalities then two that no measure knows
    modality_p: np.ndarray
    exams: _Universe
    exam_of_modality: tuple[tuple[np.ndarray, np.ndarray], ...]  # (exam ids, cumulative p)
    age_cdf: np.ndarray


@cache
def _plan(data: Path | None) -> _Plan:
    codes = _codes(data)
    rng = np.random.default_rng(SEED + 1)
    provider_p = rng.lognormal(0.0, 1.0, len(codes.providers))
    practice_p = rng.lognormal(0.0, 0.6, len(codes.gp_practices))

    unknown_lsoa = ("E01999999", "UNKNOWN", "E0100000")
    lsoa_by_icb = np.argsort(codes.lsoa_icb, kind="stable")
    counts = np.bincount(codes.lsoa_icb, minlength=len(codes.icb_codes))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])

    exam_codes = tuple(dict.fromkeys(e for _, _, exams in MODALITIES for e, _ in exams))
    exam_id = {e: i for i, e in enumerate(exam_codes)}
    per_modality = []
    for _, _, exams in MODALITIES:
        w = np.asarray([x for _, x in exams], float)
        per_modality.append(
            (np.asarray([exam_id[e] for e, _ in exams], np.int64), np.cumsum(w / w.sum()))
        )
    ages = np.arange(106)
    w = np.where(
        ages <= 85, 1.0 + (ages / 35.0) ** 2, (1 + (85 / 35.0) ** 2) * np.exp(-(ages - 85) / 4.0)
    )
    mod_p = np.asarray([p for _, p, _ in MODALITIES])
    return _Plan(
        codes=codes,
        providers=_Universe.of(codes.providers),
        provider_p=np.cumsum(provider_p / provider_p.sum()),
        practices=_Universe.of(
            (*codes.gp_practices, *codes.other_practices, *codes.unknown_practices, "", "   ")
        ),
        practice_p=np.cumsum(practice_p / practice_p.sum()),
        n_other=len(codes.other_practices),
        n_unknown=len(codes.unknown_practices),
        lsoas=_Universe.of((*codes.lsoas, *codes.welsh_lsoas, *unknown_lsoa, "")),
        lsoa_by_icb=lsoa_by_icb,
        icb_start=starts,
        icb_count=counts,
        sexes=_Universe.of(_SEX_CODES),
        modalities=_Universe.of((*(m for m, _, _ in MODALITIES), "Unknown", "Other")),
        modality_p=np.cumsum(mod_p / mod_p.sum()),
        exams=_Universe.of(exam_codes),
        exam_of_modality=tuple(per_modality),
        age_cdf=np.cumsum(w / w.sum()),
    )


def _pick(rng: np.random.Generator, cdf: np.ndarray, n: int) -> np.ndarray:
    """``n`` draws of indices with cumulative probabilities ``cdf``."""
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1)


def _dirty(rng: np.random.Generator, base: np.ndarray, u: _Universe, p: np.ndarray) -> np.ndarray:
    """Indices into ``u.variants``: each code spelt one of the ``_VARIANTS`` ways."""
    kind = _pick(rng, np.cumsum(p / p.sum()), len(base))
    return kind * u.n + base


def _column(full: np.ndarray, null: np.ndarray | None, u: _Universe) -> pa.Array:
    """The spellings ``u.variants[full]`` as plain strings (null where ``null``). The Parquet
    writer dictionary-encodes them itself, one dictionary per row group, as real writers do
    (handing it Arrow dictionaries instead makes it fall back to PLAIN for large ones)."""
    return u.variants.take(pa.array(full, pa.int64(), mask=null))


def _row_group(plan: _Plan, index: int, n: int) -> pa.Table:
    """Row group ``index`` (``n`` rows): the same rows for the same index on every machine."""
    rng = np.random.default_rng([SEED, GENERATOR_VERSION, index])
    codes = plan.codes
    n_gp = len(codes.gp_practices)

    provider = _dirty(rng, _pick(rng, plan.provider_p, n), plan.providers, _PROVIDER_DIRT)
    provider_null = rng.random(n) < 0.0005

    # practice: 3% null, 0.3% blank, 0.8% other-valid, 0.7% closed/pseudo, else a GP practice
    u = rng.random(n)
    practice = _pick(rng, plan.practice_p, n)
    gp_icb = codes.gp_practice_icb[practice]
    other = (u >= 0.033) & (u < 0.041)
    unknown = (u >= 0.041) & (u < 0.048)
    blank = (u >= 0.030) & (u < 0.033)
    practice = np.where(other, n_gp + rng.integers(0, plan.n_other, n), practice)
    practice = np.where(unknown, n_gp + plan.n_other + rng.integers(0, plan.n_unknown, n), practice)
    practice = np.where(blank, n_gp + plan.n_other + plan.n_unknown + (u < 0.0315), practice)
    has_gp = u >= 0.048
    practice_full = _dirty(rng, practice, plan.practices, _PRACTICE_DIRT)
    practice_null = u < 0.030

    # LSOA: 92% of patients of a known practice live in its ICB; 1.5% null, 0.2% blank,
    # 0.5% Welsh, 0.1% unknown
    n_eng = len(codes.lsoas)
    local = has_gp & (rng.random(n) < 0.92)
    within = (rng.random(n) * plan.icb_count[gp_icb]).astype(np.int64)
    lsoa = np.where(
        local,
        plan.lsoa_by_icb[np.minimum(plan.icb_start[gp_icb] + within, n_eng - 1)],
        rng.integers(0, n_eng, n),
    )
    v = rng.random(n)
    lsoa = np.where(
        (v >= 0.015) & (v < 0.020), n_eng + rng.integers(0, len(codes.welsh_lsoas), n), lsoa
    )
    n_wales = n_eng + len(codes.welsh_lsoas)
    lsoa = np.where((v >= 0.020) & (v < 0.021), n_wales + rng.integers(0, 3, n), lsoa)
    lsoa = np.where((v >= 0.021) & (v < 0.023), n_wales + 3, lsoa)
    lsoa_full = _dirty(rng, lsoa, plan.lsoas, _LSOA_DIRT)
    lsoa_null = v < 0.015

    sex = _pick(rng, np.cumsum(_SEX_P / _SEX_P.sum()), n)
    sex_null = rng.random(n) < 0.005

    age = _pick(rng, plan.age_cdf, n).astype(np.int32)
    a = rng.random(n)
    age = np.where(
        a < 0.0002, -1, np.where(a < 0.0004, 131 + (a * 1e7).astype(np.int32) % 869, age)
    )
    age_null = (a >= 0.0004) & (a < 0.0044)

    test_date = rng.integers(19_448, 19_814, n).astype(np.int32)  # 2023-04-01 .. 2024-03-31

    modality = _pick(rng, plan.modality_p, n)
    exam = np.empty(n, np.int64)
    for k, (ids, cdf) in enumerate(plan.exam_of_modality):
        rows = np.flatnonzero(modality == k)
        exam[rows] = ids[_pick(rng, cdf, len(rows))]
    m = rng.random(n)
    exam = np.where(m < 0.003, rng.integers(0, plan.exams.n, n), exam)  # any code, any modality
    modality = np.where((m >= 0.003) & (m < 0.0035), 9 + (m < 0.00325), modality)
    modality_null = (m >= 0.0035) & (m < 0.0040)
    exam_null = (m >= 0.0040) & (m < 0.0070)

    return pa.table(
        [
            _column(provider, provider_null, plan.providers),
            _column(practice_full, practice_null, plan.practices),
            _column(lsoa_full, lsoa_null, plan.lsoas),
            _column(_dirty(rng, sex, plan.sexes, _CLEAN), sex_null, plan.sexes),
            pa.array(age, pa.int32(), mask=age_null),
            pa.array(test_date, pa.int32()).view(pa.date32()),
            _column(
                _dirty(rng, modality, plan.modalities, _MODALITY_DIRT),
                modality_null,
                plan.modalities,
            ),
            _column(_dirty(rng, exam, plan.exams, _EXAM_DIRT), exam_null, plan.exams),
        ],
        schema=SCHEMA,
    )


def _write_extract(plan: _Plan, rows: int, path: Path) -> None:
    with pq.ParquetWriter(
        path, SCHEMA, compression="zstd", use_dictionary=True, store_schema=False
    ) as writer:
        for index, start in enumerate(range(0, rows, ROW_GROUP_ROWS)):
            n = min(ROW_GROUP_ROWS, rows - start)
            writer.write_table(_row_group(plan, index, n), row_group_size=ROW_GROUP_ROWS)


# ---------------------------------------------------------------------- entry point


def ensure_bench_data(directory: Path, rows: int, data: Path | None = SHARED_DATA) -> BenchData:
    """The extract of ``rows`` rows and its lookups folder in ``directory``: generated once,
    then reused (file names carry the row count, the generator version and the code source).
    ``data=None`` forces synthetic codes."""
    if rows < 1:
        raise ValueError(f"rows must be positive, not {rows}")
    directory.mkdir(parents=True, exist_ok=True)
    plan = _plan(data if data is not None and data.is_dir() else None)
    tag = f"v{GENERATOR_VERSION}-{'real' if plan.codes.source == 'shared/data' else 'synthetic'}"
    lookups = directory / f"lookups-{tag}"
    extract = directory / f"extract-{tag}-{rows}.parquet"
    tmp_suffix = f".tmp-{os.getpid()}"
    if not lookups.is_dir():
        tmp = lookups.with_name(lookups.name + tmp_suffix)
        shutil.rmtree(tmp, ignore_errors=True)
        _write_lookups(plan.codes, tmp)
        try:
            tmp.rename(lookups)
        except OSError:  # another process got there first
            shutil.rmtree(tmp, ignore_errors=True)
    if not extract.is_file():
        tmp = extract.with_name(extract.name + tmp_suffix)
        _write_extract(plan, rows, tmp)
        tmp.replace(extract)
    return BenchData(extract=extract, lookups=lookups, rows=rows, codes=plan.codes.source)


# ---------------------------------------------------------------------- other layouts

#: The same rows as other writers lay them out (``run_comparison.py --layouts``):
#: ``pandas``, as ``DataFrame.to_parquet`` writes them (ages with gaps as doubles, dates as
#: ``timestamp[ns]``); ``one-row-group``, all rows in one row group (pandas with pyarrow
#: before 15, whose row groups were 64Mi rows); ``5M-row-groups``, row groups of 5 million
#: rows (whose text dictionaries overflow into PLAIN pages); ``polars`` and ``duckdb``, as
#: those engines write them by default (row groups of 100,000-250,000 rows; DuckDB writes a
#: column of many distinct values, the LSOA codes, without a dictionary).
LAYOUTS = ("pandas", "one-row-group", "5M-row-groups", "polars", "duckdb")


def ensure_layout(data: BenchData, layout: str) -> BenchData:
    """``data`` with its extract rewritten in ``layout`` (see :data:`LAYOUTS`), next to it:
    written once, then reused."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; one of {', '.join(LAYOUTS)}")
    path = data.extract.with_name(f"{data.extract.stem}-{layout}.parquet")
    if not path.is_file():
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        _write_layout(data.extract, layout, tmp)
        tmp.replace(path)
    return replace(data, extract=path)


def _write_layout(source: Path, layout: str, path: Path) -> None:
    if layout == "polars":
        import polars as pl

        pl.scan_parquet(source).sink_parquet(path)
        return
    if layout == "duckdb":
        import duckdb

        duckdb.sql(f"COPY (FROM read_parquet('{source}')) TO '{path}' (FORMAT parquet)")
        return
    f = pq.ParquetFile(source)
    if layout == "one-row-group":  # (50M rows: about 4 GB in memory while written)
        table = f.read()
        pq.write_table(table, path, compression="zstd", row_group_size=max(1, table.num_rows))
        return
    schema = f.schema_arrow
    if layout == "pandas":
        schema = schema.set(schema.get_field_index("age"), pa.field("age", pa.float64()))
        at = schema.get_field_index("test_date")
        schema = schema.set(at, pa.field("test_date", pa.timestamp("ns")))
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        pending: list[pa.Table] = []
        for i in range(f.num_row_groups):
            table = f.read_row_group(i)
            if layout == "pandas":
                writer.write_table(table.cast(schema), row_group_size=table.num_rows)
                continue
            pending.append(table)
            if sum(t.num_rows for t in pending) >= 5_000_000 or i == f.num_row_groups - 1:
                group = pa.concat_tables(pending)
                writer.write_table(group, row_group_size=group.num_rows)
                pending = []
