"""Financial years: per-year cubes of one read equal the reference's, and add up to the whole."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

import didcore
from didcore.cube import EXCLUSION_REASONS
from didcore.errors import InputError, MissingColumnError
from didcore.reference.cube import aggregate_reference, aggregate_reference_by_year
from didcore.years import (
    YearCubes,
    financial_year,
    financial_year_starts,
    previous_year,
    single_year_of,
    year_label,
    year_starts_of,
)
from test_cube import LOOKUPS, _big_table, assert_equal_to_reference, extracts

# Dates over five financial years, with the year boundaries (31 March / 1 April) often drawn.
_day_st = st.one_of(
    st.dates(dt.date(2020, 12, 1), dt.date(2025, 5, 31)),
    st.sampled_from(
        [dt.date(y, m, d) for y in (2021, 2022, 2023, 2024) for m, d in ((3, 31), (4, 1))]
    ),
)
# ISO text as extracts hold it (times, offsets, padding) and text that is not a date
_junk = ["", "  ", "01/04/2023", "2023-02-30", "NK", "2023-4-1", "20230401", "2023-04-01X"]


def _text_date(day: dt.date, form: int) -> str:
    iso = day.isoformat()
    return [iso, f" {iso} ", f"{iso}T10:30", f"{iso} 23:59:59", f"{iso}T23:30+01:00"][form]


_text_st = st.one_of(
    st.none(),
    st.sampled_from(_junk),
    st.builds(_text_date, _day_st, st.integers(0, 4)),
)
_date_types = ["date32", "date64", "timestamp", "text", "dictionary"]


@st.composite
def year_extracts(draw: Any) -> tuple[list[pa.RecordBatch], pa.Schema, bool]:
    """test_cube's generated extracts, their test dates spread over several financial years
    (interleaved within batches), null and unreadable, in every type a test date may have."""
    batches, schema, use_age = draw(extracts())
    kind = draw(st.sampled_from(_date_types))
    text = kind in ("text", "dictionary")
    if kind == "date32":
        t: pa.DataType = pa.date32()
    elif kind == "date64":
        t = pa.date64()
    elif kind == "timestamp":
        t = pa.timestamp("s")
    else:
        t = pa.string()
    out = []
    for batch in batches:
        n = batch.num_rows
        if text:
            values: list[Any] = draw(st.lists(_text_st, min_size=n, max_size=n))
        else:
            values = draw(st.lists(st.one_of(st.none(), _day_st), min_size=n, max_size=n))
            if kind == "timestamp":
                values = [
                    None if v is None else dt.datetime(v.year, v.month, v.day, 13) for v in values
                ]
        arr = pa.array(values, t)
        if kind == "dictionary":
            arr = arr.dictionary_encode()
        i = batch.schema.get_field_index("test_date")
        # (RecordBatch.set_column is pyarrow >= 15; 14 is a supported floor)
        columns = [arr if j == i else c for j, c in enumerate(batch.columns)]
        schema = batch.schema.set(i, pa.field("test_date", arr.type))
        out.append(pa.RecordBatch.from_arrays(columns, schema=schema))
    new_schema = (
        out[0].schema
        if out
        else schema.set(
            schema.get_field_index("test_date"),
            pa.field("test_date", pa.dictionary(pa.int32(), t) if kind == "dictionary" else t),
        )
    )
    return out, new_schema, use_age


@given(year_extracts())
def test_year_cubes_equal_the_reference_and_add_up(
    data: tuple[list[pa.RecordBatch], pa.Schema, bool],
) -> None:
    batches, schema, use_age = data
    years = didcore.aggregate(
        pa.RecordBatchReader.from_batches(schema, batches), LOOKUPS, by_year=True
    )
    assert isinstance(years, YearCubes)
    rows = [r for b in batches for r in b.to_pylist()]
    ref_years, ref_undated = aggregate_reference_by_year(rows, LOOKUPS, use_age=use_age)
    assert list(years) == list(ref_years)
    for label, cube in years.items():
        assert_equal_to_reference(cube, ref_years[label])
    assert_equal_to_reference(years.undated, ref_undated)
    whole = didcore.aggregate(pa.RecordBatchReader.from_batches(schema, batches), LOOKUPS)
    assert years.total == whole
    assert np.array_equal(years.total.counts, whole.counts)
    assert_equal_to_reference(whole, aggregate_reference(rows, LOOKUPS, use_age=use_age))
    # conservation per year and in total
    assert sum(years.rows.values()) + years.undated.rows_read == whole.rows_read == len(rows)
    for cube in [*years.values(), years.undated]:
        ex = cube.exclusions
        assert sum(ex[r] for r in EXCLUSION_REASONS) + ex["included"] == ex["rows_read"]
    ex = years.exclusions
    assert list(ex)[:2] == ["rows_read", "no_test_date"]
    assert ex["no_test_date"] == years.undated.rows_read


# ------------------------------------------------------------------------------ labels


@pytest.mark.parametrize(
    ("day", "label"),
    [
        (dt.date(2023, 4, 1), "2023/24"),
        (dt.date(2024, 3, 31), "2023/24"),
        (dt.date(2024, 4, 1), "2024/25"),
        (dt.datetime(2000, 1, 1, 5), "1999/00"),
        ("2024-02-29", "2023/24"),
        (np.datetime64("2023-03-31"), "2022/23"),
    ],
)
def test_financial_year_starts_on_1_april(day: Any, label: str) -> None:
    assert financial_year(day) == label


def test_financial_year_starts_vectorised() -> None:
    days = np.array(["1969-03-31", "1969-04-01", "2024-03-31", "2024-04-01"], "datetime64[D]")
    assert financial_year_starts(days.astype(np.int64)).tolist() == [1968, 1969, 2023, 2024]


@pytest.mark.parametrize(
    "value", ["2023/24", "2023-24", " 2023 / 24 ", "2023", 2023, np.int64(2023)]
)
def test_year_labels_accepted(value: Any) -> None:
    assert year_label(value) == "2023/24"


@pytest.mark.parametrize(
    "value", ["2023/25", "23/24", "2023/2024", "FY2023", "", 2023.0, True, None, 23, "2023/4"]
)
def test_other_year_labels_refused(value: Any) -> None:
    with pytest.raises(InputError):
        year_label(value)


def test_previous_year_and_century() -> None:
    assert previous_year("2023/24") == "2022/23"
    assert year_label("1999/00") == "1999/00"
    assert previous_year(2000) == "1999/00"


# ------------------------------------------------------------------------------ YearCubes


def _dated(n: int, days: list[dt.date | None]) -> pa.Table:
    table = _big_table(n, seed=11)
    values = [days[i % len(days)] for i in range(n)]
    i = table.schema.get_field_index("test_date")
    return table.set_column(i, "test_date", pa.array(values, pa.date32()))


def test_year_cubes_mapping_latest_and_minor_years() -> None:
    days = [dt.date(2022, 6, 1)] * 60 + [dt.date(2023, 6, 1)] * 39 + [None]
    table = _dated(10_000, days)
    # one stray date, a year later than the rest: counted, never "latest"
    stray = table.slice(0, 1).set_column(
        table.schema.get_field_index("test_date"), "test_date", pa.array([dt.date(2026, 1, 1)])
    )
    years = didcore.aggregate(pa.concat_tables([table, stray]), LOOKUPS, by_year=True)
    assert list(years) == ["2022/23", "2023/24", "2025/26"]
    assert years.rows == {"2022/23": 6_000, "2023/24": 3_900, "2025/26": 1}
    assert years.minor == ("2025/26",)
    assert years.latest == "2023/24"
    assert years["2023-24"] is years["2023/24"] is years[2023]
    assert "2021/22" not in years and "junk" not in years
    assert years.undated.rows_read == 100
    assert years.exclusions["rows_read"] == 10_001
    assert "too few to publish by default" in years.describe()
    assert repr(years).startswith("<didcore.YearCubes 3 years (2022/23: 6,000")


def test_one_year_batches_are_sent_whole_and_equal_a_split_read() -> None:
    table = _dated(4_000, [dt.date(2023, 5, 1), dt.date(2024, 2, 1)])
    years = didcore.aggregate(table, LOOKUPS, by_year=True)
    assert list(years) == ["2023/24"]
    assert years["2023/24"] == didcore.aggregate(table, LOOKUPS)
    assert years.undated.rows_read == 0
    assert years.exclusions["no_test_date"] == 0


def test_age_path_reads_test_date_and_by_year_false_is_unchanged() -> None:
    table = _dated(3_000, [dt.date(2022, 5, 1), dt.date(2023, 5, 1), None])
    cube = didcore.aggregate(table, LOOKUPS)
    assert isinstance(cube, didcore.Cube)
    assert cube == aggregate_reference_cube(table)
    years = didcore.aggregate(table, LOOKUPS, by_year=True)
    assert years.total == cube
    assert years.rows == {"2022/23": 1_000, "2023/24": 1_000}


def aggregate_reference_cube(table: pa.Table) -> didcore.Cube:
    """The Rust cube of the same rows read as one year (for equality with a plain read)."""
    return didcore.aggregate(table.drop_columns(["test_date"]), LOOKUPS)


def test_no_test_date_column_needs_a_declared_year() -> None:
    table = _big_table(500).drop_columns(["test_date"])
    with pytest.raises(MissingColumnError, match=r"no column 'test_date'.*year='2023/24'"):
        didcore.aggregate(table, LOOKUPS, by_year=True)
    years = didcore.aggregate(table, LOOKUPS, year="2023-24")
    assert list(years) == ["2023/24"] and years.declared
    assert years["2023/24"] == didcore.aggregate(table, LOOKUPS)
    assert years.undated.rows_read == 0


def test_declared_year_must_agree_with_the_test_dates() -> None:
    table = _dated(500, [dt.date(2022, 5, 1)])
    with pytest.raises(InputError, match=r"give the financial year\(s\) 2022/23, not 2023/24"):
        didcore.aggregate(table, LOOKUPS, year="2023/24")
    assert list(didcore.aggregate(table, LOOKUPS, year=2022)) == ["2022/23"]


def test_unreadable_text_dates_are_undated_and_noted() -> None:
    table = _big_table(300, seed=4)
    text = ["2023-06-01", "01/06/2023", None] * 100
    table = table.set_column(
        table.schema.get_field_index("test_date"), "test_date", pa.array(text, pa.string())
    )
    with pytest.warns(didcore.errors.UnreadableValuesWarning, match="no_test_date"):
        years = didcore.aggregate(table, LOOKUPS, by_year=True)
    assert years.rows == {"2023/24": 100}
    assert years.undated.rows_read == 200


def test_no_dated_rows_has_no_latest_year() -> None:
    table = _dated(100, [None])
    years = didcore.aggregate(table, LOOKUPS, by_year=True)
    assert len(years) == 0
    with pytest.raises(InputError, match="no row has a usable test date"):
        _ = years.latest


# ------------------------------------------------------------------------------ population


def _population_table(year: list[Any] | None = None) -> pa.Table:
    cols: dict[str, Any] = {
        "icb_code": ["QAA", "QBB", "QCC"],
        "sex": [1, 2, 1],
        "age_band": ["0-4", "5-9", "90+"],
        "imd_quintile": [1, 2, 3],
        "population": [10.0, 20.0, 30.0],
    }
    if year is not None:
        cols["year"] = year
    return pa.table(cols)


@pytest.mark.parametrize("value", ["2023/24", "2023-24", 2023, " 2023/24 "])
def test_population_year_from_its_column(value: Any) -> None:
    pop = didcore.Population.read(_population_table([value] * 3), ["QAA", "QBB", "QCC"])
    assert pop.year == "2023/24"
    assert pop.aligned(["QCC", "QBB", "QAA"]).year == "2023/24"


def test_population_year_declared_or_unknown() -> None:
    codes = ["QAA", "QBB", "QCC"]
    assert didcore.Population.read(_population_table(), codes).year is None
    assert didcore.Population.read(_population_table(), codes, year="2022-23").year == "2022/23"
    same = didcore.Population.read(_population_table(["2023/24"] * 3), codes, year=2023)
    assert same.year == "2023/24"


@pytest.mark.parametrize(
    ("values", "declared", "message"),
    [
        (["2022/23", "2023/24", "2023/24"], None, r"several years \('2022/23', '2023/24'\)"),
        (["FY23"] * 3, None, r"'FY23' is not a financial year"),
        (["2023/24"] * 3, "2022/23", r"says 2023/24 but the population was declared as 2022/23"),
        (None, "next year", r"population year: 'next year' is not a financial year"),
    ],
)
def test_population_year_errors(values: Any, declared: Any, message: str) -> None:
    with pytest.raises(didcore.errors.PopulationError, match=message):
        didcore.Population.read(_population_table(values), ["QAA", "QBB", "QCC"], year=declared)


# ------------------------------------------------------------------------------ command line


# test_cube's generated rows are dirty on purpose: far above the exclusions guard's 5%
# _big_table is dirty on purpose: half its sex values are 9 or blank (sex-coding), and its
# exclusions and records in no measure are above the guards' 5%
ALLOW = ["--allow", "exclusions", "--allow", "no-measure", "--allow", "sex-coding"]


def _two_year_extract(path: Any, n: int = 6_000) -> Any:
    import pyarrow.parquet as pq

    days = [dt.date(2022, 7, 1)] * 2 + [dt.date(2023, 7, 1)] * 3 + [None]
    pq.write_table(_dated(n, days), path, row_group_size=n // 3 + 7)
    return path


def test_cube_command_writes_a_folder_per_year(tmp_path: Any, lookups_dir: Any) -> None:
    import csv

    from didcore.cli import main

    extract = _two_year_extract(tmp_path / "e.parquet")
    out = tmp_path / "out"
    assert (
        main(["cube", str(extract), "--lookups", str(lookups_dir), *ALLOW, "--out", str(out), "-q"])
        == 0
    )
    years = didcore.aggregate(extract, didcore.Lookups.read(lookups_dir), by_year=True)
    for label in ("2022/23", "2023/24"):
        folder = out / label.replace("/", "-")
        names = {p.name for p in folder.iterdir()}
        assert names == {
            "cube.csv",
            "exclusions.csv",
            "icb_source.csv",
            "provider_quality.csv",
            "icb_quality.csv",
        }
        with (folder / "cube.csv").open() as f:
            total = sum(int(r["count"]) for r in csv.DictReader(f))
        assert total == int(years[label].counts.sum())
        with (folder / "exclusions.csv").open() as f:
            ex = {r["reason"]: int(r["count"]) for r in csv.DictReader(f)}
        assert ex == years[label].exclusions
    with (out / "exclusions.csv").open() as f:
        whole = {r["reason"]: int(r["count"]) for r in csv.DictReader(f)}
    assert list(whole)[:3] == ["rows_read", "no_test_date", "no_icb"]
    assert whole["rows_read"] == 6_000 and whole["no_test_date"] == 1_000
    with (out / "years.csv").open() as f:
        rows = {r["year"]: r for r in csv.DictReader(f)}
    assert [int(rows[k]["rows_read"]) for k in ("2022/23", "2023/24", "undated")] == [
        2_000,
        3_000,
        1_000,
    ]
    assert not (out / "cube.csv").exists()  # no all-years cube to be mistaken for one year


def test_cube_command_summary_names_the_years(
    tmp_path: Any, lookups_dir: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from didcore.cli import main

    extract = _two_year_extract(tmp_path / "e.parquet", 600)
    assert (
        main(
            [
                "cube",
                str(extract),
                "--lookups",
                str(lookups_dir),
                *ALLOW,
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 0
    )
    said = capsys.readouterr().out
    assert "financial years 2022/23 (200 rows), 2023/24 (300 rows); 100 rows with no usable" in said


def test_cube_command_without_test_dates(tmp_path: Any, lookups_dir: Any) -> None:
    import pyarrow.parquet as pq

    from didcore.cli import main

    extract = tmp_path / "e.parquet"
    pq.write_table(_big_table(300).drop_columns(["test_date"]), extract)
    flat, declared = tmp_path / "flat", tmp_path / "declared"
    args = [str(extract), "--lookups", str(lookups_dir), *ALLOW, "-q"]
    assert main(["cube", *args, "--out", str(flat)]) == 0
    assert (flat / "cube.csv").is_file()
    assert main(["cube", *args, "--out", str(declared), "--year", "2023-24"]) == 0
    assert (declared / "2023-24" / "cube.csv").is_file()
    assert main(["cube", *args, "--out", str(tmp_path / "bad"), "--year", "24/25"]) == 2


# ------------------------------------------------------------------------------ report


@pytest.fixture(scope="module")
def two_year_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """write_small_inputs' 2023/24 extract with 40% of its rows moved a year back, and five
    stray rows dated 2024/25 (too few to be published by default)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from _report_fixtures import write_small_inputs

    root = tmp_path_factory.mktemp("two-years")
    paths: dict[str, Any] = write_small_inputs(root, rows=8_000, seed=3)
    table = pq.read_table(paths["extract"])
    days = table["test_date"].combine_chunks()
    earlier = np.random.default_rng(5).random(len(days)) < 0.4
    # the same day a year earlier (2024 is a leap year: from 29 February, 366 days back)
    back = np.where(
        days.cast(pa.int32()).to_numpy()
        < (dt.date(2024, 2, 29).toordinal() - dt.date(1970, 1, 1).toordinal()),
        365,
        366,
    )
    shifted = pc.if_else(
        pa.array(earlier),
        pc.subtract(days.cast(pa.int32()), pa.array(back.astype(np.int32))).cast(pa.date32()),
        days,
    )
    i = table.schema.get_field_index("test_date")
    table = table.set_column(i, "test_date", shifted)
    stray = table.slice(0, 5).set_column(i, "test_date", pa.array([dt.date(2024, 5, 1)] * 5))
    both = root / "both.parquet"
    pq.write_table(pa.concat_tables([table, stray]), both, row_group_size=3_000)
    paths["extract"] = both
    return paths


def test_two_year_report_publishes_the_latest_year_with_its_comparison(
    two_year_inputs: dict[str, Any], tmp_path: Any
) -> None:
    import csv
    import json

    from didcore.report.pipeline import run_report
    from didcore.standardise import standardise

    p = two_year_inputs
    out = tmp_path / "report"
    result = run_report(
        [p["extract"]],
        lookups=p["lookups"],
        population=p["population"],
        out_dir=out,
        formats=("csv", "html"),
        measures=[],
        quiet=True,
        population_year="2023/24",
        allow={"exclusions"},  # the small inputs' planted defects are above the guard's 5%
    )
    lk = didcore.Lookups.read(p["lookups"])
    years = didcore.aggregate(p["extract"], lk, by_year=True)
    assert list(years) == ["2022/23", "2023/24", "2024/25"] and years.minor == ("2024/25",)
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["period"] == "2023/24"
    assert prov["title"].endswith("Standardised ICB rates 2023/24")
    assert prov["years"]["published"] == "2023/24"
    assert prov["inputs"]["previous"]["period"] == "2022/23"
    assert "with the 2023/24 population" in prov["inputs"]["previous"]["basis"]
    pop = didcore.Population.read(p["population"], years["2023/24"].icb_codes)
    now = {r["measure"]: r for r in standardise(years["2023/24"], pop).national.to_pylist()}
    before = {r["measure"]: r for r in standardise(years["2022/23"], pop).national.to_pylist()}
    with (out / "national_rates.csv").open() as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        m = r["measure"]
        assert int(r["observed"]) == now[m]["observed"]
        assert float(r["previous_observed"]) == before[m]["observed"]
        assert float(r["rate_per_10000"]) == pytest.approx(now[m]["rate_per_10000"])
        assert float(r["previous_rate_per_10000"]) == pytest.approx(before[m]["rate_per_10000"])
    with (out / "exclusions.csv").open() as f:
        ex = {r["reason"]: int(r["count"]) for r in csv.DictReader(f)}
    assert ex["rows_read"] == years["2023/24"].rows_read
    html = (out / "report.html").read_text()
    assert "2022/23 to 2023/24" not in html
    assert "Year-on-year: the 2022/23 figures are from the 2022/23 records" in html
    assert "published 2023/24" in result.summary
    assert "2024/25 (5 rows, too few to publish by default)" in result.summary


def test_report_year_option_and_a_missing_year(
    two_year_inputs: dict[str, Any], tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from didcore.cli import main

    p = two_year_inputs
    common = [str(p["extract"]), "--lookups", str(p["lookups"]), "--population"]
    common += [str(p["population"]), "--formats", "csv", "-q", "--allow", "exclusions"]
    common += ["--population-year", "2023/24"]
    out = tmp_path / "y2223"
    # 2022/23 with the 2023/24 population: said and allowed explicitly
    year = ["--year", "2022-23", "--allow", "population-year"]
    assert main(["report", *common, "--out", str(out), *year]) == 0
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["period"] == "2022/23" and "previous" not in prov["inputs"]
    assert main(["report", *common, "--out", str(tmp_path / "x"), "--year", "2021/22"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("didcore: error: ")
    assert "2022/23, 2023/24, 2024/25, not 2021/22" in err[-1]
    # a stray year can still be published when asked for by name
    stray = ["--year", "2024/25", "--allow", "population-year", "--allow", "population-strata"]
    assert main(["report", *common, "--out", str(tmp_path / "z"), *stray]) == 0


def test_report_population_year_conflict_is_refused(
    two_year_inputs: dict[str, Any], tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow.csv as pacsv

    from didcore.cli import main

    p = two_year_inputs
    table = pacsv.read_csv(p["population"])
    pop = tmp_path / "pop.csv"
    if "year" in table.column_names:
        table = table.drop_columns(["year"])
    pacsv.write_csv(table.append_column("year", pa.array(["2023/24"] * len(table))), pop)
    args = [str(p["extract"]), "--lookups", str(p["lookups"]), "--population", str(pop)]
    args += ["--formats", "csv", "-q", "--out", str(tmp_path / "o"), "--allow", "exclusions"]
    assert main(["report", *args, "--population-year", "2022/23"]) == 2
    assert "says 2023/24 but the population was declared as 2022/23" in capsys.readouterr().err


def test_synth_years_gives_a_two_year_extract_whose_latest_year_is_published(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import csv

    from didcore.cli import main

    src = tmp_path / "in"
    assert main(["synth", "--rows", "30000", "--years", "2", "--seed", "4", "--out", str(src)]) == 0
    assert "2 financial years ending 2023/24" in capsys.readouterr().out
    with (src / "population.csv").open() as f:
        assert {r["year"] for r in csv.DictReader(f)} == {"2023/24"}
    lk = didcore.Lookups.read(src / "lookups")
    years = didcore.aggregate(src / "extract", lk, by_year=True)
    assert list(years) == ["2022/23", "2023/24"] and years.undated.rows_read == 0
    assert abs(years.rows["2022/23"] - 15_000) < 600  # spread evenly at random
    out = tmp_path / "out"
    args = [str(src / "extract"), "--lookups", str(src / "lookups"), "--formats", "csv"]
    args += ["--population", str(src / "population.csv"), "--out", str(out)]
    assert main(["report", *args]) == 0
    said = capsys.readouterr().out
    assert "published 2023/24" in said and "compared with 2022/23 from the same extract" in said
    with (out / "national_rates.csv").open() as f:
        rows = {r["measure"]: r for r in csv.DictReader(f)}
    # one year's rows over one year's population: the rates are a year's, not two years'
    x_ray = rows["X-ray"]
    assert 0.9 < float(x_ray["rate_per_10000"]) / float(x_ray["previous_rate_per_10000"]) < 1.1
    assert int(x_ray["observed"]) < 0.6 * years.total.exclusions["included"]


@pytest.mark.parametrize(
    ("dates", "want"),
    [
        ([dt.date(2023, 4, 1), dt.date(2024, 3, 31), dt.date(2023, 9, 9)], 2023),
        ([dt.date(2023, 3, 31), dt.date(2023, 4, 1)], None),  # two years
        ([dt.date(2023, 5, 1), None], None),  # a null: undated rows
        ([dt.date(2011, 5, 1), dt.date(2011, 6, 1)], None),  # before USABLE_FROM
        ([dt.date.today() + dt.timedelta(days=1)], None),  # after the day of the run
        ([], None),
    ],
)
def test_single_year_of_is_the_year_only_when_every_row_is_usable_in_it(
    dates: list[dt.date | None], want: int | None
) -> None:
    batch = pa.record_batch([pa.array(dates, pa.date32())], names=["test_date"])
    assert single_year_of(batch, "test_date") == want
    if want is not None:  # what the row-by-row reading gives
        starts, n_bad, _ = year_starts_of(batch, "test_date")
        assert n_bad == 0 and set(starts.tolist()) == {want}


def test_single_year_of_leaves_other_date_types_to_the_row_by_row_reading() -> None:
    batch = pa.record_batch([pa.array(["2023-05-01", "2023-06-01"])], names=["test_date"])
    assert single_year_of(batch, "test_date") is None
