"""Benchmarks: record-level extract -> cube, didcore against DuckDB, polars and the read floor.

Two groups, each run in the same session on the same data (SPEC section 5: speed is reported
as ratios against peers doing the same joins and group-by, never asserted in a timed test):

* ``extract->cube (parquet)``: from the Parquet file: didcore, DuckDB (``read_parquet``),
  polars (``scan_parquet``), and the floor: pyarrow reading only the needed columns, row group
  by row group, strings as dictionaries, as ``didcore.io`` does.
* ``table->cube (in memory)``: from a pyarrow Table already in memory, with plain or dictionary
  strings: didcore, DuckDB (the Table registered, scanned in place) and polars (the same data
  as a polars DataFrame).

Every benchmark also checks its result: each peer's cube and exclusion counts must equal
didcore's exactly. ``pytest benches`` (``--benchmark-disable`` is in the default addopts)
runs each once for that; ``pytest benches --benchmark-enable`` times them. For medians and
ratios over interleaved runs, and peak memory, use ``benches/run_comparison.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest

import didcore
from _benchdata import BenchData
from _peers import CubeResult, didcore_result, duckdb_cube, polars_cube, pyarrow_floor

PARQUET = "extract->cube (parquet)"
TABLE = "table->cube (in memory)"
ENCODINGS = ("plain", "dictionary")


def _agree(got: CubeResult, reference: CubeResult, who: str) -> None:
    diff = reference.diff(got)
    assert not diff, f"{who} disagrees with didcore: {diff}"


# ---------------------------------------------------------------------- the extract itself


def test_extract_exercises_every_rule(didcore_cube: Any, bench_data: BenchData) -> None:
    """The generated extract is dirty in every way SPEC section 2 handles (so the peers'
    agreement means something), and didcore's counts are conserved."""
    ex = didcore_cube.exclusions
    assert ex["rows_read"] == bench_data.rows
    for reason in ("no_icb", "no_imd", "no_sex", "no_age", "no_measure"):
        assert ex[reason] > 0, reason
    for source, n in didcore_cube.icb_source.items():
        assert n > 0, source
    assert sum(didcore_cube.icb_source.values()) == bench_data.rows
    assert len(didcore_cube.icb_codes) == 42
    # about two thirds of the ICB x sex x age x quintile x measure cells hold tests at 1M rows
    assert (didcore_cube.counts > 0).mean() > (0.5 if bench_data.rows >= 1_000_000 else 0.05)


# ---------------------------------------------------------------------- Parquet


@pytest.mark.benchmark(group=PARQUET)
def test_parquet_didcore(
    benchmark: Any, bench_data: BenchData, reference: CubeResult, pedantic: dict[str, int]
) -> None:
    cube = benchmark.pedantic(
        didcore.aggregate,
        args=(bench_data.extract, bench_data.lookups),
        kwargs={"progress": False},
        **pedantic,
    )
    _agree(didcore_result(cube), reference, "didcore (again)")


@pytest.mark.benchmark(group=PARQUET)
def test_parquet_duckdb(
    benchmark: Any, bench_data: BenchData, reference: CubeResult, pedantic: dict[str, int]
) -> None:
    got = benchmark.pedantic(duckdb_cube, args=(bench_data.extract, bench_data.lookups), **pedantic)
    _agree(got, reference, "DuckDB")


@pytest.mark.benchmark(group=PARQUET)
def test_parquet_polars(
    benchmark: Any, bench_data: BenchData, reference: CubeResult, pedantic: dict[str, int]
) -> None:
    got = benchmark.pedantic(polars_cube, args=(bench_data.extract, bench_data.lookups), **pedantic)
    _agree(got, reference, "polars")


@pytest.mark.benchmark(group=PARQUET)
def test_parquet_pyarrow_floor(
    benchmark: Any, bench_data: BenchData, reference: CubeResult, pedantic: dict[str, int]
) -> None:
    rows = benchmark.pedantic(pyarrow_floor, args=(bench_data.extract,), **pedantic)
    assert rows == reference.exclusions["rows_read"]


# ---------------------------------------------------------------------- in memory


@pytest.mark.benchmark(group=TABLE)
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_table_didcore(
    benchmark: Any,
    encoding: str,
    bench_data: BenchData,
    tables: Callable[[str], pa.Table],
    reference: CubeResult,
    pedantic: dict[str, int],
) -> None:
    table = tables(encoding)
    cube = benchmark.pedantic(
        didcore.aggregate,
        args=(table, bench_data.lookups),
        kwargs={"progress": False},
        **pedantic,
    )
    _agree(didcore_result(cube), reference, f"didcore on a {encoding} table")


@pytest.mark.benchmark(group=TABLE)
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_table_duckdb(
    benchmark: Any,
    encoding: str,
    bench_data: BenchData,
    tables: Callable[[str], pa.Table],
    reference: CubeResult,
    pedantic: dict[str, int],
) -> None:
    table = tables(encoding)
    got = benchmark.pedantic(duckdb_cube, args=(table, bench_data.lookups), **pedantic)
    _agree(got, reference, f"DuckDB on a {encoding} Arrow table")


@pytest.mark.benchmark(group=TABLE)
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_table_polars(
    benchmark: Any,
    encoding: str,
    bench_data: BenchData,
    polars_frames: Callable[[str], Any],
    reference: CubeResult,
    pedantic: dict[str, int],
) -> None:
    frame = polars_frames(encoding)
    got = benchmark.pedantic(polars_cube, args=(frame, bench_data.lookups), **pedantic)
    _agree(got, reference, f"polars on a {encoding} DataFrame")
