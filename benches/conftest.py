"""Session fixtures for the benchmarks: the generated extract, its lookups, in-memory copies.

Environment:

* ``DIDCORE_BENCH_ROWS`` rows in the extract (default 1,000,000; ``50000000``, ``50M`` ...);
* ``DIDCORE_BENCH_DIR`` where the extract and lookups are generated and cached (default a
  pytest temporary folder, so a fresh one each session); set it to reuse a big extract;
* ``DIDCORE_BENCH_ROUNDS`` timed rounds per benchmark (default 5, after 1 warm-up round).

Under ``--benchmark-disable`` (the default addopts; CI) each benchmark runs its function once,
for correctness: every peer's cube must equal didcore's exactly.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import didcore
from _benchdata import DEFAULT_ROWS, STRING_COLUMNS, BenchData, ensure_bench_data, parse_rows
from _peers import CubeResult, didcore_result


def bench_rows() -> int:
    """Rows in the benchmark extract (``DIDCORE_BENCH_ROWS``)."""
    return parse_rows(os.environ.get("DIDCORE_BENCH_ROWS", str(DEFAULT_ROWS)))


def pytest_report_header(config: pytest.Config) -> list[str]:
    where = os.environ.get("DIDCORE_BENCH_DIR", "a pytest tmp dir")
    return [f"didcore benches: {bench_rows():,} rows, extract cached in {where}"]


@pytest.fixture(scope="session")
def bench_data(tmp_path_factory: pytest.TempPathFactory) -> BenchData:
    """The extract (Parquet) and lookups folder, generated once (and cached across sessions
    when ``DIDCORE_BENCH_DIR`` is set)."""
    folder = os.environ.get("DIDCORE_BENCH_DIR")
    directory = Path(folder) if folder else tmp_path_factory.mktemp("didcore-bench")
    return ensure_bench_data(directory, bench_rows())


@pytest.fixture(scope="session")
def didcore_cube(bench_data: BenchData) -> Any:
    """didcore's cube of the Parquet extract: the reference every peer must equal."""
    return didcore.aggregate(bench_data.extract, bench_data.lookups, progress=False)


@pytest.fixture(scope="session")
def reference(didcore_cube: Any) -> CubeResult:
    """:func:`didcore_cube` in the peers' long format."""
    return didcore_result(didcore_cube)


@pytest.fixture(scope="session")
def tables(bench_data: BenchData) -> Callable[[str], pa.Table]:
    """The extract as a pyarrow Table in memory, by string encoding: ``"plain"`` (strings, as
    ``pq.read_table`` or most producers give) or ``"dictionary"`` (dictionary-encoded, as
    Parquet stores them). Loaded on first use and kept for the session."""
    cache: dict[str, pa.Table] = {}

    def get(encoding: str) -> pa.Table:
        if encoding not in cache:
            dictionary = list(STRING_COLUMNS) if encoding == "dictionary" else None
            cache[encoding] = pq.read_table(bench_data.extract, read_dictionary=dictionary)
        return cache[encoding]

    return get


@pytest.fixture(scope="session")
def polars_frames(tables: Callable[[str], pa.Table]) -> Callable[[str], Any]:
    """The same in-memory data as a polars DataFrame (``pl.from_arrow``; dictionary columns
    become Categorical), by encoding."""
    import polars as pl

    cache: dict[str, Any] = {}

    def get(encoding: str) -> Any:
        if encoding not in cache:
            cache[encoding] = pl.from_arrow(tables(encoding))
        return cache[encoding]

    return get


@pytest.fixture(scope="session")
def pedantic() -> dict[str, int]:
    """Options for ``benchmark.pedantic``: few rounds, so a benchmarked run is quick, after
    one warm-up round (file cache, imports, lazy initialisation)."""
    return {
        "rounds": int(os.environ.get("DIDCORE_BENCH_ROUNDS", "5")),
        "iterations": 1,
        "warmup_rounds": 1,
    }
