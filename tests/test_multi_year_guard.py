"""The multiple-years guard: a cube of several financial years is refused by standardise and
rates_ratios (its tests over one year's population would multiply every rate), unless allowed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings

import didcore
from didcore.errors import GuardError, InputError
from didcore.guards import GUARDS, check_single_year
from didcore.ratios import rates_ratios
from didcore.standardise import standardise
from didcore.years import UNDATED, year_rows_of, year_starts_of
from test_cube import LOOKUPS
from test_years import _dated, year_extracts

TWO_YEARS = [dt.date(2022, 7, 1)] * 2 + [dt.date(2023, 7, 1)] * 3 + [None]


def _population(cube: didcore.Cube) -> np.ndarray:
    """A population of 1,000 people in every stratum of every ICB (cube order)."""
    return np.full((len(cube.icb_codes), 2, 19, 5), 1_000.0)


@pytest.fixture(scope="module")
def two_year_cube() -> didcore.Cube:
    return didcore.aggregate(_dated(6_000, TWO_YEARS), LOOKUPS)


def test_guard_is_named() -> None:
    assert "multiple-years" in GUARDS
    assert didcore.guards.check_allow({"multiple-years"}) == {"multiple-years"}


def test_aggregate_counts_rows_per_year(two_year_cube: didcore.Cube) -> None:
    assert two_year_cube.year_rows == {"2022/23": 2_000, "2023/24": 3_000}
    assert "years 2022/23: 2,000, 2023/24: 3,000" in repr(two_year_cube)


@pytest.mark.parametrize("fn", [standardise, rates_ratios])
def test_two_year_cube_is_refused_naming_both_years(two_year_cube: didcore.Cube, fn: Any) -> None:
    with pytest.raises(GuardError) as info:
        fn(two_year_cube, _population(two_year_cube))
    msg = str(info.value)
    assert info.value.guard == "multiple-years"
    assert "\n" not in msg
    assert "2022/23 (2,000 rows)" in msg and "2023/24 (3,000 rows)" in msg
    assert "multiplies every rate" in msg
    assert "by_year=True" in msg and "years['2023/24']" in msg
    assert "allow={'multiple-years'}" in msg


@pytest.mark.parametrize("fn", [standardise, rates_ratios])
def test_two_year_cube_runs_when_allowed(two_year_cube: didcore.Cube, fn: Any) -> None:
    # pooled on purpose: the population here stands for both years
    fn(two_year_cube, _population(two_year_cube), allow={"multiple-years"})


def test_an_unknown_allow_name_is_refused(two_year_cube: didcore.Cube) -> None:
    with pytest.raises(InputError, match="no such guard"):
        standardise(two_year_cube, _population(two_year_cube), allow={"multiple-year"})


def test_one_year_and_stray_dates_pass() -> None:
    one = didcore.aggregate(_dated(3_000, [dt.date(2023, 5, 1), None]), LOOKUPS)
    assert one.year_rows == {"2023/24": 1_500}
    assert "years" not in repr(one)
    standardise(one, _population(one))
    # 1 row in 2021/22 beside 1,999 in 2023/24: under 1% of the largest year, stray
    days = [dt.date(2023, 5, 1)] * 1_999 + [dt.date(2021, 5, 1)]
    stray = didcore.aggregate(_dated(2_000, days), LOOKUPS)
    assert stray.year_rows == {"2021/22": 1, "2023/24": 1_999}
    check_single_year(stray)
    rates_ratios(stray, _population(stray))
    # at 1% of the largest year it is a year of its own
    days = [dt.date(2023, 5, 1)] * 100 + [dt.date(2021, 5, 1)]
    with pytest.raises(GuardError, match="2021/22 \\(20 rows\\)"):
        check_single_year(didcore.aggregate(_dated(2_020, days), LOOKUPS))


def test_year_cubes_each_pass_and_their_total_is_refused() -> None:
    years = didcore.aggregate(_dated(6_000, TWO_YEARS), LOOKUPS, by_year=True)
    for label, cube in years.items():
        assert cube.year_rows == {label: cube.rows_read}
        standardise(cube, _population(cube))
    assert not years.undated.year_rows
    assert years.total.year_rows == {"2022/23": 2_000, "2023/24": 3_000}
    with pytest.raises(GuardError, match="multiple-years"):
        standardise(years.total, _population(years.total))


def test_declared_year_cube_has_its_year() -> None:
    table = _dated(1_000, [dt.date(2023, 5, 1)]).drop_columns(["test_date"])
    assert didcore.aggregate(table, LOOKUPS).year_rows is None
    years = didcore.aggregate(table, LOOKUPS, year="2023/24")
    assert years["2023/24"].year_rows == {"2023/24": 1_000}


def test_cube_from_counts_and_plain_objects_pass(two_year_cube: didcore.Cube) -> None:
    cube = didcore.Cube.from_counts(
        two_year_cube.to_arrow(),
        measures=two_year_cube.measures,
        measure_kinds=two_year_cube.measure_kinds,
    )
    assert cube.year_rows is None
    standardise(cube, _population(cube))

    class Plain:  # a CubeLike with plain attributes and no year_rows
        counts = two_year_cube.counts
        icb_codes = two_year_cube.icb_codes
        measures = two_year_cube.measures
        measure_kinds = two_year_cube.measure_kinds

    standardise(Plain(), _population(two_year_cube))
    rates_ratios(Plain(), _population(two_year_cube))


def test_adding_cubes_merges_year_rows(two_year_cube: didcore.Cube) -> None:
    one = didcore.aggregate(_dated(1_000, [dt.date(2024, 5, 1)]), LOOKUPS)
    assert (two_year_cube + one).year_rows == {"2022/23": 2_000, "2023/24": 3_000, "2024/25": 1_000}
    assert (two_year_cube + two_year_cube).year_rows == {"2022/23": 4_000, "2023/24": 6_000}
    counted = didcore.Cube.from_counts(
        one.to_arrow(),
        icb_codes=one.icb_codes,
        measures=one.measures,
        measure_kinds=one.measure_kinds,
    )
    assert (counted + one).year_rows == {"2024/25": 1_000}  # unknown + known = known
    assert (counted + counted).year_rows is None
    # not part of equality: the same counts are the same cube
    assert one == didcore.Cube(
        one.counts,
        one.icb_codes,
        one.measures,
        one.measure_kinds,
        one.provider_codes,
        one.provider_counts,
        one.icb_counts,
        one.provider_icb_counts,
        one.has_records,
    )


def test_year_rows_labels_are_normalised() -> None:
    cube = didcore.Cube(
        np.zeros((1, 2, 19, 5, 1), np.int64),
        ("A",),
        ("m",),
        ("modality",),
        year_rows={"2024-25": 3, 2023: 5},  # type: ignore[dict-item]
    )
    assert cube.year_rows == {"2023/24": 5, "2024/25": 3}


def test_year_rows_of_fast_path_matches_the_row_by_row_count() -> None:
    today = dt.date.today()
    cases = [
        [dt.date(2023, 4, 1), dt.date(2024, 3, 31), None],  # one year, both edges
        [dt.date(2023, 3, 31), dt.date(2023, 4, 1)],  # straddles 1 April
        [dt.date(2011, 6, 1), dt.date(2013, 6, 1)],  # before the DID began: undated
        [dt.date(2023, 6, 1), today + dt.timedelta(days=400)],  # in the future: undated
        [None, None],
        # several years, both ends unusable, a boundary day in each
        [
            *(dt.date(2005, 1, 1), dt.date(2012, 4, 1), dt.date(2014, 3, 31), dt.date(2014, 4, 1)),
            *(dt.date(2016, 7, 9), None, today, today + dt.timedelta(days=1)),
        ],
    ]
    for days in cases:
        arr = pa.array(days, pa.date32())
        batch = pa.record_batch([arr], names=["test_date"])
        starts, _, _ = year_starts_of(batch, "test_date")
        keys, n = np.unique(starts[starts != UNDATED], return_counts=True)
        expected = dict(zip(keys.tolist(), n.tolist(), strict=True))
        assert year_rows_of(batch, "test_date") == expected
        assert year_rows_of(batch, "test_date", arr) == expected  # dates read already
        # a slice (an offset into the buffers), and text, read the same way
        iso = pa.array([None, *(d and d.isoformat() for d in days)], pa.string())
        assert year_rows_of(pa.record_batch([iso], ["test_date"]).slice(1), "test_date") == expected


def test_unreadable_test_dates_count_in_no_year(monkeypatch: pytest.MonkeyPatch) -> None:
    table = _dated(600, [dt.date(2023, 5, 1)])
    i = table.schema.get_field_index("test_date")
    junk = didcore.aggregate(table.set_column(i, "test_date", pa.array(["NK"] * 600)), LOOKUPS)
    assert junk.year_rows == {}  # known: no row has a usable test date
    check_single_year(junk)

    # dates the tally cannot read (the counting, with ages from the age column, does not
    # need them): years unknown, the count unchanged
    def unreadable(batch: Any, name: str, dates: Any = None) -> dict[int, int]:
        raise didcore.errors.ColumnTypeError(f"column {name!r}: not dates")

    monkeypatch.setattr(didcore.years, "year_rows_of", unreadable)
    cube = didcore.aggregate(table, LOOKUPS)
    assert cube.year_rows is None
    assert cube == years_free(table)


def years_free(table: pa.Table) -> didcore.Cube:
    return didcore.aggregate(table.drop_columns(["test_date"]), LOOKUPS)


@settings(max_examples=60, deadline=None)
@given(year_extracts())
def test_year_rows_equal_the_by_year_rows(
    data: tuple[list[pa.RecordBatch], pa.Schema, bool],
) -> None:
    batches, schema, _ = data
    cube = didcore.aggregate(pa.RecordBatchReader.from_batches(schema, batches), LOOKUPS)
    years = didcore.aggregate(
        pa.RecordBatchReader.from_batches(schema, batches), LOOKUPS, by_year=True
    )
    assert dict(cube.year_rows or {}) == years.rows
    for label, year_cube in years.items():
        assert year_cube.year_rows == {label: year_cube.rows_read}
