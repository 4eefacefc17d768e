"""Reading extracts (docs/inputs.md) as a stream of Arrow record batches.

A *source* is any of:

* a path to a Parquet file (``.parquet``/``.pq``), a CSV file (``.csv``, ``.csv.gz``; ``.tsv``
  and ``.tsv.gz`` tab-separated), or a folder of them, subfolders included (read in path
  order; names starting with ``.`` or ``_`` skipped);
* a list or tuple of such paths;
* a ``pyarrow.Table``, ``RecordBatch`` or ``RecordBatchReader``;
* any object with ``__arrow_c_stream__`` (a polars DataFrame, a DuckDB relation, ...).

Parquet is read one row group at a time, only the needed columns, with string columns kept
dictionary-encoded, so memory does not grow with the number of rows.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from didcore.errors import InputError, MissingColumnError, UnreadableInputError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Columns", "Extract", "open_extract"]

_PARQUET = (".parquet", ".pq")
_CSV = (".csv", ".csv.gz", ".tsv", ".tsv.gz")
_BATCH_ROWS = 1 << 20


@dataclass(frozen=True)
class Columns:
    """Names of the extract's columns (docs/inputs.md); change any to match your extract."""

    provider_code: str = "provider_code"
    gp_practice_code: str = "gp_practice_code"
    lsoa11: str = "lsoa11"
    sex: str = "sex"
    age: str = "age"
    date_of_birth: str = "date_of_birth"
    test_date: str = "test_date"
    modality: str = "modality"
    exam_code: str = "exam_code"

    @property
    def codes(self) -> tuple[str, ...]:
        """The string code columns, always required."""
        return (self.provider_code, self.gp_practice_code, self.lsoa11, self.modality)

    def needed(self, available: Sequence[str]) -> tuple[list[str], bool]:
        """Columns to read from a source with ``available`` columns, and whether age comes from
        the ``age`` column (else from date of birth and test date).

        Raises :class:`MissingColumnError` naming what is missing, and :class:`InputError`
        if a column it would read is named twice.
        """
        have = set(available)
        required = [*self.codes, self.sex, self.exam_code]
        missing = [c for c in required if c not in have]
        use_age = self.age in have
        if not use_age and not {self.date_of_birth, self.test_date} <= have:
            missing.append(f"{self.age} (or {self.date_of_birth} and {self.test_date})")
        if missing:
            raise MissingColumnError(
                f"the extract has no column {', '.join(repr(m) for m in missing)} "
                f"(it has: {', '.join(available) or 'no columns'}); pass columns=Columns(...) "
                "to name yours"
            )
        ages = [self.age] if use_age else [self.date_of_birth, self.test_date]
        if use_age and self.test_date in have:
            ages.append(self.test_date)  # each record's financial year (didcore.years)
        names = [*required, *ages]
        seen = Counter(available)
        twice = [n for n in names if seen[n] > 1]
        if twice:
            raise InputError(
                f"the extract has more than one column named {', '.join(map(repr, twice))}; "
                "rename or drop the copies so that each is named once"
            )
        return names, use_age


@dataclass
class Extract:
    """An opened source: its batches (a one-shot iterator) and what is known up front."""

    batches: Iterator[pa.RecordBatch]
    use_age: bool
    total_rows: int | None
    files: tuple[Path, ...]
    #: whether every part of the source has the test date column (financial years)
    dated: bool = True


def is_binary_type(t: pa.DataType) -> bool:
    """Whether ``t`` is one of Arrow's binary types: text written without its UTF-8
    annotation (some Parquet writers leave it out), which didcore reads as UTF-8.
    """
    import pyarrow as pa

    return bool(
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_fixed_size_binary(t)
    )


def open_extract(source: Any, columns: Columns | None = None) -> Extract:
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
        table = source.select(names)
        return Extract(_table_batches(table), use_age, len(table), (), cols.test_date in names)
    if isinstance(source, pa.RecordBatch):
        names, use_age = cols.needed(source.schema.names)
        batches = iter([source.select(names)])
        return Extract(batches, use_age, source.num_rows, (), cols.test_date in names)
    if isinstance(source, pa.RecordBatchReader):
        return _open_reader(source, cols)
    if hasattr(source, "__arrow_c_stream__"):
        return _open_reader(pa.RecordBatchReader.from_stream(source), cols)
    for method in ("to_arrow", "arrow"):
        if hasattr(source, method):
            return open_extract(getattr(source, method)(), cols)
    # a lazy query (polars LazyFrame, ...) says what to do rather than running it unasked
    hint = "; collect() it first" if callable(getattr(source, "collect", None)) else ""
    raise UnreadableInputError(
        f"cannot read an extract from {type(source).__name__}: give a Parquet/CSV path, a folder, "
        f"a list of paths, a pyarrow Table or RecordBatchReader, or an Arrow stream{hint}"
    )


def _table_batches(table: pa.Table) -> Iterator[pa.RecordBatch]:
    """Batches of about a million rows from an in-memory table.

    Tables read with ``pq.read_table`` come in chunks of ~100k rows. With plain text columns
    small chunks are combined first (one slice at a time, so memory stays bounded): each batch
    has a fixed cost (encoding calls, classification, a counting pass), and counting 125k-row
    chunks as they are was 25% slower at 50M rows. Dictionary columns are left as they are:
    their chunks usually share one dictionary, whose classification is then reused.
    """
    import pyarrow as pa

    n_chunks = max((c.num_chunks for c in table.columns), default=0)
    plain_text = any(
        pa.types.is_string(f.type) or pa.types.is_large_string(f.type) for f in table.schema
    )
    if not plain_text or n_chunks == 0 or len(table) / n_chunks >= _BATCH_ROWS / 2:
        yield from table.to_batches(max_chunksize=_BATCH_ROWS)
        return
    for start in range(0, len(table), _BATCH_ROWS):
        piece = table.slice(start, _BATCH_ROWS)
        # Dictionary chunks whose merged dictionary would outgrow their index type (int8
        # indices, different codes per chunk) are counted as they are.
        with contextlib.suppress(pa.ArrowInvalid):
            piece = piece.combine_chunks()
        yield from piece.to_batches()


def _open_reader(reader: pa.RecordBatchReader, cols: Columns) -> Extract:
    names, use_age = cols.needed(reader.schema.names)

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            yield batch.select(names)

    return Extract(batches(), use_age, None, (), cols.test_date in names)


def _data_files(folder: Path) -> list[Path]:
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
            found.extend(_data_files(p))
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
            found = _data_files(path)
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


def _open_paths(files: list[Path], cols: Columns) -> Extract:
    import pyarrow as pa
    import pyarrow.parquet as pq

    plans: list[tuple[Path, Any, list[str]]] = []
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
                schema_names = _csv_header(path)
                handle = None
                total = None
        except (OSError, pa.ArrowException) as exc:
            raise UnreadableInputError(f"cannot read {path}: {exc}") from exc
        names, use_age = cols.needed(schema_names)
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

    def batches() -> Iterator[pa.RecordBatch]:
        for path, handle, names in plans:
            try:
                if handle is not None:
                    yield from _parquet_batches(path, names, string_cols)
                else:
                    yield from _csv_batches(path, names, string_cols, text_cols)
            except (OSError, pa.ArrowException) as exc:
                raise UnreadableInputError(f"cannot read {path}: {exc}") from exc

    dated = all(cols.test_date in names for _, _, names in plans)
    return Extract(batches(), bool(use_age_all), total, tuple(files), dated)


def _parquet_batches(path: Path, names: list[str], string_cols: list[str]) -> Iterator[Any]:
    import pyarrow.parquet as pq

    # read_dictionary keeps Parquet's dictionary pages as Arrow dictionaries: the core then
    # classifies each distinct code once per row group instead of hashing a string per row.
    pf = pq.ParquetFile(path, read_dictionary=[c for c in string_cols if c in names])
    for i in range(pf.num_row_groups):
        table = pf.read_row_group(i, columns=names, use_threads=True)
        yield from table.to_batches()


def _csv_parse(path: Path) -> Any:
    """Parse options: tab-separated for ``.tsv`` files, comma-separated otherwise."""
    import pyarrow.csv as pacsv

    tab = path.name.lower().endswith((".tsv", ".tsv.gz"))
    return pacsv.ParseOptions(delimiter="\t" if tab else ",")


def _csv_header(path: Path) -> list[str]:
    import pyarrow.csv as pacsv

    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=1 << 16),
        parse_options=_csv_parse(path),
    )
    return list(reader.schema.names)


# Bytes of CSV text read (and turned into one record batch) at a time.
CSV_BLOCK_BYTES = 64 << 20


def _csv_batches(
    path: Path, names: list[str], string_cols: list[str], text_cols: list[str]
) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    # Codes as dictionary-encoded text (never numbers: "01A", "0001"); sex as text too, so
    # "1", " 1" and "M" are all seen and classified the same way as in Parquet. Ages and
    # dates as plain text, parsed later.
    types = {c: pa.string() for c in text_cols if c in names}
    types.update({c: pa.dictionary(pa.int32(), pa.string()) for c in string_cols if c in names})
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
        parse_options=_csv_parse(path),
        convert_options=pacsv.ConvertOptions(
            include_columns=names, column_types=types, strings_can_be_null=True
        ),
    )
    yield from reader


def prefetch(items: Iterator[Any], depth: int = 2) -> Iterator[Any]:
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
