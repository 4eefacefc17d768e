"""What didcore needs from pyarrow that older releases spell differently or lack.

didcore supports pyarrow 14 (what managed runtimes such as Databricks 15.4 ship). Two things
differ there:

* the view types (``string_view``, ``binary_view``) and their ``pa.types.is_*_view`` tests
  arrived in pyarrow 16: on older releases no column can have them, so the tests are False;
* ``RecordBatchReader.from_stream`` arrived in pyarrow 15 (14 has the capsule import only);
* ``DataType.to_pandas_dtype()`` imports pandas on pyarrow 16 to 24 (and fails without it),
  so integer types are mapped to numpy dtypes here instead.

pyarrow is imported inside the functions, so importing this module stays free.
"""

from __future__ import annotations

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
