"""didcore.spark.aggregate against the same job written in Spark SQL, on a local Spark session.

Generates (or reuses) a synthetic extract (``didcore synth``: dictionary-encoded Parquet, 1M-row
row groups), then times, in one Spark session, after a warm-up run of each, the jobs in turn
(round-robin, ``--repeat`` rounds):

* ``didcore.spark.aggregate(spark.read.parquet(extract), lookups)``: the cube, exclusions,
  ICB sources and the per-provider and per-ICB quality tables (Spark's default 10,000-row
  Arrow batches, joined into 1M-row batches in each task);
* the same with ``spark_batch_rows=1_000_000`` (Spark's own Arrow batches of 1M rows);
* the floor under any Python code on Spark: the same columns read and handed to Python as
  Arrow by ``mapInArrow``, where the rows are only counted;
* the Spark SQL job: the derivation rules as Spark SQL (codes trimmed and upper-cased,
  broadcast joins to the practice, other-practice, LSOA and measure lookups, the exclusions in
  order by a ``CASE``), one ``GROUP BY`` over the derived keys (ICB, sex, age band, IMD
  quintile, exclusion reason, ICB source, modality measure, EDOC measure), collected and
  turned into the cube and exclusions on the driver. It does less than didcore (no quality
  tables), so the comparison favours it; its cube and exclusions are checked equal to
  didcore's before timing;
* ``didcore.aggregate`` of the same files on one machine (as a pyarrow Dataset), for
  reference.

Usage (from the repository root; the figures in docs/spark.md came from the first)::

    python benches/spark_comparison.py --rows 4000000 --dir /tmp/didcore-spark-bench
    python benches/spark_comparison.py --rows 200000 --repeat 1 --master local[2]

Keep the machine otherwise idle; the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def extract_dir(rows: int, root: Path) -> Path:
    """The synthetic extract of ``rows`` rows under ``root`` (generated once)."""
    from didcore.synth import write_synthetic

    folder = root / f"synth-{rows}"
    if not (folder / "truth.json").exists():
        print(f"generating {rows:,} rows in {folder} ...", flush=True)
        write_synthetic(folder, rows=rows, seed=15, row_group_size=1_000_000)
    return folder


def lookup_frames(spark: Any, lk: Any) -> dict[str, Any]:
    """The lookups as small Spark DataFrames keyed by normalised codes, for broadcast joins."""
    icb_index = {c: i for i, c in enumerate(lk.icb_codes)}
    practice = [(p, icb_index[i]) for p, i in lk.practice_icb.items() if i in icb_index]
    lsoa_icb = {k: icb_index[v] for k, v in lk.lsoa_icb.items() if v in icb_index}
    lsoas = sorted(set(lsoa_icb) | set(lk.lsoa_quintile))
    lsoa = [(k, lsoa_icb.get(k), lk.lsoa_quintile.get(k)) for k in lsoas]
    measure_index = {m: i for i, m in enumerate(lk.measures)}
    modality = [
        (r.modality, measure_index[r.measure]) for r in lk.measure_rules if r.exam_code is None
    ]
    edoc = [
        (r.modality, r.exam_code, measure_index[r.measure])
        for r in lk.measure_rules
        if r.exam_code is not None
    ]
    return {
        "practice_icb": spark.createDataFrame(practice, "practice string, p_icb int"),
        "other_practices": spark.createDataFrame(
            [(p,) for p in sorted(lk.other_practices)], "practice string"
        ),
        "lsoa": spark.createDataFrame(lsoa, "lsoa string, l_icb int, quintile int"),
        "modality_measure": spark.createDataFrame(modality, "modality string, m_measure int"),
        "edoc_measure": spark.createDataFrame(edoc, "modality string, exam string, e_measure int"),
    }


SQL = """
WITH x AS (
    SELECT
        NULLIF(upper(trim(gp_practice_code)), '') AS practice,
        NULLIF(upper(trim(lsoa11)), '') AS lsoa,
        CASE upper(trim(sex)) WHEN '1' THEN 0 WHEN '2' THEN 1 END AS sex_i,
        CASE WHEN age >= 0 THEN least(CAST(age DIV 5 AS INT), 18) END AS band,
        upper(trim(modality)) AS modality,
        upper(trim(exam_code)) AS exam
    FROM did_extract
), d AS (
    SELECT /*+ BROADCAST(p), BROADCAST(o), BROADCAST(l), BROADCAST(m), BROADCAST(e) */
        CASE WHEN p.p_icb IS NOT NULL THEN 0 WHEN o.practice IS NOT NULL THEN 1
             WHEN l.l_icb IS NOT NULL THEN 2 ELSE 3 END AS source,
        CASE WHEN p.p_icb IS NOT NULL THEN p.p_icb WHEN o.practice IS NOT NULL THEN NULL
             ELSE l.l_icb END AS icb,
        l.quintile, x.sex_i, x.band, m.m_measure, e.e_measure
    FROM x
    LEFT JOIN practice_icb p ON x.practice = p.practice
    LEFT JOIN other_practices o ON x.practice = o.practice
    LEFT JOIN lsoa l ON x.lsoa = l.lsoa
    LEFT JOIN modality_measure m ON x.modality = m.modality
    LEFT JOIN edoc_measure e ON x.modality = e.modality AND x.exam = e.exam
)
SELECT
    icb, sex_i, band, quintile, source, m_measure, e_measure,
    CASE WHEN icb IS NULL THEN 0 WHEN quintile IS NULL THEN 1 WHEN sex_i IS NULL THEN 2
         WHEN band IS NULL THEN 3 ELSE 4 END AS outcome,
    count(*) AS n
FROM d
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
"""

REASONS = ("no_icb", "no_imd", "no_sex", "no_age")
SOURCES = ("gp_practice", "other_valid_practice", "lsoa", "unknown")


def spark_sql_job(spark: Any, path: Path, lk: Any) -> tuple[np.ndarray, dict[str, int], dict]:
    """The cube, exclusions and ICB sources from the SQL above."""
    from didcore.axes import STRATA_SHAPE

    spark.read.parquet(str(path)).createOrReplaceTempView("did_extract")
    for name, frame in lookup_frames(spark, lk).items():
        frame.createOrReplaceTempView(name)
    frame = spark.sql(SQL)
    if hasattr(frame, "toArrow"):  # Spark 4
        groups = frame.toArrow()
    else:
        import pyarrow as pa

        groups = pa.Table.from_pandas(frame.toPandas())
    g = {c: groups.column(c).to_numpy(zero_copy_only=False) for c in groups.column_names}
    n = g["n"].astype(np.int64)
    outcome = g["outcome"].astype(np.int64)
    exclusions = {"rows_read": int(n.sum())}
    for k, reason in enumerate(REASONS):
        exclusions[reason] = int(n[outcome == k].sum())
    included = outcome == 4
    exclusions["included"] = int(n[included].sum())
    no_measure = included & np.isnan(g["m_measure"].astype(float))
    exclusions["no_measure"] = int(n[no_measure].sum())
    sources = {s: int(n[g["source"] == k].sum()) for k, s in enumerate(SOURCES)}
    counts = np.zeros((len(lk.icb_codes), *STRATA_SHAPE, len(lk.measures)), np.int64)
    for measure in ("m_measure", "e_measure"):
        values = g[measure].astype(float)
        rows = included & ~np.isnan(values)
        key = tuple(
            g[c][rows].astype(np.int64) - (1 if c == "quintile" else 0)
            for c in ("icb", "sex_i", "band", "quintile")
        )
        np.add.at(counts, (*key, values[rows].astype(np.int64)), n[rows])
    return counts, exclusions, sources


def timed(run: Callable[[], Any], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/didcore-spark-bench"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    import pyspark
    from pyspark.sql import SparkSession

    import didcore
    import didcore.spark

    folder = extract_dir(args.rows, args.dir)
    path = folder / "extract"
    lk = didcore.Lookups.read(folder / "lookups")
    spark = (
        SparkSession.builder.master(args.master)
        .appName("didcore-spark-comparison")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "3g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    print(f"load average before: {os.getloadavg()}", flush=True)

    def didcore_spark() -> Any:
        return didcore.spark.aggregate(spark.read.parquet(str(path)), lk)

    def didcore_spark_big_batches() -> Any:
        frame = spark.read.parquet(str(path))
        return didcore.spark.aggregate(frame, lk, spark_batch_rows=1_000_000)

    def transfer_only() -> Any:
        """The floor: Spark reads the columns didcore needs and hands them to Python as
        Arrow, where the rows are only counted.
        """
        import pyarrow as pa

        def rows(batches: Any) -> Any:
            yield pa.RecordBatch.from_pydict({"n": [sum(b.num_rows for b in batches)]})

        names = ["provider_code", "gp_practice_code", "lsoa11", "sex", "exam_code"]
        names += ["modality", "age", "test_date"]
        frame = spark.read.parquet(str(path)).select(*names)
        return sum(r.n for r in frame.mapInArrow(rows, "n long").collect())

    def spark_sql() -> Any:
        return spark_sql_job(spark, path, lk)

    def one_machine() -> Any:
        import pyarrow.dataset as ds

        return didcore.aggregate(ds.dataset(path), lk, n_threads=2, progress=False)

    # warm-up, and the check that every job gives the same cube
    whole = one_machine()
    cube = didcore_spark()
    assert cube == whole and cube.exclusions == whole.exclusions, "didcore.spark differs"
    assert didcore_spark_big_batches() == whole, "didcore.spark (1M-row Spark batches) differs"
    assert transfer_only() == args.rows
    counts, exclusions, sources = spark_sql()
    assert np.array_equal(counts, whole.counts), "the Spark SQL cube differs"
    assert exclusions == whole.exclusions, (exclusions, whole.exclusions)
    assert sources == whole.icb_source, (sources, whole.icb_source)
    print(f"checked: all four give the same cube ({whole.exclusions['rows_read']:,} rows)")

    jobs = {
        "didcore.spark.aggregate (default: Spark's 10k-row Arrow batches joined into 1M-row "
        "batches in each task)": didcore_spark,
        "didcore.spark.aggregate(spark_batch_rows=1_000_000) (Spark makes 1M-row batches)": (
            didcore_spark_big_batches
        ),
        "floor: Spark reads the 8 columns and hands them to Python as Arrow, rows only "
        "counted": transfer_only,
        "Spark SQL: joins + GROUP BY (cube, exclusions, ICB sources only)": spark_sql,
        "didcore.aggregate on one machine, 2 threads (no Spark)": one_machine,
    }
    # round-robin, so that a change in the machine's load falls on every job alike
    results: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(args.repeat):
        for name, run in jobs.items():
            results[name] += timed(run, 1)
    print(f"load average after: {os.getloadavg()}")
    print()
    print(
        f"{args.rows:,} rows, {args.master}, pyspark {pyspark.__version__}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, best and median of {args.repeat}"
    )
    print()
    print("| job | best (s) | median (s) |")
    print("|---|---:|---:|")
    for name, times in results.items():
        print(f"| {name} | {min(times):.2f} | {statistics.median(times):.2f} |")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
