"""Code normalisation: the one home of the rule by which codes are compared.

The rule (docs/inputs.md, README "Conventions"): trim white space, Unicode's as ``str.strip()``
has it (ASCII's, the no-break space spreadsheets leave around codes, and the rest), then
upper-case ASCII letters only; a code left blank is a missing code. ``" a81001 "`` is
``A81001``; ``"ß"``, ``"ﬁ"`` and the Turkish dotless ``"ı"`` stay as they are (``str.upper()``
would turn them into ``"SS"``, ``"FI"`` and ``"I"``, making near misses match), and a
zero-width space is not white space, so it stays too.

Two forms, one rule: :func:`normalise_code` / :func:`normalise_text` for one value, and
:func:`normalise_array` / :func:`normalise_array_or_null` for an Arrow array. Arrow's
``utf8_trim_whitespace`` trims exactly the characters for which ``str.isspace()`` is true and
``ascii_upper`` upper-cases exactly a-z, so the two forms agree on any text (tests/test_codes.py
checks every path that compares codes: lookup keys, extract codes, population ICB codes,
quality tables).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "ASCII_UPPER",
    "normalise_array",
    "normalise_array_or_null",
    "normalise_code",
    "normalise_text",
]

# a-z -> A-Z and nothing else: the scalar twin of Arrow's ``ascii_upper``.
ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def normalise_text(text: str) -> str:
    """``text`` trimmed of Unicode white space (``str.strip()``) with ASCII letters upper-cased.

    A blank text gives ``""`` (callers that treat blank as missing test for it).
    """
    return text.strip().translate(ASCII_UPPER)


def normalise_code(value: object) -> str | None:
    """A code as codes are compared (:func:`normalise_text` of its text); ``None`` for null,
    NaN or blank.
    """
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    text = normalise_text(str(value))
    return text or None


def normalise_array(array: Any) -> Any:
    """An Arrow text array (or chunked array) normalised as :func:`normalise_text`, value by
    value: blank values stay ``""`` and nulls stay null.
    """
    import pyarrow.compute as pc

    return pc.ascii_upper(pc.utf8_trim_whitespace(array))


def normalise_array_or_null(array: Any) -> Any:
    """An Arrow text array normalised as :func:`normalise_code`: blank values become null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from didcore._arrow_compat import text_scalar

    norm = normalise_array(array)
    # scalars made without pa.scalar, whose pandas check imports pandas (_arrow_compat)
    empty = text_scalar("").cast(norm.type)
    return pc.if_else(pc.equal(norm, empty), pa.nulls(1, norm.type)[0], norm)
