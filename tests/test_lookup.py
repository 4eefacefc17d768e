"""The vectorised lookup readers agree with the row loops they stand in for.

``didcore.lookup`` reads practice/LSOA lookups with Arrow kernels when the tables are clean
text, and falls back to a loop over rows (which also words the errors) otherwise. Whatever the
table, the two must give the same mapping, and the fast path must step aside whenever the loop
would raise.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from didcore.errors import LookupConflictError
from didcore.lookup import _imd, _imd_rows, _imd_vectorised, _pairs_rows, _pairs_vectorised

CODES = ["E01000001", "E01000002", "A81001", "QAA", "QBB"]


def _variant(code: str) -> st.SearchStrategy[str]:
    return st.tuples(
        st.sampled_from(["", " ", "\t", "\x0b", "\xa0"]),
        st.sampled_from([code, code.lower(), code + "\u200b"]),
        st.sampled_from(["", " ", "\r\n", "\u2003"]),
    ).map("".join)


text_st = st.one_of(st.none(), st.just(""), st.just("  "), st.sampled_from(CODES).flatmap(_variant))


@given(st.lists(st.tuples(text_st, text_st), max_size=30), st.booleans())
def test_pairs_fast_path_equals_row_loop(rows: list[tuple[Any, Any]], large: bool) -> None:
    t = pa.large_string() if large else pa.string()
    table = pa.table(
        {"k": pa.array([r[0] for r in rows], t), "v": pa.array([r[1] for r in rows], t)}
    )
    fast = _pairs_vectorised(table, "k", "v")
    try:
        slow = _pairs_rows(table, "lookup", "k", "v")
    except LookupConflictError:
        assert fast is None
        return
    assert fast is None or (fast == slow and list(fast) == list(slow))


level_st = st.one_of(
    st.none(),
    st.integers(-1, 12),
    st.sampled_from(["1", " 3 ", "07", "10", "11", "0", "x", "", "+2", "2.0"]),
)


@given(st.lists(st.tuples(text_st, level_st), max_size=30), st.booleans(), st.booleans())
def test_imd_fast_path_equals_row_loop(
    rows: list[tuple[Any, Any]], as_text: bool, decile: bool
) -> None:
    levels = [r[1] for r in rows]
    if as_text:
        column = pa.array([None if v is None else str(v) for v in levels], pa.string())
    else:
        column = pa.array([v if isinstance(v, int) else None for v in levels], pa.int64())
    table = pa.table({"lsoa11": pa.array([r[0] for r in rows], pa.string()), "level": column})
    top = 10 if decile else 5
    fast = _imd_vectorised(table, "level", top, decile)
    try:
        slow = _imd_rows(table, "level", top, decile)
    except LookupConflictError:
        assert fast is None
        return
    assert fast is None or (fast == slow and list(fast) == list(slow))


def test_clean_tables_take_the_fast_path() -> None:
    table = pa.table({"k": [" e01000001", "E01000002", "E01000001 "], "v": ["qaa", "QBB", "QAA"]})
    assert _pairs_vectorised(table, "k", "v") == {"E01000001": "QAA", "E01000002": "QBB"}
    imd = pa.table({"lsoa11": ["E01000001", "E01000002"], "imd_decile": ["1", "10"]})
    assert _imd_vectorised(imd, "imd_decile", 10, True) == {"E01000001": 1, "E01000002": 5}


@pytest.mark.parametrize("values", [["QAA", "QBB"], ["QAA", None]])
def test_fast_path_steps_aside_for_the_errors(values: list[Any]) -> None:
    table = pa.table({"k": ["E01000001", "e01000001"], "v": values})
    assert _pairs_vectorised(table, "k", "v") is None
    with pytest.raises(LookupConflictError):
        _pairs_rows(table, "lookup", "k", "v")


def test_imd_ranks_give_equal_fifths() -> None:
    """IMD 2019 ranks 32,844 LSOAs: quintile 1 is ranks 1-6,568 (deciles 1-2 end at 6,568)."""
    ranks = [1, 6568, 6569, 13137, 13138, 32844]
    table = pa.table({"lsoa11": [f"E{r:08d}" for r in ranks], "imd_rank": ranks})
    assert list(_imd(table).values()) == [1, 1, 2, 2, 3, 5]
    text = pa.table({"lsoa11": ["e1 ", "E2"], "imd_rank": [" 2", "1"]})
    assert _imd(text) == {"E1": 5, "E2": 3}


@pytest.mark.parametrize("rank", ["0", "x", "-3", "1.5"])
def test_imd_bad_ranks_are_named(rank: Any) -> None:
    table = pa.table({"lsoa11": ["E1", "E2"], "imd_rank": ["1", rank]})
    with pytest.raises(LookupConflictError, match="imd_rank"):
        _imd(table)


@pytest.mark.parametrize("column", ["imd_decile", "imd_quintile", "imd_rank"])
@pytest.mark.parametrize("blank", [None, "", "  "])
def test_blank_imd_leaves_the_lsoa_without_one(column: str, blank: Any) -> None:
    """A lookup may list LSOAs it has no IMD for (Welsh ones in an English table): their
    records are then counted under "no IMD", not refused."""
    table = pa.table({"lsoa11": ["E1", "W1"], column: pa.array(["1", blank], pa.string())})
    assert _imd(table) == {"E1": 1 if column != "imd_rank" else 5}
