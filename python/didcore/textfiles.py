"""Reading extract files: Parquet one row group at a time (string columns kept
dictionary-encoded), CSV and TSV files (their text encoding, the header probe, batches of
text, pyarrow's errors in words).

Also used for the lookup and population CSV files (:mod:`didcore.lookup_files`,
:mod:`didcore.population`). Which files an extract holds, and the order they are read in,
is :func:`didcore.io.extract_files`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from didcore.errors import UnreadableInputError

__all__ = ["csv_column_names", "csv_encoding", "csv_problem"]


def _parquet_batches(
    path: Path,
    names: list[str],
    string_cols: list[str],
    native: Any = None,
    batch_rows: int = 1 << 20,
) -> Iterator[Any]:
    """The needed columns of a Parquet file, row group by row group: decoded by the core
    through ``native`` (a :class:`didcore.parquet_native.NativeParquet` for the run) where it
    can, else (``native`` None, or a row group it does not decode) through pyarrow.
    """
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

    def row_group(i: int) -> pa.Table:
        nonlocal plain_pf
        try:
            return pf.read_row_group(i, columns=names, use_threads=True)
        except (OSError, pa.ArrowNotImplementedError) as exc:  # pyarrow says OSError
            if "DictAccumulator" not in str(exc):
                raise
            if plain_pf is None:
                plain_pf = pq.ParquetFile(path)
            return plain_pf.read_row_group(i, columns=names, use_threads=True)

    if native is not None:
        yield from native.batches(path, pf.schema_arrow, row_group, batch_rows, pf.schema)
        return
    for i in range(pf.num_row_groups):
        yield from row_group(i).to_batches()


def csv_parse_options(path: Path) -> Any:
    """Parse options of a CSV file (an extract's, a lookup's, a population's): tab-separated
    for ``.tsv`` files; otherwise comma-separated, unless the
    header line holds no comma but tabs, semicolons or bars (in that order): then those
    separate the fields. Spreadsheets save "CSV" with semicolons where the comma is the
    decimal mark, and some NHS systems export bar-separated text; a comma anywhere in the
    header keeps the comma, so a comma-separated file is never read otherwise.
    """
    import pyarrow.csv as pacsv

    tab = path.name.lower().endswith((".tsv", ".tsv.gz"))
    return pacsv.ParseOptions(delimiter="\t" if tab else _delimiter(path))


def _delimiter(path: Path) -> str:
    """The field separator of a CSV file, from its first line (see :func:`csv_parse_options`)."""
    import gzip

    encoding = csv_encoding(path)
    opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = f.read(1 << 16)
    except (OSError, EOFError):
        return ","  # the reader itself says what is wrong with the file
    line = head.decode(encoding if encoding != "utf8" else "utf-8", errors="replace")
    line = line.lstrip("\ufeff").split("\n", 1)[0]
    if "," in line:
        return ","
    return next((d for d in ("\t", ";", "|") if d in line), ",")


def _csv_header(path: Path) -> list[str]:
    return csv_column_names(path, csv_parse_options(path))


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


def _csv_batches(
    path: Path, names: list[str], string_cols: list[str], text_cols: list[str], block_bytes: int
) -> Iterator[Any]:
    """The record batches of CSV ``path``, ``block_bytes`` of its text at a time
    (``didcore.io.CSV_BLOCK_BYTES``).
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    # Codes as dictionary-encoded text (never numbers: "01A", "0001"); sex as text too, so
    # "1", " 1" and "M" are all seen and classified the same way as in Parquet. Ages and
    # dates as plain text, parsed later.
    types = {c: pa.string() for c in text_cols if c in names}
    types.update({c: pa.dictionary(pa.int32(), pa.string()) for c in string_cols if c in names})
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=block_bytes, encoding=csv_encoding(path)),
        parse_options=csv_parse_options(path),
        convert_options=pacsv.ConvertOptions(
            include_columns=names, column_types=types, strings_can_be_null=True
        ),
    )
    yield from reader
