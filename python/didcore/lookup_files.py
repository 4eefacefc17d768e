"""Finding and reading the lookup tables (docs/inputs.md), and turning a table's two
columns into a code -> value mapping.

A folder's table is found by name in any case (:func:`_find_table`); CSV files are read with
every column as text (codes such as ``01A`` are not numbers), Parquet files as they are.
Column names are tidied (trimmed, lower-cased), categorical and binary columns read as text
(:func:`_tidy`). :func:`_pairs` maps normalised keys to normalised values with Arrow kernels in
the usual case, and by a loop over rows when it must find what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from didcore._arrow_compat import is_string_view
from didcore.codes import normalise_array_or_null, normalise_code
from didcore.columns import is_binary_type
from didcore.errors import LookupConflictError, MissingColumnError, UnreadableInputError
from didcore.textfiles import csv_column_names, csv_encoding, csv_parse_options

if TYPE_CHECKING:
    import pyarrow as pa


_SUFFIXES = (".csv", ".parquet", ".pq", ".csv.gz")


def _find_table(root: Path, name: str) -> Path | None:
    """The file of lookup ``name`` in ``root``: ``name`` with one of :data:`_SUFFIXES`, in
    any case (``PRACTICE_ICB.CSV``). Two such files (a CSV and a Parquet copy) are an error:
    which one is meant is not for didcore to guess.
    """
    wanted = {f"{name}{suffix}" for suffix in _SUFFIXES}
    found = sorted(p for p in root.iterdir() if p.name.lower() in wanted and p.is_file())
    if len(found) > 1:
        raise UnreadableInputError(
            f"lookups folder {root} has {len(found)} files for {name} "
            f"({', '.join(p.name for p in found)}); keep one"
        )
    return found[0] if found else None


def small_table_pool() -> Any:
    """The Arrow memory pool CSV lookup and population tables are read into: the C
    library's allocator. Arrow's default (mimalloc) gives each parsing thread its own
    segments on huge pages, which it keeps: reading a lookups folder of under 1 MB through
    it added about 45 MB to the process's resident memory for the rest of the run, against
    about 12 MB through this one, and took longer (page zeroing). The tables are small, so
    nothing is lost on speed.
    """
    import pyarrow as pa

    return pa.system_memory_pool()


# Bytes of a lookup CSV parsed at a time: a line longer than this cannot be read.
_LOOKUP_BLOCK_BYTES = 16 << 20


def _block_bytes(path: Path) -> int:
    """The parsing block for a lookup CSV: the whole file in one block where it is smaller
    than :data:`_LOOKUP_BLOCK_BYTES` (twice its size: UTF-16 text can grow by half as UTF-8,
    and no line is then longer than the block), else that; gzipped files always that.

    Arrow sizes its buffers by the block: reading the six files of a national lookups
    folder (under 1 MB) one after the other added 30 MB to the process's resident memory
    with 16 MB blocks, 14 MB with blocks fitted to them (in a whole 50M-row run, where other
    buffers take some of that space anyway, the peak fell by 5 MB).
    """
    if path.name.lower().endswith(".gz"):
        return _LOOKUP_BLOCK_BYTES
    try:
        size = path.stat().st_size
    except OSError:
        return _LOOKUP_BLOCK_BYTES  # the read itself says what is wrong
    return min(_LOOKUP_BLOCK_BYTES, max(2 * size + 1, 1 << 16))


def _read_table(path: Path) -> pa.Table:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    names: list[str] = []
    try:
        if path.name.endswith((".parquet", ".pq")):
            table = pq.read_table(path)
            names = table.column_names  # decoded here: a name that is not UTF-8 is an error
            return table
        # Every column as text: codes such as 01A or 0001 must not be read as numbers. The
        # streaming reader parses only the first block to learn the column names. A file
        # with a UTF-16 byte-order mark is transcoded; a header that is not UTF-8 is an error.
        parse = csv_parse_options(path)  # commas, or the header's semicolons, bars or tabs
        names = csv_column_names(path, parse)
        types = {name: pa.string() for name in names}
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(
                encoding=csv_encoding(path), block_size=_block_bytes(path)
            ),
            parse_options=parse,
            convert_options=pacsv.ConvertOptions(column_types=types),
            memory_pool=small_table_pool(),
        )
    except UnreadableInputError:
        raise
    except (OSError, pa.ArrowException, UnicodeDecodeError) as exc:
        text = str(exc)
        if isinstance(exc, UnicodeDecodeError) and not names:
            raise UnreadableInputError(
                f"cannot read lookup {path}: a column name is not UTF-8 text"
            ) from exc
        if "utf8" in text.lower():
            column = re.search(r"column #(\d+)", text)
            where = "it"
            if column and int(column.group(1)) < len(names):
                where = f"column {names[int(column.group(1))]!r}"
            raise UnreadableInputError(
                f"cannot read lookup {path}: {where} is not UTF-8 text (Excel: save as 'CSV UTF-8')"
            ) from exc
        ragged = _ragged_line(path) if "Expected" in text else None
        if ragged is not None:
            line, n, want = ragged
            raise UnreadableInputError(
                f"cannot read lookup {path}: line {line} has {n} fields where the header has {want}"
            ) from exc
        raise UnreadableInputError(f"cannot read lookup {path}: {exc}") from exc


def _ragged_line(path: Path) -> tuple[int, int, int] | None:
    """The first line of a CSV file whose number of fields differs from its header's:
    (line number, fields, header fields), or ``None``. For error messages: pyarrow's do not
    say which line.
    """
    import csv
    import gzip

    opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as f:
            rows = csv.reader(f)
            want = len(next(rows, []))
            for row in rows:
                # blank lines are skipped, as pyarrow skips them (but not lines of spaces); the
                # reader's line number is that of the row's last line
                if row and len(row) != want:
                    return rows.line_num, len(row), want
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return None


def _as_table(obj: Any, name: str) -> pa.Table:
    """A lookup as a pyarrow Table, tidied (:func:`_tidy`)."""
    import pyarrow as pa

    if isinstance(obj, pa.Table):
        table = obj
    elif isinstance(obj, str | Path):
        table = _read_table(Path(obj))
    else:
        try:
            table = pa.table(obj)
        except (TypeError, ValueError, pa.ArrowInvalid) as exc:
            raise LookupConflictError(
                f"cannot use {type(obj).__name__} as the {name} lookup table"
            ) from exc
    return _tidy(table, name)


def _tidy(table: pa.Table, name: str) -> pa.Table:
    """Column names trimmed and lower-cased, inner spaces as underscores (``EXAM_CODE``,
    `` icb_code``, ``Exam Code``); categorical columns (pandas, polars) as plain text; binary
    columns (Parquet written without the UTF-8 annotation) as UTF-8 text.
    """
    import pyarrow as pa

    names = [re.sub(" +", "_", str(n).strip().lower()) for n in table.column_names]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise LookupConflictError(
            f"lookup {name} has more than one column named {', '.join(twice)} (names are "
            "compared ignoring case and spaces)"
        )
    columns = []
    for f, column in zip(table.schema, table.columns, strict=True):
        try:
            text = _as_text(pa, column)
            # a Parquet string column is not checked when read: bytes that are not UTF-8
            # would fail later, deep in a kernel (lookups are small: checking costs little)
            text.validate(full=True)
            columns.append(text)
        except pa.ArrowInvalid as exc:
            raise LookupConflictError(
                f"lookup {name}: column {f.name} holds bytes that are not UTF-8 text; "
                "save the file as UTF-8"
            ) from exc
    return pa.table(columns, names=names)


def _as_text(pa: Any, column: Any) -> Any:
    """A categorical column decoded, and string views and binary as plain strings (other
    columns as they are). Raises ``pa.ArrowInvalid`` for bytes that are not UTF-8.
    """
    t = column.type
    if pa.types.is_dictionary(t):
        chunks = []
        for chunk in column.chunks:
            # decode with string values: Arrow cannot take from string views
            values = _as_text(pa, pa.chunked_array([chunk.dictionary])).combine_chunks()
            chunks.append(pa.DictionaryArray.from_arrays(chunk.indices, values).dictionary_decode())
        if not chunks:
            return _as_text(pa, pa.chunked_array([], type=t.value_type))
        return pa.chunked_array(chunks)
    if is_string_view(t) or is_binary_type(t):
        return column.cast(pa.string())
    return column


def _require(table: pa.Table, name: str, columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        have = ", ".join(repr(c) for c in table.column_names) or "no columns"
        hint = ""
        if any(sep in c for c in table.column_names for sep in ("\t", ";", "|")):
            hint = "; its header looks tab-, semicolon- or bar-separated: use commas"
        raise MissingColumnError(
            f"lookup {name} has no column {', '.join(repr(c) for c in missing)} "
            f"(it has: {have}){hint}"
        )


def _normalised_text(column: Any) -> Any:
    """A text column normalised as :func:`normalise_code` does (blank -> null).

    With Arrow kernels; ``None`` for a column that is not text (the row loop handles those).
    """
    import pyarrow as pa

    t = column.type
    if pa.types.is_dictionary(t):
        column = column.cast(t.value_type)
        t = t.value_type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return None
    return normalise_array_or_null(column)


def _pairs(table: pa.Table, name: str, key: str, value: str) -> dict[str, str]:
    """Key -> value, refusing keys that map to two different values."""
    _require(table, name, (key, value))
    fast = _pairs_vectorised(table, key, value)
    return fast if fast is not None else _pairs_rows(table, name, key, value)


def _keyed_rows(table: pa.Table, key: str, value: str) -> Iterator[tuple[str, Any]]:
    """(normalised key, raw value) of each row whose key is not blank."""
    for raw_key, raw_value in zip(
        table.column(key).to_pylist(), table.column(value).to_pylist(), strict=True
    ):
        k = normalise_code(raw_key)
        if k is not None:
            yield k, raw_value


def _pairs_rows(table: pa.Table, name: str, key: str, value: str) -> dict[str, str]:
    """:func:`_pairs` as a loop over rows: any column type, and the errors' details."""
    out: dict[str, str] = {}
    conflicts: dict[str, set[str]] = {}
    blank_values = 0
    for k, raw_value in _keyed_rows(table, key, value):
        v = normalise_code(raw_value)
        if v is None:
            blank_values += 1
            continue
        seen = out.setdefault(k, v)
        if seen != v:
            conflicts.setdefault(k, {seen}).add(v)
    if conflicts:
        shown = "; ".join(
            f"{k} -> {' / '.join(sorted(v))}" for k, v in sorted(conflicts.items())[:5]
        )
        raise LookupConflictError(
            f"lookup {name}: {len(conflicts)} {key} values map to more than one {value} "
            f"({shown}); keep one row per {key}"
        )
    if blank_values:
        raise LookupConflictError(
            f"lookup {name}: {blank_values} rows have a {key} but a blank {value}"
        )
    return out


def _pairs_vectorised(table: pa.Table, key: str, value: str) -> dict[str, str] | None:
    """:func:`_pairs` with Arrow kernels, for the usual case.

    That is text columns, no blank values and no key mapped to two values; ``None`` otherwise,
    and the row loop finds what is wrong.
    """
    import pyarrow.compute as pc

    keys = _normalised_text(table.column(key))
    values = _normalised_text(table.column(value))
    if keys is None or values is None:
        return None
    keep = pc.is_valid(keys)
    keys, values = keys.filter(keep), values.filter(keep)
    if values.null_count:
        return None
    return _unique_mapping(keys.to_pylist(), values.to_pylist())


def _unique_mapping(keys: list[Any], values: list[Any]) -> dict[Any, Any] | None:
    """``dict(zip(keys, values))``, or ``None`` if a key is given two different values."""
    out = dict(zip(keys, values, strict=True))
    # dict() keeps each key's first position, as the row loop does, and its last value
    if len(out) != len(keys) and any(out[k] != v for k, v in zip(keys, values, strict=True)):
        return None
    return out
