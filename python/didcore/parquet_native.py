"""Parquet files read by the Rust core (``_didcore.ParquetDecoder``), pyarrow as the fallback.

Python does the I/O: it reads a file's footer, hands it to the core, which plans the row
groups (where each needed column chunk's bytes are, and whether the core decodes it); then,
row group by row group, it reads each needed chunk with one positioned read into a
``bytes`` object, which the core decodes where it is (immutable, so shared without a copy),
decompressing and decoding the pages, the columns in parallel with the interpreter
released. Text columns come back as the pages' own ``int32`` indices into the chunk's
dictionary (as pyarrow's ``read_dictionary`` gives them; the classifier classifies each
dictionary once), numbers and dates as their values. Each batch is an Arrow
``RecordBatch`` of the types pyarrow would give, so everything after the read is shared.

A row group with a chunk the core does not decode (the BYTE_STREAM_SPLIT encoding, nested
columns, text dates, decimals, INT96 timestamps, encrypted files) is
read through pyarrow instead, identically counted; which path read what is logged at debug
level and kept in :data:`READS` for ``didcore check``. A corrupt page, or an index past its
dictionary, is a :class:`~didcore.errors.CorruptInputError` naming the file, row group and
column.

``DIDCORE_PARQUET=pyarrow`` in the environment reads every row group through pyarrow, and
``DIDCORE_PARQUET=batches`` has the core decode them into batches but never count them as it
decodes them (:class:`RowGroupToCount`, :mod:`didcore.row_groups`): both for comparisons; the
results are the same.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from didcore.errors import CorruptInputError, ParquetUnsupportedError, UnreadableInputError

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("didcore.parquet")

#: Field metadata marking a text column whose indices the core has checked against their
#: dictionary (so the classifier does not check them again).
CHECKED_INDICES = b"didcore.checked_indices"


@dataclass
class ReadCounts:
    """Which path read the Parquet row groups of the runs in this process: ``native`` and
    ``pyarrow`` row groups, and why row groups went through pyarrow (reason -> count).
    """

    native: int = 0
    pyarrow: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    #: of the ``native`` row groups, those counted by the core as it decoded them
    #: (:class:`RowGroupToCount`) rather than decoded into batches
    counted: int = 0

    def reset(self) -> None:
        """Start counting again (``didcore check`` and the tests do, before a read)."""
        self.native = self.pyarrow = self.counted = 0
        self.reasons.clear()


#: Row groups read by each path (reset by ``didcore check`` before it reads).
READS = ReadCounts()


def _mode() -> str:
    return os.environ.get("DIDCORE_PARQUET", "native").strip().lower()


def enabled() -> bool:
    """Whether Parquet is decoded by the core (``DIDCORE_PARQUET`` is not ``pyarrow``)."""
    return _mode() != "pyarrow"


def counting_enabled() -> bool:
    """Whether the core may count row groups as it decodes them (:class:`RowGroupToCount`):
    not with ``DIDCORE_PARQUET=batches`` (decoded by the core into batches, counted as
    any batch: for comparisons; the results are the same) or ``pyarrow``.
    """
    return _mode() not in ("pyarrow", "batches")


def _width(pa: Any, t: Any, stored: Any = None) -> tuple[int, Any] | None:
    """How the core reads a column of Arrow type ``t`` (``stored``: its Parquet column, from
    ``ParquetFile.schema``): ``(0, None)`` as text, ``(4 or 8, wrap type)`` as fixed-width
    values wrapped in that Arrow type; ``None`` not at all.

    Integers narrower than 32 bits are stored as INT32 and come back as ``int32`` (the same
    numbers); dates as days (``date32``); floating point as is; timestamps (what pandas
    writes for dates) as their INT64 values when the Parquet column's unit is the Arrow
    type's, as pyarrow reads them. Decimals, INT96 timestamps, text dates and anything else
    go through pyarrow.
    """
    types = pa.types
    if types.is_timestamp(t):
        return (8, t) if _stored_unit(stored) == t.unit else None
    if types.is_dictionary(t):
        t = t.value_type
    if types.is_string(t) or types.is_large_string(t) or types.is_binary(t):
        return 0, None
    if types.is_large_binary(t) or str(t) in ("string_view", "binary_view"):
        return 0, None
    if t in (pa.int8(), pa.int16(), pa.int32(), pa.uint8(), pa.uint16()):
        return 4, pa.int32()
    if t in (pa.uint32(), pa.date32(), pa.float32()):
        return 4, t
    if t in (pa.int64(), pa.uint64(), pa.float64()):
        return 8, t
    return None


_UNITS = {"milliseconds": "ms", "microseconds": "us", "nanoseconds": "ns"}


def _stored_unit(stored: Any) -> str | None:
    """The Arrow unit (``ms``, ``us``, ``ns``) of a Parquet INT64 timestamp column, else None."""
    import json

    try:
        if stored is None or stored.physical_type != "INT64":
            return None
        logical = json.loads(stored.logical_type.to_json())
    except (AttributeError, TypeError, ValueError):
        return None
    if not isinstance(logical, dict) or logical.get("Type") != "Timestamp":
        return None
    return _UNITS.get(str(logical.get("timeUnit")))


def _pread(fd: int, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes of the file from ``offset``: ``os.pread``, or where the system
    has none (Windows) a seek and a read, which is the same here: each file descriptor is
    opened for one reading thread alone.
    """
    pread = getattr(os, "pread", None)
    if pread is not None:
        return bytes(pread(fd, size, offset))
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


def _read_at(fd: int, size: int, offset: int) -> bytes:
    """``size`` bytes of the file from ``offset``: one positioned read (more only if the
    system returns fewer); fewer bytes back means the file ends before them.
    """
    data = _pread(fd, size, offset)
    if len(data) == size or not data:
        return data
    parts = [data]
    done = len(data)
    while done < size:
        more = _pread(fd, size - done, offset + done)
        if not more:
            break
        parts.append(more)
        done += len(more)
    return b"".join(parts)


#: A row group whose needed column chunks hold more bytes than this is read in windows
#: (:data:`WINDOW_BYTES` at a time, as its pages are decoded) and decoded into batches, so
#: that memory does not grow with it: one row group of 50 million rows (what pandas wrote
#: with pyarrow before 15) held 1.2 GB of chunks read whole, and three of 5 million rows
#: (45 MB each) in flight took a run to 289 MB. Usual row groups (a million rows, 10-20 MB
#: of chunks) are read whole, and counted as they are decoded, which is faster.
WINDOWED_ROW_GROUP_BYTES = 32 << 20

#: Bytes read at a time from a chunk read in windows (pyarrow's pages are up to 1 MB).
WINDOW_BYTES = 4 << 20


class _ChunkReads:
    """Reads a column chunk's bytes a window at a time for the core: called as
    ``read(offset, length)`` (offset from the chunk's start) from the core's decoding threads.
    Fewer bytes back means the file ends before them.
    """

    def __init__(self, fd: int, start: int, lock: threading.Lock) -> None:
        self.fd, self.start = fd, start
        # os.pread is one positioned call; without it (Windows) a seek and a read must not
        # interleave with another thread's on the file (``lock``: one a file)
        self.lock = lock
        #: a read that failed (the core then sees the chunk end early; the reader names it)
        self.error: OSError | None = None

    def __call__(self, offset: int, length: int) -> bytes:
        with self.lock:
            try:
                return _read_at(self.fd, length, self.start + offset)
            except OSError as exc:
                self.error = self.error or exc
                return b""


@dataclass
class RowGroupToCount:
    """A row group the core counts as it decodes it (``rust/row_groups.rs``), in place of
    its batches: what :mod:`didcore.row_groups` needs to classify its dictionaries and hand
    it over.
    """

    path: Path
    #: The row group's index in its file (from 0).
    index: int
    num_rows: int
    #: Its column chunks, dictionaries read (``_didcore.RowGroup``).
    chunks: Any
    #: Its dictionaries as a batch of no rows, for the classifier.
    dictionaries: pa.RecordBatch
    #: The needed columns, in the order of the chunks.
    names: list[str]
    #: Whether the provider column has null rows (from the footer's statistics).
    provider_nulls: bool
    #: Reads the row group through pyarrow (a ``Table``), for rows the core stops before.
    fallback: Any
    #: Counting by year: the row group's year (start), and the first and last test date its
    #: rows must have (from the footer: the core checks them), or None.
    year: int | None = None
    require: tuple[int, int] | None = None
    #: How the core makes whole numbers of fixed-width columns that are not already: see
    #: :class:`Countable`.
    converts: list[tuple[int, str, int]] = field(default_factory=list)
    #: Called when the core finds a text chunk's dictionary grown although the footer only
    #: let it be presumed dictionary-encoded throughout (no page encoding statistics): the
    #: file's later row groups are then decoded into batches. None when the footer said so.
    distrust: Any = None


@dataclass(frozen=True)
class CountingRoles:
    """The columns a run counts row groups by, in the core (see :class:`RowGroupToCount`):
    set by ``aggregate`` when it can take them instead of batches.
    """

    #: Dictionary-coded text columns: provider, practice, LSOA, sex, modality, exam code.
    text: tuple[str, ...]
    #: The provider code column (its nulls decide the "(missing)" provider).
    provider: str
    #: Whole-number columns read as int32 (the age), and date columns (date32).
    ints: tuple[str, ...]
    dates: tuple[str, ...]
    #: Counting by financial year: the test date column (absent: every row in ``declared``),
    #: and ``year_of(first, last)``, the year (start) of a row group whose test dates the
    #: footer puts in ``first..last`` (days), or None when they are not all in one year.
    by_year: bool = False
    test_date: str | None = None
    declared: int | None = None
    year_of: Any = None


@dataclass(frozen=True)
class Countable:
    """Why a file's row groups may be counted as they are decoded (``_countable``): where its
    text columns and the provider column are, and how the core makes whole numbers of the
    columns that are not already ``int32``, ``int64`` or ``date32``: ``(column, "float_age",
    0)`` a floating age (as pandas stores ages with gaps: read as the classifier reads them),
    ``(column, "days", ticks)`` a timestamp with no time zone, ``ticks`` a day (days rounded
    down, as Arrow casts it to ``date32``).
    """

    text: list[int]
    provider: int
    converts: list[tuple[int, str, int]]

    def ticks_a_day(self, column: int) -> int | None:
        """Ticks a day of a timestamp column made days, else None (already days)."""
        return next((t for j, kind, t in self.converts if j == column and kind == "days"), None)


#: Ticks a day of each timestamp unit.
_TICKS_A_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


@dataclass
class _OpenFile:
    """A Parquet file being read by the core: what each row group's reading needs."""

    path: Path
    fd: int
    size: int
    #: the run's decoder for the file's column widths
    decoder: Any
    widths: tuple[int, ...]
    #: the Arrow type each fixed-width column is wrapped in (None for text)
    wraps: list[Any]
    #: reads row group ``i`` through pyarrow (a ``Table``)
    fallback: Any
    #: whether and how its row groups may be counted as decoded (None: not)
    countable: Countable | None = None
    #: held by each read of a chunk read in windows (:class:`_ChunkReads`)
    lock: threading.Lock = field(default_factory=threading.Lock)


class NativeParquet:
    """Reads the needed columns of a run's Parquet files through the core.

    One instance a run; ``names`` are the needed columns, in the order the batches carry them.
    With ``counting``, row groups that the core can count as it decodes them (every text
    column dictionary-encoded throughout, by the footer's statistics; the age as whole
    numbers and the dates as dates) are yielded as :class:`RowGroupToCount`, not batches.
    """

    def __init__(
        self,
        names: list[str],
        n_threads: int | None = None,
        counting: CountingRoles | None = None,
    ) -> None:
        self.names = list(names)
        self._decoders: dict[tuple[int, ...], Any] = {}
        self._n_threads = n_threads
        self._dicts: dict[tuple[tuple[int, ...], int], Any] = {}
        self.counting = counting
        #: files whose row groups a dictionary-encoded footer without page encoding
        #: statistics misled (see :attr:`RowGroupToCount.distrust`)
        self._distrusted: set[Path] = set()

    def _decoder(self, widths: tuple[int, ...]) -> Any:
        """The decoder of these column widths (one a run: files normally agree)."""
        from didcore import _didcore

        dec = self._decoders.get(widths)
        if dec is None:
            dec = self._decoders[widths] = _didcore.ParquetDecoder(
                self.names, list(widths), self._n_threads
            )
        return dec

    def batches(
        self,
        path: Path,
        schema: pa.Schema,
        fallback: Any,
        batch_rows: int,
        stored: Any = None,
    ) -> Iterator[pa.RecordBatch]:
        """The file's batches. ``fallback(i)`` reads row group ``i`` through pyarrow (a
        ``Table``); ``schema`` is the file's Arrow schema, ``stored`` its Parquet schema
        (``ParquetFile.schema``; without it, timestamps go through pyarrow).
        """
        import pyarrow as pa

        columns = _stored_columns(stored)
        kinds = [_width(pa, schema.field(n).type, columns.get(n)) for n in self.names]
        missing = [n for n, k in zip(self.names, kinds, strict=True) if k is None]
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            size = os.fstat(fd).st_size
            plan = None
            if not missing and size >= 12:
                widths = tuple(k[0] for k in kinds if k is not None)
                decoder = self._decoder(widths)
                plan = self._plan(fd, size, path, decoder)
            if plan is None:
                why = (
                    f"column {missing[0]!r} of type {schema.field(missing[0]).type}"
                    if missing
                    else "footer not read by the core"
                )
                yield from self._all_fallback(path, fallback, why)
                return
            wraps = [k[1] for k in kinds if k is not None]
            countable = self._countable(pa, widths, wraps)
            f = _OpenFile(path, fd, size, decoder, widths, wraps, fallback, countable)
            for i, (num_rows, chunks) in enumerate(plan):
                why_not = next((c[2] for c in chunks if c[2] is not None), None)
                if why_not is not None:
                    self._note_fallback(path, i, why_not)
                    yield from fallback(i).to_batches()
                    continue
                if sum(c[1] for c in chunks) > WINDOWED_ROW_GROUP_BYTES:
                    yield from self._row_group(f, i, num_rows, chunks, batch_rows, windowed=True)
                    continue
                if countable is not None and num_rows > 0:
                    nulls = chunks[countable.provider][4]
                    year = self._year(chunks, countable)
                    coded = [chunks[j][3] for j in countable.text]
                    trusted = path not in self._distrusted
                    if nulls is not None and all(c == 2 or (c and trusted) for c in coded) and year:
                        yield from self._to_count(f, i, num_rows, chunks)
                        continue
                yield from self._row_group(f, i, num_rows, chunks, batch_rows)
        finally:
            os.close(fd)

    def _countable(self, pa: Any, widths: tuple[int, ...], wraps: list[Any]) -> Countable | None:
        """Whether and how this file's row groups may be counted as they are decoded."""
        roles = self.counting
        if roles is None:
            return None
        where = {n: j for j, n in enumerate(self.names)}
        if not all(n in where for n in (*roles.text, *roles.ints, *roles.dates)):
            return None
        if any(widths[where[n]] != 0 for n in roles.text):
            return None
        converts: list[tuple[int, str, int]] = []
        ints = {4: pa.int32(), 8: pa.int64()}  # not unsigned: their values do not fit i32
        for name in roles.ints:
            j = where[name]
            if wraps[j] in (pa.float32(), pa.float64()):
                converts.append((j, "float_age", 0))
            elif wraps[j] != ints.get(widths[j]):
                return None
        for name in roles.dates:
            j = where[name]
            if widths[j] == 4 and wraps[j] == pa.date32():
                continue
            # (text dates are the classifier's to read; a zone's local dates pyarrow's)
            wrap = wraps[j]
            if wrap is None or not pa.types.is_timestamp(wrap) or wrap.tz not in (None, "UTC"):
                return None
            converts.append((j, "days", _TICKS_A_DAY[wrap.unit]))
        return Countable([where[n] for n in roles.text], where[roles.provider], converts)

    def _year(
        self, chunks: list[tuple[Any, ...]], countable: Countable
    ) -> tuple[int | None, tuple[int, int] | None] | None:
        """For a run counting by financial year, the year a row group's rows are all in and
        the test dates they must have, from the footer's statistics; ``(None, None)`` for a
        run counting one cube; ``None`` when the footer cannot say (the row group is then
        decoded into batches, split by year as any batch).
        """
        roles = self.counting
        if roles is None or not roles.by_year:
            return None, None
        if roles.test_date is None or roles.test_date not in self.names:
            return roles.declared, None
        column = self.names.index(roles.test_date)
        nulls, span = chunks[column][4], chunks[column][5]
        if nulls != 0 or span is None:
            return None
        first, last = int(span[0]), int(span[1])
        ticks = countable.ticks_a_day(column)
        if ticks is not None:  # a timestamp's, in days as the core makes them (rounded down)
            first, last = first // ticks, last // ticks
        key = roles.year_of(first, last)
        return None if key is None else (key, (first, last))

    def _to_count(
        self, f: _OpenFile, i: int, num_rows: int, chunks: list[tuple[Any, ...]]
    ) -> Iterator[Any]:
        """Row group ``i`` as a :class:`RowGroupToCount` (its dictionaries read and made a
        batch of no rows), or, when a dictionary page is one the core does not read, its
        batches through pyarrow.
        """
        import pyarrow as pa

        path, decoder, fallback = f.path, f.decoder, f.fallback
        views = self._read_chunks(f, i, chunks)
        self._dicts.clear()
        try:
            decoder.start(i, views)
            decoder.load_dictionaries()
            empty: list[tuple[np.ndarray, np.ndarray | None]] = [
                (np.zeros(0, np.uint8), None)
            ] * len(self.names)
            dictionaries = self._batch(pa, decoder, f.widths, f.wraps, 0, empty)
            taken = decoder.take_row_group()
        except ParquetUnsupportedError as exc:
            self._note_fallback(path, i, _detail(exc))
            yield from fallback(i).to_batches()
            return
        except CorruptInputError as exc:
            raise CorruptInputError(
                f"{path}: row group {i + 1}: {_detail(exc)}: the file is corrupt; write it out "
                "again from its source"
            ) from None
        READS.native += 1
        READS.counted += 1
        assert self.counting is not None
        provider = chunks[self.names.index(self.counting.provider)]
        log.debug("%s: row group %d counted by the core as decoded", path, i + 1)
        assert f.countable is not None
        year = self._year(chunks, f.countable)
        assert year is not None
        yield RowGroupToCount(
            path,
            i,
            num_rows,
            taken,
            dictionaries,
            self.names,
            bool(provider[4]),
            fallback,
            year=year[0],
            require=year[1],
            converts=f.countable.converts,
            distrust=(
                None
                if all(chunks[j][3] == 2 for j in f.countable.text)
                else lambda: self._distrusted.add(path)
            ),
        )

    def _read_chunks(
        self, f: _OpenFile, i: int, chunks: list[tuple[Any, ...]], windowed: bool = False
    ) -> list[Any]:
        """The needed chunks of row group ``i``, each read with one positioned read into a
        ``bytes`` object the core decodes where it is (no copy); the allocator hands the freed
        memory of the last row group's chunks back for the next. ``windowed``: a chunk bigger
        than a window is read as it is decoded, a window at a time (:class:`_ChunkReads`).
        """
        where = f"{f.path}: row group {i + 1}"
        views: list[Any] = []
        for j, (start, length, *_) in enumerate(chunks):
            if start + length > f.size:
                raise CorruptInputError(
                    f"{where}: column {self.names[j]!r}: its bytes {start}..{start + length} "
                    f"are past the end of the file ({f.size} bytes)"
                )
            if windowed and length > WINDOW_BYTES:
                views.append(_ChunkReads(f.fd, start, f.lock))
                continue
            data = _read_at(f.fd, length, start)
            if len(data) != length:
                raise UnreadableInputError(f"{where}: the file was cut short while reading it")
            views.append(data)
        return views

    def _plan(self, fd: int, size: int, path: Path, decoder: Any) -> Any:
        tail = _read_at(fd, 8, size - 8)
        if tail[4:] != b"PAR1":  # encrypted footers end "PARE": pyarrow's to refuse
            return None
        n = int.from_bytes(tail[:4], "little")
        if n <= 0 or n > size - 12:
            raise CorruptInputError(f"{path}: the footer length {n} does not fit the file")
        footer = _read_at(fd, n, size - 8 - n)
        try:
            return decoder.open(footer)
        except ParquetUnsupportedError:
            return None
        except CorruptInputError as exc:
            raise CorruptInputError(f"{path}: {_detail(exc)}") from None

    def _all_fallback(self, path: Path, fallback: Any, why: str) -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq

        n = pq.ParquetFile(path).num_row_groups
        for i in range(n):
            self._note_fallback(path, i, why)
            yield from fallback(i).to_batches()

    def _note_fallback(self, path: Path, i: int, why: str) -> None:
        READS.pyarrow += 1
        READS.reasons[why] += 1
        log.debug("%s row group %d: read through pyarrow (%s)", path, i, why)

    def _row_group(
        self,
        f: _OpenFile,
        i: int,
        num_rows: int,
        chunks: list[tuple[Any, ...]],
        batch_rows: int,
        windowed: bool = False,
    ) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        path, decoder, fallback = f.path, f.decoder, f.fallback
        where = f"{path}: row group {i + 1}"
        views = self._read_chunks(f, i, chunks, windowed)
        done = 0
        self._dicts.clear()  # a row group's dictionaries are its own
        try:
            decoder.start(i, views, WINDOW_BYTES)
            while True:
                got = decoder.next(batch_rows)
                if got is None:
                    break
                n, columns = got
                yield self._batch(pa, decoder, f.widths, f.wraps, n, columns)
                done += n
        except ParquetUnsupportedError as exc:
            # Met part-way (a page the chunk's metadata did not announce): pyarrow reads the
            # row group and the rows not yet given are taken from it.
            self._note_fallback(path, i, _detail(exc))
            rest = fallback(i).slice(done)
            yield from rest.to_batches()
            return
        except CorruptInputError as exc:
            failed = next((v.error for v in views if isinstance(v, _ChunkReads) and v.error), None)
            if failed is not None:
                raise UnreadableInputError(
                    f"{where}: cannot read the file: {failed.strerror or failed}"
                ) from failed
            raise CorruptInputError(
                f"{where}: {_detail(exc)}: the file is corrupt; write it out again from its source"
            ) from None
        if done != num_rows:
            raise CorruptInputError(f"{where}: {done} rows decoded of the {num_rows} it declares")
        READS.native += 1
        log.debug("%s: decoded by the core (%d rows)", where, num_rows)

    def _batch(
        self,
        pa: Any,
        decoder: Any,
        widths: tuple[int, ...],
        wraps: list[Any],
        n: int,
        columns: list[tuple[np.ndarray, np.ndarray | None]],
    ) -> pa.RecordBatch:
        arrays = []
        fields = []
        for j, (name, width, wrap, (values, validity)) in enumerate(
            zip(self.names, widths, wraps, columns, strict=True)
        ):
            bitmap = None if validity is None else pa.py_buffer(validity)
            data = pa.py_buffer(values)
            if width == 0:
                ids = pa.Array.from_buffers(pa.int32(), n, [bitmap, data])
                arr = pa.DictionaryArray.from_arrays(
                    ids, self._dictionary(pa, decoder, widths, j), safe=False
                )
                fields.append(pa.field(name, arr.type, metadata={CHECKED_INDICES: b"1"}))
            else:
                arr = pa.Array.from_buffers(wrap, n, [bitmap, data])
                fields.append(pa.field(name, wrap))
            arrays.append(arr)
        return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))

    def _dictionary(self, pa: Any, decoder: Any, widths: tuple[int, ...], j: int) -> Any:
        """The row group's dictionary of text column ``j``: one Arrow array for the row
        group's batches (the classifier then classifies it once), rebuilt only when a PLAIN
        page has added values to it.
        """
        from didcore.arrow_buffers import _dictionary_array

        key = (widths, j)
        cached = self._dicts.get(key)
        if cached is None or len(cached) != decoder.dictionary_len(j):
            cached = self._dicts[key] = _dictionary_array(pa, *decoder.dictionary(j))
        return cached


def _stored_columns(stored: Any) -> dict[str, Any]:
    """The top-level Parquet columns of a ``ParquetFile.schema``, by name."""
    if stored is None:
        return {}
    columns = {}
    for i in range(len(stored)):
        column = stored.column(i)
        if "." not in column.path:
            columns[column.name] = column
    return columns


def _detail(exc: BaseException) -> str:
    return str(exc.args[0]) if exc.args else str(exc)
