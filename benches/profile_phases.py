"""Where ``didcore.aggregate`` spends its time: lookups, read, classify, count, finish.

Runs the same steps as ``didcore.counting.aggregate`` one after the other (no read-ahead thread,
so each phase is timed on its own; the sum is what aggregate would take without overlap) and
prints seconds per phase, then, with ``--cprofile``, the functions the per-batch classification
(``BatchClassifier.classify``, Python + Arrow compute) spends its time in.

It uses didcore's internals (``BatchClassifier``, ``_didcore.Aggregator``), so it may need
updating when they change; the benchmarks themselves use only the public API.

Usage (from the repository root)::

    python benches/profile_phases.py --rows 10M --dir /tmp/didcore-bench [--cprofile]
    python benches/profile_phases.py --rows 10M --table plain     # a pyarrow Table in memory
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _benchdata import STRING_COLUMNS, ensure_bench_data, parse_rows

PHASES = ("lookups", "open", "read", "classify", "count", "finish")


def profile(source: Any, lookups: Path, prof: cProfile.Profile | None) -> dict[str, float]:
    """Seconds per phase of one aggregation of ``source``."""
    from didcore import _didcore
    from didcore.classify import BatchClassifier
    from didcore.cube import _cube_from_result
    from didcore.io import Columns, open_extract
    from didcore.lookup import Lookups

    t = dict.fromkeys(PHASES, 0.0)
    start = time.perf_counter()
    lk = Lookups.read(lookups)
    t["lookups"] = time.perf_counter() - start

    start = time.perf_counter()
    cols = Columns()
    extract = open_extract(source, cols)
    agg = _didcore.Aggregator(len(lk.icb_codes), len(lk.measures))
    classifier = BatchClassifier(lk, cols, extract.use_age)
    t["open"] = time.perf_counter() - start

    batches = iter(extract.batches)
    while True:
        start = time.perf_counter()
        batch = next(batches, None)
        t["read"] += time.perf_counter() - start
        if batch is None:
            break
        start = time.perf_counter()
        if prof is not None:
            prof.enable()
        args = classifier.classify(batch)
        if prof is not None:
            prof.disable()
        t["classify"] += time.perf_counter() - start
        start = time.perf_counter()
        agg.add_batch(args)
        t["count"] += time.perf_counter() - start

    start = time.perf_counter()
    _cube_from_result(agg.finish(), lk, classifier.provider_codes)
    t["finish"] = time.perf_counter() - start
    return t


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", default="10M", help="extract size (default 10M)")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/didcore-bench"), help="cache folder")
    ap.add_argument("--repeats", type=int, default=3, help="runs; the fastest is shown")
    ap.add_argument(
        "--table", choices=("plain", "dictionary"), help="profile a Table in memory instead"
    )
    ap.add_argument("--cprofile", action="store_true", help="profile the classification")
    args = ap.parse_args(argv)

    data = ensure_bench_data(args.dir, parse_rows(args.rows))
    source: Any = data.extract
    if args.table:
        import pyarrow.parquet as pq

        dictionary = list(STRING_COLUMNS) if args.table == "dictionary" else None
        source = pq.read_table(data.extract, read_dictionary=dictionary)
    runs = [profile(source, data.lookups, None) for _ in range(args.repeats)]
    best = min(runs, key=lambda r: sum(r.values()))
    total = sum(best.values())
    what = f"table ({args.table})" if args.table else "parquet"
    print(f"{data.rows:,} rows, {what}: fastest of {args.repeats} sequential runs")
    print("| phase | seconds | share |")
    print("|---|---:|---:|")
    for phase in PHASES:
        print(f"| {phase} | {best[phase]:.3f} | {best[phase] / total:.0%} |")
    print(f"| total | {total:.3f} | |")
    if args.cprofile:
        prof = cProfile.Profile()
        profile(source, data.lookups, prof)
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(15)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
