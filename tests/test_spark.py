"""didcore.spark.aggregate on a local[2] Spark session equals didcore.aggregate of the same
file: counts, exclusions and quality tables, by year too; executors' warnings come back once
each, and their InputErrors as the same type with the same message.

Skipped, with the reason, where pyspark (``pip install "didcore[spark]"``) or Java is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import didcore
from didcore.errors import ColumnTypeError, MissingColumnError, UnreadableValuesWarning
from didcore.synth import write_synthetic

pytest.importorskip(
    "pyspark", reason='pyspark is not installed: pip install "didcore[spark]" to run these'
)
# pyspark's own notice about the pandas version it was tested with, not didcore's concern
pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support:FutureWarning")


def _java() -> str | None:
    """Why Java cannot run Spark here, or None when it can."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        return "Java is not installed (Spark needs Java 17 or newer): the Spark tests are skipped"
    try:
        subprocess.run([java, "-version"], capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"Java does not run ({exc}): the Spark tests are skipped"
    return None


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    reason = _java()
    if reason:
        pytest.skip(reason)
    from pyspark.sql import SparkSession

    # the executors' Python must be this one (didcore is installed in it)
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]")
        .appName("didcore-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "3")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


BAD_AGE = "not recorded"
BAD_DATE = "31/12/2023"


@pytest.fixture(scope="module")
def dirty(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A generated two-year extract made dirty (the synthetic one already has blank and
    lower-case codes, sex 0/9/blank, practices and LSOAs matching no lookup): ages as text,
    some not numbers; test dates as text, some not ISO dates; sex written M/F now and then.
    Returns the Parquet file and the lookups folder.
    """
    root = tmp_path_factory.mktemp("spark")
    paths = write_synthetic(root / "synth", rows=30_000, seed=15, years=2)
    table = pq.read_table(paths.extract)
    rng = np.random.default_rng(15)
    n = table.num_rows

    def dirtied(name: str, bad: Any, share: float) -> pa.Array:
        text = table.column(name).cast(pa.string()).to_numpy(zero_copy_only=False).astype(object)
        text[rng.random(n) < share] = bad
        return pa.array(text, pa.string())

    for name, bad, share in (
        ("age", BAD_AGE, 0.02),
        ("test_date", BAD_DATE, 0.01),
        ("sex", "M", 0.005),
    ):
        at = table.schema.get_field_index(name)
        table = table.set_column(at, name, dirtied(name, bad, share))
    path = root / "dirty.parquet"
    pq.write_table(table, path, row_group_size=4_000)
    return path, paths.lookups


def _quiet() -> Any:
    """Warnings recorded, pyspark's own (pandas versions) left out."""
    return warnings.catch_warnings(record=True)


def _didcore_warnings(caught: list[warnings.WarningMessage]) -> list[tuple[type, str]]:
    ours = [w for w in caught if w.category.__module__.startswith("didcore")]
    return sorted(((w.category, str(w.message)) for w in ours), key=lambda item: item[1])


def assert_same(a: didcore.Cube, b: didcore.Cube) -> None:
    assert a == b  # counts, ICB and provider quality tables
    assert a.exclusions == b.exclusions
    assert a.icb_source == b.icb_source
    assert a.icb_quality.equals(b.icb_quality)
    by = [("provider_code", "ascending")]
    assert a.provider_quality.sort_by(by).equals(b.provider_quality.sort_by(by))
    by_icb = [*by, ("icb_code", "ascending")]
    assert a.provider_icb.sort_by(by_icb).equals(b.provider_icb.sort_by(by_icb))
    assert a.year_rows == b.year_rows
    assert a.measure_kinds == b.measure_kinds


def test_equals_one_machine_on_a_dirty_extract(spark: Any, dirty: tuple[Path, Path]) -> None:
    import didcore.spark

    path, lookups = dirty
    lk = didcore.Lookups.read(lookups)
    with _quiet() as local_caught:
        warnings.simplefilter("always")
        local = didcore.aggregate(path, lk)
    # several partitions, in another order than the file's
    df = spark.read.parquet(str(path)).repartition(3)
    with _quiet() as caught:
        warnings.simplefilter("always")
        cube = didcore.spark.aggregate(df, lk, batch_rows=5_000)
    assert_same(cube, local)
    assert cube.exclusions["rows_read"] == 30_000
    assert cube.exclusions["no_age"] > 0 and cube.icb_source["unknown"] > 0
    # the executors' warnings: once each, the counts added up over the tasks
    got = _didcore_warnings(caught)
    assert got == _didcore_warnings(local_caught)
    assert [c for c, _ in got] == [UnreadableValuesWarning]
    assert BAD_AGE in got[0][1]
    # the value profile the guards read comes back too
    assert cube.value_profile is not None and local.value_profile is not None
    assert cube.value_profile.counts["sex"] == local.value_profile.counts["sex"]


def test_by_year_equals_one_machine(spark: Any, dirty: tuple[Path, Path]) -> None:
    import didcore.spark

    path, lookups = dirty
    lk = didcore.Lookups.read(lookups)
    with _quiet() as local_caught:
        warnings.simplefilter("always")
        local = didcore.aggregate(path, lk, by_year=True)
    with _quiet() as caught:
        warnings.simplefilter("always")
        key = didcore.spark.ARROW_BATCH_CONF
        before = spark.conf.get(key, None)
        years = didcore.spark.aggregate(
            spark.read.parquet(str(path)), lk, by_year=True, spark_batch_rows=20_000
        )
        assert spark.conf.get(key, None) == before  # Spark's own setting put back
    assert isinstance(years, didcore.YearCubes)
    assert list(years) == list(local) == ["2022/23", "2023/24"]
    for label in local:
        assert_same(years[label], local[label])
    assert_same(years.undated, local.undated)
    assert years.undated.rows_read > 0  # the test dates that are not dates
    assert years.exclusions == local.exclusions
    assert_same(years.total, local.total)
    got = _didcore_warnings(caught)
    assert got == _didcore_warnings(local_caught)
    assert len(got) == 2 and any(BAD_DATE in m for _, m in got)
    # a declared year must be one of the test dates'
    with pytest.raises(didcore.InputError, match="give the financial year"):
        didcore.spark.aggregate(spark.read.parquet(str(path)), lk, year="2019/20")


def test_an_executors_input_error_keeps_its_type(spark: Any, dirty: tuple[Path, Path]) -> None:
    """Bytes that are not UTF-8 in a code column: found by a task, not by the driver."""
    import didcore.spark

    path, lookups = dirty
    table = pq.read_table(path).slice(0, 2_000)
    codes = [c.encode() for c in table.column("provider_code").to_pylist()]
    codes[1_500] = b"\xff\xfeR"
    table = table.set_column(0, "provider_code", pa.array(codes, pa.binary()))
    bad = path.with_name("binary.parquet")
    pq.write_table(table, bad)
    lk = didcore.Lookups.read(lookups)
    with pytest.raises(ColumnTypeError) as local:  # Spark hands the column over undictionaried
        didcore.aggregate(table, lk)
    with pytest.raises(ColumnTypeError) as remote:
        didcore.spark.aggregate(spark.read.parquet(str(bad)).repartition(2), lk)
    assert str(remote.value) == str(local.value)
    assert "not UTF-8" in str(remote.value)


def test_driver_checks_and_an_empty_dataframe(spark: Any, dirty: tuple[Path, Path]) -> None:
    import didcore.spark

    path, lookups = dirty
    lk = didcore.Lookups.read(lookups)
    df = spark.read.parquet(str(path))
    with pytest.raises(MissingColumnError, match="no column 'sex'"):
        didcore.spark.aggregate(df.drop("sex"), lk)
    with pytest.raises(didcore.InputError, match="not a Table"):
        didcore.spark.aggregate(pa.table({"a": [1]}), lk)
    with pytest.raises(didcore.InputError, match="batch_rows"):
        didcore.spark.aggregate(df, lk, batch_rows=10)
    empty = didcore.spark.aggregate(df.limit(0), lk)
    assert empty.exclusions["rows_read"] == 0 and empty.measures == lk.measures
    assert empty.measure_kinds == lk.measure_kinds


def test_without_rdds_the_partials_are_added_on_the_driver(
    spark: Any, dirty: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spark Connect (Databricks shared and serverless compute) has no SparkContext: the
    partial cubes are collected and added on the driver, the lookups sent with the task."""
    import didcore.spark

    path, lookups = dirty
    lk = didcore.Lookups.read(lookups)
    monkeypatch.setattr(didcore.spark, "_spark_context", lambda _session: None)
    cube = didcore.spark.aggregate(spark.read.parquet(str(path)).repartition(2), lk)
    assert_same(cube, didcore.aggregate(path, lk))


def test_rechunk_and_warning_merge() -> None:
    from didcore.spark import merge_warnings, rechunk

    batch = pa.RecordBatch.from_pydict({"a": list(range(10))})
    sizes = [b.num_rows for b in rechunk([batch, batch.slice(0, 0), batch, batch, batch], 25)]
    assert sizes == [30, 10]
    assert [b.num_rows for b in rechunk([batch], 5)] == [10]  # large enough: as it is
    joined = next(rechunk([batch, batch], 15))
    assert joined.column(0).to_pylist() == list(range(10)) * 2
    age = "column 'age': {} (e.g. 'x'); counted as missing age"
    caught = [
        {
            "module": "didcore.errors",
            "category": "UnreadableValuesWarning",
            "task": 1,
            "message": age.format("1 row holds a value that is not a number"),
        },
        {
            "module": "didcore.errors",
            "category": "UnreadableValuesWarning",
            "task": 0,
            "message": age.format("1,234 rows hold a value that is not a number"),
        },
        {"module": "builtins", "category": "UserWarning", "task": 0, "message": "other"},
        {"module": "builtins", "category": "UserWarning", "task": 1, "message": "other"},
    ]
    assert merge_warnings(caught) == [
        (
            "didcore.errors",
            "UnreadableValuesWarning",
            age.format("1,235 rows hold a value that is not a number"),
        ),
        ("builtins", "UserWarning", "other"),
    ]


#: parquet-java's options as Spark passes them on (``df.write.option``): page versions,
#: dictionaries, every codec it writes (``lz4`` is Hadoop's framing, which pyarrow reads as
#: LZ4 of either kind; ``lz4_raw`` the format's own) and tiny pages and row groups.
SPARK_WRITERS: dict[str, dict[str, str]] = {
    "pages-v1": {},
    "pages-v2": {"parquet.writer.version": "v2"},
    "no-dictionary": {"parquet.enable.dictionary": "false"},
    "v2-uncompressed-no-dictionary": {
        "parquet.writer.version": "v2",
        "parquet.enable.dictionary": "false",
        "compression": "none",
    },
    "zstd": {"compression": "zstd"},
    "lz4-hadoop": {"compression": "lz4"},
    "lz4-raw": {"compression": "lz4_raw"},
    "gzip-tiny-pages-and-row-groups": {
        "compression": "gzip",
        "parquet.page.size": "1024",
        "parquet.page.size.row.check.min": "10",
        "parquet.block.size": "16384",
        "parquet.block.size.row.check.min": "10",
        "parquet.dictionary.page.size": "512",
    },
}


@pytest.mark.parametrize("options", list(SPARK_WRITERS.values()), ids=list(SPARK_WRITERS))
def test_parquet_written_by_spark_is_decoded_by_the_core(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: dict[str, str]
) -> None:
    """parquet-mr (Spark's writer) lists BIT_PACKED for levels it writes RLE, v2 pages DELTA
    for dates and PLAIN_DICTIONARY in v1 dictionaries: the core decodes all its row groups,
    and the per-year cubes equal pyarrow's reading of the same files and of the original.
    """
    from didcore import parquet_native

    paths = write_synthetic(tmp_path / "synth", rows=20_000, seed=7, years=2)
    writer = spark.read.parquet(str(paths.extract)).repartition(2).write.mode("overwrite")
    for key, value in options.items():
        writer = writer.option(key, value)
    out = tmp_path / "spark"
    writer.parquet(str(out))  # a folder of part files, _SUCCESS and .crc files
    lk = didcore.Lookups.read(paths.lookups)
    parquet_native.READS.reset()
    native = didcore.aggregate(out, lk, by_year=True)
    assert parquet_native.READS.pyarrow == 0 and parquet_native.READS.native >= 2
    original = didcore.aggregate(paths.extract, lk, by_year=True)
    monkeypatch.setenv("DIDCORE_PARQUET", "pyarrow")
    read_by_pyarrow = didcore.aggregate(out, lk, by_year=True)
    for other in (original, read_by_pyarrow):
        assert list(native) == list(other)
        for year in native:
            assert_same(native[year], other[year])
        assert native.undated == other.undated
