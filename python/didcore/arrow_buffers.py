"""Arrow buffers viewed in place as numpy arrays for the Rust core, and the check that a
dictionary array's indices stay inside its dictionary (which Arrow's kernels do not make).
No copies: each view shares the Arrow array's memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from didcore._arrow_compat import integer_dtype
from didcore.errors import CorruptInputError


def _check_dictionary_indices(
    name: str, arr: Any, batch: str = "", rows_before: int = 0, source: str | None = None
) -> None:
    """Refuse a dictionary array (any index width) whose non-null rows point outside its
    dictionary, which a corrupt Parquet file or an unchecked Arrow array can hold and Arrow's
    kernels do not check: :class:`~didcore.errors.CorruptInputError` naming the column, the
    first such row (``rows_before`` earlier rows; ``batch`` words which batch, e.g.
    ``" of batch 3"``), its index and the dictionary's length, and ``source``, the file, if
    known.

    One pass over the indices, read in place: as unsigned numbers, negative indices are huge,
    so their maximum tells both ends (or, for a dictionary longer than the index type's
    largest value, the minimum alone). Only when that fails are the rows looked at one by one
    (a null row's index may hold anything).
    """
    indices = arr.indices
    n = len(arr.dictionary)
    dtype = integer_dtype(indices.type)
    values, validity, offset = _buffers(indices, dtype)
    if not len(values):
        return
    if dtype.kind == "i" and n > np.iinfo(dtype).max:  # only a negative index is outside
        if int(values.min()) >= 0:
            return
    elif int(values.view(dtype.str.replace("i", "u")).max()) < n:
        return
    bad = (values < 0) | (values >= n) if dtype.kind == "i" else values >= n
    if validity is not None:
        bits = np.unpackbits(validity, bitorder="little")[offset : offset + len(values)]
        bad &= bits.astype(bool)
    rows = np.flatnonzero(bad)
    if not len(rows):
        return
    row = int(rows[0])
    entries = "entry" if n == 1 else "entries"
    where = f"row {rows_before + row + 1} (row {row + 1}{batch})" if batch else f"row {row + 1}"
    in_file = f"{source}: " if source else ""
    raise CorruptInputError(
        f"{in_file}column {name!r}: {where} points to entry {int(values[row])} of its "
        f"dictionary, which has {n} {entries}: the file is corrupt (or the Arrow data was "
        "built without checks); write it out again from its source"
    )


def _string_buffers(pa: Any, arr: Any) -> tuple[Any, ...]:
    """``(offsets, data, validity bitmap or None, bit offset)`` viewing an Arrow ``string``
    array's buffers, no copy; the ``len + 1`` offsets start at the array's offset.
    """
    validity, offsets, data = arr.buffers()
    n = len(arr)
    offsets_view = (
        np.zeros(1, np.int32)
        if offsets is None
        else np.frombuffer(offsets, np.int32, count=n + 1, offset=arr.offset * 4)
    )
    data_view = np.zeros(0, np.uint8) if data is None else np.frombuffer(data, np.uint8)
    if arr.null_count == 0:
        return offsets_view, data_view, None, 0
    if validity is None:  # every value null
        return offsets_view, data_view, np.zeros((n + 7) // 8, np.uint8), 0
    return offsets_view, data_view, np.frombuffer(validity, np.uint8), arr.offset


def _dictionary_array(pa: Any, offsets: np.ndarray, data: np.ndarray, null: int | None) -> Any:
    """A ``TextEncoder``'s dictionary as an Arrow ``string`` array (its null entry null)."""
    n = len(offsets) - 1
    bitmap = None
    if null is not None:
        valid = np.ones(n, bool)
        valid[null] = False
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.StringArray.from_buffers(
        n,
        pa.py_buffer(offsets),
        pa.py_buffer(data),
        bitmap,
        null_count=0 if null is None else 1,
    )


def _buffers(arr: Any, dtype: Any) -> tuple[Any, ...]:
    """``(values, validity bitmap or None, bit offset)`` viewing the Arrow buffers, no copy."""
    bufs = arr.buffers()
    n = len(arr)
    itemsize = np.dtype(dtype).itemsize
    if n == 0 or bufs[1] is None:
        values = np.zeros(n, dtype)
    else:
        values = np.frombuffer(bufs[1], dtype=dtype, count=n, offset=arr.offset * itemsize)
    if arr.null_count == 0:
        return values, None, 0
    if bufs[0] is None:  # a null-typed array carries no bitmap: every row is null
        return values, np.zeros((n + 7) // 8, np.uint8), 0
    return values, np.frombuffer(bufs[0], dtype=np.uint8), arr.offset


def _valid_rows(arr: Any) -> np.ndarray:
    """Whether each row of ``arr`` holds a value (``arr.is_valid()`` as numpy booleans),
    unpacked from its validity bitmap: ``to_numpy`` would import pandas where it is installed
    (see :mod:`didcore._arrow_compat`).
    """
    n = len(arr)
    if arr.null_count == 0:
        return np.ones(n, bool)
    bitmap = arr.buffers()[0]
    if bitmap is None:  # a null-typed array carries no bitmap: every row is null
        return np.zeros(n, bool)
    bits = np.unpackbits(np.frombuffer(bitmap, np.uint8), bitorder="little")
    return bits[arr.offset : arr.offset + n].astype(bool)


def _bool_values(arr: Any) -> np.ndarray:
    """An Arrow ``bool`` array's values as numpy booleans (a null row's value is whatever its
    slot holds: combine with :func:`_valid_rows`), unpacked in place of ``to_numpy``.
    """
    n = len(arr)
    data = arr.buffers()[1]
    if data is None or n == 0:
        return np.zeros(n, bool)
    bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
    return bits[arr.offset : arr.offset + n].astype(bool)
