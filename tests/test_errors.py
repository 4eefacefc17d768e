"""Bad input: clear exceptions from didcore.errors naming column/file/value; never a panic."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import didcore
from didcore import errors
from didcore.lookup import Lookups
from test_cube import LOOKUPS


def _table(**overrides: object) -> pa.Table:
    cols: dict[str, object] = {
        "provider_code": ["RM3", "RWF"],
        "gp_practice_code": ["A81001", None],
        "lsoa11": ["E01000001", "E01000002"],
        "sex": ["1", "2"],
        "age": [40, 50],
        "test_date": [dt.date(2023, 5, 1)] * 2,
        "modality": ["Plain Radiography"] * 2,
        "exam_code": ["XCHES", None],
    }
    cols.update(overrides)
    return pa.table({k: v for k, v in cols.items() if v is not None})


def test_missing_column_is_named() -> None:
    table = _table().drop(["lsoa11"])
    with pytest.raises(errors.MissingColumnError, match="'lsoa11'"):
        didcore.aggregate(table, LOOKUPS)


def test_missing_age_and_dates_is_named() -> None:
    table = _table().drop(["age"])
    with pytest.raises(errors.MissingColumnError, match="date_of_birth"):
        didcore.aggregate(table, LOOKUPS)


def test_ages_that_are_not_numbers_are_missing_and_reported() -> None:
    """Dirty values must not stop a run (SPEC section 1.1): text that is not a number is a
    missing age, and one warning says how many rows, in which column."""
    with pytest.warns(errors.UnreadableValuesWarning, match=r"'age': 2 rows .*'forty'"):
        cube = didcore.aggregate(_table(age=["forty", "fifty"]), LOOKUPS)
    assert cube.exclusions["no_age"] == 2
    with pytest.warns(errors.UnreadableValuesWarning, match=r"'age': 1 row .*inf"):
        cube = didcore.aggregate(_table(age=[float("inf"), 3.5]), LOOKUPS)
    assert cube.exclusions["no_age"] == 1


def test_fractional_ages_are_completed_years() -> None:
    """40.7 years old is 40 completed years (band 40-44); -0.5 is before birth (missing)."""
    cube = didcore.aggregate(_table(age=[44.9, -0.5]), LOOKUPS)
    assert cube.exclusions["no_age"] == 1
    assert cube.counts[:, :, 8].sum() == cube.counts.sum() > 0


def test_nan_ages_and_sexes_are_missing_not_errors() -> None:
    """pandas writes a missing number in a float column as NaN."""
    nan = float("nan")
    cube = didcore.aggregate(_table(age=[nan, 41.0], sex=[1.0, nan]), LOOKUPS)
    assert cube.exclusions["no_sex"] == 1  # row 2: NaN sex
    assert cube.exclusions["no_age"] == 1  # row 1: NaN age
    # a fractional or infinite sex code is an invalid code, like "x"
    cube = didcore.aggregate(_table(sex=[1.5, float("inf")]), LOOKUPS)
    assert cube.exclusions["no_sex"] == 2


def test_whole_float_ages_and_sexes_are_accepted() -> None:
    cube = didcore.aggregate(_table(age=[40.0, None], sex=[1.0, 2.0]), LOOKUPS)
    assert cube.exclusions["no_age"] == 1


def test_bad_date_text_is_a_missing_age_and_reported() -> None:
    table = _table().drop(["age"]).append_column("date_of_birth", pa.array(["1980-01-01", "x"]))
    with pytest.warns(errors.UnreadableValuesWarning, match=r"'date_of_birth': 1 row .*'x'"):
        cube = didcore.aggregate(table, LOOKUPS)
    assert cube.exclusions["no_age"] == 1


def test_codes_of_a_wrong_type() -> None:
    with pytest.raises(errors.ColumnTypeError, match="'modality'"):
        didcore.aggregate(_table(modality=[1.5, 2.5]), LOOKUPS)


def test_corrupt_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(errors.UnreadableInputError, match=r"bad\.parquet"):
        didcore.aggregate(bad, LOOKUPS)
    with pytest.raises(errors.UnreadableInputError, match="does not exist"):
        didcore.aggregate(tmp_path / "nope.parquet", LOOKUPS)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(errors.UnreadableInputError, match=r"no \.parquet"):
        didcore.aggregate(empty, LOOKUPS)


def test_truncated_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    pq.write_table(_table(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(errors.UnreadableInputError):
        didcore.aggregate(path, LOOKUPS)


def test_lookup_with_disagreeing_duplicates() -> None:
    with pytest.raises(errors.LookupConflictError, match=r"A81001 -> QAA / QBB"):
        Lookups.from_tables(
            practice_icb={"gp_practice_code": ["A81001", "a81001 "], "icb_code": ["QAA", "QBB"]},
            lsoa_icb={"lsoa11": ["E1"], "icb_code": ["QAA"]},
            lsoa_imd={"lsoa11": ["E1"], "imd_decile": ["3"]},
        )


def test_lookup_with_agreeing_duplicates_is_fine() -> None:
    lk = Lookups.from_tables(
        practice_icb={"gp_practice_code": ["A81001", "a81001 "], "icb_code": ["QAA", "qaa"]},
        lsoa_icb={"lsoa11": ["E1"], "icb_code": ["QAA"]},
        lsoa_imd={"lsoa11": ["E1"], "imd_quintile": ["3"]},
    )
    assert lk.practice_icb == {"A81001": "QAA"}
    assert lk.lsoa_quintile == {"E1": 3}


def test_imd_out_of_range() -> None:
    with pytest.raises(errors.LookupConflictError, match=r"imd_decile that is not .* 1 to 10"):
        Lookups.from_tables(
            practice_icb={"gp_practice_code": ["A1"], "icb_code": ["QAA"]},
            lsoa_icb={"lsoa11": ["E1"], "icb_code": ["QAA"]},
            lsoa_imd={"lsoa11": ["E1"], "imd_decile": ["11"]},
        )


def test_measure_naming_no_known_modality() -> None:
    with pytest.raises(errors.MeasureDefinitionError, match="'Plain X-ray'"):
        Lookups.from_tables(
            practice_icb={"gp_practice_code": ["A1"], "icb_code": ["QAA"]},
            lsoa_icb={"lsoa11": ["E1"], "icb_code": ["QAA"]},
            lsoa_imd={"lsoa11": ["E1"], "imd_decile": ["1"]},
            measures={
                "measure": ["X-ray"],
                "kind": ["modality"],
                "modality": ["Plain X-ray"],
                "exam_code": [None],
            },
        )


def test_lookup_icb_not_in_icb_table() -> None:
    with pytest.raises(errors.LookupConflictError, match=r"QZZ \(1 rows\)"):
        Lookups.from_tables(
            practice_icb={"gp_practice_code": ["A1"], "icb_code": ["QZZ"]},
            lsoa_icb={"lsoa11": ["E1"], "icb_code": ["QAA"]},
            lsoa_imd={"lsoa11": ["E1"], "imd_decile": ["1"]},
            icb={"icb_code": ["QAA"]},
        )


def test_lookups_folder_missing_a_table(tmp_path: Path) -> None:
    (tmp_path / "practice_icb.csv").write_text("gp_practice_code,icb_code\nA1,QAA\n")
    with pytest.raises(errors.UnreadableInputError, match="lsoa_icb"):
        Lookups.read(tmp_path)


def test_lookup_codes_are_read_as_text(tmp_path: Path) -> None:
    (tmp_path / "practice_icb.csv").write_text("gp_practice_code,icb_code\n0001,15N\n")
    (tmp_path / "lsoa_icb.csv").write_text("lsoa11,icb_code\nE1,15N\n")
    (tmp_path / "lsoa_imd.csv").write_text("lsoa11,imd_decile\nE1,2\n")
    lk = Lookups.read(tmp_path)
    assert lk.practice_icb == {"0001": "15N"}
    assert lk.icb_codes == ("15N",)


def test_every_input_error_is_a_value_error() -> None:
    for cls in (
        errors.MissingColumnError,
        errors.ColumnTypeError,
        errors.UnreadableInputError,
        errors.LookupConflictError,
        errors.MeasureDefinitionError,
        errors.PopulationError,
        errors.ZeroPopulationError,
    ):
        assert issubclass(cls, errors.InputError)
        assert issubclass(cls, ValueError)
        assert issubclass(cls, errors.DidcoreError)


def test_internal_shape_errors_are_exceptions_not_panics() -> None:
    import numpy as np

    from didcore import _didcore
    from didcore.classify import ClassifiedBatch

    agg = _didcore.Aggregator(1, 1)
    i32 = np.zeros(3, np.int32)
    bad = (np.array([0, 0, 7], np.int32), None, 0)  # index 7 outside a 1-entry dictionary
    with pytest.raises(errors.CorruptInputError, match=r"'gp_practice_code': row 3 .* entry 7"):
        agg.add_batch(
            ClassifiedBatch(
                n_rows=3,
                provider=(i32, None, 0),
                provider_ids=np.zeros(1, np.uint32),
                provider_null_id=0,
                n_providers=1,
                practice=bad,
                practice_class=np.zeros(1, np.int32),
                lsoa=(i32, None, 0),
                lsoa_icb=np.zeros(1, np.int32),
                lsoa_imd=np.zeros(1, np.int8),
                sex_ints=(np.ones(3, np.int32), None, 0),
                age_years=(np.ones(3, np.int32), None, 0),
                modality=(i32, None, 0),
                modality_ids=np.zeros(1, np.int16),
                exam_ids=np.zeros(1, np.int16),
                measure_masks=np.ones(1, np.uint64),
                n_exam=1,
            )
        )


def _csv(path: Path, rows: list[str], *, age: str = "age") -> Path:
    head = f"provider_code,gp_practice_code,lsoa11,sex,{age},test_date,modality,exam_code"
    path.write_text("\n".join([head, *rows]) + "\n")
    return path


def test_csv_ages_empty_in_the_first_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pyarrow infers a CSV column's type from its first block: a first block with no ages
    (null type) must not make a later block's ages unreadable, nor "41.0" after "40"."""
    from didcore import io

    monkeypatch.setattr(io, "CSV_BLOCK_BYTES", 1 << 10)
    row = "RM3,A81001,E01000001,1,{},2023-05-01,Plain Radiography,XCHES"
    ages = [""] * 40 + ["40"] * 30 + [" 41.0 "] * 30
    cube = didcore.aggregate(_csv(tmp_path / "a.csv", [row.format(a) for a in ages]), LOOKUPS)
    assert cube.exclusions["rows_read"] == 100
    assert cube.exclusions["no_age"] == 40
    assert cube.exclusions["included"] == 60
    assert cube.counts[:, :, 8].sum() == cube.counts.sum() > 0  # all aged 40-44


def test_csv_text_ages_and_timestamps(tmp_path: Path) -> None:
    row = "RM3,A81001,E01000001,1,{},{},Plain Radiography,XCHES"
    bad = _csv(tmp_path / "b.csv", [row.format("NK", "2023-05-01"), row.format(40, "2023-05-01")])
    with pytest.warns(errors.UnreadableValuesWarning, match=r"'age': 1 row .*'NK'"):
        assert didcore.aggregate(bad, LOOKUPS).exclusions["no_age"] == 1
    # dates given as date and time: the date is taken
    rows = [
        row.format("1980-05-02", "2023-05-01 23:59:00"),
        row.format("1980-05-01", "2023-05-01T00:00"),
    ]
    dates = _csv(tmp_path / "d.csv", rows, age="date_of_birth")
    cube = didcore.aggregate(dates, LOOKUPS)
    assert cube.exclusions["included"] == 2
    assert cube.counts[:, :, 8].sum() == cube.counts.sum() > 0  # 42 and 43: both 40-44


def test_text_dates_with_offsets_and_bad_ones_counted(tmp_path: Path) -> None:
    """ISO date-times take the date as written, UTC offset or not; anything else is a missing
    date (so a missing age), reported once with how many rows and an example."""
    dates = ["1980-05-01T23:30:00+01:00", "1980-05-01T10:00:00Z", "1980-05-01 10:00:00.5"]
    table = _table(age=None).append_column("date_of_birth", pa.array(dates[:2]))
    assert didcore.aggregate(table, LOOKUPS).exclusions["included"] == 2
    table = _table(age=None).append_column("date_of_birth", pa.array(dates[1:]))
    assert didcore.aggregate(table, LOOKUPS).exclusions["included"] == 2
    for bad in (["01/05/1980", "02/05/1980"], ["2023-02-30", "2023-02-31 10:00"]):
        table = _table(age=None).append_column("date_of_birth", pa.array(bad))
        with pytest.warns(
            errors.UnreadableValuesWarning, match=rf"'date_of_birth': 2 rows .*'{bad[0]}'"
        ):
            assert didcore.aggregate(table, LOOKUPS).exclusions["no_age"] == 2


def test_date64_with_a_time_of_day_takes_the_date() -> None:
    # 1947-02-14 01:00 UTC in milliseconds: not a whole day, as some writers leave date64
    birth = pa.array([-721_962_000_000, None], pa.date64())
    table = _table(age=None).append_column("date_of_birth", birth)
    cube = didcore.aggregate(table, LOOKUPS)
    assert cube.exclusions["no_age"] == 1
    assert cube.exclusions["included"] == 1
    assert cube.counts[:, :, 15].sum() == cube.counts.sum() > 0  # 76 on 2023-05-01: 75-79


def test_binary_columns_are_read_as_utf8_text() -> None:
    """Parquet writers that leave out the UTF-8 annotation give binary columns."""
    expected = didcore.aggregate(_table(), LOOKUPS)
    for name in ("provider_code", "lsoa11", "sex", "modality"):
        table = _table()
        i = table.schema.get_field_index(name)
        views = [pa.binary_view()] if hasattr(pa, "binary_view") else []  # pyarrow >= 16
        for t in (pa.binary(), pa.large_binary(), *views):
            assert didcore.aggregate(table.set_column(i, name, table[name].cast(t)), LOOKUPS) == (
                expected
            )
        encoded = table[name].dictionary_encode().cast(pa.dictionary(pa.int32(), pa.binary()))
        assert didcore.aggregate(table.set_column(i, name, encoded), LOOKUPS) == expected
    bad = _table(lsoa11=pa.array([b"\xffE01", b"E01000002"], pa.binary()))
    with pytest.raises(errors.ColumnTypeError, match=r"'lsoa11': 1 row holds bytes .*UTF-8"):
        didcore.aggregate(bad, LOOKUPS)


def _typed(values: list[int], t: pa.DataType) -> pa.Array:
    """``values`` as type ``t``; float16 through numpy, as pyarrow < 15 cannot cast to it."""
    if t == pa.float16():
        return pa.array(np.array(values, np.float16))
    return pa.array(values, pa.int8()).cast(t)


def test_half_float_and_decimal_ages_and_sexes() -> None:
    expected = didcore.aggregate(_table(sex=[1, 2]), LOOKUPS)
    for t in (pa.float16(), pa.decimal128(5, 0), pa.decimal128(6, 1)):
        table = _table(age=_typed([40, 50], t), sex=_typed([1, 2], t))
        assert didcore.aggregate(table, LOOKUPS) == expected
    fractional = _table(age=pa.array([44.5, 3.0]).cast(pa.decimal128(4, 1)))
    assert didcore.aggregate(fractional, LOOKUPS) == didcore.aggregate(_table(age=[44, 3]), LOOKUPS)


def test_a_column_named_twice_is_an_input_error() -> None:
    table = _table()
    with pytest.raises(errors.InputError, match="more than one column named 'age'"):
        didcore.aggregate(table.append_column("age", table["age"]), LOOKUPS)
    # a column didcore does not read may repeat
    extra = table.append_column("note", pa.array(["a", "b"])).append_column(
        "note", pa.array(["c", "d"])
    )
    assert didcore.aggregate(extra, LOOKUPS) == didcore.aggregate(table, LOOKUPS)


def test_narrow_dictionary_chunks_that_cannot_be_merged() -> None:
    """int8 dictionaries, different per chunk, beside a plain text column: merging the chunks
    would need more than 127 codes, so they are counted chunk by chunk."""
    n = 3_000
    lsoas = [f"E01{i:06d}" for i in range(n)]
    chunks = [
        pa.array(lsoas[k : k + 100]).dictionary_encode().cast(pa.dictionary(pa.int8(), pa.string()))
        for k in range(0, n, 100)
    ]
    table = pa.table(
        {
            "provider_code": ["RM3"] * n,
            "gp_practice_code": pa.array([None] * n, pa.string()),
            "lsoa11": pa.chunked_array(chunks),
            "sex": ["1"] * n,
            "age": [40] * n,
            "modality": ["Plain Radiography"] * n,
            "exam_code": ["XCHES"] * n,
        }
    )
    plain = table.set_column(2, "lsoa11", pa.array(lsoas))
    assert didcore.aggregate(table, LOOKUPS) == didcore.aggregate(plain, LOOKUPS)


def test_tab_separated_extracts(tmp_path: Path) -> None:
    import gzip

    row = "RM3,A81001,E01000001,1,40,2023-05-01,Plain Radiography,XCHES"
    expected = didcore.aggregate(_csv(tmp_path / "a.csv", [row, row]), LOOKUPS)
    text = (tmp_path / "a.csv").read_text().replace(",", "\t")
    (tmp_path / "a.tsv").write_text(text)
    with gzip.open(tmp_path / "b.tsv.gz", "wt") as f:
        f.write(text)
    for name in ("a.tsv", "b.tsv.gz"):
        assert didcore.aggregate(tmp_path / name, LOOKUPS) == expected
