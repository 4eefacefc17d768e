"""Reading values: ages and sex codes as whole numbers, numbers and dates written as text,
dates of any Arrow type, and NHS sex codes written as text (the derivation's inputs, as
docs/inputs.md words them). Used by the batch classifier (:mod:`didcore.classify`) and by
:mod:`didcore.years`, so that both read a value the same way. Arrow compute kernels
throughout; each returns what it could not read with how many rows held it and an example.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import numpy as np

from didcore._arrow_compat import (
    bool_array,
    is_string_view,
    null_scalar,
    number_scalar,
    to_float64,
)
from didcore.arrow_buffers import _check_dictionary_indices
from didcore.errors import ColumnTypeError
from didcore.io import is_binary_type


def _true() -> Any:
    """Arrow's true, without pa.scalar's pandas check (didcore._arrow_compat)."""
    return bool_array([True])[0]


def _false() -> Any:
    """Arrow's false, without pa.scalar's pandas check (didcore._arrow_compat)."""
    return bool_array([False])[0]


# What a fractional number in an integer column is: completed years, rounded down (ages), or
# an invalid code, counted as missing (sex).
Fractions = Literal["floor", "invalid"]


def _dates(pa: Any, arr: Any, name: str) -> tuple[Any, int, Any]:
    """A date column as date32, values that are not dates null; and how many rows held such
    values, with an example. Used for ages (date of birth, test date) and financial years
    (:mod:`didcore.years`), so both read a date the same way.
    """
    t = arr.type
    n_bad, example = 0, None
    if pa.types.is_null(t):
        arr = pa.nulls(len(arr), pa.date32())
    elif pa.types.is_date64(t):
        # milliseconds since 1970; a time of day (not valid Arrow, but files hold it) is
        # dropped, as a timestamp's is
        arr = arr.cast(pa.timestamp("ms")).cast(pa.date32())
    elif pa.types.is_timestamp(t):
        arr = arr.cast(pa.date32())
    elif _is_text(pa, t) or pa.types.is_dictionary(t):
        if pa.types.is_dictionary(t):
            _check_dictionary_indices(name, arr)  # for didcore.years, which reads dates first
            arr = _plain_dictionary(pa, arr)
        arr, n_bad, example = _text_dates(pa, arr.cast(pa.string()))
    elif not pa.types.is_date32(t):
        raise ColumnTypeError(f"column {name!r} has type {t}; expected a date")
    return arr, n_bad, example


def _plain_dictionary(pa: Any, arr: Any) -> Any:
    """A dictionary array whose values are text or binary of any kind (string views and large
    strings, as polars exports a Categorical; binary, binary views) as the same indices over
    plain ``string`` values, which Arrow's casts and kernels take; any other as it is.
    Raises ``pa.ArrowInvalid`` for binary values that are not UTF-8.
    """
    values = arr.dictionary
    t = values.type
    if pa.types.is_string(t) or not (_is_text(pa, t) or is_binary_type(t)):
        return arr
    # safe=False: the indices are as they were; checking them is not this function's job
    return pa.DictionaryArray.from_arrays(arr.indices, values.cast(pa.string()), safe=False)


def _whole_numbers(pa: Any, arr: Any, fractions: Fractions) -> tuple[Any, int, Any]:
    """A floating (or decimal) column as int64 (clamped into int32's range), NaN null; and
    how many values were unreadable, with an example.

    ``fractions == "floor"`` (ages): a fractional age is its completed years, rounded down
    (40.7 is 40), and an infinite one is unreadable, null. ``"invalid"`` (sex codes): a value
    that is not whole (1.5, infinity) is an invalid code, null.
    """
    import pyarrow.compute as pc

    if not (pa.types.is_float32(arr.type) or pa.types.is_float64(arr.type)):
        arr = to_float64(arr)  # half floats and decimals: the kernels below need these
    arr = pc.if_else(pc.is_nan(arr), null_scalar(arr.type), arr)
    if fractions == "floor":
        arr = pc.floor(arr)
    good = pc.and_(pc.is_finite(arr), pc.equal(pc.floor(arr), arr))
    bad = pc.invert(good.fill_null(_true()))
    n_bad = pc.sum(bad).as_py() or 0
    example = arr.filter(bad)[0].as_py() if n_bad else None
    if n_bad:
        arr = pc.if_else(good, arr, null_scalar(arr.type))
    bound = float(2**31)
    arr = pc.max_element_wise(
        pc.min_element_wise(arr, number_scalar(bound, np.float64), skip_nulls=False),
        number_scalar(-bound, np.float64),
        skip_nulls=False,
    )
    return arr.cast(pa.int64()), n_bad, example


def _past_max_age(pa: Any, arr: Any, max_age: int) -> Any:
    """A floating (or decimal) age column as float, each finite age whose completed years
    exceed ``max_age`` replaced by -1 (a missing age).

    ``floor(v) > max_age`` is decided exactly although ``float(max_age)`` may be rounded: if
    it was rounded up, the ages past ``max_age`` are those from it on; if down, those above it.
    """
    import pyarrow.compute as pc

    if not (pa.types.is_float32(arr.type) or pa.types.is_float64(arr.type)):
        arr = to_float64(arr)
    limit = float(max_age)
    years = pc.floor(arr)
    at = number_scalar(limit, np.float64)  # as a Python float would be, without pandas
    past = pc.greater_equal(years, at) if limit > max_age else pc.greater(years, at)
    past = pc.and_(past, pc.is_finite(arr)).fill_null(_false())
    return pc.if_else(past, number_scalar(-1.0, np.float64).cast(arr.type), arr)


def _rows_holding(n: int, what: str) -> str:
    """How many rows of a column are bad, for an error message: "1 row holds ..." or
    "2,345 rows hold ..." (``what`` is worded for one value).
    """
    return f"1 row holds {what}" if n == 1 else f"{n:,} rows hold {what}"


def _blank_to_null(pa: Any, arr: Any) -> Any:
    """Text trimmed of white space (Unicode's, as ``str.strip``), with empty values null."""
    import pyarrow.compute as pc

    from didcore._arrow_compat import text_scalar

    text = pc.utf8_trim_whitespace(arr.cast(pa.string()))
    # (no pa.scalar: its pandas check imports pandas, see didcore._arrow_compat)
    return pc.if_else(pc.equal(text, text_scalar("")), pa.nulls(1, pa.string())[0], text)


# A number written as text: ASCII digits, an optional fraction, an optional exponent.
_NUMBER_TEXT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"


def _text_numbers(pa: Any, arr: Any) -> tuple[Any, int, Any]:
    """Numbers written as text ("40", " 40 ", "40.0", "4e1"; blank is null) as float64, text
    that is not a number null; and how many rows held such text, with an example.
    """
    import pyarrow.compute as pc

    text = _blank_to_null(pa, arr)
    try:
        numbers = text.cast(pa.float64())
    except pa.ArrowInvalid:
        numbers = None
    # the usual case, numbers throughout; but the cast also reads "nan" and "inf", which are
    # not numbers here (as in didcore.reference): those go through the pattern below
    if numbers is not None and pc.all(pc.is_finite(numbers)).as_py() is not False:
        return numbers, 0, None
    number = pc.match_substring_regex(text, _NUMBER_TEXT)
    bad = pc.invert(number.fill_null(_true()))
    n_bad = pc.sum(bad).as_py() or 0
    example = text.filter(bad)[0].as_py() if n_bad else None
    if n_bad:
        text = pc.if_else(number, text, null_scalar(pa.string()))
    return text.cast(pa.float64()), n_bad, example


def _text_dates(pa: Any, arr: Any) -> tuple[Any, int, Any]:
    """Dates written as text, ISO 8601: a date ("2023-04-01") or a date and time, whose date
    is taken as written ("2023-04-01 10:30:00", "2023-04-01T10:30", "2023-04-01T23:30+01:00");
    blank is null. Anything else ("01/05/1980", "2023-02-30") is null too; returned with how
    many rows held it and an example.
    """
    import pyarrow.compute as pc

    text = _blank_to_null(pa, arr)
    try:
        return text.cast(pa.date32()), 0, None  # the usual case: dates alone
    except pa.ArrowInvalid:
        pass
    date_part = pc.utf8_slice_codeunits(text, 0, 10)
    day = pc.strptime(date_part, format="%Y-%m-%d", unit="s", error_is_null=True)
    # strptime rolls 2023-02-30 over into March and takes "2023-4-1": written back, the date
    # must be the text it was read from
    date_ok = pc.equal(pc.strftime(day, format="%Y-%m-%d"), date_part)
    time_ok = pc.match_substring_regex(
        pc.utf8_slice_codeunits(text, 10, 1 << 30), _ISO_TIME.pattern
    )
    good = pc.and_(date_ok, time_ok).fill_null(_false())
    bad = pc.and_(pc.is_valid(text), pc.invert(good))
    n_bad = pc.sum(bad).as_py() or 0
    example = text.filter(bad)[0].as_py() if n_bad else None
    days = pc.if_else(good, day, null_scalar(day.type)).cast(pa.date32())
    return days, n_bad, example


# What may follow an ISO date in a date-time: nothing, or a time (hours, minutes, seconds,
# fractions) after "T" or a space, then a UTC offset or "Z".
_ISO_TIME = re.compile(r"^([T ]\d{2}(:?\d{2}(:?\d{2}([.,]\d+)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?$")


def _not_utf8(pa: Any, arr: Any) -> str:
    """What :func:`_bad_utf8` says of a text column (or dictionary of text) holding bytes
    that are not UTF-8; empty when it holds none (or is not text).
    """
    t = arr.type
    values = arr.dictionary if pa.types.is_dictionary(t) else arr
    if not _is_text(pa, values.type):
        return ""
    try:
        values.validate(full=True)
        return ""
    except pa.ArrowInvalid:
        pass
    as_bytes = (
        values.cast(pa.large_binary())
        if not is_string_view(values.type)
        else (values.cast(pa.string()).cast(pa.large_binary()))
    )
    if pa.types.is_dictionary(t):
        as_bytes = pa.DictionaryArray.from_arrays(arr.indices, as_bytes, safe=False)
    return _bad_utf8(as_bytes)


def _bad_utf8(arr: Any) -> str:
    """How many rows (or dictionary values) of a binary column are not UTF-8, and the first."""
    is_dict = hasattr(arr, "dictionary")
    bad = []
    for v in (arr.dictionary if is_dict else arr).to_pylist():
        try:
            if v is not None:
                v.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(v)
    what = "bytes that are not UTF-8 text"
    if not bad:
        return f"it holds {what}"
    if is_dict:
        held = "value holds" if len(bad) == 1 else "values hold"
        n = f"{len(bad):,} dictionary {held} {what}"
    else:
        n = _rows_holding(len(bad), what)
    return f"{n} (e.g. {bad[0]!r})"


def _is_text(pa: Any, t: Any) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or is_string_view(t))


# A whole number 1 or 2 written as text: "1", "01", "+2", "1.0" (CSVs written from a float
# column with missing values say "1.0").
_SEX_TEXT = re.compile(r"\+?0*([12])(?:\.0*)?")


def _classify_sex(dictionary: Any) -> np.ndarray:
    """NHS Person Gender Code as text: 1 male (0), 2 female (1), anything else -1."""
    import pyarrow.compute as pc

    out = []
    for v in pc.utf8_trim_whitespace(dictionary).to_pylist():
        m = _SEX_TEXT.fullmatch(v) if v is not None else None
        out.append(int(m.group(1)) - 1 if m else -1)
    return np.asarray(out, np.int8)
