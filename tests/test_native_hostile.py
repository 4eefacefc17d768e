"""Hostile inputs at the native core's edge (issue 12): corrupt dictionary indices, text
ages Arrow would read as hexadecimal, ages wider than the core's int32 against a huge
``max_age``, a provider column with a code per row, and the mapping of the core's errors.

The contract: a result equal to the pure-Python reference (conservation included), or an
``InputError`` subclass naming the column and row; never another exception, never a
silently different count.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import didcore
from didcore import errors
from didcore._arrow_compat import integer_dtype
from didcore.classify import ClassifiedBatch
from didcore.cube import MAX_PROVIDERS, OTHER_PROVIDERS
from didcore.io import Columns
from didcore.reference.cube import aggregate_reference
from test_cube import LOOKUPS, _big_table, assert_equal_to_reference

INDEX_TYPES = [
    pa.int8(),
    pa.int16(),
    pa.int32(),
    pa.int64(),
    pa.uint8(),
    pa.uint16(),
    pa.uint32(),
    pa.uint64(),
]
# (column, position in _big_table): the code columns and the age, as dictionaries
DICTIONARY_COLUMNS = ["provider_code", "gp_practice_code", "lsoa11", "sex", "modality", "age"]


def _with_bad_index(
    table: pa.Table, name: str, index_type: pa.DataType, row: int, bad: int
) -> pa.Table:
    """``table`` with column ``name`` dictionary-encoded with ``index_type`` indices, row
    ``row`` pointing to entry ``bad`` (outside the dictionary), built without Arrow's checks.
    """
    col = table.column(name).combine_chunks().dictionary_encode()
    nulls = col.indices.is_null().to_numpy(zero_copy_only=False)
    idx = col.indices.fill_null(0).to_numpy().astype(object)
    idx[row] = bad
    nulls[row] = False
    indices = pa.array(list(idx), index_type, mask=nulls)
    arr = pa.DictionaryArray.from_arrays(indices, col.dictionary, safe=False)
    return table.set_column(table.schema.get_field_index(name), name, arr)


def _bad_values(index_type: pa.DataType, dict_len: int) -> list[int]:
    """Indices outside a dictionary of ``dict_len`` that ``index_type`` can hold."""
    info = np.iinfo(integer_dtype(index_type))  # (to_pandas_dtype needs pandas)
    candidates = (dict_len, int(info.max), -1, int(info.min))
    return [v for v in candidates if info.min <= v <= info.max and not 0 <= v < dict_len]


# ------------------------------------------------------------------ 1. dictionary indices


@pytest.mark.parametrize("name", DICTIONARY_COLUMNS)
@pytest.mark.parametrize("index_type", INDEX_TYPES, ids=str)
def test_out_of_range_dictionary_index_is_a_corrupt_input_error(
    name: str, index_type: pa.DataType
) -> None:
    table = _big_table(300)
    dict_len = len(table.column(name).combine_chunks().dictionary_encode().dictionary)
    for bad in _bad_values(index_type, dict_len):
        hostile = _with_bad_index(table, name, index_type, 201, bad)
        with pytest.raises(errors.CorruptInputError) as caught:
            didcore.aggregate(hostile, LOOKUPS, progress=False)
        message = str(caught.value)
        assert f"column {name!r}" in message
        assert "row 202 " in message
        assert f"entry {bad} " in message
        assert f"which has {dict_len} entries" in message


@pytest.mark.parametrize("index_type", [pa.int8(), pa.uint16(), pa.int64()], ids=str)
def test_bad_indices_in_date_dictionaries_are_corrupt_input_errors(index_type: pa.DataType) -> None:
    """Dates as dictionaries: a date of birth (the age derivation) and a test date read for
    the financial year (``by_year``) are checked as the code columns are.
    """
    table = _big_table(300)
    dated = table.drop_columns(["age"]).append_column(
        "date_of_birth", pa.array([None] * 300, pa.date32()).fill_null(0).cast(pa.date32())
    )
    for name, source, kwargs in (
        ("date_of_birth", dated, {}),
        ("test_date", table, {"by_year": True}),
    ):
        hostile = _with_bad_index(source, name, index_type, 50, 9)
        with pytest.raises(errors.CorruptInputError, match=f"'{name}': row 51 .*entry 9 "):
            didcore.aggregate(hostile, LOOKUPS, progress=False, **kwargs)


def test_a_corrupt_parquet_file_pyarrow_reads_is_a_corrupt_input_error(tmp_path: Path) -> None:
    """A Parquet file whose data page points past its dictionary page: pyarrow reads it
    without complaint (as a dictionary with index 3 of 3 entries); didcore refuses it.
    """
    import pyarrow.parquet as pq

    n = 640
    table = _big_table(n).set_column(
        0, "provider_code", pa.array([("RM3", "RWF", "NT9")[i % 3] for i in range(n)])
    )
    path = tmp_path / "extract.parquet"
    pq.write_table(table, path, compression="none", data_page_version="1.0")
    chunk = pq.ParquetFile(path).metadata.row_group(0).column(0)
    raw = bytearray(path.read_bytes())
    start = chunk.data_page_offset
    # indices 0, 1, 2, 0, 1, 2, 0, 1 bit-packed two bits each (the data page's first run)
    at = raw.find(bytes([0x24, 0x49]), start, start + chunk.total_compressed_size)
    assert at > 0
    raw[at] = 0x27  # the first row's index 0 becomes 3
    path.write_bytes(bytes(raw))
    read = pq.ParquetFile(path, read_dictionary=["provider_code"]).read()
    assert read.column("provider_code").chunk(0).indices[0].as_py() == 3  # read as it is
    with pytest.raises(errors.CorruptInputError, match=r"'provider_code': row 1 .*entry 3 ") as e:
        didcore.aggregate(path, LOOKUPS, progress=False)
    assert str(e.value).startswith(f"{path}: ")  # the file is named
    # the command line: exit status 2, one line
    done = subprocess.run(
        [sys.executable, "-m", "didcore", "cube", str(path), "--out", str(tmp_path / "out"), "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "is corrupt" in done.stderr


def test_a_null_row_may_hold_any_index() -> None:
    """Arrow never reads a null row's index: it is not checked, and the count is right."""
    table = _big_table(300)
    hostile = _with_bad_index(table, "gp_practice_code", pa.int64(), 7, 2**40)
    col = hostile.column("gp_practice_code").combine_chunks()
    mask = np.zeros(len(col), bool)
    mask[7] = True
    nulled = pa.DictionaryArray.from_arrays(
        pa.array(col.indices.to_pylist(), pa.int64(), mask=mask), col.dictionary, safe=False
    )
    hostile = hostile.set_column(1, "gp_practice_code", nulled)
    cube = didcore.aggregate(hostile, LOOKUPS, progress=False)
    rows = hostile.to_pylist()
    assert_equal_to_reference(cube, aggregate_reference(rows, LOOKUPS))


def test_the_error_names_the_extracts_column_and_its_rows_across_batches() -> None:
    """A renamed column is named as the extract names it; the row counts over batches."""
    table = _big_table(3_000).rename_columns(
        ["provider_code", "practice", *_big_table(1).column_names[2:]]
    )
    cols = Columns(gp_practice_code="practice")
    bad = _with_bad_index(table, "practice", pa.int32(), 2_500, 99)
    batches = bad.to_batches(max_chunksize=1_000)
    reader = pa.RecordBatchReader.from_batches(bad.schema, batches)
    expected = r"'practice': row 2501 \(row 501 of batch 3\)"
    with pytest.raises(errors.CorruptInputError, match=expected):
        didcore.aggregate(reader, LOOKUPS, columns=cols, progress=False)


def _core_batch(practice: np.ndarray, n_rows: int) -> ClassifiedBatch:
    """A batch for ``Aggregator.add_batch``: every column valid, a two-entry practice dictionary."""
    zeros = np.zeros(n_rows, np.int32)
    fields = {
        "n_rows": n_rows,
        "provider": (zeros, None, 0),
        "provider_ids": np.zeros(1, np.uint32),
        "provider_null_id": 0,
        "n_providers": 1,
        "practice": (practice, None, 0),
        "practice_class": np.array([0, -2], np.int32),
        "lsoa": (zeros, None, 0),
        "lsoa_icb": np.zeros(1, np.int32),
        "lsoa_imd": np.zeros(1, np.int8),
        "sex_ints": (np.ones(n_rows, np.int32), None, 0),
        "age_years": (np.arange(n_rows, dtype=np.int32) % 100, None, 0),
        "modality": (zeros, None, 0),
        "modality_ids": np.zeros(1, np.int16),
        "exam_ids": np.zeros(1, np.int16),
        "measure_masks": np.ones(1, np.uint64),
        "n_exam": 1,
    }
    return ClassifiedBatch(**fields)


@given(
    sizes=st.lists(st.integers(1, 3_000), min_size=1, max_size=4),
    n_bad_rows=st.integers(1, 70_000),
    position=st.floats(0, 1, exclude_max=True),
    bad=st.one_of(st.integers(2, 2**31 - 1), st.integers(-(2**31), -1)),
    threads=st.integers(1, 3),
)
def test_core_refuses_a_bad_batch_and_keeps_the_counts_before_it(
    sizes: list[int], n_bad_rows: int, position: float, bad: int, threads: int
) -> None:
    """In the core (int32 indices, the zero-copy path): a bad batch is CorruptInputError
    naming its row, and what was counted before it is exactly what a run of those batches
    alone counts, on the one-worker path and the many-worker one (65,536 rows or more).
    """
    from didcore import _didcore

    rng = np.random.default_rng(len(sizes))
    good = [rng.integers(0, 2, n).astype(np.int32) for n in sizes]
    agg = _didcore.Aggregator(1, 1, n_threads=threads, column_names={"gp_practice_code": "gp"})
    clean = _didcore.Aggregator(1, 1, n_threads=threads)
    for practice in good:
        agg.add_batch(_core_batch(practice, len(practice)))
        clean.add_batch(_core_batch(practice, len(practice)))
    hostile = rng.integers(0, 2, n_bad_rows).astype(np.int32)
    at = int(position * n_bad_rows)
    hostile[at] = bad
    with pytest.raises(errors.CorruptInputError) as caught:
        agg.add_batch(_core_batch(hostile, n_bad_rows))
    row = sum(sizes) + at + 1
    assert f"'gp': row {row} (row {at + 1} of batch {len(sizes) + 1})" in str(caught.value)
    assert f"entry {bad} " in str(caught.value)
    got, want = agg.finish(), clean.finish()
    assert got["rows"] == want["rows"] == sum(sizes)
    for key in ("cube", "states", "provider_states", "icb_states", "provider_icb"):
        np.testing.assert_array_equal(got[key], want[key])


@given(
    index_type=st.sampled_from(INDEX_TYPES),
    name=st.sampled_from(DICTIONARY_COLUMNS),
    n_good=st.integers(0, 3),
    data=st.data(),
)
def test_any_index_width_and_position_is_a_corrupt_input_error(
    index_type: pa.DataType, name: str, n_good: int, data: st.DataObject
) -> None:
    batch_rows = 200
    table = _big_table(batch_rows * (n_good + 1), seed=n_good + 2)
    dict_len = len(table.column(name).combine_chunks().dictionary_encode().dictionary)
    info = np.iinfo(integer_dtype(index_type))  # (to_pandas_dtype needs pandas)
    assume(dict_len <= info.max)  # every valid row's index must fit the type
    above = st.integers(dict_len, int(info.max))
    below = st.integers(int(info.min), -1) if info.min < 0 else st.nothing()
    bad = data.draw(st.one_of(above, below))
    row = data.draw(st.integers(batch_rows * n_good, batch_rows * (n_good + 1) - 1))
    hostile = _with_bad_index(table, name, index_type, row, bad)
    reader = pa.RecordBatchReader.from_batches(
        hostile.schema, hostile.to_batches(max_chunksize=batch_rows)
    )
    with pytest.raises(errors.CorruptInputError, match=f"row {row + 1} .*entry {bad} "):
        didcore.aggregate(reader, LOOKUPS, progress=False)


# ------------------------------------------------------------------ 2. hexadecimal ages

AGE_TEXTS = ["16", "40", "0x10", "0X1F", "-0x10", "nan", "inf", " 41 ", "41.0", "+7", "abc", ""]


def _text_age_table(ages: list[str | None]) -> pa.Table:
    table = _big_table(len(ages), seed=3)
    return table.set_column(table.schema.get_field_index("age"), "age", pa.array(ages, pa.string()))


def test_hex_ages_are_unreadable_whatever_the_rest_of_the_batch() -> None:
    """ "0x10" is a missing age, noted by the warning, in a batch of digits (where Arrow's
    cast alone would read 16) and in a batch of other text alike.
    """
    for ages in (["0x10", "16", "40", "7"], ["0x10", " 16", "abc", "7"], ["0x10"]):
        table = _text_age_table(ages)
        with pytest.warns(errors.UnreadableValuesWarning, match="0x10"):
            cube = didcore.aggregate(table, LOOKUPS, progress=False)
        assert_equal_to_reference(cube, aggregate_reference(table.to_pylist(), LOOKUPS))


def test_nan_and_inf_text_ages_are_noted_as_unreadable() -> None:
    table = _text_age_table(["nan", "16", "inf", "40"])
    with pytest.warns(errors.UnreadableValuesWarning, match="2 rows hold"):
        cube = didcore.aggregate(table, LOOKUPS, progress=False)
    assert_equal_to_reference(cube, aggregate_reference(table.to_pylist(), LOOKUPS))


@given(
    ages=st.lists(st.one_of(st.none(), st.sampled_from(AGE_TEXTS)), min_size=1, max_size=40),
    cut=st.integers(1, 39),
)
def test_text_ages_do_not_depend_on_the_batching(ages: list[str | None], cut: int) -> None:
    """The same text ages counted as one batch, as two, and by the reference agree."""
    table = _text_age_table(ages)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", errors.UnreadableValuesWarning)
        whole = didcore.aggregate(table, LOOKUPS, progress=False)
        split = pa.RecordBatchReader.from_batches(
            table.schema, table.to_batches(max_chunksize=min(cut, len(ages)))
        )
        parts = didcore.aggregate(split, LOOKUPS, progress=False)
    ref = aggregate_reference(table.to_pylist(), LOOKUPS)
    assert_equal_to_reference(whole, ref)
    assert_equal_to_reference(parts, ref)


# ------------------------------------------------------------------ 3. max_age at the extremes

HUGE_AGES = [89, 90, 130, 2**31 - 2, 2**31 - 1, 2**31, 5 * 10**9, 2**40, 2**62, 2**63 - 1]
MAX_AGES = [None, 0, 130, 2**31 - 2, 2**31 - 1, 2**31, 2**40, 2**62, 2**63 - 1]


@pytest.mark.parametrize("max_age", MAX_AGES)
@pytest.mark.parametrize("kind", ["int64", "uint64", "float64", "text", "decimal"])
def test_max_age_is_exact_for_ages_of_any_width(max_age: int | None, kind: str) -> None:
    """With ``max_age`` M an age above M is missing however wide; with none, every age
    from 90 up is 90+ (the huge ones too).
    """
    ages: list[Any] = list(HUGE_AGES)
    if kind == "uint64":
        ages.append(2**64 - 1)
    if kind == "float64":
        ages = [float(a) for a in ages if float(a) == a] + [1e19, 1e300]
    if kind == "text":
        ages = [str(a) for a in ages] + [str(10**25)]
    if kind == "decimal":
        import decimal

        ages = [decimal.Decimal(a) for a in ages if a < 2**53]
    table = _big_table(len(ages), seed=4)
    arrow_type = {"text": pa.string(), "decimal": pa.decimal128(38, 0)}.get(kind, kind)
    table = table.set_column(table.schema.get_field_index("age"), "age", pa.array(ages, arrow_type))
    cube = didcore.aggregate(table, LOOKUPS, max_age=max_age, progress=False)
    ref = aggregate_reference(table.to_pylist(), LOOKUPS, max_age=max_age)
    assert_equal_to_reference(cube, ref)


@pytest.mark.parametrize("max_age", [-1, 2**63, 2**64, 1.5, True, "90", float("nan")])
def test_max_age_out_of_range_is_an_input_error(max_age: Any) -> None:
    with pytest.raises(errors.InputError, match="max_age"):
        didcore.aggregate(_big_table(10), LOOKUPS, max_age=max_age, progress=False)


def test_core_refuses_a_negative_max_age_as_input() -> None:
    from didcore import _didcore

    with pytest.raises(errors.InputError, match="max_age is -5"):
        _didcore.Aggregator(1, 1, max_age=-5)


# ------------------------------------------------------------------ 4. many provider codes


def _codes_table(n_rows: int, n_codes: int) -> pa.Table:
    """``_big_table(n_rows)`` with ``n_codes`` distinct provider codes (and some nulls)."""
    rng = np.random.default_rng(5)
    table = _big_table(n_rows)
    codes = [f"P{i:06d}" for i in rng.permutation(n_rows) % n_codes]
    mask = rng.random(n_rows) < 0.01
    return table.set_column(0, "provider_code", pa.array(codes, pa.string(), mask=mask))


def _assert_equal_with_bucket(cube: didcore.Cube, table: pa.Table) -> None:
    """``cube`` equals the reference once the codes ``cube`` folded are one provider."""
    from collections import Counter

    kept = set(cube.provider_codes)
    ref = aggregate_reference(table.to_pylist(), LOOKUPS)
    provider: dict[str, Counter[str]] = {}
    for code, counts in ref.provider.items():
        provider.setdefault(code if code in kept else OTHER_PROVIDERS, Counter()).update(counts)
    pairs: Counter[tuple[str, str | None]] = Counter()
    for (code, icb), n in ref.provider_icb.items():
        pairs[(code if code in kept else OTHER_PROVIDERS, icb)] += n
    ref.provider, ref.provider_icb = provider, pairs
    assert_equal_to_reference(cube, ref)


@pytest.mark.parametrize("source", ["table", "parquet", "csv"])
def test_provider_codes_past_max_providers_share_one_row(source: str, tmp_path: Path) -> None:
    table = _codes_table(20_000, 3_000)
    src: Any = table
    if source == "parquet":
        import pyarrow.parquet as pq

        src = tmp_path / "extract.parquet"
        pq.write_table(table, src, row_group_size=7_000)
    elif source == "csv":
        import pyarrow.csv as pacsv

        src = tmp_path / "extract.csv"
        pacsv.write_csv(table, src)
    with pytest.warns(errors.TooManyProvidersWarning, match=r"more than 1,000 distinct codes"):
        cube = didcore.aggregate(src, LOOKUPS, max_providers=1_000, progress=False)
    assert len(cube.provider_codes) == 1_002  # with "(missing)" and "(other providers)"
    assert OTHER_PROVIDERS in cube.provider_codes
    assert "(missing)" in cube.provider_codes  # never folded
    _assert_equal_with_bucket(cube, table)


def test_no_warning_and_no_bucket_within_max_providers() -> None:
    table = _codes_table(5_000, 300)
    with warnings.catch_warnings():
        warnings.simplefilter("error", errors.TooManyProvidersWarning)
        cube = didcore.aggregate(table, LOOKUPS, progress=False)
    assert OTHER_PROVIDERS not in cube.provider_codes
    _assert_equal_with_bucket(cube, table)


@pytest.mark.parametrize("bad", [0, -1, 2**31, 1.5, True, "10", None])
def test_max_providers_out_of_range_is_an_input_error(bad: Any) -> None:
    with pytest.raises(errors.InputError, match="max_providers"):
        didcore.aggregate(_big_table(10), LOOKUPS, max_providers=bad, progress=False)


#: Peak resident memory allowed for counting 200,000 rows holding 100,000 distinct provider
#: codes (the interpreter, numpy, pyarrow and the table included: about 160 MB of it).
#: Before the bound it took 3.1 GB.
RSS_LIMIT_MB = 400


@pytest.mark.parametrize("source", ["table", "parquet"])
def test_memory_is_bounded_for_a_code_per_row(source: str, tmp_path: Path) -> None:
    """10^5 distinct provider codes in 200,000 rows: peak RSS of a fresh process under
    RSS_LIMIT_MB, with the default max_providers; the counts equal the reference with the
    bucket applied.
    """
    script = textwrap.dedent(
        f"""
        import json, sys, warnings
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import pyarrow.parquet as pq
        import didcore
        from test_native_hostile import _codes_table
        from test_cube import LOOKUPS
        table = _codes_table(200_000, 100_000)
        src = table
        if {source!r} == "parquet":
            src = {str(tmp_path / "codes.parquet")!r}
            pq.write_table(table, src, row_group_size=70_000)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cube = didcore.aggregate(src, LOOKUPS, progress=False)
        # VmHWM, the high-water mark of this process's own memory: ru_maxrss would not do, as
        # Linux carries the parent's (pytest's, hundreds of MB late in a run) across fork+exec
        with open("/proc/self/status") as status:
            peak = next(int(l.split()[1]) for l in status if l.startswith("VmHWM:")) / 1024
        print(json.dumps({{"peak_mb": peak, "providers": len(cube.provider_codes),
                           "warned": [type(w.message).__name__ for w in caught]}}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["peak_mb"] < RSS_LIMIT_MB, result
    assert result["providers"] == MAX_PROVIDERS + 2  # "(missing)" and the bucket are rows
    assert "TooManyProvidersWarning" in result["warned"]
    table = _codes_table(200_000, 100_000)
    with pytest.warns(errors.TooManyProvidersWarning):
        cube = didcore.aggregate(table, LOOKUPS, progress=False)
    _assert_equal_with_bucket(cube, table)


# ------------------------------------------------------------------ 5. the core's errors


def test_core_problems_are_internal_errors_never_panic_exceptions() -> None:
    """A caller's bug (inconsistent tables) is InternalError, raised as an Exception, not
    pyo3's PanicException (a BaseException a pipeline's ``except Exception`` would miss).
    """
    from didcore import _didcore

    agg = _didcore.Aggregator(1, 1)
    # an ICB that does not exist
    batch = replace(_core_batch(np.zeros(4, np.int32), 4), practice_class=np.array([5], np.int32))
    with pytest.raises(errors.InternalError):
        agg.add_batch(batch)
    batch = replace(_core_batch(np.zeros(4, np.int32), 4), n_rows=10)  # more rows than columns
    with pytest.raises(errors.InternalError):
        agg.add_batch(batch)
    encoder = _didcore.TextEncoder()
    bad_offsets = (np.array([0, 50], np.int32), np.zeros(4, np.uint8), None, 0)
    with pytest.raises(errors.DidcoreError):
        encoder.encode(bad_offsets)
