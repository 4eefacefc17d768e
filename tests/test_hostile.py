"""Hostile inputs (issue 12): each root cause found by the campaign, with its regression test.

The contract: every input gives either a result with conservation, or a
:class:`didcore.errors.InputError` subclass naming the file, column, row or value; never another
exception type, never a signal, never a silently different count. The command line exits 2 with
one line on bad input, 130 with one line on Ctrl-C.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import didcore
from didcore import errors
from didcore.io import Columns
from test_cube import ICBS, LOOKUPS, LSOA_ICB, LSOA_IMD, OTHER, PRACTICES

TESTS = Path(__file__).parent


def _table(n: int = 4, **overrides: Any) -> pa.Table:
    """A small valid extract of ``n`` rows (every row included), columns overridable."""
    cols: dict[str, Any] = {
        "provider_code": ["RM3", "RWF", "RM3", "RXQ"] * (n // 4) + ["RM3"] * (n % 4),
        "gp_practice_code": ["A81001"] * n,
        "lsoa11": ["E01000001"] * n,
        "sex": ["1", "2"] * (n // 2) + ["1"] * (n % 2),
        "age": [40 + (i % 50) for i in range(n)],
        "test_date": [dt.date(2023, 5, 1)] * n,
        "modality": ["Plain Radiography"] * n,
        "exam_code": ["XCHES"] * n,
    }
    cols.update(overrides)
    return pa.table({k: v for k, v in cols.items() if v is not None})


def _conserved(cube: Any) -> None:
    ex = cube.exclusions
    parts = ex["no_icb"] + ex["no_imd"] + ex["no_sex"] + ex["no_age"] + ex["included"]
    assert ex["rows_read"] == parts


@pytest.fixture
def lookups_dir(tmp_path: Path) -> Path:
    d = tmp_path / "lookups"
    d.mkdir()
    rows = "\n".join(f"{k},{v}" for k, v in PRACTICES.items())
    (d / "practice_icb.csv").write_text(f"gp_practice_code,icb_code\n{rows}\n")
    (d / "other_practices.csv").write_text("gp_practice_code\n" + "\n".join(OTHER) + "\n")
    rows = "\n".join(f"{k},{v}" for k, v in LSOA_ICB.items())
    (d / "lsoa_icb.csv").write_text(f"lsoa11,icb_code\n{rows}\n")
    rows = "\n".join(f"{k},{v}" for k, v in LSOA_IMD.items())
    (d / "lsoa_imd.csv").write_text(f"lsoa11,imd_decile\n{rows}\n")
    (d / "icb.csv").write_text("icb_code,icb_name,region\n" + "\n".join(f"{c},{c},R" for c in ICBS))
    return d


def _python(code: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


# ---------------------------------------------------------------------- 1. reader threads


def _bad_utf8_parquet(path: Path, n: int = 1000) -> Path:
    """One row group whose binary provider_code has a value that is not UTF-8."""
    t = _table(n).set_column(
        0, "provider_code", pa.array([b"RM3"] * (n - 1) + [b"\xff\xfe"], pa.binary())
    )
    pq.write_table(t, path)
    return path


def _readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "didcore-reader"]


def test_no_reader_thread_outlives_an_error(tmp_path: Path) -> None:
    """The reader threads are joined before the error leaves aggregate(): one still inside
    pyarrow at interpreter exit aborted the process (SIGABRT, exit 134)."""
    path = _bad_utf8_parquet(tmp_path / "bad.parquet")
    for _ in range(5):
        with pytest.raises(errors.ColumnTypeError, match=r"'provider_code'.*not UTF-8"):
            didcore.aggregate(path, LOOKUPS)
        assert _readers() == []


def test_no_reader_thread_outlives_an_abandoned_prefetch() -> None:
    """A prefetch closed part-way (or nested in another) stops and joins its thread."""
    from didcore.io import prefetch

    inner = prefetch(iter(range(1000)))
    outer = prefetch(x * 2 for x in inner)
    assert next(outer) == 0
    outer.close()
    inner.close()
    assert _readers() == []

    def failing() -> Any:
        yield 1
        raise errors.ColumnTypeError("boom")

    items = prefetch(failing())
    with pytest.raises(errors.ColumnTypeError, match="boom"):
        list(items)
    assert _readers() == []


def test_the_error_exits_cleanly_every_time(tmp_path: Path) -> None:
    """The campaign's reproduction (python -c "didcore.aggregate(file, lookups)"), run in
    subprocesses: exit status 1 with the ColumnTypeError, never 134 (abort)."""
    path = _bad_utf8_parquet(tmp_path / "bad.parquet")
    code = f"""
        import didcore
        from test_cube import LOOKUPS
        didcore.aggregate({str(path)!r}, LOOKUPS)
    """
    for _ in range(3):
        proc = _python(code, tmp_path)
        assert proc.returncode == 1, proc.stderr
        assert "ColumnTypeError" in proc.stderr
        assert "terminate called" not in proc.stderr


_SLOW_CLI = """
    import sys, time
    import didcore.io as io
    from didcore.cli import main

    real = io._parquet_batches

    def slow(path, names, string_cols):
        for batch in real(path, names, string_cols):
            while True:
                print("reading", flush=True)
                time.sleep({pause})  # a long row group being read
                yield batch

    io._parquet_batches = slow
    sys.exit(main(["cube", {extract!r}, "--lookups", {lookups!r}, "--out", {out!r}, "-q"]))
"""


def _interrupt(tmp_path: Path, lookups_dir: Path, presses: int, pause: float) -> Any:
    extract = tmp_path / "e.parquet"
    pq.write_table(_table(8), extract)
    code = _SLOW_CLI.format(
        extract=str(extract), lookups=str(lookups_dir), out=str(tmp_path / "out"), pause=pause
    )
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "reading"
    time.sleep(0.2)
    for _ in range(presses):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_ctrl_c_exits_130_with_one_line(tmp_path: Path, lookups_dir: Path) -> None:
    code, err = _interrupt(tmp_path, lookups_dir, presses=1, pause=0.05)
    assert code == 130
    assert err.strip().splitlines() == ["didcore: interrupted"]


def test_double_ctrl_c_exits_130_with_one_line(tmp_path: Path, lookups_dir: Path) -> None:
    """The second Ctrl-C comes while the first one's clean-up waits for a slow read: no
    "Exception ignored in generator prefetch" (11 lines), no abort."""
    code, err = _interrupt(tmp_path, lookups_dir, presses=2, pause=2.0)
    assert code == 130
    assert err.strip().splitlines() == ["didcore: interrupted"]


# ---------------------------------------------------------------------- 2. Columns


@pytest.mark.parametrize(
    "roles",
    [
        {"provider_code": "lsoa11"},
        {"sex": "age"},
        {"modality": "exam_code"},
        {"date_of_birth": "test_date"},
        {"gp_practice_code": "x", "lsoa11": "x"},
    ],
)
def test_two_roles_naming_one_column_are_refused(roles: dict[str, str]) -> None:
    """Two roles reading one column counted one value as two things (silently wrong counts
    on in-memory tables): refused when the Columns is made, naming both roles."""
    with pytest.raises(errors.InputError, match="both name column") as info:
        Columns(**roles)
    shared = next(iter(set(roles.values())))
    named = [r for r, c in {**vars(Columns()), **roles}.items() if c == shared]
    for role in named:
        assert role in str(info.value)


def test_a_column_name_must_be_text() -> None:
    with pytest.raises(errors.InputError, match=r"Columns\(sex=...\)"):
        Columns(sex=3)  # type: ignore[arg-type]
    with pytest.raises(errors.InputError, match=r"columns must be a didcore\.Columns"):
        didcore.aggregate(_table(), LOOKUPS, columns={"sex": "gender"})  # type: ignore[arg-type]


# ---------------------------------------------------------------------- 3. column types


@pytest.mark.parametrize(
    ("column", "array"),
    [
        ("provider_code", pa.array([["RM3"]] * 4, pa.list_(pa.string()))),
        ("lsoa11", pa.array([{"a": "E01000001"}] * 4, pa.struct([("a", pa.string())]))),
        ("sex", pa.array([[("k", 1)]] * 4, pa.map_(pa.string(), pa.int64()))),
        ("age", pa.array([[40]] * 4, pa.list_(pa.int64()))),
        ("exam_code", pa.array([1.5] * 4, pa.float64())),
        ("age", pa.array([dt.time(1, 0)] * 4, pa.time32("s"))),
    ],
)
@pytest.mark.parametrize("form", ["parquet", "table", "stream", "batch"])
def test_unreadable_column_types_are_named(
    tmp_path: Path, column: str, array: pa.Array, form: str
) -> None:
    """A nested column under a required name was a KeyError from ParquetFile(read_dictionary):
    now a ColumnTypeError naming the column and its type, before any batch is read."""
    table = _table()
    table = table.set_column(table.schema.get_field_index(column), column, array)
    source: Any = table
    if form == "parquet":
        source = tmp_path / "t.parquet"
        pq.write_table(table, source)
    elif form == "stream":
        source = pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    elif form == "batch":
        source = table.combine_chunks().to_batches()[0]
    with pytest.raises(errors.ColumnTypeError, match=f"column '{column}' has type") as info:
        didcore.aggregate(source, LOOKUPS)
    assert str(array.type)[:4] in str(info.value)
    if form == "parquet":
        assert "t.parquet" in str(info.value)
