"""What didcore needs from pyarrow that older releases spell differently or lack.

didcore supports pyarrow 14 (what managed runtimes such as Databricks 15.4 ship). Two things
differ there:

* the view types (``string_view``, ``binary_view``) and their ``pa.types.is_*_view`` tests
  arrived in pyarrow 16: on older releases no column can have them, so the tests are False;
* ``RecordBatchReader.from_stream`` arrived in pyarrow 15 (14 has the capsule import only);
* ``DataType.to_pandas_dtype()`` imports pandas on pyarrow 16 to 24 (and fails without it),
  so integer types are mapped to numpy dtypes here instead.

And one thing every release does: converting Python or numpy values to Arrow (``pa.array``,
``pa.scalar``, a compute function given a Python value or a numpy array) first asks whether
they are pandas objects, which imports pandas when it is installed: 0.3-0.45 s, a third of
counting 50M rows. :func:`text_array`, :func:`number_array` and :func:`text_scalar` build
arrays from their buffers instead, so that counting never imports pandas.

pyarrow is imported inside the functions, so importing this module stays free.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa


def is_string_view(t: pa.DataType) -> bool:
    """Whether ``t`` is Arrow's ``string_view`` (never, on pyarrow < 16, which lacks it)."""
    import pyarrow as pa

    test = getattr(pa.types, "is_string_view", None)
    return bool(test is not None and test(t))


def is_binary_view(t: pa.DataType) -> bool:
    """Whether ``t`` is Arrow's ``binary_view`` (never, on pyarrow < 16, which lacks it)."""
    import pyarrow as pa

    test = getattr(pa.types, "is_binary_view", None)
    return bool(test is not None and test(t))


def integer_dtype(t: pa.DataType) -> np.dtype[np.integer]:
    """The numpy dtype of the Arrow integer type ``t`` (int8 ... uint64), without pandas.

    Arrow integers are little-endian fixed-width values, as numpy's native ones on every
    platform pyarrow ships for, so ``bit_width / 8`` bytes, signed or not, is the whole story.
    """
    import numpy as np
    import pyarrow as pa

    if not pa.types.is_integer(t):
        raise TypeError(f"{t} is not an Arrow integer type")
    kind = "u" if pa.types.is_unsigned_integer(t) else "i"
    return np.dtype(f"{kind}{t.bit_width // 8}")


def text_array(values: Sequence[str | None]) -> pa.Array:
    """``pa.array(values, pa.string())`` (``None`` a null), built from its buffers, without
    the pandas check (see the module's docstring).
    """
    import numpy as np
    import pyarrow as pa

    data = [b"" if v is None else v.encode("utf-8") for v in values]
    offsets = np.zeros(len(data) + 1, np.int64)
    np.cumsum([len(d) for d in data], out=offsets[1:])
    blob = b"".join(data)
    if len(blob) >= 2**31:
        kind = pa.large_string()
    else:
        kind, offsets = pa.string(), offsets.astype(np.int32)
    valid = np.fromiter((v is not None for v in values), bool, len(data))
    nulls = len(data) - int(valid.sum())
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    buffers = [bitmap, pa.py_buffer(offsets), pa.py_buffer(blob)]
    return pa.Array.from_buffers(kind, len(data), buffers, null_count=nulls)


def text_scalar(value: str) -> pa.Scalar:
    """``pa.scalar(value, pa.string())``, without the pandas check."""
    return text_array([value])[0]


def number_array(values: np.ndarray) -> pa.Array:
    """A 1-d numpy array of integers or floats as an Arrow array over the same memory (a
    copy first if it is not contiguous), without the pandas check.
    """
    import numpy as np
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    if values.ndim != 1 or values.dtype.kind not in "iuf":
        raise TypeError(f"expected a 1-d numpy array of numbers, not {values.dtype}")
    kind = pa.from_numpy_dtype(values.dtype)
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])


def number_scalar(value: float, dtype: Any) -> pa.Scalar:
    """``value`` as an Arrow scalar of the numpy ``dtype``'s type, without the pandas check."""
    import numpy as np

    return number_array(np.array([value], dtype))[0]


def null_scalar(t: pa.DataType) -> pa.Scalar:
    """A null Arrow scalar of type ``t`` (``pa.scalar(None, t)``), without the pandas check."""
    import pyarrow as pa

    return pa.nulls(1, t)[0]


def int64_array(values: Sequence[int] | np.ndarray) -> pa.Array:
    """Whole numbers as an Arrow ``int64`` array, without the pandas check."""
    import numpy as np

    return number_array(np.asarray(values, np.int64))


def bool_array(values: Sequence[bool] | np.ndarray) -> pa.Array:
    """True/false values as an Arrow ``bool`` array, without the pandas check."""
    import numpy as np
    import pyarrow as pa

    bits = np.asarray(values, bool)
    data = pa.py_buffer(np.packbits(bits, bitorder="little"))
    return pa.Array.from_buffers(pa.bool_(), len(bits), [None, data])


def to_float64(arr: pa.Array) -> pa.Array:
    """``arr`` (floating or decimal) cast to float64, nulls kept.

    pyarrow < 15 has no cast from float16; there the half floats go through numpy, whose
    float16 to float64 conversion is exact.
    """
    import pyarrow as pa

    try:
        return arr.cast(pa.float64())
    except pa.ArrowNotImplementedError:
        if not pa.types.is_float16(arr.type):
            raise
        import numpy as np

        values = arr.to_numpy(zero_copy_only=False).astype(np.float64)
        return pa.array(values, mask=arr.is_null().to_numpy(zero_copy_only=False))


def reader_from_stream(source: Any) -> pa.RecordBatchReader:
    """A RecordBatchReader over any object with ``__arrow_c_stream__`` (polars, DuckDB, ...).

    ``RecordBatchReader.from_stream`` arrived in pyarrow 15; pyarrow 14 already speaks the
    Arrow PyCapsule interface, through the import that ``from_stream`` later wrapped.
    """
    import pyarrow as pa

    from_stream = getattr(pa.RecordBatchReader, "from_stream", None)
    if from_stream is not None:
        return from_stream(source)
    return pa.RecordBatchReader._import_from_c_capsule(source.__arrow_c_stream__())
