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
from test_cube import ICBS, LOOKUPS

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

    def slow(*args, **kwargs):
        for batch in real(*args, **kwargs):
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


# ---------------------------------------------------------------------- 4. streams


class _Stream:
    """An object exporting ``reader`` through the Arrow C stream interface."""

    def __init__(self, reader: Any) -> None:
        self._make = reader

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self._make().__arrow_c_stream__(requested_schema)


def test_a_stream_that_breaks_part_way_names_the_batch() -> None:
    table = _table(8)

    def batches() -> Any:
        yield table.to_batches()[0].slice(0, 4)
        raise pa.ArrowInvalid("connection reset by peer")

    source = _Stream(lambda: pa.RecordBatchReader.from_batches(table.schema, batches()))
    with pytest.raises(errors.UnreadableInputError) as info:
        didcore.aggregate(source, LOOKUPS)
    message = str(info.value)
    assert "batch 2" in message and "4 rows" in message
    assert "connection reset by peer" in message
    assert "\n" not in message


def test_a_stream_whose_later_batch_lacks_a_column_is_named() -> None:
    table = _table(4)

    def batches() -> Any:
        yield from table.to_batches()
        yield table.drop(["sex"]).to_batches()[0]

    reader = pa.RecordBatchReader.from_batches(table.schema, batches())
    with pytest.raises(errors.InputError, match=r"batch 2.*'sex'"):
        didcore.aggregate(reader, LOOKUPS)


def test_a_stream_whose_later_batch_changes_a_type_is_named() -> None:
    table = _table(4)
    nested = table.set_column(4, "age", pa.array([[1]] * 4, pa.list_(pa.int64())))

    def batches() -> Any:
        yield from table.to_batches()
        yield nested.to_batches()[0]

    reader = pa.RecordBatchReader.from_batches(table.schema, batches())
    with pytest.raises(errors.ColumnTypeError, match=r"batch 2: column 'age' has type list"):
        didcore.aggregate(reader, LOOKUPS)


def test_a_capsule_of_another_kind_is_refused() -> None:
    class WrongCapsule:
        def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
            return pa.array([1]).__arrow_c_array__()[0]  # an ArrowSchema capsule

    with pytest.raises(errors.UnreadableInputError, match=r"WrongCapsule.*__arrow_c_stream__"):
        didcore.aggregate(WrongCapsule(), LOOKUPS)

    class NoCapsule:
        def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
            return None

    with pytest.raises(errors.UnreadableInputError, match="NoCapsule"):
        didcore.aggregate(NoCapsule(), LOOKUPS)


def test_to_arrow_returning_itself_is_refused() -> None:
    class Loop:
        def to_arrow(self) -> Any:
            return self

    with pytest.raises(errors.UnreadableInputError, match=r"Loop: its to_arrow\(\)"):
        didcore.aggregate(Loop(), LOOKUPS)

    class Chain:
        def __init__(self, n: int) -> None:
            self.n = n

        def to_arrow(self) -> Any:
            return Chain(self.n + 1)

    with pytest.raises(errors.UnreadableInputError, match="Chain"):
        didcore.aggregate(Chain(0), LOOKUPS)


class PanicException(BaseException):
    """What a Rust panic inside another library's export surfaces as (pyo3's type)."""


def test_a_panic_in_another_library_is_an_input_error() -> None:
    class Panics:
        def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
            raise PanicException("called `Option::unwrap()` on a `None` value")

    with pytest.raises(errors.UnreadableInputError, match=r"Panics.*unwrap"):
        didcore.aggregate(Panics(), LOOKUPS)

    table = _table(4)

    def batches() -> Any:
        yield from table.to_batches()
        raise PanicException("index out of bounds")

    reader = pa.RecordBatchReader.from_batches(table.schema, batches())
    with pytest.raises(errors.UnreadableInputError, match=r"batch 2.*index out of bounds"):
        didcore.aggregate(reader, LOOKUPS)


def test_keyboard_interrupt_in_a_stream_is_not_swallowed() -> None:
    class Interrupted:
        def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        didcore.aggregate(Interrupted(), LOOKUPS)


# ---------------------------------------------------------------------- 5. categoricals


@pytest.mark.parametrize(
    "value_type",
    [
        *([pa.string_view()] if hasattr(pa, "string_view") else []),  # view types: pyarrow >= 16
        pa.large_string(),
        *([pa.binary_view()] if hasattr(pa, "binary_view") else []),
        pa.large_binary(),
    ],
)
@pytest.mark.parametrize("column", ["age", "sex", "provider_code", "modality", "date_of_birth"])
def test_dictionaries_of_any_text_type_are_counted(value_type: pa.DataType, column: str) -> None:
    """dictionary<string_view> (a polars Categorical) ages or dates raised
    ArrowNotImplementedError: now counted, equal to the plain column."""
    table = _table(40, age=[str(a) for a in range(40)] + [], sex=["1", "2", "x", None] * 10)
    dob = pa.array([dt.date(1980 + i % 40, 1 + i % 12, 1) for i in range(40)])
    if column == "date_of_birth":
        table = table.drop(["age"]).append_column("date_of_birth", pc.cast(dob, pa.string()))
    plain = didcore.aggregate(table, LOOKUPS)
    encoded = pc.cast(table[column], pa.string()).combine_chunks().dictionary_encode()
    typed = pa.DictionaryArray.from_arrays(encoded.indices, encoded.dictionary.cast(value_type))
    i = table.schema.get_field_index(column)
    cube = didcore.aggregate(table.set_column(i, column, typed), LOOKUPS)
    assert cube == plain
    assert cube.exclusions == plain.exclusions
    _conserved(cube)


def test_a_polars_categorical_is_counted() -> None:
    pl = pytest.importorskip("polars")
    table = _table(40, age=[str(a) for a in range(40)])
    plain = didcore.aggregate(table, LOOKUPS)
    frame = pl.from_arrow(table).with_columns(
        pl.col("age").cast(pl.Categorical), pl.col("provider_code").cast(pl.Categorical)
    )
    assert didcore.aggregate(frame, LOOKUPS) == plain


# ---------------------------------------------------------------------- 8. arguments


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"max_age": 2**63}, "max_age"),
        ({"max_age": -1}, "max_age"),
        ({"max_age": 40.5}, "max_age"),
        ({"max_age": "90"}, "max_age"),
        ({"max_age": True}, "max_age"),
        ({"n_threads": -1}, "n_threads"),
        ({"n_threads": 0}, "n_threads"),
        ({"n_threads": 2**64}, "n_threads"),
        ({"n_threads": 2.0}, "n_threads"),
        ({"n_threads": "4"}, "n_threads"),
        ({"n_threads": False}, "n_threads"),
    ],
)
def test_bad_counting_options_are_input_errors(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(errors.InputError, match=words) as info:
        didcore.aggregate(_table(), LOOKUPS, **kwargs)
    assert "from" in str(info.value)  # the accepted range


def test_the_widest_accepted_options_count() -> None:
    cube = didcore.aggregate(_table(), LOOKUPS, max_age=2**63 - 1, n_threads=1)
    assert cube.exclusions["included"] == 4


@pytest.mark.parametrize("lookups", [3, b"lookups", {"practice_icb": 1}, 2.5])
def test_bad_lookups_arguments_are_input_errors(lookups: Any) -> None:
    with pytest.raises(errors.InputError, match="lookups"):
        didcore.aggregate(_table(), lookups)


@pytest.mark.parametrize(
    "path", ["x" * 300, "a/" + "y" * 256 + "/e.parquet", "e\0.parquet", "/" + "z/" * 2100]
)
def test_unusable_paths_are_input_errors(path: str, lookups_dir: Path) -> None:
    with pytest.raises(errors.UnreadableInputError, match="extract"):
        didcore.aggregate(path, LOOKUPS)
    with pytest.raises(errors.UnreadableInputError, match="lookups folder"):
        didcore.aggregate(_table(), path)


def test_a_path_of_bytes_is_refused() -> None:
    with pytest.raises(errors.InputError):
        didcore.aggregate(b"extract.parquet", LOOKUPS)


@pytest.mark.parametrize(
    "option", [["--max-age", "99999999999999999999"], ["--threads", "-1"], ["--threads", "x"]]
)
def test_bad_command_line_numbers_exit_2_with_one_line(
    tmp_path: Path, lookups_dir: Path, option: list[str]
) -> None:
    extract = tmp_path / "e.parquet"
    pq.write_table(_table(), extract)
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "didcore", "cube", str(extract)),
            *("--lookups", str(lookups_dir), "--out", str(tmp_path / "out"), *option),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and option[0] in lines[0] and "whole number" in lines[0]


# ---------------------------------------------------------------------- 9. valid input


@pytest.mark.parametrize("encoding", ["DELTA_BYTE_ARRAY", "DELTA_LENGTH_BYTE_ARRAY"])
def test_delta_encoded_text_columns_are_read(tmp_path: Path, encoding: str) -> None:
    """Parquet v2 writers' DELTA encodings were refused ("DecodeArrow of DictAccumulator"):
    counted now, as the dictionary-encoded file is."""
    table = _table(40, lsoa11=["E01000001", "E01000002", "E01000003", "E01000005"] * 10)
    pq.write_table(table, tmp_path / "dict.parquet", row_group_size=16)
    text = ["provider_code", "gp_practice_code", "lsoa11", "sex", "modality", "exam_code"]
    pq.write_table(
        table,
        tmp_path / "delta.parquet",
        row_group_size=16,
        use_dictionary=False,
        column_encoding=dict.fromkeys(text, encoding),
        data_page_version="2.0",
    )
    encodings = pq.ParquetFile(tmp_path / "delta.parquet").metadata.row_group(0).column(0)
    assert encoding in encodings.encodings
    cube = didcore.aggregate(tmp_path / "delta.parquet", LOOKUPS)
    assert cube == didcore.aggregate(tmp_path / "dict.parquet", LOOKUPS)
    assert cube.exclusions["rows_read"] == 40


def test_a_csv_header_over_64_kib_is_read(tmp_path: Path) -> None:
    table = _table(8).append_column("x" * 70_000, pa.array(["1"] * 8))
    path = tmp_path / "wide.csv"
    pacsv.write_csv(table, path)
    cube = didcore.aggregate(path, LOOKUPS)
    assert cube.exclusions["rows_read"] == 8 == cube.exclusions["included"]


def test_a_csv_first_row_over_64_kib_is_read(tmp_path: Path) -> None:
    table = _table(8).append_column("note", pa.array(["n" * 70_000] * 8))
    path = tmp_path / "long.csv"
    pacsv.write_csv(table, path)
    assert didcore.aggregate(path, LOOKUPS).exclusions["included"] == 8


# ---------------------------------------------------------------------- 6. text encodings


def _csv_text(table: pa.Table) -> str:
    return (
        "\n".join(
            [",".join(table.column_names)]
            + [
                ",".join("" if v is None else str(v) for v in row.values())
                for row in table.to_pylist()
            ]
        )
        + "\n"
    )


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_csv_files_with_a_byte_order_mark_are_read(tmp_path: Path, encoding: str) -> None:
    """UTF-16 files (Excel's "Unicode text") were a UnicodeDecodeError: transcoded now."""
    table = _table(8)
    path = tmp_path / "e.csv"
    data = _csv_text(table).encode(encoding)
    if encoding in ("utf-16-le", "utf-16-be"):  # their BOM written by hand
        data = "\ufeff".encode(encoding) + data
    path.write_bytes(data)
    cube = didcore.aggregate(path, LOOKUPS)
    assert cube.exclusions["included"] == 8


def test_a_csv_header_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    text = _csv_text(_table(4)).replace("provider_code", "provider_c\xf6de", 1)
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(errors.UnreadableInputError, match=r"e\.csv.*header.*not UTF-8"):
        didcore.aggregate(path, LOOKUPS)


def test_a_csv_value_that_is_not_utf8_names_the_column(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    text = _csv_text(_table(4)).replace("RWF", "RW\xf6", 1)
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(errors.UnreadableInputError, match=r"e\.csv.*'provider_code'.*UTF-8"):
        didcore.aggregate(path, LOOKUPS)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_lookup_files_with_a_byte_order_mark_are_read(lookups_dir: Path, encoding: str) -> None:
    from didcore.lookup import Lookups

    expected = Lookups.read(lookups_dir)
    for path in lookups_dir.iterdir():
        path.write_bytes(path.read_text().encode(encoding))
    got = Lookups.read(lookups_dir)
    assert got.practice_icb == expected.practice_icb
    assert got.lsoa_quintile == expected.lsoa_quintile


def test_a_lookup_header_that_is_not_utf8_is_named(lookups_dir: Path) -> None:
    from didcore.lookup import Lookups

    path = lookups_dir / "practice_icb.csv"
    path.write_bytes(b"gp_practice_c\xf6de,icb_code\nA81001,QAA\n")
    with pytest.raises(errors.UnreadableInputError, match=r"practice_icb\.csv.*not UTF-8"):
        Lookups.read(lookups_dir)


def test_a_lookup_header_over_64_kib_is_read(lookups_dir: Path) -> None:
    from didcore.lookup import Lookups

    path = lookups_dir / "other_practices.csv"
    path.write_text("gp_practice_code," + "n" * 70_000 + "\nW91001,1\n")
    assert "W91001" in Lookups.read(lookups_dir).other_practices


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_a_lookup_line_as_long_as_its_file_is_read(lookups_dir: Path, encoding: str) -> None:
    """Lookup CSVs are parsed in one block fitted to the file (twice its size): a line that
    is most of the file, in UTF-16 that grows by half as UTF-8, still fits.
    """
    from didcore.lookup import Lookups

    path = lookups_dir / "other_practices.csv"
    note = "\u20ac" * 50_000  # 100 KB in UTF-16, 150 KB in UTF-8
    path.write_bytes(f"gp_practice_code,note\nW91001,{note}\nW91002,x\n".encode(encoding))
    assert {"W91001", "W91002"} <= Lookups.read(lookups_dir).other_practices


def test_a_population_with_a_byte_order_mark_or_bad_header(tmp_path: Path) -> None:
    from didcore.population import Population

    rows = "icb_code,sex,age_band,imd_quintile,population\nQAA,1,40-44,1,100\n"
    path = tmp_path / "pop.csv"
    path.write_bytes(rows.encode("utf-16"))
    with pytest.warns(UserWarning):  # QBB and QCC have no rows
        pop = Population.read(path, ICBS)
    assert pop.total == 100
    path.write_bytes(rows.replace("population", "populati\xf6n", 1).encode("latin-1"))
    with pytest.raises(errors.UnreadableInputError, match=r"pop\.csv.*not UTF-8"):
        Population.read(path, ICBS)


def test_invalid_utf8_in_a_parquet_dictionary_names_the_column(tmp_path: Path) -> None:
    """A string column whose bytes are not UTF-8 (a writer that does not check) was a
    UnicodeDecodeError or ArrowInvalid: a ColumnTypeError naming the column."""
    n = 8
    data = b"RM3" * (n - 1) + b"\xff\xfe\xfd"
    offsets = pa.array([3 * i for i in range(n + 1)], pa.int32()).buffers()[1]
    bad = pa.StringArray.from_buffers(n, offsets, pa.py_buffer(data))
    table = _table(n).set_column(0, "provider_code", bad)
    for name, source in (("table", table), ("parquet", tmp_path / "bad.parquet")):
        if name == "parquet":
            pq.write_table(table, source)
        with pytest.raises(errors.ColumnTypeError, match=r"'provider_code'.*UTF-8"):
            didcore.aggregate(source, LOOKUPS)


# ---------------------------------------------------------------------- 7. measures


def test_a_numeric_measures_column_is_read_as_text(lookups_dir: Path) -> None:
    from didcore.lookup import Lookups

    pq.write_table(
        pa.table(
            {
                "measure": pa.array([1, 2], pa.int64()),
                "kind": ["modality", "edoc"],
                "modality": ["Plain Radiography", "Plain Radiography"],
                "exam_code": pa.array([None, 123], pa.int64()),
            }
        ),
        lookups_dir / "measures.parquet",
    )
    lk = Lookups.read(lookups_dir)
    assert lk.measures == ("1", "2")
    assert lk.measures_of("Plain Radiography", "123") == [0, 1]


def test_a_nested_measures_column_is_a_measure_error(lookups_dir: Path) -> None:
    from didcore.lookup import Lookups

    pq.write_table(
        pa.table(
            {
                "measure": pa.array([["x"]], pa.list_(pa.string())),
                "kind": ["modality"],
                "modality": ["Plain Radiography"],
            }
        ),
        lookups_dir / "measures.parquet",
    )
    with pytest.raises(errors.MeasureDefinitionError, match=r"measure.*list"):
        Lookups.read(lookups_dir)


# ---------------------------------------------------------------------- 11. reference


def test_the_reference_counts_decimal_sex_codes() -> None:
    """The README says decimal sex 1/2 are counted: the reference agreed with the fast path
    only on floats; now on decimals too (1.5 and NaN stay missing)."""
    from didcore.reference.cube import aggregate_reference

    sexes = [Decimal("1"), Decimal("2.0"), Decimal("1.5"), None]
    table = _table(4, sex=pa.array(sexes, pa.decimal128(4, 1)))
    fast = didcore.aggregate(table, LOOKUPS)
    ref = aggregate_reference(table.to_pylist(), LOOKUPS)
    assert fast.exclusions["no_sex"] == ref.exclusions["no_sex"] == 2
    assert fast.exclusions["included"] == ref.exclusions["included"] == 2


# ---------------------------------------------------------------------- 10. injection


HOSTILE_CODES = ['=HYPERLINK("HTTP://EXAMPLE.COM","X")', "+1", "-2", "@SUM(A1)", "=1+2"]


def test_extract_values_never_become_formulas(tmp_path: Path) -> None:
    """Provider codes reach Annex A's tables: in the workbook they are text (never a formula
    cell) with Excel's quote prefix; in the CSV files exact, and in double quotes."""
    from openpyxl import load_workbook

    from _report_fixtures import write_small_inputs
    from didcore.quality import QualityThresholds
    from didcore.report.pipeline import run_report

    inputs = write_small_inputs(tmp_path / "in", rows=3000)
    extract = pq.read_table(inputs["extract"])
    codes = extract["provider_code"].combine_chunks().dictionary_encode()
    hostile = pa.array(
        [HOSTILE_CODES[i % len(HOSTILE_CODES)] for i in range(len(codes.dictionary))]
    )
    poisoned = pa.DictionaryArray.from_arrays(codes.indices, hostile).cast(pa.string())
    extract = extract.set_column(
        extract.schema.get_field_index("provider_code"), "provider_code", poisoned
    )
    pq.write_table(extract, inputs["extract"])
    zero = QualityThresholds(**dict.fromkeys(vars(QualityThresholds()), 0))
    result = run_report(
        [inputs["extract"]],
        lookups=inputs["lookups"],
        population=inputs["population"],
        out_dir=tmp_path / "out",
        formats=("csv", "xlsx"),
        thresholds=zero,
        population_year="2023/24",
        quiet=True,
    )
    wb = load_workbook(result.out_dir / "annex_b.xlsx")
    seen = set()
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
                if cell.value in HOSTILE_CODES:
                    seen.add(cell.value)
                    assert cell.quotePrefix
    assert seen == set(HOSTILE_CODES)
    a2 = (result.out_dir / "annex_a_table_a2.csv").read_text()
    assert '"=1+2"' in a2 and '"+1"' in a2 and '"@SUM(A1)"' in a2
    read = pacsv.read_csv(result.out_dir / "annex_a_table_a2.csv")
    assert set(read["provider_code"].to_pylist()) == set(HOSTILE_CODES)


# ---------------------------------------------------------------------- I/O boundary


def _name_not_utf8(table: pa.Table, path: Path) -> Path:
    """``table`` as Parquet with its column ``zzzz`` renamed to bytes that are not UTF-8."""
    pq.write_table(table, path, store_schema=False)
    path.write_bytes(path.read_bytes().replace(b"zzzz", b"z\xffzz"))
    return path


def test_a_parquet_column_name_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = _name_not_utf8(_table(4).append_column("zzzz", pa.array([1] * 4)), tmp_path / "e.pq")
    with pytest.raises(errors.UnreadableInputError, match=r"e\.pq: a column name is not UTF-8"):
        didcore.aggregate(path, LOOKUPS)


def test_lookup_parquet_text_that_is_not_utf8_is_named(lookups_dir: Path) -> None:
    from didcore.lookup import Lookups

    (lookups_dir / "lsoa_imd.csv").unlink()
    data = b"E01000001" + b"E0100000\xff"
    offsets = pa.array([0, 9, 18], pa.int32()).buffers()[1]
    bad = pa.StringArray.from_buffers(2, offsets, pa.py_buffer(data))
    pq.write_table(pa.table({"lsoa11": bad, "imd_decile": [1, 2]}), lookups_dir / "lsoa_imd.pq")
    with pytest.raises(errors.InputError, match=r"lsoa_imd.*lsoa11.*not UTF-8"):
        Lookups.read(lookups_dir)
    table = pa.table({"lsoa11": ["E01000001"], "zzzz": [1]})
    _name_not_utf8(table, lookups_dir / "lsoa_imd.pq")
    with pytest.raises(errors.UnreadableInputError, match="column name is not UTF-8"):
        Lookups.read(lookups_dir)


def test_population_text_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    from didcore.population import Population

    path = tmp_path / "pop.csv"
    rows = "icb_code,sex,age_band,imd_quintile,population\nQAA,1,40-44,1,100\nQ\xc4B,1,0-4,1,1\n"
    path.write_bytes(rows.encode("latin-1"))
    with pytest.raises(errors.PopulationError, match=r"pop\.csv.*'icb_code'.*not UTF-8"):
        Population.read(path, ICBS)
    with pytest.raises(errors.UnreadableInputError, match="got int"):
        Population.read(42, ICBS)

    class Broken:
        def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
            raise pa.ArrowInvalid("stream gone")

    with pytest.raises(errors.UnreadableInputError, match="Broken: stream gone"):
        Population.read(Broken(), ICBS)
    with pytest.raises(errors.UnreadableInputError, match="population file"):
        Population.read("p\0.csv", ICBS)


def test_run_report_checks_its_counting_options_first(tmp_path: Path) -> None:
    from didcore.report.pipeline import run_report

    for kwargs in ({"max_age": 2**63}, {"n_threads": -1}, {"n_threads": 1.5}):
        with pytest.raises(errors.InputError, match=r"max_age|n_threads"):
            run_report(
                [tmp_path / "none.parquet"],
                lookups=LOOKUPS,
                population=tmp_path / "none.csv",
                out_dir=tmp_path / "out",
                **kwargs,  # type: ignore[arg-type]
            )


def test_a_too_long_extract_path_exits_2_with_one_line(tmp_path: Path, lookups_dir: Path) -> None:
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "didcore", "cube", str(tmp_path / ("e" * 300))),
            *("--lookups", str(lookups_dir), "--out", str(tmp_path / "out")),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "too long" in lines[0]


# ---------------------------------------------------------------------- fuzz-suite findings


def test_corrupt_chunk_statistics_are_an_error_not_an_abort(tmp_path: Path) -> None:
    """A Parquet file (found by the fuzz suite) whose column-chunk statistics are corrupt:
    pyarrow opens it, but building a chunk's metadata throws a C++ exception nothing catches
    (SIGABRT). didcore never asks for that metadata: the read fails cleanly instead."""
    import gzip

    path = tmp_path / "corrupt.parquet"
    path.write_bytes(
        gzip.decompress((TESTS / "data/corrupt-chunk-statistics.parquet.gz").read_bytes())
    )
    code = f"""
        import didcore
        from didcore.errors import InputError
        from test_cube import LOOKUPS
        try:
            cube = didcore.aggregate({str(path)!r}, LOOKUPS, progress=False)
        except InputError as exc:
            print(type(exc).__name__)
        else:  # older pyarrow (14) reads the file without looking at those statistics
            ex = cube.exclusions
            parts = ex["no_icb"] + ex["no_imd"] + ex["no_sex"] + ex["no_age"] + ex["included"]
            print("conserved" if parts == ex["rows_read"] else "NOT CONSERVED")
    """
    proc = _python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() in {"UnreadableInputError", "conserved"}


@pytest.mark.parametrize("damage", ["cut", "flipped"])
def test_a_corrupt_gzip_csv_is_unreadable_input(tmp_path: Path, damage: str) -> None:
    import gzip

    body = b"provider_code,gp_practice_code,lsoa11,sex,age,modality,exam_code\n"
    body += b"RM3,A81001,E01000001,1,40,Plain Radiography,XCHES\n" * 50
    data = bytearray(gzip.compress(body))
    if damage == "cut":
        data = data[: len(data) // 2]
    else:
        data[20] ^= 0xFF
    path = tmp_path / "extract.csv.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(errors.UnreadableInputError, match=r"extract\.csv\.gz"):
        didcore.aggregate(path, LOOKUPS, progress=False)


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyError("boom"), OSError(5, "boom")])
def test_any_failure_of_a_callers_stream_is_unreadable_input(exc: Exception) -> None:
    """The caller's reader raising, in process or through the C stream interface (where
    pyarrow wraps it in an OSError): UnreadableInputError chained to the original."""
    table = _table(8)

    def batches() -> Any:
        yield table.to_batches()[0]
        raise exc

    class CStream:
        def __init__(self, reader: pa.RecordBatchReader) -> None:
            self.reader = reader

        def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
            return self.reader.__arrow_c_stream__(requested_schema)

    for wrap in (lambda r: r, CStream):
        reader = pa.RecordBatchReader.from_batches(table.schema, batches())
        with pytest.raises(errors.UnreadableInputError, match="batch 2 failed after 8 rows"):
            didcore.aggregate(wrap(reader), LOOKUPS, progress=False)


def test_text_offsets_that_do_not_rise_are_corrupt_input() -> None:
    import numpy as np

    offsets = np.array([0, 6, 0], np.int32)
    bad = pa.Array.from_buffers(
        pa.string(), 2, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"XCHESXKNEE")]
    )
    for column in ("provider_code", "lsoa11", "exam_code"):
        src = _table(2, **{column: bad})
        with pytest.raises(errors.CorruptInputError, match=f"column '{column}'.*offsets"):
            didcore.aggregate(src, LOOKUPS, progress=False)


def test_a_first_row_longer_than_the_header_probe_is_read(tmp_path: Path) -> None:
    """A CSV whose first data row is over 64 KiB (a value run on): read, not refused."""
    header = "provider_code,gp_practice_code,lsoa11,sex,age,test_date,modality,exam_code\n"
    row = "RM3,A81001,E01000001,1,40,2023-05-01,Plain Radiography,XCHES\n"
    long = "RM3,A81001,E01000001,1,40,2023-05-01,Plain Radiography," + "X" * 70_000 + "\n"
    path = tmp_path / "extract.csv"
    path.write_text(header + long + row * 9)
    cube = didcore.aggregate(path, LOOKUPS, progress=False)
    assert cube.exclusions["rows_read"] == 10
    _conserved(cube)


def test_a_long_unreadable_value_is_cut_in_the_warning() -> None:
    table = _table(4, age=["40", "41", "4" + "Z" * 10_000, "43"])
    with pytest.warns(errors.UnreadableValuesWarning) as seen:
        didcore.aggregate(table, LOOKUPS, progress=False)
    message = str(seen[0].message)
    assert "(10,001 characters)" in message and len(message) < 300


def test_a_missing_column_suggests_the_column_option_for_a_near_name() -> None:
    """Another spelling of a required column ('Gender', 'PROVIDER_CODE'): the one-line error
    gives the exact --column options that read it."""
    table = _table(4).rename_columns(
        [
            "PROVIDER_CODE",
            "gp_practice_code",
            "lsoa11",
            "Gender",
            "age",
            "test_date",
            "modality",
            "exam_code",
        ]
    )
    with pytest.raises(errors.MissingColumnError) as caught:
        didcore.aggregate(table, LOOKUPS, progress=False)
    message = str(caught.value)
    assert "--column provider_code=PROVIDER_CODE --column sex=Gender" in message


@pytest.mark.parametrize("sep", [";", "|", "\t"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_csv_files_separated_otherwise_are_read(tmp_path: Path, sep: str, encoding: str) -> None:
    """A spreadsheet's "CSV" with semicolons (where the comma is the decimal mark), bar- or
    tab-separated text named .csv: read with their separator, counted as the comma file is.
    Their header was one long column name, and the error suggested renaming every role.
    """
    table = _table(12)
    commas = tmp_path / "commas.csv"
    commas.write_text(_csv_text(table))
    other = tmp_path / "other.csv"
    options = pacsv.WriteOptions(delimiter=sep, quoting_style="none")
    pacsv.write_csv(table, other, options)
    other.write_bytes(other.read_text().encode(encoding))
    expected = didcore.aggregate(commas, LOOKUPS)
    got = didcore.aggregate(other, LOOKUPS)
    assert got.exclusions == expected.exclusions
    assert (got.counts == expected.counts).all()


def test_a_comma_in_the_header_keeps_the_comma(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text(_csv_text(_table(5)).replace("RWF", '"RW;F"', 1))
    assert didcore.aggregate(path, LOOKUPS).exclusions["rows_read"] == 5


@pytest.mark.parametrize(
    ("name", "head", "words"),
    [
        ("e.xlsx", b"PK\x03\x04rest", "is a spreadsheet"),
        ("e.csv", b"PK\x03\x04rest", "is a zip archive, not a CSV or Parquet file: unzip it"),
        ("e.csv", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1rest", "Excel 97-2003 workbook"),
    ],
)
def test_a_spreadsheet_or_zip_is_named_as_such(
    tmp_path: Path, name: str, head: bytes, words: str
) -> None:
    path = tmp_path / name
    path.write_bytes(head + bytes(200))
    with pytest.raises(errors.UnreadableInputError, match=words):
        didcore.aggregate(path, LOOKUPS)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "e.csv").write_bytes(head + bytes(200))  # inside a folder too
    with pytest.raises(errors.UnreadableInputError, match="not a CSV or Parquet file"):
        didcore.aggregate(folder, LOOKUPS)


def test_files_with_and_without_test_dates_are_refused(tmp_path: Path) -> None:
    """Counted as an extract without test dates, the dated file's years were one cube."""
    table = _table(10)
    pq.write_table(table, tmp_path / "a.parquet")
    pq.write_table(table.drop(["test_date"]), tmp_path / "b.parquet")
    for by_year in (False, True):
        with pytest.raises(errors.MissingColumnError, match=r"not in .*b\.parquet: every file"):
            didcore.aggregate(tmp_path, LOOKUPS, by_year=by_year, year="2023/24")
