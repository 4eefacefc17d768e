"""Parquet row groups counted by the core as it decodes them (``didcore.row_groups``,
``rust/row_groups.rs``) count exactly as the same row groups decoded into batches
(``DIDCORE_PARQUET=batches``), read by pyarrow (``DIDCORE_PARQUET=pyarrow``) and counted by
the pure-Python reference: cubes, exclusions, quality counters, the value profile and the
rows per financial year.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from didcore import errors, parquet_native
from didcore.reference.cube import aggregate_reference
from test_cube import LOOKUPS, assert_equal_to_reference
from test_cubefile import _dated, assert_same
from test_parquet_native import _aggregate as _counted

MODES = ("native", "batches", "pyarrow")


def _all_modes(path: Path, **kw: Any) -> tuple[dict[str, Any], int]:
    """The cube in every mode, and how many row groups the core counted as it decoded."""
    cubes = {}
    counted = 0
    for mode in MODES:
        parquet_native.READS.reset()
        cubes[mode] = _counted(path, mode, **kw)
        if mode == "native":
            counted = parquet_native.READS.counted
    return cubes, counted


def _same_in_every_mode(cubes: dict[str, Any]) -> None:
    """The cube (or the cubes by financial year) counted as decoded equals the others."""
    native = cubes["native"]
    for mode in ("batches", "pyarrow"):
        if not hasattr(native, "undated"):
            assert_same(native, cubes[mode])
            continue
        assert list(native) == list(cubes[mode])
        for year in cubes[mode]:
            assert_same(native[year], cubes[mode][year])
        assert_same(native.undated, cubes[mode].undated)


def _footer_says(monkeypatch: pytest.MonkeyPatch, coding: int) -> None:
    """Make every chunk's footer say it is dictionary-encoded throughout (``coding`` 2), or
    let that be presumed (1: a dictionary page, no page encoding statistics)."""
    plan = parquet_native.NativeParquet._plan

    def said(self: Any, *args: Any) -> Any:
        groups = plan(self, *args)
        if groups is None:
            return None
        return [(n, [(a, b, w, coding, *z) for a, b, w, _, *z in c]) for n, c in groups]

    monkeypatch.setattr(parquet_native.NativeParquet, "_plan", said)


@settings(
    max_examples=int(os.environ.get("DIDCORE_NATIVE_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    seed=st.integers(0, 10_000),
    rows=st.integers(1, 3_000),
    row_group_size=st.integers(1, 1_500),
    data_page_version=st.sampled_from(["1.0", "2.0"]),
    data_page_size=st.sampled_from([None, 64, 4096]),
    compression=st.sampled_from(["NONE", "SNAPPY", "ZSTD", "GZIP", "LZ4", "BROTLI"]),
    full_profile=st.booleans(),
)
def test_row_groups_counted_as_decoded_equal_every_other_path(
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    rows: int,
    row_group_size: int,
    data_page_version: str,
    data_page_size: int | None,
    compression: str,
    full_profile: bool,
) -> None:
    table = _dated(rows, seed=seed)  # nulls in every column, dirty codes, three years
    path = tmp_path_factory.mktemp("rg") / "e.parquet"
    pq.write_table(
        table,
        path,
        row_group_size=row_group_size,
        data_page_version=data_page_version,
        data_page_size=data_page_size,
        compression=compression,
    )
    cubes, counted = _all_modes(path, full_profile=full_profile)
    # (a chunk of nulls alone has no statistics to say it is dictionary-encoded: such a row
    # group is decoded into batches)
    if min(rows, row_group_size) >= 100:
        assert counted >= 1
    _same_in_every_mode(cubes)
    assert_equal_to_reference(cubes["native"], aggregate_reference(table.to_pylist(), LOOKUPS))


def test_ages_from_dates_of_birth_and_providers_with_nulls(tmp_path: Path) -> None:
    """No age column (ages from dates of birth and test dates), and a provider column whose
    nulls fall in some row groups only ("(missing)" provider from the footer's counts).
    """
    table = _dated(4_000, seed=5)
    born = [
        None if i % 97 == 0 else dt.date(1930, 1, 1) + dt.timedelta(days=(i * 7919) % 33_000)
        for i in range(table.num_rows)
    ]
    table = table.drop(["age"]).append_column("date_of_birth", pa.array(born, pa.date32()))
    provider = table.column("provider_code").to_pylist()
    provider = [None if 1_000 <= i < 1_100 else p for i, p in enumerate(provider)]
    table = table.set_column(0, "provider_code", pa.array(provider, pa.string()))
    path = tmp_path / "e.parquet"
    pq.write_table(table, path, row_group_size=700)
    cubes, counted = _all_modes(path)
    assert counted == 6
    _same_in_every_mode(cubes)
    assert "(missing)" in cubes["native"].provider_codes


def test_a_dictionary_that_grows_is_counted_through_pyarrow_from_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should the footer say a chunk is dictionary-encoded throughout when a PLAIN page
    follows (its dictionary then grows past its classification), the core stops before that
    block and the rest of the row group is read through pyarrow: the same counts.
    """
    table = _dated(60_000, seed=9)
    codes = pa.array([f"P{i % 5_000:05d}" for i in range(table.num_rows)])  # many: PLAIN
    table = table.set_column(1, "gp_practice_code", codes)
    path = tmp_path / "e.parquet"
    # a dictionary page limit so small that every chunk switches to PLAIN pages part-way
    pq.write_table(
        table, path, row_group_size=40_000, dictionary_pagesize_limit=300, data_page_size=1024
    )
    _footer_says(monkeypatch, 2)
    cubes, counted = _all_modes(path)
    assert counted == 2
    _same_in_every_mode(cubes)
    parquet_native.READS.reset()
    _counted(path, "native")
    assert any("dictionary grew" in r for r in parquet_native.READS.reasons), parquet_native.READS


def test_a_corrupt_page_names_file_row_group_and_column(tmp_path: Path) -> None:
    table = _dated(30_000, seed=2)
    path = tmp_path / "e.parquet"
    pq.write_table(table, path, row_group_size=10_000, compression="NONE")
    meta = pq.ParquetFile(path).metadata
    chunk = meta.row_group(1).column(table.schema.get_field_index("lsoa11"))
    data = bytearray(path.read_bytes())
    at = chunk.data_page_offset + 40  # inside its first data page's values
    data[at : at + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(errors.CorruptInputError, match=r"e\.parquet: row group 2: column"):
        _counted(path, "native")


def test_the_early_guard_judges_the_first_row_group(tmp_path: Path) -> None:
    """Sex coded M/F stops a run after its first row group, not after the whole extract."""
    table = _dated(20_000, seed=4)
    sexes = {"1": "M", "2": "F"}
    sex = [sexes.get(s, s) for s in table.column("sex").to_pylist()]
    table = table.set_column(table.schema.get_field_index("sex"), "sex", pa.array(sex))
    path = tmp_path / "e.parquet"
    pq.write_table(table, path, row_group_size=2_000)
    seen: list[int] = []

    def guard(profile: Any) -> None:
        seen.append(profile.rows)
        raise errors.GuardError("M/F")

    parquet_native.READS.reset()
    with pytest.raises(errors.GuardError):
        _counted(path, "native", on_first_batch=guard)
    assert seen == [2_000]
    assert parquet_native.READS.counted < 10


def test_by_year_row_groups_of_one_year_are_counted_as_decoded(tmp_path: Path) -> None:
    """Counting by financial year (``didcore cube``, ``report``): a row group whose test
    dates the footer puts in one year is counted into that year's cube as it is decoded;
    one spanning years, or with null dates, is decoded into batches and split by year.
    """
    table = _dated(9_000, seed=11).sort_by("test_date")  # nulls first, then by date
    path = tmp_path / "e.parquet"
    pq.write_table(table, path, row_group_size=1_000)
    cubes, counted = _all_modes(path, by_year=True)
    assert 0 < counted < 9
    _same_in_every_mode(cubes)


def test_a_footer_that_misstates_the_test_dates_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A footer whose statistics put a row group in one year when its dates are not: the
    core checks every date before counting a block, stops, and the rest is split by year.
    """
    table = _dated(6_000, seed=12).sort_by("test_date")
    path = tmp_path / "e.parquet"
    pq.write_table(table, path, row_group_size=3_000)
    plan = parquet_native.NativeParquet._plan

    def one_day(self: Any, *args: Any) -> Any:
        groups = plan(self, *args)
        if groups is None:
            return None
        column = self.names.index("test_date")
        day = (dt.date(2022, 5, 1) - dt.date(1970, 1, 1)).days
        fixed = [list(c) for c in (g[1] for g in groups)]
        for chunks in fixed:
            a, b, w, d, _, _ = chunks[column]
            chunks[column] = (a, b, w, d, 0, (day, day))  # "no nulls, all on 1 May 2022"
        return [(g[0], c) for g, c in zip(groups, fixed, strict=True)]

    monkeypatch.setattr(parquet_native.NativeParquet, "_plan", one_day)
    cubes, counted = _all_modes(path, by_year=True)
    assert counted == 2
    parquet_native.READS.reset()
    _counted(path, "native", by_year=True)
    assert any("outside the footer" in r for r in parquet_native.READS.reasons)
    _same_in_every_mode(cubes)


def _pandas_typed(table: pa.Table, unit: str = "ns", tz: str | None = None) -> pa.Table:
    """``table`` as pandas writes it: ages with gaps as doubles (here also fractions, NaN,
    infinities, negative and huge ages) and dates as timestamps.
    """
    ages = table.column("age").to_pylist()
    odd = [40.7, float("nan"), float("inf"), -0.5, 1e20, float("-inf"), 91.0, 130.99]
    ages = [odd[i % len(odd)] if i % 13 == 0 else a for i, a in enumerate(ages)]
    at = table.schema.get_field_index("age")
    table = table.set_column(at, "age", pa.array(ages, pa.float64()))
    at = table.schema.get_field_index("test_date")
    stamps = table.column("test_date").cast(pa.timestamp(unit))
    # a time of day, which the date drops
    stamps = pa.array(
        [None if s is None else s + dt.timedelta(hours=13) for s in stamps.to_pylist()],
        pa.timestamp(unit, tz=tz),
    )
    return table.set_column(at, "test_date", stamps)


def _counted_with_warnings(path: Path, mode: str, **kw: Any) -> tuple[Any, list[str]]:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cube = _counted(path, mode, **kw)
    return cube, sorted(str(w.message) for w in caught)


@pytest.mark.parametrize("max_age", [None, 95])
@pytest.mark.parametrize(
    ("unit", "tz", "counted_as_decoded"),
    [("ns", None, True), ("us", "UTC", True), ("ms", None, True), ("us", "Europe/London", False)],
)
def test_pandas_types_floating_ages_and_timestamps(
    tmp_path: Path, unit: str, tz: str | None, counted_as_decoded: bool, max_age: int | None
) -> None:
    """An extract written by pandas (ages as doubles, dates as timestamps) is counted as it
    is decoded, as the classifier reads a batch: a fractional age is its completed years, NaN
    missing, an infinity missing and warned of as unreadable, an age past ``max_age`` missing;
    a timestamp's date rounded down. A zone's local dates are pyarrow's to work out (decoded
    into batches).
    """
    table = _pandas_typed(_dated(6_000, seed=21), unit, tz)
    path = tmp_path / "e.parquet"
    pq.write_table(table, path, row_group_size=1_000)
    cubes, warned = {}, {}
    for mode in MODES:
        parquet_native.READS.reset()
        cubes[mode], warned[mode] = _counted_with_warnings(path, mode, max_age=max_age)
        if mode == "native":
            assert (parquet_native.READS.counted == 6) is counted_as_decoded
    assert any("not a number" in w for w in warned["native"]), warned["native"]
    _same_in_every_mode(cubes)
    assert warned["native"] == warned["batches"] == warned["pyarrow"]
    assert_equal_to_reference(
        cubes["pyarrow"], aggregate_reference(table.to_pylist(), LOOKUPS, max_age=max_age)
    )


def test_pandas_types_by_year_and_dates_of_birth(tmp_path: Path) -> None:
    """Timestamps as test dates and dates of birth (many before 1970, where rounding down
    and toward zero differ): counted by financial year as decoded, from the footer's
    timestamp statistics, as every other path counts them.
    """
    table = _pandas_typed(_dated(8_000, seed=22).sort_by("test_date"), "us")
    born = [
        None if i % 89 == 0 else dt.datetime(1930, 1, 1) + dt.timedelta(hours=(i * 7919) % 700_000)
        for i in range(table.num_rows)
    ]
    table = table.drop(["age"]).append_column("date_of_birth", pa.array(born, pa.timestamp("us")))
    path = tmp_path / "e.parquet"
    pq.write_table(table, path, row_group_size=1_000)
    cubes, counted = _all_modes(path, by_year=True)
    assert 0 < counted < 8
    _same_in_every_mode(cubes)
    one, _ = _all_modes(path)
    _same_in_every_mode(one)


def test_dictionaries_presumed_without_page_statistics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A footer with dictionary pages but no page encoding statistics (polars writes none)
    has its row groups counted as decoded, presumed dictionary-encoded throughout. Should a
    chunk's dictionary grow all the same, the rest of that row group goes through pyarrow and
    the file's later row groups are decoded into batches: the same counts either way.
    """
    table = _dated(24_000, seed=51)
    path = tmp_path / "e.parquet"
    pq.write_table(table, path, row_group_size=3_000)
    _footer_says(monkeypatch, 1)
    cubes, counted = _all_modes(path)
    assert counted == 8
    _same_in_every_mode(cubes)

    # PLAIN pages after all (a small dictionary page limit): found, and the file distrusted
    codes = pa.array([f"P{(i * 7919) % 5_000:05d}" for i in range(table.num_rows)])
    table = table.set_column(1, "gp_practice_code", codes)
    pq.write_table(
        table, path, row_group_size=3_000, dictionary_pagesize_limit=300, data_page_size=256
    )
    cubes, counted = _all_modes(path)
    assert 1 <= counted < 8
    _same_in_every_mode(cubes)


def test_files_written_by_polars_and_duckdb_are_counted_as_decoded(tmp_path: Path) -> None:
    """polars leaves out the page encoding statistics; DuckDB lists PLAIN_DICTIONARY alone
    among a chunk's encodings: both are dictionary-encoded throughout, and counted so."""
    import duckdb
    import polars as pl

    table = _dated(20_000, seed=52)
    made = tmp_path / "polars.parquet"
    pl.from_arrow(table).write_parquet(made, row_group_size=4_000)
    cubes, counted = _all_modes(made)
    assert counted == 5
    _same_in_every_mode(cubes)
    source = tmp_path / "source.parquet"
    pq.write_table(table, source)
    made = tmp_path / "duckdb.parquet"
    duckdb.sql(f"COPY (FROM '{source}') TO '{made}' (FORMAT parquet, ROW_GROUP_SIZE 4096)")
    cubes, counted = _all_modes(made)
    assert counted >= 1
    _same_in_every_mode(cubes)
