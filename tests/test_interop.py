"""Interop: other kinds of input (pyarrow Dataset/Scanner/ParquetFile, polars LazyFrame,
iterables of record batches, pandas object-string frames) give the same cube as the same data
as a Table; plain-string Arrow output; short reprs and HTML reprs; the extras' message."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import didcore
import didcore.io
from didcore.synth import write_synthetic

ROWS = 30_000


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return write_synthetic(
        tmp_path_factory.mktemp("interop"), rows=ROWS, seed=4, row_group_size=7_000
    )


@pytest.fixture(scope="module")
def table(synth: Any) -> pa.Table:
    return ds.dataset(synth.extract).to_table()


@pytest.fixture(scope="module")
def expected(table: pa.Table) -> didcore.Cube:
    return didcore.aggregate(table)


def _one_file(synth: Any) -> Path:
    return sorted(Path(synth.extract).rglob("*.parquet"))[0]


def test_a_pyarrow_dataset_gives_the_same_cube(synth: Any, expected: didcore.Cube) -> None:
    assert didcore.aggregate(ds.dataset(synth.extract)) == expected


def test_a_pyarrow_scanner_gives_the_same_cube(synth: Any, expected: didcore.Cube) -> None:
    scanner = ds.dataset(synth.extract).scanner()
    assert didcore.aggregate(scanner) == expected


def test_a_parquet_file_gives_the_same_cube(synth: Any) -> None:
    path = _one_file(synth)
    assert didcore.aggregate(pq.ParquetFile(path)) == didcore.aggregate(pq.read_table(path))


def test_a_polars_lazyframe_is_streamed_to_the_same_cube(
    table: pa.Table, expected: didcore.Cube
) -> None:
    pl = pytest.importorskip("polars")
    assert didcore.aggregate(pl.from_arrow(table).lazy()) == expected


def test_a_polars_scan_is_streamed(synth: Any) -> None:
    pl = pytest.importorskip("polars")
    path = _one_file(synth)
    assert didcore.aggregate(pl.scan_parquet(path)) == didcore.aggregate(pq.read_table(path))


def test_a_failing_lazy_query_is_one_input_error(tmp_path: Path) -> None:
    pl = pytest.importorskip("polars")
    with pytest.raises(didcore.InputError):
        didcore.aggregate(pl.scan_parquet(tmp_path / "nothing.parquet"))


@pytest.mark.parametrize("kind", ["list", "generator", "tuple"])
def test_an_iterable_of_record_batches_gives_the_same_cube(
    table: pa.Table, expected: didcore.Cube, kind: str
) -> None:
    batches = table.to_batches(max_chunksize=4_000)
    source: Any = {"list": list, "tuple": tuple, "generator": lambda b: (x for x in b)}[kind](
        batches
    )
    assert didcore.aggregate(source) == expected


def test_batches_whose_schemas_differ_are_an_input_error_naming_the_batch(
    table: pa.Table,
) -> None:
    first, second = table.slice(0, 100).to_batches()[0], table.slice(100, 100)
    other = second.set_column(
        second.schema.get_field_index("age"), "age", second["age"].cast(pa.string())
    ).to_batches()[0]
    with pytest.raises(didcore.InputError, match=r"batch 2 .*column 'age' is string"):
        didcore.aggregate([first, other])


def test_an_iterable_of_other_things_is_refused(table: pa.Table) -> None:
    with pytest.raises(didcore.InputError, match="cannot read an extract"):
        didcore.aggregate(iter([1, 2, 3]))
    with pytest.raises(didcore.InputError, match="item 2 is a int"):
        didcore.aggregate([table.to_batches()[0], 2])
    with pytest.raises(didcore.InputError, match="gave no batch"):
        didcore.aggregate(iter([]))


def test_a_pandas_frame_of_object_strings_gives_the_same_cube(
    table: pa.Table, expected: didcore.Cube
) -> None:
    pytest.importorskip("pandas")
    plain = pa.table(
        [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns],
        names=table.column_names,
    )
    df = plain.to_pandas()
    df["sex"] = df["sex"].astype(object)
    assert didcore.aggregate(df) == expected


def test_a_pandas_frame_is_converted_slice_by_slice_with_one_schema(
    table: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    pd = pytest.importorskip("pandas")
    monkeypatch.setattr(didcore.io, "_BATCH_ROWS", 5_000)
    df = table.to_pandas()
    df.index = [7] * len(df)  # repeated index labels: conversion goes by position
    df["exam_code"] = df["exam_code"].astype(object)
    df.iloc[: 5_000 + 10, df.columns.get_loc("exam_code")] = None  # none in the first slice
    expected = didcore.aggregate(pa.Table.from_pandas(df, preserve_index=False))
    assert didcore.aggregate(df) == expected
    df["sex"] = df["sex"].astype(object)
    df.iloc[-1, df.columns.get_loc("sex")] = 1.5j  # a value of no Arrow type, in a later slice
    with pytest.raises(
        didcore.errors.ColumnTypeError, match=r"column .sex. of the pandas DataFrame .*rows 25,001"
    ):
        didcore.aggregate(df)
    assert pd is not None


def test_to_arrow_with_plain_strings(expected: didcore.Cube) -> None:
    coded = expected.to_arrow()
    plain = expected.to_arrow(dictionary=False)
    assert any(pa.types.is_dictionary(f.type) for f in coded.schema)
    assert not any(pa.types.is_dictionary(f.type) for f in plain.schema)
    assert plain.equals(coded.cast(plain.schema))


def test_year_cubes_to_arrow_with_plain_strings(synth: Any) -> None:
    years = didcore.aggregate(synth.extract, by_year=True)
    plain = years.to_arrow(dictionary=False)
    assert not any(pa.types.is_dictionary(f.type) for f in plain.schema)
    assert plain.num_rows == years.to_arrow().num_rows


def test_reprs_are_short_and_html_has_a_table(synth: Any, expected: didcore.Cube) -> None:
    pop = didcore.Population.read(synth.population, expected.icb_codes)
    years = didcore.aggregate(synth.extract, by_year=True)
    objects: list[Any] = [expected, years, didcore.Lookups.default(), pop]
    if importlib.util.find_spec("scipy") is not None:  # the statistics need didcore[stats]
        objects.append(didcore.standardise(expected, pop))
    for obj in objects:
        text = repr(obj)
        assert len(text) < 400 and "\n" not in text, (type(obj).__name__, text[:500])
        html = obj._repr_html_()
        assert isinstance(html, str) and "<table" in html and len(html) < 20_000
    assert "42 ICBs" in repr(didcore.Lookups.default())


def _run_without(modules: list[str], code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter in which ``modules`` cannot be imported."""
    prelude = textwrap.dedent(
        f"""
        import builtins, sys
        _blocked = {modules!r}
        _real = builtins.__import__
        def _import(name, *args, **kwargs):
            if name.split(".")[0] in _blocked:
                raise ModuleNotFoundError(f"No module named {{name!r}}")
            return _real(name, *args, **kwargs)
        builtins.__import__ = _import
        import importlib
        _real_im = importlib.import_module
        def _im(name, *args, **kwargs):
            if name.split(".")[0] in _blocked:
                raise ModuleNotFoundError(f"No module named {{name!r}}")
            return _real_im(name, *args, **kwargs)
        importlib.import_module = _im
        """
    )
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_report_without_its_extra_says_which_to_install(tmp_path: Path) -> None:
    code = f"""
    import sys
    from didcore.cli import main
    sys.exit(main(["demo", "--out", {str(tmp_path / "out")!r}]))
    """
    done = _run_without(["matplotlib", "jinja2"], code)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert 'pip install "didcore[report]"' in lines[0]
    assert "matplotlib" in lines[0] and "jinja2" in lines[0]
    assert not (tmp_path / "out").exists()


def test_statistics_without_scipy_say_which_extra(synth: Any) -> None:
    code = f"""
    import didcore
    cube = didcore.aggregate({str(synth.extract)!r})
    pop = didcore.Population.read({str(synth.population)!r}, cube.icb_codes)
    try:
        didcore.standardise(cube, pop)
    except ImportError as exc:
        print(type(exc).__name__, exc)
    """
    done = _run_without(["scipy"], code)
    assert done.returncode == 0, done.stderr
    assert "MissingExtraError didcore.standardise needs scipy" in done.stdout
    assert 'pip install "didcore[stats]"' in done.stdout


def test_counting_imports_none_of_the_extras(synth: Any, tmp_path: Path) -> None:
    code = f"""
    import sys
    from didcore.cli import main
    status = main(["cube", {str(synth.extract)!r}, "--out", {str(tmp_path / "cube")!r}, "-q"])
    heavy = sorted({{m.split(".")[0] for m in sys.modules}} & {{"scipy", "matplotlib",
                   "openpyxl", "jinja2"}})
    print(status, heavy)
    """
    done = _run_without(["scipy", "matplotlib", "openpyxl", "jinja2"], code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0 []"
