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
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import threading
from collections import Counter
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from didcore._arrow_compat import is_binary_view, is_string_view, reader_from_stream
from didcore.errors import (
    ColumnTypeError,
    InputError,
    MissingColumnError,
    UnreadableInputError,
)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Columns", "Extract", "extract_files", "open_extract"]

_PARQUET = (".parquet", ".pq")
_CSV = (".csv", ".csv.gz", ".tsv", ".tsv.gz")
_BATCH_ROWS = 1 << 20


# Other names extracts commonly give a column, only to suggest a --column option.
_USUAL_NAMES: dict[str, tuple[str, ...]] = {
    "provider_code": ("provider", "provider_org_code", "org_code", "organisation_code"),
    "gp_practice_code": ("gp_practice", "practice_code", "registered_gp_practice_code", "gp_code"),
    "lsoa11": ("lsoa", "lsoa_code", "lsoa2011", "lsoa_2011", "lsoa11cd"),
    "sex": ("gender", "person_gender_code", "gender_code", "person_stated_gender_code"),
    "age": ("age_at_test", "patient_age", "age_years"),
    "test_date": ("date_of_test", "test_date_time", "diagnostic_test_date"),
    "date_of_birth": ("dob", "birth_date"),
    "modality": ("modality_name", "imaging_modality"),
    "exam_code": ("examination_code", "exam", "nicip_code"),
}


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

    def __post_init__(self) -> None:
        """Each role names a column of its own: two roles reading one column (say provider
        code and LSOA) would count one value as two things, so any such pairing is refused,
        as is a name that is not text.
        """
        roles: dict[str, list[str]] = {}
        for role, name in vars(self).items():
            if not isinstance(name, str) or not name:
                raise InputError(
                    f"Columns({role}=...) must be a column name (non-empty text), not {name!r}"
                )
            roles.setdefault(name, []).append(role)
        shared = {name: rs for name, rs in roles.items() if len(rs) > 1}
        if shared:
            name, rs = next(iter(shared.items()))
            raise InputError(
                f"Columns: {' and '.join(rs)} both name column {name!r}; each role needs a "
                "column of its own (on the command line: --column ROLE=COLUMN)"
            )

    @property
    def codes(self) -> tuple[str, ...]:
        """The string code columns, always required."""
        return (self.provider_code, self.gp_practice_code, self.lsoa11, self.modality)

    def _renaming(self, missing: Sequence[str], available: Sequence[str]) -> str:
        """``--column`` options for the missing columns: ``--column sex=Gender`` where a
        column differs from the role's name only in case, spaces or underscores, else a
        ``--column ROLE=COLUMN`` placeholder for each role.
        """

        def key(name: str) -> str:
            return "".join(ch for ch in name.lower() if ch.isalnum())

        by_key = {key(a): a for a in available}
        roles = {getattr(self, f): f for f in self.__dataclass_fields__}
        options = []
        for name in missing:
            role = roles.get(name, "age")
            names = (name, role, *_USUAL_NAMES.get(role, ()))
            found = next((by_key[key(n)] for n in names if key(n) in by_key), None)
            options.append(f"--column {role}={found if found else 'COLUMN'}")
        return " ".join(options)

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
                f"(it has: {', '.join(available) or 'no columns'}); name yours with "
                f"{self._renaming(missing, available)} (Python: columns=Columns(...); "
                "docs/inputs.md)"
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


def is_text_type(t: pa.DataType) -> bool:
    """Whether ``t`` is text (string, large string, string view) or binary, read as UTF-8."""
    import pyarrow as pa

    return bool(
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or is_string_view(t)
        or is_binary_type(t)
    )


def _accepts(kind: str, t: pa.DataType) -> bool:
    """Whether the counting (``didcore.cube.BatchClassifier``) reads a column of type ``t``
    in the role ``kind``: ``code`` (text codes), ``number`` (sex and age) or ``date``.
    """
    import pyarrow as pa

    types = pa.types
    if types.is_null(t) or is_text_type(t):
        return True
    if types.is_dictionary(t):
        value = t.value_type
        return not types.is_dictionary(value) and _accepts(kind, value)
    if kind == "code":
        return bool(types.is_integer(t))
    if kind == "number":
        return bool(types.is_integer(t) or types.is_floating(t) or types.is_decimal(t))
    return bool(types.is_date(t) or types.is_timestamp(t))


_EXPECTED = {
    "code": "text codes (string, or dictionary-encoded/categorical text) or whole numbers",
    "number": "whole numbers (integers, floats or decimals) or text",
    "date": "a date, a timestamp or ISO 8601 text (YYYY-MM-DD)",
}


def check_types(schema: pa.Schema, names: Sequence[str], cols: Columns, where: str = "") -> None:
    """Refuse, before any batch is read, a column whose type the counting cannot read: a
    nested one (list, struct, map, union), a time, a duration, ... in a role that takes codes,
    numbers or dates. Raises :class:`ColumnTypeError` naming the column and its type;
    ``where`` prefixes the message (the file).
    """
    kinds = {cols.sex: "number", cols.age: "number"}
    kinds.update({cols.date_of_birth: "date", cols.test_date: "date"})
    kinds.update({c: "code" for c in (*cols.codes, cols.exam_code)})
    for name in names:
        index = schema.get_field_index(name)
        if index < 0:
            continue
        t = schema.field(index).type
        kind = kinds.get(name, "code")
        if not _accepts(kind, t):
            raise ColumnTypeError(
                f"{where}column {name!r} has type {t}; expected {_EXPECTED[kind]}"
            )


def is_binary_type(t: pa.DataType) -> bool:
    """Whether ``t`` is one of Arrow's binary types: text written without its UTF-8
    annotation (some Parquet writers leave it out), which didcore reads as UTF-8.
    """
    import pyarrow as pa

    return bool(
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or is_binary_view(t)
        or pa.types.is_fixed_size_binary(t)
    )


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
        reader = source.scanner(columns=names, batch_size=_BATCH_ROWS).to_reader()
        return _open_reader(reader, cols, "the pyarrow Dataset")
    if kind_of("pyarrow", "Scanner"):
        return _open_reader(source.to_reader(), cols, "the pyarrow Scanner")
    if kind_of("pyarrow", "ParquetFile"):
        schema = source.schema_arrow
        names, _ = cols.needed(schema.names)
        check_types(schema, names, cols, "the ParquetFile: ")
        batches = source.iter_batches(batch_size=_BATCH_ROWS, columns=names)
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
    try:
        names, _ = cols.needed(lf.collect_schema().names())
        query = lf.select(names)
        if not hasattr(query, "collect_batches"):  # polars before collect_batches
            return open_extract(query.collect(), cols)
        stream = query.collect_batches(chunk_size=_BATCH_ROWS)
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
            part = column.iloc[start : start + _BATCH_ROWS]
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
        for start in range(_BATCH_ROWS, n, _BATCH_ROWS):
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

    def batches() -> Iterator[pa.RecordBatch]:
        for path, handle, names in plans:
            try:
                if handle is not None:
                    yield from _parquet_batches(path, names, string_cols)
                else:
                    yield from _csv_batches(path, names, string_cols, text_cols)
            except (OSError, pa.ArrowException, UnicodeDecodeError) as exc:
                if isinstance(exc, InputError):
                    raise
                header = [] if handle is not None else headers.get(path, [])
                raise UnreadableInputError(csv_problem(path, exc, header)) from exc

    dated = all(cols.test_date in names for _, _, names in plans)
    return Extract(batches(), bool(use_age_all), total, tuple(files), dated)


def _parquet_batches(path: Path, names: list[str], string_cols: list[str]) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # read_dictionary keeps Parquet's dictionary pages as Arrow dictionaries: the core then
    # classifies each distinct code once per row group instead of hashing a string per row.
    # Columns written with the DELTA encodings (Parquet v2 writers) cannot be read into a
    # dictionary ("DecodeArrow of DictAccumulator"): a row group that fails so is read again
    # with its text as plain strings. (Finding those columns up front from the column-chunk
    # metadata is not safe: pyarrow aborts the process on a corrupt chunk's statistics.)
    wanted = [c for c in string_cols if c in names]
    pf = pq.ParquetFile(path, read_dictionary=wanted)
    plain_pf: Any = None
    for i in range(pf.num_row_groups):
        try:
            table = pf.read_row_group(i, columns=names, use_threads=True)
        except (OSError, pa.ArrowNotImplementedError) as exc:  # pyarrow says OSError
            if "DictAccumulator" not in str(exc):
                raise
            if plain_pf is None:
                plain_pf = pq.ParquetFile(path)
            table = plain_pf.read_row_group(i, columns=names, use_threads=True)
        yield from table.to_batches()


def _csv_parse(path: Path) -> Any:
    """Parse options: tab-separated for ``.tsv`` files, comma-separated otherwise."""
    import pyarrow.csv as pacsv

    tab = path.name.lower().endswith((".tsv", ".tsv.gz"))
    return pacsv.ParseOptions(delimiter="\t" if tab else ",")


def _csv_header(path: Path) -> list[str]:
    return csv_column_names(path, _csv_parse(path))


def csv_encoding(path: Path) -> str:
    """The text encoding of a CSV file, for pyarrow's reader: UTF-16 or UTF-32 when the file
    starts with their byte-order mark (Excel's "Unicode text", PowerShell), else UTF-8 (a
    UTF-8 byte-order mark, Excel's "CSV UTF-8", is skipped by pyarrow). Gzipped files are
    looked at inside.
    """
    import gzip
    import zlib

    opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise UnreadableInputError(
            f"cannot read {path}: {exc or type(exc).__name__} (a corrupt or cut gzip file?)"
        ) from exc
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "utf-32"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    return "utf8"


# The most bytes a CSV header may take: the probe's block grows (x16) up to this.
_MAX_HEADER_BLOCK = 256 << 20


def csv_column_names(path: Path, parse_options: Any = None) -> list[str]:
    """The column names of a CSV file, from its first block alone.

    The block starts at 64 KiB and grows while the header, or the first row after it, does not
    fit in it: a header of a few thousand columns, of very long names, or followed by a row
    with a very long value, is read, up to 256 MiB. Raises
    :class:`UnreadableInputError` for a header that is not UTF-8 text.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    encoding = csv_encoding(path)
    block = 1 << 16
    while True:
        try:
            options = pacsv.ReadOptions(block_size=block, encoding=encoding)
            with pacsv.open_csv(path, read_options=options, parse_options=parse_options) as r:
                return list(r.schema.names)
        except UnicodeDecodeError as exc:
            raise UnreadableInputError(
                f"cannot read {path}: its header (first line) is not UTF-8 text (byte "
                f"{exc.object[exc.start : exc.start + 1]!r} at position {exc.start}); save the "
                "file as 'CSV UTF-8'"
            ) from exc
        except pa.ArrowInvalid as exc:
            # a header longer than the block ("Empty CSV file or block"), or a first row that
            # is ("straddles two block boundaries", or a long quoted field cut into a
            # "CSV parse error"): the next block is 16 times larger
            grows = ("Empty CSV file or block", "straddl", "CSV parse error")
            if block >= _MAX_HEADER_BLOCK or not any(g in str(exc) for g in grows):
                raise
            block *= 16


def csv_problem(path: Path, exc: BaseException, names: Sequence[str], what: str = "") -> str:
    """A one-line account of pyarrow's error reading CSV ``path`` whose header is ``names``:
    its column number turned into the column's name, and what to do about text that is not
    UTF-8. ``what`` names the file's role ("lookup ").
    """
    import re

    text = str(exc)
    found = re.search(r"column #(\d+)", text)
    column = ""
    if found and int(found.group(1)) < len(names):
        column = f"column {names[int(found.group(1))]!r}"
    if "utf8" in text.lower() or "utf-8" in text.lower() or isinstance(exc, UnicodeDecodeError):
        return (
            f"cannot read {what}{path}: {column or 'it'} holds bytes that are not UTF-8 text "
            "(Excel: save as 'CSV UTF-8')"
        )
    return f"cannot read {what}{path}: {f'{column}: ' if column else ''}{text}"


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
        read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, encoding=csv_encoding(path)),
        parse_options=_csv_parse(path),
        convert_options=pacsv.ConvertOptions(
            include_columns=names, column_types=types, strings_can_be_null=True
        ),
    )
    yield from reader


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
