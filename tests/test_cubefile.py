"""Cube files (didcore.cubefile): Cube.write/read and YearCubes.write/read are lossless,
partial cubes read back add up to the whole, and anything else is refused with CubeFileError;
Cube.from_counts keeps the measures' kinds or refuses."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

import didcore
from didcore.cube import Cube
from didcore.cubefile import FORMAT_VERSION, METADATA_KEY, read_cubes
from didcore.errors import CubeFileError, InputError, UnreadableInputError
from didcore.years import YearCubes
from test_cube import LOOKUPS, _big_table


def _dated(n: int, seed: int) -> pa.Table:
    """``_big_table`` with test dates over three financial years, some null."""
    table = _big_table(n, seed=seed)
    rng = np.random.default_rng(seed)
    days = rng.integers(0, 3 * 365, n)
    dates = [dt.date(2021, 4, 1) + dt.timedelta(days=int(d)) for d in days]
    nulls = rng.random(n) < 0.03
    column = pa.array([None if z else d for d, z in zip(dates, nulls, strict=True)], pa.date32())
    return table.set_column(table.schema.get_field_index("test_date"), "test_date", column)


def assert_same(a: Cube, b: Cube) -> None:
    """Everything a cube holds, not only what == compares."""
    assert a == b
    assert a.measure_kinds == b.measure_kinds
    assert a.exclusions == b.exclusions
    assert a.icb_source == b.icb_source
    assert a.has_records == b.has_records
    assert a.year_rows == b.year_rows
    assert a.icb_quality.equals(b.icb_quality)
    by_provider = [("provider_code", "ascending")]
    assert a.provider_quality.sort_by(by_provider).equals(b.provider_quality.sort_by(by_provider))
    by_both = [*by_provider, ("icb_code", "ascending")]
    assert a.provider_icb.sort_by(by_both).equals(b.provider_icb.sort_by(by_both))
    pa_, pb = a.value_profile, b.value_profile
    assert (pa_ is None) == (pb is None)
    if pa_ is not None and pb is not None:
        assert pa_.counts == pb.counts and pa_.rows == pb.rows and pa_.dropped == pb.dropped


def test_round_trip_through_a_file_and_bytes(tmp_path: Path) -> None:
    cube = didcore.aggregate(_dated(5_000, seed=1), LOOKUPS)
    assert "edoc" in cube.measure_kinds and "modality" in cube.measure_kinds
    path = tmp_path / "cube.arrow"
    cube.write(path)
    assert_same(Cube.read(path), cube)
    assert_same(Cube.read(cube.to_bytes()), cube)
    assert_same(Cube.read(str(path)), cube)
    assert not list(tmp_path.glob(".*tmp*"))  # written beside and renamed into place


def test_a_cube_from_counts_round_trips(tmp_path: Path) -> None:
    cube = didcore.aggregate(_big_table(500, seed=2), LOOKUPS)
    counted = Cube.from_counts(cube.to_arrow(), lookups=LOOKUPS)
    again = Cube.read(counted.to_bytes())
    assert_same(again, counted)
    assert again.year_rows is None and not again.has_records


@given(
    n=st.integers(1, 3_000),
    seed=st.integers(0, 2**32 - 1),
    cut=st.floats(0, 1),
)
def test_partials_read_back_add_to_the_whole(n: int, seed: int, cut: float) -> None:
    table = _dated(n, seed)
    k = int(cut * n)
    whole = didcore.aggregate(table, LOOKUPS, n_threads=1)
    parts = [table.slice(0, k), table.slice(k)]
    partials = [didcore.aggregate(p, LOOKUPS, n_threads=1) for p in parts if p.num_rows]
    total = Cube.read(partials[0].to_bytes())
    for p in partials[1:]:
        total = total + Cube.read(p.to_bytes())
    assert_same(Cube.read(whole.to_bytes()), whole)
    assert total == whole
    assert total.exclusions == whole.exclusions and total.icb_source == whole.icb_source
    assert total.year_rows == whole.year_rows
    assert total.icb_quality.equals(whole.icb_quality)


def test_year_cubes_round_trip_and_add(tmp_path: Path) -> None:
    table = _dated(6_000, seed=3)
    years = didcore.aggregate(table, LOOKUPS, by_year=True, n_threads=1)
    assert len(years) == 3 and years.undated.rows_read > 0
    path = tmp_path / "years.arrow"
    years.write(path)
    back = YearCubes.read(path)
    assert list(back) == list(years)
    for label in years:
        assert_same(back[label], years[label])
    assert_same(back.undated, years.undated)
    assert back.exclusions == years.exclusions and back.declared == years.declared
    # two halves counted apart, written, read and added: the whole, year by year
    halves = [table.slice(0, 2_500), table.slice(2_500)]
    added = YearCubes.read(didcore.aggregate(halves[0], LOOKUPS, by_year=True).to_bytes())
    added = added + YearCubes.read(didcore.aggregate(halves[1], LOOKUPS, by_year=True).to_bytes())
    assert list(added) == list(years)
    assert all(added[k] == years[k] for k in years) and added.undated == years.undated
    assert added.total == years.total and added.exclusions == years.exclusions
    assert added.total.value_profile is not None and years.total.value_profile is not None
    assert added.total.value_profile.rows == years.total.value_profile.rows == 6_000
    # each kind of file is read by its own reader
    with pytest.raises(CubeFileError, match=r"YearCubes\.read"):
        Cube.read(path)
    years.total.write(tmp_path / "one.arrow")
    with pytest.raises(CubeFileError, match=r"Cube\.read"):
        YearCubes.read(tmp_path / "one.arrow")


def _rewrite_header(data: bytes, change: dict[str, object]) -> bytes:
    """A cube file's bytes with keys of its header changed."""
    table = pa.ipc.open_file(pa.BufferReader(data)).read_all()
    meta = json.loads(table.schema.metadata[METADATA_KEY])
    meta.update(change)
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def test_a_newer_format_version_is_refused() -> None:
    data = didcore.aggregate(_big_table(300, seed=4), LOOKUPS).to_bytes()
    newer = _rewrite_header(data, {"format_version": FORMAT_VERSION + 1, "didcore_version": "9.0"})
    with pytest.raises(CubeFileError, match=r"didcore 9\.0 in cube file format version 2.*upgrade"):
        Cube.read(newer)
    assert isinstance(CubeFileError("x"), InputError)
    with pytest.raises(CubeFileError, match="not a didcore cube file"):
        Cube.read(_rewrite_header(data, {"format": "something-else"}))


def test_garbage_and_other_files_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.arrow"
    garbage.write_bytes(b"PAR1 not a cube at all" * 10)
    with pytest.raises(CubeFileError, match=r"garbage\.arrow' is not a didcore cube file"):
        Cube.read(garbage)
    with pytest.raises(CubeFileError, match="not a didcore cube file"):
        Cube.read(b"")
    other = tmp_path / "other.arrow"
    table = pa.table({"a": [1, 2]})
    with pa.OSFile(str(other), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    with pytest.raises(CubeFileError, match="an Arrow file but not a didcore cube file"):
        Cube.read(other)
    with pytest.raises(UnreadableInputError, match="does not exist"):
        Cube.read(tmp_path / "missing.arrow")
    with pytest.raises(UnreadableInputError, match="is a folder"):
        Cube.read(tmp_path)


def test_a_damaged_file_is_refused() -> None:
    cube = didcore.aggregate(_big_table(300, seed=5), LOOKUPS)
    data = cube.to_bytes()
    ex = {"cube": {**cube.exclusions, "included": cube.exclusions["included"] + 1}}
    with pytest.raises(CubeFileError, match="does not add up"):
        Cube.read(_rewrite_header(data, {"exclusions": ex}))
    with pytest.raises(CubeFileError, match="damaged"):
        Cube.read(_rewrite_header(data, {"measures": ["only one"], "measure_kinds": ["edoc"]}))
    cubes, meta = read_cubes(data)
    assert list(cubes) == ["cube"] and meta["format_version"] == FORMAT_VERSION


def test_from_counts_keeps_measure_kinds_or_refuses() -> None:
    cube = didcore.aggregate(_big_table(2_000, seed=6), LOOKUPS)
    long = cube.to_arrow()
    with pytest.raises(InputError, match="needs the measures in order with their kinds"):
        Cube.from_counts(long)
    with pytest.raises(InputError, match="needs the measures in order with their kinds"):
        Cube.from_counts(long, measures=cube.measures)
    with pytest.raises(InputError, match="one kind per measure"):
        Cube.from_counts(long, measures=cube.measures, measure_kinds=["edoc"])
    with pytest.raises(InputError, match="neither 'modality' nor 'edoc'"):
        Cube.from_counts(long, measures=cube.measures, measure_kinds=["x"] * len(cube.measures))
    for again in (
        Cube.from_counts(long, lookups=LOOKUPS),
        Cube.from_counts(
            long,
            icb_codes=cube.icb_codes,
            measures=cube.measures,
            measure_kinds=cube.measure_kinds,
        ),
    ):
        assert again.measures == cube.measures
        assert again.measure_kinds == cube.measure_kinds  # EDOC measures stay EDOC
        assert np.array_equal(again.counts, cube.counts)


def test_report_from_a_cube_file_equals_the_report_from_the_extract(tmp_path: Path) -> None:
    """`didcore report --cube FILE`: the publication from cubes counted elsewhere (a cluster)
    has the same tables as the one counted from the extract."""
    pytest.importorskip("scipy")
    from didcore.cli import main
    from didcore.synth import write_synthetic

    paths = write_synthetic(tmp_path / "synth", rows=20_000, seed=8, years=2)
    lookups = didcore.Lookups.read(paths.lookups)
    years = didcore.aggregate(paths.extract, lookups, by_year=True)
    years.write(tmp_path / "years.cube.arrow")
    common = ["--lookups", str(paths.lookups), "--population", str(paths.population)]
    common += ["--formats", "csv", "-q"]
    assert main(["report", str(paths.extract), *common, "--out", str(tmp_path / "a")]) == 0
    cube_file = str(tmp_path / "years.cube.arrow")
    assert main(["report", "--cube", cube_file, *common, "--out", str(tmp_path / "b")]) == 0
    tables = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.csv"))
    assert tables
    for name in tables:
        assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "a" / name).read_bytes(), name
    # an extract and a cube file at once, or the cubes of other lookups, are refused
    argv = ["report", str(paths.extract), "--cube", cube_file, *common, "--out", "x"]
    assert main(argv) == 2
    other = tmp_path / "other.cube.arrow"
    didcore.aggregate(_dated(1_000, seed=9), LOOKUPS, by_year=True).write(other)
    assert main(["report", "--cube", str(other), *common, "--out", str(tmp_path / "c")]) == 2
