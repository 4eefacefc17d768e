"""The ``lsoa_imd`` lookup: LSOA -> IMD quintile 1..5 (1 = most deprived), from deciles,
quintiles or ranks (docs/inputs.md). :func:`_imd` uses Arrow kernels for the usual table
(:func:`_imd_vectorised`) and a loop over rows otherwise (:func:`_imd_rows`), which finds and
names what is wrong; tests hold the two equal.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from didcore.codes import normalise_code
from didcore.errors import LookupConflictError, MissingColumnError
from didcore.lookup_files import _keyed_rows, _normalised_text, _require, _unique_mapping

if TYPE_CHECKING:
    import pyarrow as pa


def _blank(value: object) -> bool:
    """Null, or text that is empty once trimmed."""
    return value is None or (isinstance(value, str) and not value.strip())


def _imd(table: pa.Table) -> dict[str, int]:
    """LSOA -> IMD quintile 1..5 (1 = most deprived).

    From a decile d, quintile ceil(d / 2); from a rank r among the N LSOAs ranked (N the
    highest rank in the table, so the table must hold every ranked LSOA, e.g. all 32,844 of
    England for IMD 2019), quintile ceil(5 r / N): the equal fifths the published deciles and
    quintiles are cut from. A table with both deciles and quintiles uses whichever a row has,
    and they must agree where it has both. A level may be written as a whole number in any
    form (3, 3.0, " 3 "); a blank (or NA, NaN, NULL) level leaves its LSOA with no IMD.
    """
    has_decile = "imd_decile" in table.column_names
    has_quintile = "imd_quintile" in table.column_names
    _require(table, "lsoa_imd", ("lsoa11",))
    if not (has_decile or has_quintile) and "imd_rank" in table.column_names:
        return _imd_from_ranks(table)
    if not (has_decile or has_quintile):
        raise MissingColumnError(
            "lookup lsoa_imd needs imd_decile (1..10), imd_quintile (1..5) or imd_rank "
            f"(it has: {', '.join(table.column_names)})"
        )
    if has_decile != has_quintile:
        column, top = ("imd_decile", 10) if has_decile else ("imd_quintile", 5)
        fast = _imd_vectorised(table, column, top, has_decile)
        if fast is not None:
            return fast
    return _imd_rows(table)


# Text an IMD level may hold to say it has none: R's NA, pandas' NaN, SQL's NULL.
_NO_LEVEL = frozenset({"NA", "N/A", "NAN", "NULL", "NONE"})


def _level(raw: object) -> int | None:
    """An IMD level written as a whole number in any form; ``None`` when blank or NA.
    Raises ``ValueError`` for anything else.
    """
    if _blank(raw) or (isinstance(raw, float) and math.isnan(raw)):
        return None
    text = str(raw).strip()
    if text.upper() in _NO_LEVEL:
        return None
    value = float(text)
    if not value.is_integer():
        raise ValueError(text)
    return int(value)


def _imd_rows(table: pa.Table) -> dict[str, int]:
    """:func:`_imd` from deciles and/or quintiles as a loop over rows: any column type, and
    the errors' details.
    """
    columns = [("imd_decile", 10), ("imd_quintile", 5)]
    values = {
        c: table.column(c).to_pylist() if c in table.column_names else [None] * table.num_rows
        for c, _ in columns
    }
    out: dict[str, int] = {}
    conflicts: set[str] = set()
    disagree: list[str] = []
    bad: dict[str, list[object]] = {c: [] for c, _ in columns}
    for i, raw_key in enumerate(table.column("lsoa11").to_pylist()):
        k = normalise_code(raw_key)
        if k is None:
            continue
        levels: dict[str, int | None] = {}
        for c, top in columns:
            raw = values[c][i]
            try:
                level = _level(raw)
            except ValueError:
                level = -1
            if level is not None and not 1 <= level <= top:
                bad[c].append(raw)
                level = None
            levels[c] = level
        d, q = levels["imd_decile"], levels["imd_quintile"]
        if d is not None and q is not None and (d + 1) // 2 != q:
            disagree.append(f"{k} (decile {d}, quintile {q})")
            continue
        quintile = (d + 1) // 2 if d is not None else q
        if quintile is None:
            continue  # an LSOA listed with no IMD (a Welsh one in an English table, say)
        if out.setdefault(k, quintile) != quintile:
            conflicts.add(k)
    for c, top in columns:
        if bad[c]:
            raise LookupConflictError(
                f"lookup lsoa_imd: {len(bad[c])} rows have an {c} that is not a whole number "
                f"from 1 to {top} (e.g. {bad[c][0]!r})"
            )
    if disagree:
        raise LookupConflictError(
            f"lookup lsoa_imd: {len(disagree)} rows give a decile and a quintile that disagree "
            f"(e.g. {disagree[0]}); the quintile of decile d is ceil(d / 2)"
        )
    if conflicts:
        raise LookupConflictError(
            f"lookup lsoa_imd: {len(conflicts)} LSOAs have two different quintiles "
            f"(e.g. {sorted(conflicts)[0]})"
        )
    return out


def _imd_from_ranks(table: pa.Table) -> dict[str, int]:
    """LSOA -> quintile ceil(5 r / N) from IMD ranks r (1 = most deprived), N the highest."""
    ranks: dict[str, int] = {}
    bad: list[object] = []
    for k, raw_value in _keyed_rows(table, "lsoa11", "imd_rank"):
        try:
            rank = _level(raw_value)
        except ValueError:
            rank = 0
        if rank is None:
            continue
        if rank < 1:
            bad.append(raw_value)
        elif ranks.setdefault(k, rank) != rank:
            raise LookupConflictError(f"lookup lsoa_imd: LSOA {k} has two different ranks")
    if bad:
        raise LookupConflictError(
            f"lookup lsoa_imd: {len(bad)} rows have an imd_rank that is not a whole number "
            f"from 1 (e.g. {bad[0]!r})"
        )
    n = max(ranks.values(), default=0)
    return {k: (5 * r + n - 1) // n for k, r in ranks.items()}


def _imd_vectorised(
    table: pa.Table, column: str, top: int, has_decile: bool
) -> dict[str, int] | None:
    """:func:`_imd` with Arrow kernels, for the usual case.

    That is text LSOA codes, every level a whole number in range and no LSOA given two
    quintiles; ``None`` otherwise.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from didcore._arrow_compat import number_array

    keys = _normalised_text(table.column("lsoa11"))
    if keys is None:
        return None
    raw = table.column(column)
    if pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type):
        text = pc.utf8_trim_whitespace(raw)
        if not pc.all(pc.match_substring_regex(text, r"^[0-9]{1,3}$")).as_py():
            return None
        levels = text.cast(pa.int64())
    elif pa.types.is_integer(raw.type):
        levels = raw.cast(pa.int64())
    else:
        return None
    keep = pc.is_valid(keys)
    keys, levels = keys.filter(keep), levels.filter(keep)
    if levels.null_count:
        return None
    if len(levels) and not 1 <= pc.min(levels).as_py() <= pc.max(levels).as_py() <= top:
        return None
    if has_decile:  # the numbers as Arrow scalars: a Python number would import pandas
        one, two = number_array(np.array([1, 2], np.int64))
        quintiles = pc.divide(pc.add(levels, one), two)
    else:
        quintiles = levels
    return _unique_mapping(keys.to_pylist(), quintiles.to_pylist())
