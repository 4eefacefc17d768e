"""Reading lookups: the vectorised readers agree with the row loops they stand in for, and
the forms lookups come in (headers, levels, column types) are read or refused clearly.

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

from didcore.errors import LookupConflictError, MeasureDefinitionError, MissingColumnError
from didcore.lookup import (
    Lookups,
    _imd,
    _imd_rows,
    _imd_vectorised,
    _pairs_rows,
    _pairs_vectorised,
)

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
    st.sampled_from(["1", " 3 ", "07", "10", "11", "0", "x", "", "+2", "2.0", "2.5", "NA"]),
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
    name = "imd_decile" if decile else "imd_quintile"
    table = pa.table({"lsoa11": pa.array([r[0] for r in rows], pa.string()), name: column})
    top = 10 if decile else 5
    fast = _imd_vectorised(table, name, top, decile)
    try:
        slow = _imd_rows(table)
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


def _folder(tmp_path: Any, **files: str) -> Any:
    """A lookups folder: the test lookups' CSVs, with ``files`` replacing or adding some."""
    base = {
        "practice_icb": "gp_practice_code,icb_code\nA81001,QAA\n",
        "lsoa_icb": "lsoa11,icb_code\nE01000001,QAA\nE01000002,QBB\n",
        "lsoa_imd": "lsoa11,imd_decile\nE01000001,1\nE01000002,10\n",
    }
    base.update(files)
    for name, text in base.items():
        (tmp_path / f"{name}.csv").write_text(text)
    return tmp_path


def test_imd_levels_in_any_whole_number_form_and_blank_or_na(tmp_path: Any) -> None:
    text = "lsoa11,imd_decile\nE01000001,3.0\nE01000002, 10 \nE01000003,NA\nE01000004,\n"
    lk = Lookups.read(_folder(tmp_path, lsoa_imd=text))
    assert lk.lsoa_quintile == {"E01000001": 2, "E01000002": 5}
    floats = {"lsoa11": ["E01000001", "E01000002"], "imd_decile": [3.0, float("nan")]}
    tables = {
        "practice_icb": {"gp_practice_code": ["A81001"], "icb_code": ["QAA"]},
        "lsoa_icb": {"lsoa11": ["E01000001"], "icb_code": ["QAA"]},
    }
    assert Lookups.from_tables(**tables, lsoa_imd=floats).lsoa_quintile == {"E01000001": 2}
    with pytest.raises(LookupConflictError, match=r"not a whole number from 1 to 10 .*'3\.5'"):
        Lookups.read(_folder(tmp_path, lsoa_imd="lsoa11,imd_decile\nE01000001,3.5\n"))


def test_imd_deciles_and_quintiles_together(tmp_path: Any) -> None:
    both = "lsoa11,imd_decile,imd_quintile\nE01000001,,1\nE01000002,10,\nE01000003,4,2\n"
    lk = Lookups.read(_folder(tmp_path, lsoa_imd=both))
    assert lk.lsoa_quintile == {"E01000001": 1, "E01000002": 5, "E01000003": 2}
    clash = "lsoa11,imd_decile,imd_quintile\nE01000001,3,1\n"
    with pytest.raises(LookupConflictError, match=r"disagree .*E01000001 \(decile 3, quintile 1"):
        Lookups.read(_folder(tmp_path, lsoa_imd=clash))


@pytest.mark.parametrize("name", ["practice_icb", "lsoa_icb", "lsoa_imd"])
def test_an_empty_required_lookup_is_an_error(tmp_path: Any, name: str) -> None:
    header = {"practice_icb": "gp_practice_code,icb_code", "lsoa_icb": "lsoa11,icb_code"}
    empty = header.get(name, "lsoa11,imd_decile") + "\n"
    with pytest.raises(LookupConflictError, match=f"lookup {name} lists no"):
        Lookups.read(_folder(tmp_path, **{name: empty}))


def test_headers_ignore_case_and_spaces(tmp_path: Any) -> None:
    measures = (
        "Measure, KIND ,modality,EXAM CODE\n"
        "X-ray,modality,Plain Radiography,\n"
        "Chest X-ray,edoc,Plain Radiography,XCHES\n"
    )
    folder = _folder(tmp_path, practice_icb=" GP_Practice_Code ,ICB_CODE\nA81001,QAA\n")
    (folder / "measures.csv").write_text(measures)
    lk = Lookups.read(folder)
    assert lk.practice_icb == {"A81001": "QAA"}
    assert [r.exam_code for r in lk.measure_rules] == [None, "XCHES"]
    twice = "icb_code,ICB_CODE,gp_practice_code\nQAA,QAA,A81001\n"
    with pytest.raises(LookupConflictError, match="more than one column named icb_code"):
        Lookups.read(_folder(tmp_path, practice_icb=twice))
    # separated otherwise (a spreadsheet's semicolon "CSV"): read as the extract is
    for sep in ("\t", ";", "|"):
        other = f"gp_practice_code{sep}icb_code\nA81001{sep}QAA\n"
        assert Lookups.read(_folder(tmp_path, practice_icb=other)).practice_icb == {"A81001": "QAA"}
    # a comma in the header keeps the comma: the semicolons are then part of a name
    mixed = "gp_practice_code;icb_code,note\nA81001;QAA,x\n"
    with pytest.raises(MissingColumnError, match="tab-, semicolon- or bar-separated"):
        Lookups.read(_folder(tmp_path, practice_icb=mixed))


def test_edoc_measures_without_an_exam_code_column_are_refused(tmp_path: Any) -> None:
    folder = _folder(tmp_path)
    (folder / "measures.csv").write_text(
        "measure,kind,modality,exam\nChest X-ray,edoc,Plain Radiography,XCHES\n"
    )
    with pytest.raises(MeasureDefinitionError, match="no exam_code column"):
        Lookups.read(folder)


def test_measure_names_differing_only_in_case_are_refused(tmp_path: Any) -> None:
    folder = _folder(tmp_path)
    (folder / "measures.csv").write_text(
        "measure,kind,modality,exam_code\n"
        "Brain MRI,edoc,Magnetic Resonance Imaging,MBRAI\n"
        "brain mri,edoc,Magnetic Resonance Imaging,MBRAC\n"
    )
    with pytest.raises(MeasureDefinitionError, match="'Brain MRI' and 'brain mri'"):
        Lookups.read(folder)


def test_categorical_binary_and_view_columns_from_tables() -> None:
    # string_view from pyarrow 16 on; plain strings on the older supported releases
    view = pa.string_view() if hasattr(pa, "string_view") else pa.string()
    practice = pa.table(
        {
            "gp_practice_code": pa.array(["A81001", "A81002"]).cast(pa.binary()),
            "icb_code": pa.array(["QAA", "QBB"]).dictionary_encode(),
        }
    )
    lsoa = pa.table(
        {
            "lsoa11": pa.array(["E01000001"], view),
            "icb_code": pa.array(["QAA"])
            .dictionary_encode()
            .cast(pa.dictionary(pa.uint32(), view)),
        }
    )
    imd = {"lsoa11": ["E01000001"], "imd_decile": [1]}
    lk = Lookups.from_tables(practice, lsoa, imd)
    assert lk.practice_icb == {"A81001": "QAA", "A81002": "QBB"}
    assert lk.lsoa_icb == {"E01000001": "QAA"}
    bad = practice.set_column(0, "gp_practice_code", pa.array([b"\xff", b"A"], pa.binary()))
    with pytest.raises(LookupConflictError, match="not UTF-8"):
        Lookups.from_tables(bad, lsoa, imd)


def test_a_lookup_that_is_not_utf8_names_its_column(tmp_path: Any) -> None:
    from didcore.errors import UnreadableInputError

    folder = _folder(tmp_path)
    (folder / "icb.csv").write_bytes(b"icb_code,icb_name,region\nQAA,NHS Caf\xe9 ICB,North\n")
    with pytest.raises(UnreadableInputError, match=r"column 'icb_name' is not UTF-8 text"):
        Lookups.read(folder)


def test_lookup_file_names_in_any_case_and_one_file_each(tmp_path: Any) -> None:
    from didcore.errors import UnreadableInputError

    folder = _folder(tmp_path)
    (folder / "practice_icb.csv").rename(folder / "PRACTICE_ICB.CSV")
    assert Lookups.read(folder).practice_icb == {"A81001": "QAA"}
    (folder / "practice_icb.csv.gz").write_bytes(b"")
    with pytest.raises(UnreadableInputError, match="2 files for practice_icb"):
        Lookups.read(folder)


def test_a_ragged_lookup_line_is_named(tmp_path: Any) -> None:
    from didcore.errors import UnreadableInputError

    text = "gp_practice_code,icb_code\nA81001,QAA\n\n   \nA81002,QAA\n"
    with pytest.raises(UnreadableInputError, match="line 4 has 1 fields where the header has 2"):
        Lookups.read(_folder(tmp_path, practice_icb=text))
