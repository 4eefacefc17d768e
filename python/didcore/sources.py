"""In-memory and streaming sources read as a stream of Arrow record batches: pyarrow
Tables, RecordBatchReaders and C streams, and the interop sources read through their own
streaming API (a ``pyarrow.dataset.Dataset``/``Scanner``, a ``pyarrow.parquet.ParquetFile``,
a polars ``LazyFrame``, a pandas ``DataFrame``, an iterable of record batches).

A source's own failure (its reader raising part-way, a Rust panic in its Arrow export)
becomes an :class:`~didcore.errors.UnreadableInputError` here (:func:`_foreign_failure`).
:func:`didcore.io.open_extract` dispatches to these.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from didcore._arrow_compat import reader_from_stream
from didcore.columns import Columns, Extract, check_types
from didcore.errors import (
    ColumnTypeError,
    InputError,
    MissingColumnError,
    UnreadableInputError,
)

if TYPE_CHECKING:
    import pyarrow as pa


def _batch_rows() -> int:
    """Rows per batch read from a source (about a million): ``didcore.io._BATCH_ROWS``,
    looked up there at each call so that the one setting governs files and every other
    source alike (tests lower it to see several batches).
    """
    from didcore import io

    return io._BATCH_ROWS


def _open_interop(source: Any, cols: Columns) -> Extract | None:
    """Sources read through their own streaming API, only the needed columns, or ``None``.

    * ``pyarrow.dataset.Dataset``: scanned with the needed columns only; ``Scanner``: its
      batches as projected; ``pyarrow.parquet.ParquetFile``: ``iter_batches`` of the needed
      columns, a million rows at a time;
    * a polars ``LazyFrame``: the needed columns, run by polars' streaming engine as batches
      (``collect_batches``), so the frame is never whole in memory;
    * a pandas ``DataFrame``: the needed columns converted to Arrow once, column by column in
      pyarrow's threads (object-dtype strings, as pandas < 3 makes them, convert at C speed
      there instead of row by row through the frame's Arrow stream);
    * any other iterable of ``pyarrow.RecordBatch`` (a list, a generator): every batch must have
      the first one's schema, else an :class:`InputError` naming the batch.
    """
    import pyarrow as pa

    # by class name (subclasses too: FileSystemDataset), so that neither pyarrow.dataset nor
    # polars nor pandas is imported to ask
    kinds = {(k.__module__.split(".")[0], k.__name__) for k in type(source).__mro__}

    def kind_of(module: str, name: str) -> bool:
        return (module, name) in kinds

    if kind_of("pyarrow", "Dataset"):
        names, _ = cols.needed(source.schema.names)
        check_types(source.schema, names, cols, "the pyarrow Dataset: ")
        reader = source.scanner(columns=names, batch_size=_batch_rows()).to_reader()
        return _open_reader(reader, cols, "the pyarrow Dataset")
    if kind_of("pyarrow", "Scanner"):
        return _open_reader(source.to_reader(), cols, "the pyarrow Scanner")
    if kind_of("pyarrow", "ParquetFile"):
        schema = source.schema_arrow
        names, _ = cols.needed(schema.names)
        check_types(schema, names, cols, "the ParquetFile: ")
        batches = source.iter_batches(batch_size=_batch_rows(), columns=names)
        projected = pa.schema([schema.field(n) for n in names])
        reader = pa.RecordBatchReader.from_batches(projected, batches)
        extract = _open_reader(reader, cols, "the ParquetFile")
        extract.total_rows = source.metadata.num_rows
        return extract
    if kind_of("polars", "LazyFrame"):
        return _open_lazyframe(source, cols)
    if kind_of("pandas", "DataFrame"):
        return _open_pandas(source, cols)
    if (
        isinstance(source, Iterable)
        and not isinstance(source, str | bytes | Mapping)
        and not any(hasattr(source, m) for m in ("__arrow_c_stream__", "to_arrow", "arrow"))
    ):
        return _open_batch_iterable(iter(source), cols)
    return None


def _open_lazyframe(lf: Any, cols: Columns) -> Extract:
    """A polars LazyFrame, run by polars' streaming engine as Arrow batches."""
    from didcore.io import open_extract

    try:
        names, _ = cols.needed(lf.collect_schema().names())
        query = lf.select(names)
        if not hasattr(query, "collect_batches"):  # polars before collect_batches
            return open_extract(query.collect(), cols)
        stream = query.collect_batches(chunk_size=_batch_rows())
        if hasattr(stream, "__arrow_c_stream__"):
            reader = reader_from_stream(stream)
            return _open_reader(reader, cols, "the polars LazyFrame")
    except InputError:
        raise
    except Exception as exc:  # polars' own errors (a missing file, a bad expression)
        raise UnreadableInputError(f"cannot run the polars LazyFrame: {_first_line(exc)}") from exc
    batches = (b for frame in stream for b in frame.to_arrow().to_batches())
    extract = _open_batch_iterable(batches, cols, "the polars LazyFrame's batches")
    if extract is None:
        raise UnreadableInputError("the polars LazyFrame's batches are not Arrow record batches")
    return extract


def _open_pandas(df: Any, cols: Columns) -> Extract:
    """A pandas DataFrame: the needed columns, converted to Arrow a million rows at a time.

    Object-dtype strings (pandas < 3) convert at about 0.1 s per million values and column,
    holding the interpreter. Each column is converted from a view of its rows (no copy of the
    frame), slice by slice inside the batch iterator, so the reading thread (:func:`prefetch`)
    converts slice k+1 while slice k is counted and memory holds a few slices, not a second
    copy of the frame (its ``__arrow_c_stream__`` converts every column, whole, first). The
    first slice fixes the types; a column with no value there takes the type of its first
    value further down. A later slice whose values do not fit is a :class:`ColumnTypeError`.
    """
    import pyarrow as pa

    labels = {str(c): c for c in df.columns}
    names, use_age = cols.needed([str(c) for c in df.columns])
    series = [df[labels[name]] for name in names]
    n = len(df)

    def convert(start: int, types: list[Any]) -> pa.RecordBatch:
        arrays = []
        for name, column, kind in zip(names, series, types, strict=True):
            part = column.iloc[start : start + _batch_rows()]
            try:
                array = pa.array(part, type=kind, from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                raise ColumnTypeError(
                    f"cannot convert column {name!r} of the pandas DataFrame to Arrow (rows "
                    f"{start + 1:,} to {start + len(part):,}): {_first_line(exc)}; give the "
                    "column one type, e.g. df[column].astype(str) for codes"
                ) from exc
            if isinstance(array, pa.ChunkedArray):  # over 2 GB of text in one slice
                array = array.combine_chunks()
            arrays.append(array)
        return pa.RecordBatch.from_arrays(arrays, names=names)

    first = convert(0, [None] * len(names))
    types = list(first.schema.types)
    for i, kind in enumerate(types):
        if pa.types.is_null(kind):  # no value in the first slice: look further
            valid = series[i].notna().to_numpy()  # by position: index labels may repeat
            if valid.any():
                at = int(valid.argmax())
                sample = series[i].iloc[at : at + 1000].to_numpy()
                types[i] = pa.infer_type(sample, from_pandas=True)
    if types != list(first.schema.types):
        first = convert(0, types)
    check_types(first.schema, names, cols, "the pandas DataFrame: ")

    def batches() -> Iterator[pa.RecordBatch]:
        yield first
        for start in range(_batch_rows(), n, _batch_rows()):
            yield convert(start, types)

    return Extract(batches(), use_age, n, (), cols.test_date in names)


def _open_batch_iterable(
    items: Iterator[Any], cols: Columns, what: str = "the iterable of record batches"
) -> Extract | None:
    """Record batches from an iterator: the first gives the schema every later one must have.

    An iterator whose first item is not a ``RecordBatch`` is not taken for one (``None``,
    so the caller refuses the source as it would any unknown object); an empty one is an
    :class:`InputError`.
    """
    import pyarrow as pa

    first = next(items, None)
    if first is None:
        raise UnreadableInputError(f"{what} gave no batch: there is nothing to count")
    if not isinstance(first, pa.RecordBatch):
        return None
    schema = first.schema
    names, use_age = cols.needed(schema.names)
    check_types(schema, names, cols, f"{what}: ")

    def batches() -> Iterator[pa.RecordBatch]:
        yield first.select(names)
        for number, batch in enumerate(items, start=2):
            if not isinstance(batch, pa.RecordBatch):
                raise InputError(
                    f"{what}: item {number} is a {type(batch).__name__}, not a pyarrow.RecordBatch"
                )
            if not batch.schema.equals(schema):
                raise InputError(
                    f"{what}: batch {number} has another schema than batch 1 "
                    f"({_schema_difference(schema, batch.schema)}); every batch must have "
                    "the same columns and types"
                )
            yield batch.select(names)

    return Extract(batches(), use_age, None, (), cols.test_date in names)


def _schema_difference(first: pa.Schema, other: pa.Schema) -> str:
    """The first difference between two schemas, in words."""
    if first.names != other.names:
        return f"columns {', '.join(other.names)} instead of {', '.join(first.names)}"
    for a, b in zip(first, other, strict=True):
        if not a.equals(b):
            return f"column {a.name!r} is {b.type}, not {a.type}"
    return "another metadata"


def _is_panic(exc: BaseException) -> bool:
    """Whether ``exc`` is a Rust panic surfacing through pyo3 (``PanicException``, which
    derives from ``BaseException``) from another library (polars, a Rust Arrow producer).
    """
    return any(k.__name__ == "PanicException" for k in type(exc).__mro__)


def _foreign_failure(exc: BaseException) -> bool:
    """Whether ``exc``, raised by a source's reader or Arrow export, means its data cannot be
    read: any error of the source (an Arrow error, a capsule of the wrong kind, the caller's
    own reader raising, an ``OSError`` pyarrow wraps a Python exception in) or a Rust panic.
    It becomes an :class:`UnreadableInputError` chained to it (``from exc``: nothing is lost).
    Never ``KeyboardInterrupt``, ``SystemExit``, ``MemoryError`` or didcore's own errors.
    """
    if isinstance(exc, InputError | MemoryError):
        return False
    return isinstance(exc, Exception) or _is_panic(exc)


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message (pyarrow appends Python tracebacks)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
    if not plain_text or n_chunks == 0 or len(table) / n_chunks >= _batch_rows() / 2:
        yield from table.to_batches(max_chunksize=_batch_rows())
        return
    for start in range(0, len(table), _batch_rows()):
        piece = table.slice(start, _batch_rows())
        # Dictionary chunks whose merged dictionary would outgrow their index type (int8
        # indices, different codes per chunk) are counted as they are.
        with contextlib.suppress(pa.ArrowInvalid):
            piece = piece.combine_chunks()
        yield from piece.to_batches()


def _open_reader(reader: pa.RecordBatchReader, cols: Columns, what: str) -> Extract:
    """Batches of a stream, checked one by one: a stream may break part-way, or change its
    schema, which a C stream's producer is free to do; either is an :class:`InputError`
    naming the batch, never a raw Arrow error or ``KeyError``.
    """
    schema = reader.schema
    names, use_age = cols.needed(schema.names)
    check_types(schema, names, cols, f"{what}: ")

    def batches() -> Iterator[pa.RecordBatch]:
        number = 0
        rows = 0
        batch_iter = iter(reader)
        while True:
            try:
                batch = next(batch_iter)
            except StopIteration:
                return
            except BaseException as exc:
                if not _foreign_failure(exc):
                    raise
                raise UnreadableInputError(
                    f"cannot read {what}: batch {number + 1} failed after {rows:,} rows: "
                    f"{_first_line(exc)}"
                ) from exc
            number += 1
            rows += batch.num_rows
            if batch.schema is not schema and not batch.schema.equals(schema):
                _check_batch_schema(batch.schema, names, cols, f"{what}, batch {number}")
            yield batch.select(names)

    return Extract(batches(), use_age, None, (), cols.test_date in names)


def _check_batch_schema(schema: pa.Schema, names: Sequence[str], cols: Columns, where: str) -> None:
    """A later batch of a stream whose schema is not the stream's: it must still have each
    needed column once, of a type the counting reads.
    """
    seen = Counter(schema.names)
    missing = [n for n in names if seen[n] == 0]
    if missing:
        raise MissingColumnError(
            f"{where} has no column {', '.join(map(repr, missing))} (the stream's schema "
            f"changed part-way; this batch has: {', '.join(schema.names) or 'no columns'})"
        )
    twice = [n for n in names if seen[n] > 1]
    if twice:
        raise InputError(f"{where} has more than one column named {', '.join(map(repr, twice))}")
    check_types(schema, names, cols, f"{where}: ")
