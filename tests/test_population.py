"""Population.read: the SPEC section 6 file, finer grains, and clear errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from didcore import cube as cube_module
from didcore.errors import MissingColumnError, PopulationError, UnreadableInputError
from didcore.population import AGE_BANDS, IMD_QUINTILES, SEXES, Population, PopulationWarning

CODES = ("QAA", "QBB", "QCC")


def _values(seed: int = 0, n: int = len(CODES)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 5000, (n, 2, 19, 5)).astype(float)


def _long(values: np.ndarray, codes: tuple[str, ...] = CODES) -> dict[str, list]:
    """The SPEC section 6 long table of ``values`` as columns."""
    cols: dict[str, list] = {k: [] for k in ("icb_code", "sex", "age_band", "imd_quintile")}
    cols["population"] = []
    for i, code in enumerate(codes):
        for s in range(2):
            for a, band in enumerate(AGE_BANDS):
                for q in range(5):
                    cols["icb_code"].append(code)
                    cols["sex"].append(s + 1)
                    cols["age_band"].append(band)
                    cols["imd_quintile"].append(q + 1)
                    cols["population"].append(values[i, s, a, q])
    return cols


def test_axes_match_the_cube() -> None:
    assert SEXES == cube_module.SEXES
    assert AGE_BANDS == cube_module.AGE_BANDS
    assert IMD_QUINTILES == cube_module.IMD_QUINTILES


@given(st.integers(0, 2**31), st.sampled_from(["table", "csv", "parquet"]))
def test_round_trip(seed: int, how: str) -> None:
    values = _values(seed)
    pop = Population(values, CODES)
    table = pop.to_arrow()
    assert table.num_rows == 3 * 190
    if how == "table":
        source = table
        back = Population.read(source, CODES)
    else:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"population.{how}"
            if how == "csv":
                pacsv.write_csv(table, path)
            else:
                pq.write_table(table, path)
            back = Population.read(path, CODES)
    np.testing.assert_array_equal(back.values, values)
    assert back.icb_codes == CODES


def test_reads_spec_file_with_string_sex_and_tolerant_values(tmp_path: Path) -> None:
    values = _values(1)
    cols = _long(values)
    cols["sex"] = [{1: " Male", 2: "FEMALE "}[s] for s in cols["sex"]]
    cols["age_band"] = [b.replace("5-9", "05 - 09") for b in cols["age_band"]]
    cols["icb_code"] = [c.lower() for c in cols["icb_code"]]
    path = tmp_path / "pop.csv"
    pacsv.write_csv(
        pa.table(cols).rename_columns(
            ["ICB_Code", "SEX", "Age_Band", "imd_quintile", "Population"]
        ),
        path,
    )
    pop = Population.read(path, CODES)
    np.testing.assert_array_equal(pop.values, values)


@pytest.mark.parametrize("sep", [";", "|", "\t"])
def test_a_csv_separated_otherwise_is_read(tmp_path: Path, sep: str) -> None:
    """A spreadsheet's semicolon "CSV" (or bar- or tab-separated text named .csv)."""
    values = _values(2)
    path = tmp_path / "pop.csv"
    options = pacsv.WriteOptions(delimiter=sep, quoting_style="none")
    pacsv.write_csv(pa.table(_long(values)), path, options)
    np.testing.assert_array_equal(Population.read(path, CODES).values, values)


def test_parquet_dictionary_columns_and_float_codes(tmp_path: Path) -> None:
    values = _values(2)
    cols = _long(values)
    table = pa.table(
        {
            "icb_code": pa.array(cols["icb_code"]).dictionary_encode(),
            "sex": pa.array([float(s) for s in cols["sex"]]),
            "age_band": pa.array(cols["age_band"]).dictionary_encode(),
            "imd_quintile": pa.array(cols["imd_quintile"], pa.int8()),
            "population": pa.array(cols["population"], pa.float32()),
        }
    )
    pq.write_table(table, tmp_path / "pop.parquet")
    pop = Population.read(tmp_path / "pop.parquet", CODES)
    np.testing.assert_array_equal(pop.values, values)
    # a folder of Parquet files (a dataset)
    folder = tmp_path / "folder"
    folder.mkdir()
    pq.write_table(table.slice(0, 100), folder / "a.parquet")
    pq.write_table(table.slice(100), folder / "b.parquet")
    np.testing.assert_array_equal(Population.read(folder, CODES).values, values)


def test_single_years_of_age_are_aggregated() -> None:
    rng = np.random.default_rng(5)
    rows: dict[str, list] = {
        k: [] for k in ("icb_code", "sex", "age", "imd_quintile", "population")
    }
    expected = np.zeros((len(CODES), 2, 19, 5))
    for i, code in enumerate(CODES):
        for s in range(2):
            for age in [*range(0, 90), "90+"]:
                for q in range(5):
                    n = float(rng.integers(0, 100))
                    rows["icb_code"].append(code)
                    rows["sex"].append(str(s + 1))
                    rows["age"].append(str(age))
                    rows["imd_quintile"].append(q + 1)
                    rows["population"].append(n)
                    band = 18 if age == "90+" else min(int(age) // 5, 18)
                    expected[i, s, band, q] += n
    pop = Population.read(pa.table(rows), CODES)
    np.testing.assert_allclose(pop.values, expected)
    # numeric ages 90 and over all fall into 90+
    table = pa.table(
        {
            "icb_code": ["QAA"] * 3,
            "sex": [1, 1, 1],
            "age": [90, 95, 104],
            "imd_quintile": [2, 2, 2],
            "population": [1.0, 2.0, 3.0],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PopulationWarning)
        assert Population.read(table, CODES).values[0, 0, 18, 1] == 6.0


def test_finer_geography_is_summed_but_repeats_are_not() -> None:
    table = pa.table(
        {
            "icb_code": ["QAA", "QAA", "QAA"],
            "lsoa11": ["E01000001", "E01000002", "E01000003"],
            "sex": [2, 2, 2],
            "age_band": ["90+", "90+", "90+"],
            "imd_quintile": [5, 5, 5],
            "population": [10, 20, 30.5],
        }
    )
    with pytest.warns(PopulationWarning):
        pop = Population.read(table, CODES)
    assert pop.values[0, 1, 18, 4] == 60.5
    assert pop.total == 60.5
    repeated = pa.concat_tables([table, table.slice(0, 1)])
    with pytest.raises(PopulationError, match="duplicate cell"):
        Population.read(repeated, CODES)


def test_missing_icbs_get_zero_with_a_warning() -> None:
    values = _values(3, n=2)
    table = pa.table(_long(values, CODES[:2]))
    with pytest.warns(PopulationWarning, match="'QCC'"):
        pop = Population.read(table, CODES)
    np.testing.assert_array_equal(pop.values[:2], values)
    assert pop.values[2].sum() == 0


@pytest.mark.parametrize(
    ("column", "bad", "message"),
    [
        ("population", -5.0, r"1 negative row"),
        ("population", float("nan"), r"not finite"),
        ("population", "lots", r"'lots' \(1 rows\)"),
        ("population", None, r"1 null"),
        ("sex", 0, r"column 'sex' has 1 invalid value.*'0'"),
        ("sex", "persons", r"'persons'"),
        ("age_band", "0-5", r"column 'age_band'.*'0-5'"),
        ("age_band", "85+", r"'85\+'"),
        ("imd_quintile", 6, r"column 'imd_quintile'.*'6'"),
        ("imd_quintile", None, r"1 null or blank"),
        ("icb_code", "QZZ", r"'QZZ' \(1 rows\).*allowed values are the 3 ICB codes"),
        ("icb_code", "", r"1 null or blank"),
    ],
)
def test_bad_values_are_named_with_row_counts(column: str, bad: object, message: str) -> None:
    cols = _long(_values(4))
    if isinstance(bad, str):
        cols[column] = [str(v) for v in cols[column]]
    cols[column][7] = bad
    with pytest.raises(PopulationError, match=message):
        Population.read(pa.table(cols), CODES)


def test_unknown_icbs_are_counted() -> None:
    cols = _long(_values(5))
    cols["icb_code"][:10] = ["QXX"] * 10
    cols["icb_code"][10:12] = ["QYY"] * 2
    with pytest.raises(
        PopulationError,
        match=r"2 invalid value\(s\) in 12 row\(s\): 'QXX' \(10 rows\), 'QYY' \(2 rows\)",
    ):
        Population.read(pa.table(cols), CODES)


def test_duplicate_cells_at_band_grain_are_an_error() -> None:
    table = pa.table(_long(_values(6)))
    doubled = pa.concat_tables([table, table.slice(5, 2)])
    with pytest.raises(
        PopulationError,
        match=r"2 duplicate cell\(s\) in 4 rows.*QAA male age band 5-9 IMD quintile 1 \(2 rows\)",
    ):
        Population.read(doubled, CODES)


def test_missing_columns_and_unreadable_files(tmp_path: Path) -> None:
    table = pa.table(_long(_values(7))).drop_columns(["age_band", "imd_quintile"])
    with pytest.raises(MissingColumnError, match=r"imd_quintile, age_band \(or age\)"):
        Population.read(table, CODES)
    with pytest.raises(UnreadableInputError, match="does not exist"):
        Population.read(tmp_path / "nope.csv", CODES)
    (tmp_path / "pop.xlsx").write_bytes(b"PK\x03\x04 not a population")
    with pytest.raises(UnreadableInputError, match="neither CSV"):
        Population.read(tmp_path / "pop.xlsx", CODES)
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(UnreadableInputError, match="cannot read"):
        Population.read(tmp_path / "bad.parquet", CODES)
    with pytest.raises(UnreadableInputError, match="got int"):  # an InputError (issue 12)
        Population.read(42, CODES)


def test_constructor_and_alignment() -> None:
    values = _values(8)
    pop = Population(values, CODES)
    assert not pop.values.flags.writeable
    re = pop.aligned(("QCC", "QAA"))
    np.testing.assert_array_equal(re.values, values[[2, 0]])
    assert pop.aligned(CODES) is pop
    with pytest.raises(PopulationError, match="'QDD'"):
        pop.aligned(("QAA", "QDD"))
    with pytest.raises(ValueError, match="shape"):
        Population(values[:, :, :18], CODES)
    with pytest.raises(ValueError, match="ICB codes"):
        Population(values, CODES[:2])
    bad = values.copy()
    bad[0, 0, 0, 0] = -1
    with pytest.raises(PopulationError):
        Population(bad, CODES)


def test_reads_the_shipped_ons_population_shape() -> None:
    """The shipped ONS file has no IMD column: add one (all quintile 3) and read it."""
    from didcore import refdata

    ons = refdata.icb_population()
    codes = tuple(sorted(set(ons.column("icb_code").to_pylist())))
    table = ons.append_column("imd_quintile", pa.array([3] * ons.num_rows))
    pop = Population.read(table, codes)
    assert len(codes) == 42
    assert pop.total == 57_106_398  # ONS mid-2022 England
    assert pop.values[:, :, :, [0, 1, 3, 4]].sum() == 0
