"""Parquet decoded by the core (didcore.parquet_native) against the pyarrow path and the
pure-Python reference: identical cubes, exclusions and quality tables, over files written by
pyarrow with every page version, compression, dictionary setting, page and row-group size, by
DuckDB, polars, fastparquet, arrow-rs and ClickHouse, and with the DELTA encodings (decoded
by the core) and BYTE_STREAM_SPLIT (handed to pyarrow).
Corrupt pages and indices past their dictionary are CorruptInputError naming file, row group
and column."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import didcore
from didcore import errors, parquet_native
from didcore.reference.cube import aggregate_reference
from test_cube import LOOKUPS, _big_table, assert_equal_to_reference, extracts
from test_cubefile import _dated, assert_same

COMPRESSIONS = ["NONE", "SNAPPY", "GZIP", "BROTLI", "ZSTD", "LZ4"]


def _aggregate(source: Any, mode: str, **kw: Any) -> Any:
    old = os.environ.get("DIDCORE_PARQUET")
    os.environ["DIDCORE_PARQUET"] = mode
    try:
        return didcore.aggregate(source, LOOKUPS, progress=False, **kw)
    finally:
        if old is None:
            del os.environ["DIDCORE_PARQUET"]
        else:
            os.environ["DIDCORE_PARQUET"] = old


def _both(path: Path, **kw: Any) -> tuple[Any, Any, parquet_native.ReadCounts]:
    """The cube read by the core and by pyarrow, and which path the core's read took."""
    parquet_native.READS.reset()
    native = _aggregate(path, "native", **kw)
    now = parquet_native.READS
    reads = parquet_native.ReadCounts(now.native, now.pyarrow, now.reasons.copy())
    return native, _aggregate(path, "pyarrow", **kw), reads


@st.composite
def writer_options(draw: Any) -> dict[str, Any]:
    """Options of ``pq.write_table`` an extract may have been written with."""
    return {
        "version": draw(st.sampled_from(["1.0", "2.4", "2.6"])),
        "data_page_version": draw(st.sampled_from(["1.0", "2.0"])),
        "compression": draw(st.sampled_from(COMPRESSIONS)),
        "use_dictionary": draw(st.booleans()),
        # tiny pages: many pages a chunk, pages split across batches
        "data_page_size": draw(st.sampled_from([None, 1, 64, 1024])),
        # a tiny dictionary limit: Arrow switches the chunk to PLAIN pages part-way
        "dictionary_pagesize_limit": draw(st.sampled_from([None, 1, 40])),
        "row_group_size": draw(st.integers(1, 150)),
        "write_statistics": draw(st.booleans()),
    }


@settings(
    max_examples=int(os.environ.get("DIDCORE_NATIVE_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    data=extracts(),
    options=writer_options(),
    batch_rows=st.sampled_from([1 << 20, 7, 64]),
    required=st.booleans(),
)
def test_native_equals_pyarrow_and_reference(
    data: tuple[list[pa.RecordBatch], pa.Schema, bool],
    options: dict[str, Any],
    batch_rows: int,
    required: bool,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batches, schema, use_age = data
    table = pa.Table.from_batches(batches, schema)
    for i, f in enumerate(schema):  # Parquet writers take no null dictionary entries
        if pa.types.is_dictionary(f.type):
            table = table.set_column(i, f.name, table.column(i).cast(f.type.value_type))
    if required:  # columns with no nulls written as REQUIRED (no definition levels)
        fields = [f.with_nullable(table.column(f.name).null_count > 0) for f in table.schema]
        table = table.cast(pa.schema(fields))
    path = tmp_path_factory.mktemp("native") / "extract.parquet"
    pq.write_table(table, path, **{k: v for k, v in options.items() if v is not None})
    from didcore import io

    monkeypatch.setattr(io, "_BATCH_ROWS", batch_rows)
    native, arrow, reads = _both(path)
    assert_same(native, arrow)
    rows = [r for b in batches for r in b.to_pylist()]
    assert_equal_to_reference(native, aggregate_reference(rows, LOOKUPS, use_age=use_age))
    # the core read every row group whose columns it decodes
    text_age = use_age and pa.types.is_string(schema.field("age").type)
    if not text_age and len(table):
        assert reads.pyarrow == 0, reads.reasons


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("page_version", ["1.0", "2.0"])
def test_every_compression_and_page_version_by_year(
    tmp_path: Path, compression: str, page_version: str
) -> None:
    table = _dated(20_000, seed=7)
    path = tmp_path / "e.parquet"
    pq.write_table(
        table, path, compression=compression, data_page_version=page_version, row_group_size=6_000
    )
    native, arrow, reads = _both(path, by_year=True)
    assert list(native) == list(arrow)
    for year in arrow:
        assert_same(native[year], arrow[year])
    assert native.exclusions == arrow.exclusions
    assert reads.native == 4 and reads.pyarrow == 0


def _written_by(tmp_path: Path, table: pa.Table, writer: str) -> Path:
    path = tmp_path / f"{writer}.parquet"
    if writer == "duckdb":
        duckdb = pytest.importorskip("duckdb")
        con = duckdb.connect()
        con.register("t", table)
        con.execute(f"COPY t TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 4096)")
    elif writer == "duckdb-v2":
        duckdb = pytest.importorskip("duckdb")
        con = duckdb.connect()
        con.register("t", table)
        try:
            con.execute(
                f"COPY t TO '{path}' (FORMAT parquet, PARQUET_VERSION v2, ROW_GROUP_SIZE 4096)"
            )
        except duckdb.Error as exc:  # older DuckDB: no v2 writer
            pytest.skip(f"this DuckDB writes no Parquet v2: {exc}")
    elif writer == "polars":
        pl = pytest.importorskip("polars")
        pl.from_arrow(table).write_parquet(path, row_group_size=5_000)
    elif writer == "pyarrow-delta":
        text = ["provider_code", "gp_practice_code", "lsoa11", "modality", "exam_code", "sex"]
        pq.write_table(
            table,
            path,
            use_dictionary=False,
            column_encoding={
                **{c: "DELTA_BYTE_ARRAY" for c in text[:3]},
                **{c: "DELTA_LENGTH_BYTE_ARRAY" for c in text[3:] if c in table.column_names},
                "test_date": "DELTA_BINARY_PACKED",
            },
            row_group_size=5_000,
        )
    elif writer == "pyarrow-split":
        pq.write_table(
            table,
            path,
            use_dictionary=["provider_code", "gp_practice_code", "lsoa11", "modality"],
            column_encoding={"test_date": "BYTE_STREAM_SPLIT"},
            row_group_size=5_000,
        )
    elif writer == "pyarrow-plain":
        pq.write_table(table, path, use_dictionary=False, row_group_size=5_000)
    return path


@pytest.mark.parametrize(
    "writer",
    ["duckdb", "duckdb-v2", "polars", "pyarrow-delta", "pyarrow-split", "pyarrow-plain"],
)
def test_other_writers(tmp_path: Path, writer: str) -> None:
    table = _dated(12_000, seed=3)
    path = _written_by(tmp_path, table, writer)
    native, arrow, reads = _both(path, by_year=True)
    for year in arrow:
        assert_same(native[year], arrow[year])
    assert native.exclusions == arrow.exclusions
    rows = table.to_pylist()
    total = native.total
    ref = aggregate_reference(rows, LOOKUPS, use_age=False)
    assert total.exclusions["rows_read"] == ref.exclusions["rows_read"] == len(rows)
    if writer == "pyarrow-split":
        assert reads.pyarrow > 0 and reads.native == 0, "BYTE_STREAM_SPLIT goes through pyarrow"
        assert any("encoding" in r for r in reads.reasons)
    elif writer in ("duckdb", "polars", "pyarrow-plain", "pyarrow-delta"):
        assert reads.pyarrow == 0 and reads.native > 0, reads.reasons


TEXT = ["provider_code", "gp_practice_code", "lsoa11", "modality", "exam_code", "sex"]


def _cast(table: pa.Table, names: list[str], to: Any) -> pa.Table:
    for name in names:
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, table.column(name).cast(to))
    return table


#: More of what writers do, each counted by the core as pyarrow counts it: other string and
#: number types (the stored Arrow schema says so), a page index, content-defined chunking
#: (pages of uneven size), no stored schema, sorted rows, DuckDB's options, timestamps as
#: test dates (what pandas writes); and INT96 timestamps, which go through pyarrow.
MORE_WRITERS: dict[str, Any] = {
    "large_string": lambda t, p: pq.write_table(_cast(t, TEXT, pa.large_string()), p),
    "string_view": lambda t, p: pq.write_table(_cast(t, TEXT, pa.string_view()), p),
    "page_index": lambda t, p: pq.write_table(
        t, p, write_page_index=True, data_page_size=512, row_group_size=9_000
    ),
    "content_defined_chunking": lambda t, p: pq.write_table(
        t, p, use_content_defined_chunking=True, row_group_size=20_000
    ),
    "no_stored_schema": lambda t, p: pq.write_table(
        t, p, store_schema=False, data_page_version="2.0", row_group_size=8_000
    ),
    "int64_age": lambda t, p: pq.write_table(_cast(t, ["age"], pa.int64()), p),
    "int16_age": lambda t, p: pq.write_table(_cast(t, ["age"], pa.int16()), p),
    "float_age": lambda t, p: pq.write_table(_cast(t, ["age"], pa.float64()), p),
    "sorted": lambda t, p: pq.write_table(
        t.sort_by("lsoa11"), p, row_group_size=7_000, sorting_columns=[pq.SortingColumn(2)]
    ),
    "timestamp_ms_dates": lambda t, p: pq.write_table(
        _cast(t, ["test_date"], pa.timestamp("ms")), p, row_group_size=10_000
    ),
    "timestamp_ns_utc_dates": lambda t, p: pq.write_table(
        _cast(t, ["test_date"], pa.timestamp("ns", "UTC")), p, version="2.6"
    ),
    "timestamp_ns_london_dates_as_us": lambda t, p: pq.write_table(
        _cast(t, ["test_date"], pa.timestamp("ns", "Europe/London")), p, version="2.4"
    ),
    "timestamp_s_dates_no_schema": lambda t, p: pq.write_table(
        _cast(t, ["test_date"], pa.timestamp("s")), p, store_schema=False
    ),
    "int96_dates": lambda t, p: pq.write_table(
        _cast(t, ["test_date"], pa.timestamp("ns")), p, use_deprecated_int96_timestamps=True
    ),
    "pandas_datetime64_dates": lambda t, p: _pandas_dates(t).to_parquet(p, row_group_size=9_000),
}


def _pandas_dates(table: pa.Table) -> Any:
    """The table as pandas writes an extract whose dates are ``datetime64[ns]``."""
    pd = pytest.importorskip("pandas")
    df = table.to_pandas()
    df["test_date"] = pd.to_datetime(df["test_date"])
    return df


@pytest.mark.parametrize("writer", sorted(MORE_WRITERS))
def test_more_writer_options(tmp_path: Path, writer: str) -> None:
    table = _dated(25_000, seed=21)
    path = tmp_path / f"{writer}.parquet"
    try:
        MORE_WRITERS[writer](table, path)
    except (TypeError, AttributeError, NotImplementedError, pa.ArrowNotImplementedError) as exc:
        pytest.skip(f"this pyarrow cannot write it: {exc}")
    native, arrow, reads = _both(path, by_year=True)
    for year in arrow:
        assert_same(native[year], arrow[year])
    assert native.exclusions == arrow.exclusions
    if writer == "int96_dates":
        assert reads.native == 0 and any("timestamp" in r for r in reads.reasons)
    else:
        assert reads.pyarrow == 0 and reads.native > 0, reads.reasons


#: fastparquet (pure Python and numba-free, its own Thrift and page writer): plain text,
#: pandas categoricals (its dictionary pages), hive folders of part files with a ``_metadata``
#: file, tiny row groups, an index column, statistics, and INT96 timestamps (to pyarrow).
FASTPARQUET: dict[str, tuple[bool, dict[str, Any]]] = {
    "plain_text": (False, {}),
    "snappy_row_groups": (False, {"compression": "SNAPPY", "row_group_offsets": 3_000}),
    "zstd_stats": (False, {"compression": "ZSTD", "stats": True, "row_group_offsets": 5_000}),
    "gzip_utf8": (False, {"compression": "GZIP", "object_encoding": "utf8"}),
    "has_nulls": (False, {"has_nulls": True}),
    "categories": (True, {"compression": "ZSTD", "row_group_offsets": 2_500}),
    "categories_tiny_row_groups": (True, {"row_group_offsets": 97}),
    "hive_folder": (False, {"file_scheme": "hive", "row_group_offsets": 3_000}),
    "index_column": (False, {"write_index": True}),
    "int96_dates": (False, {"times": "int96"}),
}


@pytest.mark.parametrize("variant", sorted(FASTPARQUET))
def test_fastparquet_files(tmp_path: Path, variant: str) -> None:
    fastparquet = pytest.importorskip("fastparquet")
    categorical, options = FASTPARQUET[variant]
    df = _pandas_dates(_dated(12_000, seed=5))
    if categorical:
        for name in TEXT:
            df[name] = df[name].astype("category")
    if variant == "index_column":
        df = df.set_index(df["provider_code"].rename("row_label"))
    path = tmp_path / f"{variant}.parquet"
    fastparquet.write(str(path), df, **options)
    native, arrow, reads = _both(path, by_year=True)
    for year in arrow:
        assert_same(native[year], arrow[year])
    assert native.exclusions == arrow.exclusions
    assert native.total.exclusions["rows_read"] == 12_000
    if variant == "int96_dates":
        assert reads.native == 0 and any("timestamp" in r for r in reads.reasons)
    else:
        assert reads.pyarrow == 0 and reads.native > 0, reads.reasons


#: arrow-rs, the Rust Parquet writer (through arro3-io; DataFusion, delta-rs and others write
#: with it): format v2, no dictionaries, DELTA text, tiny pages, a dictionary limit, bloom
#: filters, every codec it has, and no stored Arrow schema.
ARROW_RS: dict[str, dict[str, Any]] = {
    "default": {},
    "v2_zstd_row_groups": {
        "writer_version": "parquet_2_0",
        "compression": "zstd(3)",
        "max_row_group_size": 2_500,
    },
    "no_dictionary_snappy": {"dictionary_enabled": False, "compression": "snappy"},
    "delta_text_v2": {
        "dictionary_enabled": False,
        "writer_version": "parquet_2_0",
        "column_encoding": {
            "lsoa11": "delta_byte_array",
            "gp_practice_code": "delta_length_byte_array",
        },
    },
    "tiny_pages_lz4": {
        "data_page_row_count_limit": 64,
        "write_batch_size": 32,
        "compression": "lz4_raw",
    },
    "dictionary_limit_gzip": {"dictionary_page_size_limit": 64, "compression": "gzip(6)"},
    "bloom_filters_brotli": {"bloom_filter_enabled": True, "compression": "brotli(4)"},
    "no_arrow_schema": {"skip_arrow_metadata": True},
}


@pytest.mark.parametrize("variant", sorted(ARROW_RS))
def test_files_written_by_arrow_rs(tmp_path: Path, variant: str) -> None:
    arro3_io = pytest.importorskip("arro3.io")
    table = _dated(12_000, seed=5)
    path = tmp_path / f"{variant}.parquet"
    arro3_io.write_parquet(table, str(path), **ARROW_RS[variant])
    native, arrow, reads = _both(path, by_year=True)
    for year in arrow:
        assert_same(native[year], arrow[year])
    assert native.exclusions == arrow.exclusions
    assert native.total.exclusions["rows_read"] == 12_000
    assert reads.pyarrow == 0 and reads.native > 0, reads.reasons


CLICKHOUSE = Path(__file__).parent / "data" / "clickhouse"


@pytest.mark.parametrize("name", sorted(p.name for p in CLICKHOUSE.glob("clickhouse-*.parquet")))
def test_files_written_by_clickhouse(name: str) -> None:
    """ClickHouse's own Parquet encoder (files kept in tests/data/clickhouse, README there):
    each counted by the core as pyarrow counts it, and as both count the file it was written
    from.
    """
    source = _aggregate(CLICKHOUSE / "source.parquet", "pyarrow", by_year=True)
    native, arrow, reads = _both(CLICKHOUSE / name, by_year=True)
    assert set(native) == set(arrow) == set(source)
    for year in source:
        assert_same(native[year], arrow[year])
        assert_same(native[year], source[year])
    assert native.exclusions == arrow.exclusions == source.exclusions
    assert reads.pyarrow == 0 and reads.native > 0, reads.reasons


@pytest.mark.parametrize(
    "options",
    [
        "COMPRESSION uncompressed, ROW_GROUP_SIZE 2048",
        "COMPRESSION gzip, ROW_GROUP_SIZE 5000, PARQUET_VERSION V2",
        "COMPRESSION brotli, DICTIONARY_SIZE_LIMIT 100",
        "COMPRESSION zstd, COMPRESSION_LEVEL 19, ROW_GROUP_SIZE 3000",
        "COMPRESSION snappy, STRING_DICTIONARY_PAGE_SIZE_LIMIT 1000",
    ],
)
def test_duckdb_copy_options(tmp_path: Path, options: str) -> None:
    duckdb = pytest.importorskip("duckdb")
    table = _dated(20_000, seed=22)
    path = tmp_path / "duckdb.parquet"
    con = duckdb.connect()
    con.register("t", table)
    try:
        con.execute(f"COPY t TO '{path}' (FORMAT parquet, {options})")
    except duckdb.Error as exc:  # an older DuckDB without the option
        pytest.skip(f"this DuckDB does not take {options!r}: {exc}")
    native, arrow, reads = _both(path, by_year=True)
    for year in arrow:
        assert_same(native[year], arrow[year])
    assert reads.pyarrow == 0 and reads.native > 0, reads.reasons


def test_delta_text_of_a_dictionary_schema_that_pyarrow_cannot_read(tmp_path: Path) -> None:
    """DELTA-encoded text whose stored Arrow schema says dictionary: pyarrow fails ("DecodeArrow
    of DictAccumulator"), even reading plain; the core decodes it, and counts it as the table."""
    text = ["provider_code", "gp_practice_code", "lsoa11", "modality", "exam_code", "sex"]
    table = _dated(8_000, seed=5)
    for name in text:
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, table.column(name).dictionary_encode())
    path = tmp_path / "delta-dictionary.parquet"
    pq.write_table(
        table,
        path,
        use_dictionary=False,
        column_encoding={
            "lsoa11": "DELTA_BYTE_ARRAY",
            "gp_practice_code": "DELTA_LENGTH_BYTE_ARRAY",
            "test_date": "DELTA_BINARY_PACKED",
        },
        row_group_size=3_000,
    )
    with pytest.raises(OSError, match="DictAccumulator"):
        pq.read_table(path)
    parquet_native.READS.reset()
    native = _aggregate(path, "native", by_year=True)
    assert parquet_native.READS.native == 3 and parquet_native.READS.pyarrow == 0
    memory = _aggregate(table, "native", by_year=True)
    for year in memory:
        assert_same(native[year], memory[year])


def test_a_folder_of_files_shares_one_dictionary_a_column(tmp_path: Path) -> None:
    """Two files and a CSV in one run: the run dictionaries and the CSV's encoders never mix."""
    folder = tmp_path / "extract"
    folder.mkdir()
    a, b = _big_table(5_000, seed=1), _big_table(5_000, seed=2)
    pq.write_table(a, folder / "a.parquet", row_group_size=1_000)
    pq.write_table(b, folder / "b.parquet", row_group_size=1_700)
    import pyarrow.csv as pacsv

    pacsv.write_csv(_big_table(3_000, seed=3), folder / "c.csv")
    native, arrow, reads = _both(folder)
    assert_same(native, arrow)
    assert reads.native == 5 + 3 and reads.pyarrow == 0


def _corrupt_copy(tmp_path: Path, mutate: Any) -> Path:
    table = _big_table(3_000)
    path = tmp_path / "extract.parquet"
    pq.write_table(table, path, compression="none", row_group_size=1_000)
    raw = bytearray(path.read_bytes())
    mutate(raw, pq.ParquetFile(path).metadata)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(bytes(raw))
    return bad


def _chunk(meta: Any, rg: int, name: str) -> Any:
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    return meta.row_group(rg).column(names.index(name))


def test_a_page_header_that_does_not_parse_names_file_row_group_and_column(tmp_path: Path) -> None:
    def mutate(raw: bytearray, meta: Any) -> None:
        chunk = _chunk(meta, 1, "lsoa11")
        at = chunk.data_page_offset
        raw[at : at + 6] = b"\xff" * 6

    bad = _corrupt_copy(tmp_path, mutate)
    match = r"bad\.parquet: row group 2: column 'lsoa11'"
    with pytest.raises(errors.CorruptInputError, match=match):
        _aggregate(bad, "native")


@given(seed=st.integers(0, 2**32 - 1), n_flips=st.integers(1, 8))
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_flipped_bytes_are_clean_errors_or_equal_counts(
    tmp_path_factory: pytest.TempPathFactory, seed: int, n_flips: int
) -> None:
    """Random damage inside the column chunks: a clean InputError, or (where the damage hits
    bytes no reader checks, such as statistics) the same counts as pyarrow gives."""
    import random

    rnd = random.Random(seed)
    tmp = tmp_path_factory.mktemp("flip")
    table = _big_table(2_000, seed=seed % 7)
    path = tmp / "e.parquet"
    pq.write_table(table, path, compression=rnd.choice(COMPRESSIONS), row_group_size=700)
    raw = bytearray(path.read_bytes())
    footer = int.from_bytes(raw[-8:-4], "little")
    for _ in range(n_flips):
        i = rnd.randrange(4, len(raw) - 8 - footer)
        raw[i] ^= 1 << rnd.randrange(8)
    bad = tmp / "bad.parquet"
    bad.write_bytes(bytes(raw))
    try:
        native = _aggregate(bad, "native")
    except errors.InputError:
        return
    try:
        arrow = _aggregate(bad, "pyarrow")
    except errors.InputError:
        return  # pyarrow noticed what the core did not check (e.g. a statistics byte)
    assert native.exclusions["rows_read"] == arrow.exclusions["rows_read"]


def test_encrypted_or_unknown_footers_go_through_pyarrow(tmp_path: Path) -> None:
    path = tmp_path / "e.parquet"
    pq.write_table(_big_table(500), path)
    raw = bytearray(path.read_bytes())
    raw[-4:] = b"PARE"
    bad = tmp_path / "enc.parquet"
    bad.write_bytes(bytes(raw))
    with pytest.raises(errors.InputError):
        _aggregate(bad, "native")


def test_check_reports_which_path_read_the_row_groups(tmp_path: Path) -> None:
    path = _written_by(tmp_path, _dated(6_000, seed=2), "pyarrow-split")
    parquet_native.READS.reset()
    _aggregate(path, "native")
    assert parquet_native.READS.pyarrow == 2
    assert parquet_native.READS.native == 0


def test_without_os_pread_a_seek_and_read_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows has no ``os.pread``: the chunks are then read with a seek and a read (each file
    descriptor belongs to one reading thread), to the same cube, still decoded by the core.
    """
    table = _dated(9_000, seed=5)
    path = tmp_path / "extract.parquet"
    pq.write_table(table, path, row_group_size=2_000)
    with_pread, arrow, _ = _both(path, by_year=True)
    monkeypatch.delattr(os, "pread")
    parquet_native.READS.reset()
    without = _aggregate(path, "native", by_year=True)
    assert parquet_native.READS.native == 5 and parquet_native.READS.pyarrow == 0
    for year in arrow:
        assert_same(without[year], with_pread[year])
        assert_same(without[year], arrow[year])


def test_batches_held_keep_their_values_while_later_ones_are_decoded(tmp_path: Path) -> None:
    """The core lends each batch's buffers to Python and takes them back for later batches
    once freed: a batch still held must never see a later batch's values, its arrays are
    read-only, and the buffers of batches let go are reused (the memory stays flat).
    """
    table = _dated(5_000, seed=11)
    path = tmp_path / "extract.parquet"
    pq.write_table(table, path, row_group_size=1_500, data_page_size=700)
    names = ["gp_practice_code", "lsoa11", "sex", "age", "test_date"]
    schema = pq.read_schema(path)
    native = parquet_native.NativeParquet(names, n_threads=2)
    pf = pq.ParquetFile(path, read_dictionary=["gp_practice_code", "lsoa11", "sex"])

    def fallback(i: int) -> pa.Table:
        raise AssertionError(f"row group {i} went through pyarrow")

    held = list(native.batches(path, schema, fallback, batch_rows=333))
    assert len(held) > 12
    got = pa.Table.from_batches(held).select(names)
    want = pf.read(columns=names)
    for name in names:
        assert got.column(name).to_pylist() == want.column(name).to_pylist(), name
    first = held[0].column("age").buffers()[1]
    with pytest.raises(TypeError, match="read-only"):
        memoryview(first)[0] = 1
    # let them go one at a time while reading again: the same values, from reused buffers
    del held, got, first
    again = [
        v for b in native.batches(path, schema, fallback, 333) for v in b.column("age").to_pylist()
    ]
    assert again == want.column("age").to_pylist()


@pytest.fixture
def windowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every row group read in windows (as a huge one is), of a few hundred bytes: windows
    that split page headers and pages."""
    monkeypatch.setattr(parquet_native, "WINDOWED_ROW_GROUP_BYTES", 0)
    monkeypatch.setattr(parquet_native, "WINDOW_BYTES", 333)


@pytest.mark.parametrize("compression", ["NONE", "SNAPPY", "ZSTD"])
@pytest.mark.parametrize("page_version", ["1.0", "2.0"])
@pytest.mark.parametrize("dictionary", [True, False])
def test_row_groups_read_in_windows_count_as_read_whole(
    tmp_path: Path, windowed: None, compression: str, page_version: str, dictionary: bool
) -> None:
    """A row group too big to read whole is read a window at a time as its pages are
    decoded, and counted as pyarrow counts it (and by year as well)."""
    table = _dated(5_000, seed=31)
    path = tmp_path / "e.parquet"
    pq.write_table(
        table,
        path,
        row_group_size=2_000,
        compression=compression,
        data_page_version=page_version,
        use_dictionary=dictionary,
        data_page_size=2_048,
    )
    native, arrow, reads = _both(path)
    assert reads.native == 3 and reads.pyarrow == 0 and reads.counted == 0
    assert_same(native, arrow)
    native, arrow, _ = _both(path, by_year=True)
    assert list(native) == list(arrow)
    for year in native:
        assert_same(native[year], arrow[year])


def test_a_file_cut_short_under_a_window_names_file_row_group_and_column(
    tmp_path: Path, windowed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file ends (or the read fails) part-way through a chunk read in windows: a clean
    error naming the file, row group and column, never a panic."""
    path = tmp_path / "e.parquet"
    pq.write_table(_big_table(3_000), path, row_group_size=1_000, compression="none")
    reads = parquet_native._ChunkReads.__call__

    def short(self: Any, offset: int, length: int) -> bytes:
        return reads(self, offset, length)[: length // 2]

    monkeypatch.setattr(parquet_native._ChunkReads, "__call__", short)
    with pytest.raises(errors.CorruptInputError, match=r"e\.parquet: row group 1: column '\w+'"):
        _aggregate(path, "native")

    monkeypatch.setattr(parquet_native._ChunkReads, "__call__", reads)
    start = parquet_native._ChunkReads.__init__

    def unreadable(self: Any, fd: int, at: int, lock: Any) -> None:
        start(self, -1, at, lock)  # a read fails (as an I/O error would)

    monkeypatch.setattr(parquet_native._ChunkReads, "__init__", unreadable)
    match = r"e\.parquet: row group 1: cannot read the file: Bad file descriptor"
    with pytest.raises(errors.UnreadableInputError, match=match):
        _aggregate(path, "native")


def test_a_row_groups_dictionary_grown_by_plain_pages_is_classified_by_its_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past its dictionary page's size limit a chunk goes on in PLAIN pages, which add to
    the row group's dictionary batch by batch: each batch classifies only the values new
    since the last, and counts as pyarrow does."""
    from didcore import classify

    table = _dated(30_000, seed=41)
    codes = pa.array([f"P{(i * 7919) % 9_000:05d}" for i in range(table.num_rows)])
    table = table.set_column(1, "gp_practice_code", codes)
    path = tmp_path / "e.parquet"
    pq.write_table(
        table, path, row_group_size=30_000, dictionary_pagesize_limit=2_000, data_page_size=1_024
    )
    tails: list[int] = []
    extended = classify._extended

    def spy(previous: Any, result: Any, dictionary: Any, fn: Any) -> Any:
        out = extended(previous, result, dictionary, fn)
        if out is not None:
            tails.append(len(dictionary) - len(previous))
        return out

    monkeypatch.setattr(classify, "_extended", spy)
    monkeypatch.setattr(didcore.io, "_NATIVE_BATCH_ROWS", 4_000)
    native, arrow, reads = _both(path)
    assert reads.native == 1 and reads.counted == 0
    assert_same(native, arrow)
    assert tails, "the grown dictionary was classified whole"


def test_windows_read_with_a_seek_and_a_read_without_os_pread(
    tmp_path: Path, windowed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``os.pread`` (Windows) the decoding threads' reads of windows take turns on the
    file (a seek and a read each), to the same cube."""
    table = _dated(9_000, seed=6)
    path = tmp_path / "extract.parquet"
    pq.write_table(table, path, row_group_size=3_000, data_page_size=1_024)
    with_pread, arrow, _ = _both(path)
    monkeypatch.delattr(os, "pread")
    without = _aggregate(path, "native")
    assert_same(without, with_pread)
    assert_same(without, arrow)
