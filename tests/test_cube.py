"""The Rust cube equals the pure-Python reference, exactly, on generated extracts."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

import didcore
from didcore.cube import AGE_BANDS, EXCLUSION_REASONS, QUALITY_COUNTERS, SEXES, Cube
from didcore.io import Columns
from didcore.lookup import DID_MODALITIES, Lookups
from didcore.reference.cube import ReferenceCube, aggregate_reference

ICBS = ["QAA", "QBB", "QCC"]
PRACTICES = {"A81001": "QAA", "A81002": "QBB", "B82003": "QCC", "C83004": "QAA"}
OTHER = ["W91001", "P99001"]
LSOA_ICB = {"E01000001": "QAA", "E01000002": "QBB", "E01000003": "QCC", "E01000004": "QBB"}
LSOA_IMD = {"E01000001": 1, "E01000002": 4, "E01000003": 7, "E01000005": 10}  # 4: no IMD; 5: no ICB


def make_lookups(measures: dict[str, list[Any]] | None = None) -> Lookups:
    """The test lookups, with the shipped measures or ``measures``."""
    return Lookups.from_tables(
        practice_icb={"gp_practice_code": list(PRACTICES), "icb_code": list(PRACTICES.values())},
        lsoa_icb={"lsoa11": list(LSOA_ICB), "icb_code": list(LSOA_ICB.values())},
        lsoa_imd={"lsoa11": list(LSOA_IMD), "imd_decile": [str(v) for v in LSOA_IMD.values()]},
        other_practices={"gp_practice_code": OTHER},
        icb={"icb_code": ICBS, "icb_name": ["A", "B", "C"], "region": ["R", "R", "S"]},
        measures=measures,
    )


LOOKUPS = make_lookups()
EXAMS = ["XCHES", "MBRAI", "CCHES", "UKIDB", "UABPE", "XKNEE", "ZZZZZ"]


def _variants(code: str) -> st.SearchStrategy[str]:
    """A code as an extract might hold it: any case, stray white space (every ASCII white
    space byte, and Unicode's: no-break, em, ideographic and next-line spaces, the
    information separators), and near misses that must stay unrecognised (a non-ASCII
    letter, an inner space, a zero-width space, which is not white space)."""
    spaces = st.sampled_from(
        [
            "",
            " ",
            "  ",
            "\t",
            "\n",
            "\v",
            "\f",
            "\r",
            " \v ",
            "\xa0",
            "\u2003",
            "\u3000",
            "\x85",
            "\x1f",
        ]
    )
    return st.tuples(
        spaces,
        st.sampled_from(
            [code, code.lower(), code.title(), code + "\u00e9", " ".join(code), code + "\u200b"]
        ),
        spaces,
    ).map("".join)


def _codes(known: list[str], unknown: list[str]) -> st.SearchStrategy[str | None]:
    return st.one_of(
        st.none(),
        st.just(""),
        st.just("   "),
        st.sampled_from(known).flatmap(_variants),
        st.sampled_from(unknown),
    )


practice_st = _codes([*PRACTICES, *OTHER], ["X00000", "a8100", "W9"])
lsoa_st = _codes([*LSOA_ICB, "E01000005"], ["E01999999", "W01000001"])
provider_st = _codes(["RM3", "RWF", "NT9"], ["ZZZ"])
modality_st = st.one_of(
    st.none(), st.sampled_from(DID_MODALITIES).flatmap(_variants), st.just("Other Thing")
)
exam_st = st.one_of(st.none(), st.sampled_from(EXAMS).flatmap(_variants))
sex_text_st = st.one_of(
    st.none(),
    st.sampled_from(
        ["1", "2", "0", "9", " 1", "2 ", "M", "", "x", "1.0", "02", "+1", "2.", "1e0", "1_0", "1.5"]
    ),
)
sex_int_st = st.one_of(st.none(), st.sampled_from([1, 2, 0, 9, -1, 3]))
# pandas stores integer columns with missing values as floats: NaN is missing
sex_float_st = st.one_of(
    st.none(), st.sampled_from([1.0, 2.0, 0.0, 9.0, -1.0, 1.5, 2.0001, math.nan, math.inf, 1e300])
)
age_st = st.one_of(st.none(), st.integers(-3, 140))
# fractional ages are completed years (rounded down); infinities are unreadable (missing)
age_float_st = st.one_of(
    st.none(),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.5, 4.999, 89.5, 1e300]),
    st.integers(-3, 140).map(float),
    st.floats(-3, 140, allow_nan=False, width=32),
)
# ages as a CSV gives them: text, numbers in any form, and text that is not a number
age_text_st = st.one_of(
    st.none(),
    st.integers(-3, 140).map(str),
    st.sampled_from(["", " 41 ", "41.0", "4e1", "044", "+7", "44.9", "-0.5", "NK", "1e400", "4 1"]),
)
date_st = st.one_of(st.none(), st.dates(dt.date(1900, 1, 1), dt.date(2030, 12, 31)))


@st.composite
def records(draw: Any, *, sex: str, use_age: bool, age_kind: str) -> dict[str, Any]:
    row = {
        "provider_code": draw(provider_st),
        "gp_practice_code": draw(practice_st),
        "lsoa11": draw(lsoa_st),
        "sex": draw({"text": sex_text_st, "int": sex_int_st, "float": sex_float_st}[sex]),
        "modality": draw(modality_st),
        "exam_code": draw(exam_st),
        "test_date": draw(date_st),
    }
    if use_age:
        row["age"] = draw({"int": age_st, "float": age_float_st, "text": age_text_st}[age_kind])
    else:
        row["date_of_birth"] = draw(date_st)
    return row


@st.composite
def extracts(draw: Any) -> tuple[list[pa.RecordBatch], pa.Schema, bool]:
    """Rows split into batches, each with its own dictionaries (or plain strings)."""
    sex = draw(st.sampled_from(["text", "int", "float"]))
    use_age = draw(st.booleans())
    age_kind = draw(st.sampled_from(["int", "float", "text"]))
    rows = draw(st.lists(records(sex=sex, use_age=use_age, age_kind=age_kind), max_size=120))
    dictionary = draw(st.booleans())
    # every Arrow text layout an extract may arrive in (polars exports string_view)
    # (pyarrow < 16, a supported floor, has no view types)
    views = [pa.string_view()] if hasattr(pa, "string_view") else []
    plain_type = draw(st.sampled_from([pa.string(), pa.large_string(), *views]))
    dict_type = pa.dictionary(
        draw(st.sampled_from([pa.int8(), pa.int16(), pa.int32(), pa.int64()])),
        draw(st.sampled_from([pa.string(), pa.large_string()])),
    )
    text = ["provider_code", "gp_practice_code", "lsoa11", "modality", "exam_code"]
    if sex == "text":
        text.append("sex")
    fields = []
    for name in rows[0] if rows else records_columns(use_age):
        if name in text:
            t = dict_type if dictionary else plain_type
        elif name == "sex" and sex == "float":
            t = draw(st.sampled_from([pa.float32(), pa.float64()]))
        elif name == "sex":
            t = draw(st.sampled_from([pa.int8(), pa.int16(), pa.int32(), pa.int64()]))
        elif name == "age" and age_kind == "float":
            t = draw(st.sampled_from([pa.float32(), pa.float64()]))
        elif name == "age" and age_kind == "text":
            t = plain_type
        elif name == "age":
            t = draw(st.sampled_from([pa.int16(), pa.int32(), pa.int64()]))
        else:
            t = pa.date32()
        fields.append(pa.field(name, t))
    schema = pa.schema(fields)
    null_entries = draw(st.booleans())
    cuts = sorted(draw(st.lists(st.integers(0, len(rows)), max_size=4)))
    bounds = [0, *cuts, len(rows)]
    batches = []
    for lo, hi in itertools.pairwise(bounds):
        part = rows[lo:hi]
        cols = []
        for f in schema:
            values = [r[f.name] for r in part]
            if pa.types.is_dictionary(f.type):
                encoded = pa.array(values, f.type.value_type).dictionary_encode()
                if null_entries:
                    # null rows as valid indices to a null dictionary entry (Arrow allows both)
                    entries = [*encoded.dictionary.to_pylist(), None]
                    idx = [
                        len(entries) - 1 if i is None else i for i in encoded.indices.to_pylist()
                    ]
                    encoded = pa.DictionaryArray.from_arrays(
                        pa.array(idx, pa.int32()), pa.array(entries, f.type.value_type)
                    )
                cols.append(encoded.cast(f.type))
            else:
                cols.append(pa.array(values, f.type))
        batches.append(pa.RecordBatch.from_arrays(cols, schema=schema))
    return batches, schema, use_age


def records_columns(use_age: bool) -> list[str]:
    base = ["provider_code", "gp_practice_code", "lsoa11", "sex", "modality", "exam_code"]
    return [*base, "test_date", "age" if use_age else "date_of_birth"]


def assert_equal_to_reference(cube: Cube, ref: ReferenceCube) -> None:
    fast = Counter()
    for idx in zip(*np.nonzero(cube.counts), strict=True):
        i, s, a, q, m = (int(x) for x in idx)
        key = (cube.icb_codes[i], SEXES[s], AGE_BANDS[a], q + 1, cube.measures[m])
        fast[key] = int(cube.counts[idx])
    assert fast == ref.cells
    expected_excl = {"rows_read": ref.exclusions["rows_read"]}
    for reason in EXCLUSION_REASONS:
        expected_excl[reason] = ref.exclusions[reason]
    expected_excl["included"] = ref.exclusions["included"]
    expected_excl["no_measure"] = ref.exclusions["no_measure"]
    assert cube.exclusions == expected_excl
    assert (
        sum(cube.exclusions[r] for r in EXCLUSION_REASONS) + cube.exclusions["included"]
        == cube.exclusions["rows_read"]
    )
    for row in cube.provider_quality.to_pylist():  # conservation by provider
        excluded = sum(row[f"excl_{r}"] for r in EXCLUSION_REASONS)
        assert row["rows"] == excluded + row["included"]
    assert {k: v for k, v in cube.icb_source.items() if v} == dict(ref.icb_source)
    prov = {
        row["provider_code"]: Counter({k: row[k] for k in QUALITY_COUNTERS if row[k]})
        for row in cube.provider_quality.to_pylist()
    }
    assert prov == ref.provider
    icb = {
        row["icb_code"]: Counter({k: row[k] for k in QUALITY_COUNTERS if row[k]})
        for row in cube.icb_quality.to_pylist()
        if row["rows"]
    }
    assert icb == ref.icb
    pairs = Counter(
        {(r["provider_code"], r["icb_code"]): r["rows"] for r in cube.provider_icb.to_pylist()}
    )
    assert pairs == ref.provider_icb


@given(extracts())
def test_rust_cube_equals_reference(data: tuple[list[pa.RecordBatch], pa.Schema, bool]) -> None:
    batches, schema, use_age = data
    reader = pa.RecordBatchReader.from_batches(schema, batches)
    cube = didcore.aggregate(reader, LOOKUPS, progress=False)
    rows = [r for b in batches for r in b.to_pylist()]
    ref = aggregate_reference(rows, LOOKUPS, use_age=use_age)
    assert_equal_to_reference(cube, ref)


@st.composite
def measure_tables(draw: Any) -> dict[str, list[Any]]:
    """Measure definitions of any shape: modality- and exam-level measures that overlap, so
    that rows fall in one, several or no measures (up to the 64 a run can count)."""
    n = draw(st.integers(1, 64))
    table: dict[str, list[Any]] = {"measure": [], "kind": [], "modality": [], "exam_code": []}
    for i in range(n):
        by_exam = draw(st.booleans())
        modalities = draw(st.lists(st.sampled_from(DID_MODALITIES), min_size=1, max_size=2))
        for modality in dict.fromkeys(modalities):
            exams = draw(st.lists(st.sampled_from(EXAMS), min_size=1, max_size=3))
            for exam in dict.fromkeys(exams) if by_exam else [None]:
                table["measure"].append(f"M{i}")
                table["kind"].append("edoc" if by_exam else "modality")
                table["modality"].append(modality)
                table["exam_code"].append(exam)
    return table


@given(extracts(), measure_tables())
def test_any_measure_definitions_equal_reference(
    data: tuple[list[pa.RecordBatch], pa.Schema, bool], measures: dict[str, list[Any]]
) -> None:
    batches, schema, use_age = data
    lookups = make_lookups(measures)
    cube = didcore.aggregate(pa.RecordBatchReader.from_batches(schema, batches), lookups)
    rows = [r for b in batches for r in b.to_pylist()]
    assert_equal_to_reference(cube, aggregate_reference(rows, lookups, use_age=use_age))


@given(extracts(), st.integers(1, 3))
def test_cubes_add_like_their_union(
    data: tuple[list[pa.RecordBatch], pa.Schema, bool], n_threads: int
) -> None:
    batches, schema, _ = data
    whole = didcore.aggregate(
        pa.RecordBatchReader.from_batches(schema, batches), LOOKUPS, n_threads=n_threads
    )
    parts = [didcore.aggregate(pa.Table.from_batches([b], schema), LOOKUPS) for b in batches]
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    assert total == whole


def _big_table(n: int, seed: int = 1) -> pa.Table:
    """A larger random extract (vectorised), to exercise the multi-threaded path."""
    rng = np.random.default_rng(seed)

    def pick(values: list[Any]) -> pa.Array:
        return pa.array(np.asarray(values, object)[rng.choice(len(values), n)])

    practices = [*PRACTICES, *OTHER, "X00000", None, " a81001 "]
    lsoas = [*LSOA_ICB, "E01000005", None, "e01000002 "]
    return pa.table(
        {
            "provider_code": pick(["RM3", "RWF", None, "nt9"]),
            "gp_practice_code": pick(practices),
            "lsoa11": pick(lsoas),
            "sex": pick(["1", "2", "9", None]),
            "age": pa.array(rng.integers(-2, 135, n)),
            "test_date": pa.array([dt.date(2023, 6, 1)] * n),
            "modality": pick([*DID_MODALITIES, None, "plain radiography"]),
            "exam_code": pick([*EXAMS, None]),
        }
    )


def test_large_multithreaded_batches_equal_reference(tmp_path: Any) -> None:
    table = _big_table(200_000)
    path = tmp_path / "extract.parquet"
    pq.write_table(table, path, row_group_size=70_000)
    cube = didcore.aggregate(path, LOOKUPS, n_threads=2)
    ref = aggregate_reference(table.to_pylist(), LOOKUPS)
    assert_equal_to_reference(cube, ref)
    # the same data from CSV (the plain-string path) and from an in-memory table
    csv_path = tmp_path / "extract.csv"
    import pyarrow.csv as pacsv

    pacsv.write_csv(table.slice(0, 50_000), csv_path)
    from_csv = didcore.aggregate(csv_path, LOOKUPS)
    assert_equal_to_reference(
        from_csv, aggregate_reference(table.slice(0, 50_000).to_pylist(), LOOKUPS)
    )


def test_zero_rows_and_empty_batches() -> None:
    schema = pa.schema(
        [(c, pa.string()) for c in ["provider_code", "gp_practice_code", "lsoa11", "sex"]]
        + [("age", pa.int64()), ("modality", pa.string()), ("exam_code", pa.string())]
    )
    empty = pa.Table.from_batches([], schema)
    cube = didcore.aggregate(empty, LOOKUPS)
    assert cube.counts.sum() == 0
    assert cube.exclusions["rows_read"] == 0
    assert cube.counts.shape == (3, 2, 19, 5, len(LOOKUPS.measures))


def test_codes_no_row_uses_are_not_reported() -> None:
    """A sliced table keeps its whole dictionaries: providers only in the dictionary (and the
    '(missing)' provider of an unused null entry) get no row in the quality tables."""
    table = _big_table(1_000).slice(0, 10)
    provider = pa.DictionaryArray.from_arrays(
        pa.array([0] * 10, pa.int32()), pa.array(["RM3", "UNUSED", None])
    )
    table = table.set_column(
        table.schema.get_field_index("provider_code"), "provider_code", provider
    )
    cube = didcore.aggregate(table, LOOKUPS)
    assert cube.provider_quality.column("provider_code").to_pylist() == ["RM3"]
    assert set(cube.provider_icb.column("provider_code").to_pylist()) == {"RM3"}
    assert_equal_to_reference(cube, aggregate_reference(table.to_pylist(), LOOKUPS))


def test_polars_and_duckdb_sources_give_the_same_cube() -> None:
    pl = pytest.importorskip("polars")
    duckdb = pytest.importorskip("duckdb")
    table = _big_table(5_000, seed=3)
    expected = didcore.aggregate(table, LOOKUPS)
    assert didcore.aggregate(pl.from_arrow(table), LOOKUPS) == expected
    con = duckdb.connect()
    con.register("t", table)
    assert didcore.aggregate(con.sql("select * from t"), LOOKUPS) == expected


def test_a_lazy_query_without_the_columns_is_refused_before_it_runs() -> None:
    # LazyFrames are streamed (tests/test_interop.py); their schema is checked first
    pl = pytest.importorskip("polars")
    with pytest.raises(didcore.errors.MissingColumnError, match=r"no column 'provider_code'"):
        didcore.aggregate(pl.DataFrame({"a": [1]}).lazy(), LOOKUPS)


def test_to_arrow_round_trips_through_from_counts() -> None:
    cube = didcore.aggregate(_big_table(3_000, seed=5), LOOKUPS)
    long = cube.to_arrow()
    assert long.column_names == ["icb_code", "sex", "age_band", "imd_quintile", "measure", "count"]
    again = Cube.from_counts(
        long, icb_codes=cube.icb_codes, measures=cube.measures, measure_kinds=cube.measure_kinds
    )
    assert np.array_equal(again.counts, cube.counts)


def test_custom_column_names() -> None:
    table = _big_table(1_000, seed=7)
    renamed = table.rename_columns([f"x_{c}" for c in table.column_names])
    cols = Columns(**{f: f"x_{getattr(Columns(), f)}" for f in Columns.__dataclass_fields__})
    assert didcore.aggregate(renamed, LOOKUPS, columns=cols) == didcore.aggregate(table, LOOKUPS)


def test_ages_of_90_and_over_are_one_band_however_old() -> None:
    """SPEC section 2 bands ages 90 and over as 90+ and names no upper limit; max_age makes
    ages above it missing for those who want implausible ages out."""
    ages = [0, 4, 5, 89, 90, 130, 131, 150, 2**40, -1, None]
    n = len(ages)
    table = pa.table(
        {
            "provider_code": ["RM3"] * n,
            "gp_practice_code": [next(iter(PRACTICES))] * n,
            "lsoa11": [next(iter(LSOA_IMD))] * n,
            "sex": ["1"] * n,
            "age": pa.array(ages, pa.int64()),
            "modality": ["Plain Radiography"] * n,
            "exam_code": ["XCHES"] * n,
        }
    )
    cube = didcore.aggregate(table, LOOKUPS)
    assert_equal_to_reference(cube, aggregate_reference(table.to_pylist(), LOOKUPS))
    assert cube.exclusions["no_age"] == 2  # -1 and null
    x_ray = list(LOOKUPS.measures).index("X-ray")
    by_band = cube.counts[..., x_ray].sum(axis=(0, 1, 3))
    assert by_band[[0, 1, 17, 18]].tolist() == [2, 1, 1, 5]
    capped = didcore.aggregate(table, LOOKUPS, max_age=130)
    assert capped.exclusions["no_age"] == 5
    assert capped.counts[..., x_ray].sum(axis=(0, 1, 3))[18] == 2
    assert_equal_to_reference(capped, aggregate_reference(table.to_pylist(), LOOKUPS, max_age=130))


def test_codes_padded_with_unicode_white_space_are_trimmed() -> None:
    """Spreadsheets leave no-break spaces around codes: trimmed like any white space (as
    Python's str.strip does), in every code column and sex; a zero-width space is not white
    space, so a code holding one stays unrecognised."""
    clean = pa.table(
        {
            "provider_code": ["RM3"] * 2,
            "gp_practice_code": ["A81001", "A81002"],
            "lsoa11": ["E01000001"] * 2,
            "sex": ["1", "2"],
            "age": [40, 50],
            "modality": ["Plain Radiography"] * 2,
            "exam_code": ["XCHES"] * 2,
        }
    )
    padded = pa.table(
        {
            "provider_code": ["RM3\xa0"] * 2,
            "gp_practice_code": ["\xa0A81001", "A81002\u3000"],
            "lsoa11": ["E01000001\u2003"] * 2,
            "sex": ["\xa01", "2\x85"],
            "age": [40, 50],
            "modality": ["Plain Radiography\xa0"] * 2,
            "exam_code": ["\u2003XCHES"] * 2,
        }
    )
    assert didcore.aggregate(padded, LOOKUPS) == didcore.aggregate(clean, LOOKUPS)
    zero_width = padded.set_column(1, "gp_practice_code", pa.array(["A81001\u200b"] * 2))
    cube = didcore.aggregate(zero_width, LOOKUPS)
    assert cube.icb_source["gp_practice"] == 0
    assert_equal_to_reference(cube, aggregate_reference(zero_width.to_pylist(), LOOKUPS))
