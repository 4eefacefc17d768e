"""Reading extracts (docs/inputs.md) as a stream of Arrow record batches.

A *source* is any of:

* a path to a Parquet file (``.parquet``/``.pq``), a CSV file (``.csv``, ``.csv.gz``; ``.tsv``
  and ``.tsv.gz`` tab-separated), or a folder of them, subfolders included (read in path
  order; names starting with ``.`` or ``_`` skipped);
* a list or tuple of such paths;
* a ``pyarrow.Table``, ``RecordBatch`` or ``RecordBatchReader``;
* any object with ``__arrow_c_stream__`` (a polars DataFrame, a DuckDB relation, ...);
* a ``pyarrow.dataset.Dataset``/``Scanner``, a ``pyarrow.parquet.ParquetFile``, a polars
  ``LazyFrame``, a pandas ``DataFrame``, or an iterable of ``RecordBatch`` objects
  (:func:`_open_interop`).

Parquet is read one row group at a time, only the needed columns, with string columns kept
dictionary-encoded, so memory does not grow with the number of rows.

This module opens a source (:func:`open_extract`), lists an extract folder's files
(:func:`extract_files`) and reads ahead on a thread (:func:`prefetch`). The parts live by
concern, their names re-exported here: the column roles and the types each accepts in
:mod:`didcore.columns`, in-memory and streaming sources in :mod:`didcore.sources`, Parquet and
CSV files in :mod:`didcore.textfiles`.
"""

from __future__ import annotations

import atexit
import os
import queue
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from didcore._arrow_compat import reader_from_stream
from didcore.columns import Columns, Extract, check_types
from didcore.columns import is_binary_type as is_binary_type
from didcore.columns import is_text_type as is_text_type
from didcore.errors import InputError, MissingColumnError, UnreadableInputError
from didcore.sources import (
    _first_line,
    _foreign_failure,
    _open_interop,
    _open_reader,
    _table_batches,
)
from didcore.textfiles import _csv_batches, _csv_header, _parquet_batches, csv_problem
from didcore.textfiles import csv_column_names as csv_column_names
from didcore.textfiles import csv_encoding as csv_encoding

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Columns", "Extract", "extract_files", "open_extract"]

_PARQUET = (".parquet", ".pq")
_CSV = (".csv", ".csv.gz", ".tsv", ".tsv.gz")
_BATCH_ROWS = 1 << 20
# Rows per batch of Parquet decoded by the core: the batches in flight through the read ->
# classify -> count pipeline (up to seven, 32 bytes a row each) are most of the memory a run
# adds. At 2^18 rows, 50M-row runs peaked at 213-225 MB against 237-263 MB at 2^19 (and
# 338 MB at 2^20), in interleaved runs of the same speed; a batch still spreads over every
# counting thread.
_NATIVE_BATCH_ROWS = 1 << 18


def open_extract(source: Any, columns: Columns | None = None, *, _depth: int = 0) -> Extract:
    """Open ``source`` for streaming; see the module docstring for what it may be."""
    import pyarrow as pa

    from didcore.arguments import check_path

    cols = columns or Columns()
    if not isinstance(cols, Columns):
        raise InputError(f"columns must be a didcore.Columns, not {type(cols).__name__}")
    if isinstance(source, str | os.PathLike):
        return _open_paths(_expand([check_path(source, "extract")]), cols)
    if isinstance(source, list | tuple) and all(isinstance(s, str | os.PathLike) for s in source):
        return _open_paths(_expand([check_path(s, "extract") for s in source]), cols)
    if isinstance(source, pa.Table):
        names, use_age = cols.needed(source.column_names)
        check_types(source.schema, names, cols)
        table = source.select(names)
        return Extract(_table_batches(table), use_age, len(table), (), cols.test_date in names)
    if isinstance(source, pa.RecordBatch):
        names, use_age = cols.needed(source.schema.names)
        check_types(source.schema, names, cols)
        batches = iter([source.select(names)])
        return Extract(batches, use_age, source.num_rows, (), cols.test_date in names)
    if isinstance(source, pa.RecordBatchReader):
        return _open_reader(source, cols, "the RecordBatchReader")
    opened = _open_interop(source, cols)
    if opened is not None:
        return opened
    what = type(source).__name__
    if hasattr(source, "__arrow_c_stream__"):
        try:
            reader = reader_from_stream(source)
        except BaseException as exc:
            if not _foreign_failure(exc):
                raise
            raise UnreadableInputError(
                f"cannot read an Arrow stream from {what}: its __arrow_c_stream__ failed: "
                f"{_first_line(exc)}"
            ) from exc
        return _open_reader(reader, cols, f"the Arrow stream from {what}")
    for method in ("to_arrow", "arrow"):
        if hasattr(source, method):
            try:
                converted = getattr(source, method)()
            except BaseException as exc:
                if not _foreign_failure(exc):
                    raise
                raise UnreadableInputError(
                    f"cannot read an extract from {what}: its {method}() failed: "
                    + _first_line(exc)
                ) from exc
            if converted is source or _depth >= 4:
                raise UnreadableInputError(
                    f"cannot read an extract from {what}: its {method}() does not give Arrow "
                    "data (it gives the object itself, or another object of the kind)"
                )
            return open_extract(converted, cols, _depth=_depth + 1)
    # another lazy query (a Spark or Ibis frame, ...) says what to do rather than running it
    hint = "; collect() it first" if callable(getattr(source, "collect", None)) else ""
    raise UnreadableInputError(
        f"cannot read an extract from {what}: give a Parquet/CSV path, a folder, "
        "a list of paths, a pyarrow Table, RecordBatchReader or Dataset, a polars or pandas "
        f"frame, an iterable of RecordBatches, or an Arrow stream (docs/inputs.md){hint}"
    )


def extract_files(folder: Path) -> list[Path]:
    """The .parquet and .csv files below ``folder``, in its subfolders too (a folder per
    year, Hive partitions such as ``year=2023/``), in path order. Names starting with ``.``
    or ``_`` are skipped at every level, as Arrow datasets skip them: Spark's ``_SUCCESS``
    and ``_temporary/``, editors' and checksum files.
    """
    found = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith((".", "_")):
            continue
        if p.is_dir():
            found.extend(extract_files(p))
        elif p.is_file() and p.name.lower().endswith(_PARQUET + _CSV):
            found.append(p)
    return found


def _expand(paths: list[Path]) -> list[Path]:
    try:
        return _expand_paths(paths)
    except OSError as exc:  # a folder that cannot be listed, a path that cannot be looked up
        if isinstance(exc, InputError):
            raise
        where = f" {exc.filename}" if exc.filename else ""
        raise UnreadableInputError(f"cannot read extract{where}: {exc.strerror or exc}") from exc


def _expand_paths(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = extract_files(path)
            if not found:
                raise UnreadableInputError(f"folder {path} holds no .parquet or .csv files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise UnreadableInputError(f"extract {path} does not exist")
    if not files:
        raise UnreadableInputError("no extract files were given")
    return files


#: Spreadsheet files, refused by name, and the first bytes of the formats they come in (a zip
#: archive: .xlsx, .ods; OLE2: .xls), refused in a file named otherwise.
_SPREADSHEETS = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods")
_SPREADSHEET_MAGIC = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")


def _refuse_spreadsheet(path: Path) -> None:
    """A spreadsheet given as the extract is an error saying so (read as CSV, it was a
    parse error about an empty block or binary text).
    """
    if path.name.lower().endswith(_PARQUET):
        return
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError:
        return  # the reader says what is wrong
    save = "save it as 'CSV UTF-8', or export the extract as Parquet"
    if path.name.lower().endswith(_SPREADSHEETS):
        what, fix = "a spreadsheet (Excel or OpenDocument)", save
    elif head.startswith(_SPREADSHEET_MAGIC[0]):
        what, fix = "a zip archive", f"unzip it (or, if it is an Excel workbook, {save})"
    elif head.startswith(_SPREADSHEET_MAGIC[1]):
        what, fix = "an Excel 97-2003 workbook", save
    else:
        return
    raise UnreadableInputError(f"{path} is {what}, not a CSV or Parquet file: {fix}")


def _open_paths(files: list[Path], cols: Columns) -> Extract:
    import pyarrow as pa
    import pyarrow.parquet as pq

    plans: list[tuple[Path, Any, list[str]]] = []
    headers: dict[Path, list[str]] = {}
    total: int | None = 0
    use_age_all: bool | None = None
    for path in files:
        try:
            if path.name.lower().endswith(_PARQUET):
                pf = pq.ParquetFile(path)
                schema_names = pf.schema_arrow.names
                handle: Any = pf
                if total is not None:
                    total += pf.metadata.num_rows
            else:
                _refuse_spreadsheet(path)
                schema_names = headers[path] = _csv_header(path)
                handle = None
                total = None
        except UnicodeDecodeError as exc:  # a Parquet column name that is not UTF-8
            raise UnreadableInputError(
                f"cannot read {path}: a column name is not UTF-8 text ({exc.object!r})"
            ) from exc
        except (OSError, pa.ArrowException) as exc:
            if isinstance(exc, InputError):
                raise
            raise UnreadableInputError(f"cannot read {path}: {exc}") from exc
        names, use_age = cols.needed(schema_names)
        if handle is not None:  # a CSV's columns are read as text
            check_types(handle.schema_arrow, names, cols, f"{path}: ")
        if use_age_all is None:
            use_age_all = use_age
        elif use_age_all != use_age:
            raise MissingColumnError(
                f"{path} gives age as {'age' if use_age else 'dates'} but earlier files do not; "
                "every file must use the same columns"
            )
        plans.append((path, handle, names))
    string_cols = [*cols.codes, cols.exam_code, cols.sex]
    # A CSV's age and dates are read as text and parsed per batch (didcore.cube): pyarrow
    # infers a column's type from its first block, and a first block whose ages are all
    # empty (null type), or whole while later ones say "40.0", fails on a later block.
    text_cols = [*string_cols, cols.age, cols.date_of_birth, cols.test_date]

    counting: dict[str, Any] = {}

    def batches() -> Iterator[pa.RecordBatch]:
        from didcore import parquet_native

        # One core decoder for the run's Parquet files (a dictionary a text column across
        # them all), unless DIDCORE_PARQUET=pyarrow.
        natives: dict[tuple[str, ...], Any] = {}
        for path, handle, names in plans:
            try:
                if handle is not None:
                    native = None
                    if parquet_native.enabled():
                        native = natives.get(tuple(names))
                        if native is None:
                            native = natives[tuple(names)] = parquet_native.NativeParquet(
                                names, counting=counting.get("roles")
                            )
                    yield from _parquet_batches(
                        path, names, string_cols, native, min(_BATCH_ROWS, _NATIVE_BATCH_ROWS)
                    )
                else:
                    yield from _csv_batches(path, names, string_cols, text_cols, CSV_BLOCK_BYTES)
            except (OSError, pa.ArrowException, UnicodeDecodeError) as exc:
                if isinstance(exc, InputError):
                    raise
                header = [] if handle is not None else headers.get(path, [])
                raise UnreadableInputError(csv_problem(path, exc, header)) from exc

    dated = all(cols.test_date in names for _, _, names in plans)
    undated = [path for path, _, names in plans if cols.test_date not in names]
    if undated and not dated and len(undated) < len(plans):
        # the rows of the files without test dates would be counted in no financial year, or
        # (as an extract without test dates) all years would be one: refused
        some = ", ".join(str(p) for p in undated[:3]) + (" and more" if len(undated) > 3 else "")
        raise MissingColumnError(
            f"column {cols.test_date!r} is in some files of the extract but not in {some}: "
            "every file needs it (or none, with --year declaring the year of them all)"
        )
    return Extract(batches(), bool(use_age_all), total, tuple(files), dated, counting)


# Bytes of CSV text read (and turned into one record batch) at a time.
CSV_BLOCK_BYTES = 64 << 20


def prefetch(items: Iterator[Any], depth: int = 2) -> Generator[Any, None, None]:
    """Iterate ``items`` on a background thread, up to ``depth`` ahead.

    Reading (pyarrow) and counting (Rust) both release the interpreter, so reading batch k+1
    while batch k is counted overlaps the two. Exceptions are re-raised in the consumer.

    The reader thread never outlives the consumer: when the consumer stops (finished, an
    error, ``close()``), it tells the thread to stop, empties the queue and joins it. A thread
    still inside pyarrow when the interpreter exits makes C++ abort the process (SIGABRT,
    "terminate called without an active exception"), so the join has no timeout; the thread
    always wakes: it blocks only in ``q.put`` with a timeout, checking the stop flag, or in its
    source, which it closes (``items.close()``) when it ends, so that a nested ``prefetch``
    stops its own thread in turn. A second Ctrl-C during that join is held until the join is
    over, then raised.
    """
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[str, Any]) -> bool:
        """Queue ``entry`` unless told to stop first; whether it was queued."""
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def worker() -> None:
        try:
            try:
                for item in items:
                    if not put(("item", item)):
                        return
            finally:
                close = getattr(items, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:  # re-raised in the consumer thread
            put(("error", exc))
        else:
            put(("done", None))

    thread = threading.Thread(target=worker, name="didcore-reader", daemon=True)
    _LIVE[thread] = stop
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        interrupted = False
        while thread.is_alive():
            try:
                _drain(q)
                thread.join()
            except KeyboardInterrupt:
                interrupted = True
        _LIVE.pop(thread, None)
        if interrupted:
            raise KeyboardInterrupt


def _drain(q: queue.Queue[Any]) -> None:
    """Empty ``q`` without blocking (frees a worker waiting to put, and what it holds)."""
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


# Reader threads not yet joined, with their stop flags: the safety net below stops them at
# exit when a caller dropped a prefetch iterator without closing it.
_LIVE: dict[threading.Thread, threading.Event] = {}


@atexit.register
def _stop_readers() -> None:
    """At interpreter exit, stop every reader thread still running and wait for it (at most
    10 s each): one still inside pyarrow as the process exits would abort it.
    """
    live = list(_LIVE.items())
    for _, stop in live:
        stop.set()
    for thread, _ in live:
        thread.join(timeout=10)
