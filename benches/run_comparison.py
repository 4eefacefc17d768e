"""didcore against DuckDB, polars and the pyarrow read floor: medians, ratios and peak memory.

Generates (or reuses) the benchmark extract of each size, runs every tool N times in the same
process, interleaved (round-robin, order rotated each round, after one warm-up run each that
also checks every peer's cube equals didcore's exactly), and prints Markdown tables that the
README can paste: median seconds and ratios, from the Parquet file and from a pyarrow Table in
memory (plain and dictionary strings), then the peak RSS of one run of each tool, each in a
fresh subprocess (its ``VmHWM`` from ``/proc/self/status`` at exit: the high-water mark of that
process's own memory; ``ru_maxrss`` of a child also counts the parent it was forked from).

Usage (from the repository root)::

    python benches/run_comparison.py --rows 1M 10M --dir /tmp/didcore-bench
    python benches/run_comparison.py --rows 50M --rss-rows 10M 50M --dir /tmp/didcore-bench

``--dir`` caches the generated extracts (``DIDCORE_BENCH_DIR`` for pytest uses the same
files). Keep the machine otherwise idle; the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _benchdata import (
    LAYOUTS,
    STRING_COLUMNS,
    BenchData,
    ensure_bench_data,
    ensure_layout,
    parse_rows,
)
from _peers import (
    CubeResult,
    didcore_result,
    duckdb_cube,
    duckdb_expert_cube,
    polars_cube,
    pyarrow_floor,
)

RSS_TOOLS = ("baseline", "didcore", "duckdb expert", "duckdb", "polars", "pyarrow floor")
#: Tools timed as whole processes (``--processes``): start, import, read, count, exit.
PROCESS_TOOLS = (
    "didcore",
    "didcore (pyarrow read)",
    "duckdb expert",
    "duckdb",
    "polars",
    "pyarrow floor",
)
LABELS = {
    "didcore": "didcore",
    "didcore (pyarrow read)": "didcore, Parquet read by pyarrow (DIDCORE_PARQUET=pyarrow)",
    "duckdb expert": "DuckDB, expert query (integer keys, one GROUP BY)",
    "duckdb": "DuckDB, per-row joins on the lookups",
    "polars": "polars",
    "pyarrow floor": "pyarrow read (floor)",
}


@dataclass
class Timings:
    """Seconds per run of each tool on one input."""

    rows: int
    source: str  # "parquet", "table (plain)", "table (dictionary)"
    seconds: dict[str, list[float]] = field(default_factory=dict)
    agree: dict[str, str] = field(default_factory=dict)

    def median(self, tool: str) -> float:
        return statistics.median(self.seconds[tool])


def _didcore(source: Any, lookups: Path) -> Any:
    import didcore

    return didcore.aggregate(source, lookups, progress=False)


def _check(tool: str, result: Any, reference: CubeResult | None, rows: int) -> str:
    if tool == "pyarrow floor":
        return "rows ok" if result == rows else f"read {result} rows, not {rows}"
    if reference is None:
        return "reference"
    got = didcore_result(result) if tool == "didcore" else result
    diff = reference.diff(got)
    return "exact" if not diff else f"DIFFERS: {diff}"


def _interleaved(
    tools: dict[str, Callable[[], Any]], repeats: int, timings: Timings, rows: int
) -> None:
    """One warm-up run of each tool (checked against didcore), then ``repeats`` rounds."""
    reference: CubeResult | None = None
    for tool, fn in tools.items():
        result = fn()
        if tool == "didcore":
            reference = didcore_result(result)
            timings.agree[tool] = "reference"
        else:
            timings.agree[tool] = _check(tool, result, reference, rows)
        del result
        timings.seconds[tool] = []
    names = list(tools)
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for tool in order:
            gc.collect()
            start = time.perf_counter()
            result = tools[tool]()
            timings.seconds[tool].append(time.perf_counter() - start)
            del result
        print(
            f"  round {r + 1}/{repeats}: "
            + ", ".join(f"{t} {timings.seconds[t][-1]:.2f}s" for t in names),
            file=sys.stderr,
            flush=True,
        )


def time_parquet(data: BenchData, repeats: int) -> Timings:
    """The four tools on the Parquet extract."""
    timings = Timings(data.rows, "parquet")
    tools: dict[str, Callable[[], Any]] = {
        "didcore": lambda: _didcore(data.extract, data.lookups),
        "duckdb expert": lambda: duckdb_expert_cube(data.extract, data.lookups),
        "duckdb": lambda: duckdb_cube(data.extract, data.lookups),
        "polars": lambda: polars_cube(data.extract, data.lookups),
        "pyarrow floor": lambda: pyarrow_floor(data.extract),
    }
    _interleaved(tools, repeats, timings, data.rows)
    return timings


def time_table(data: BenchData, repeats: int, encoding: str) -> Timings:
    """didcore, DuckDB and polars on the extract already in memory (loaded untimed)."""
    import polars as pl
    import pyarrow.parquet as pq

    dictionary = list(STRING_COLUMNS) if encoding == "dictionary" else None
    table = pq.read_table(data.extract, read_dictionary=dictionary)
    frame = pl.from_arrow(table)
    timings = Timings(data.rows, f"table ({encoding})")
    tools: dict[str, Callable[[], Any]] = {
        "didcore": lambda: _didcore(table, data.lookups),
        "duckdb expert": lambda: duckdb_expert_cube(table, data.lookups),
        "duckdb": lambda: duckdb_cube(table, data.lookups),
        "polars": lambda: polars_cube(frame, data.lookups),
    }
    _interleaved(tools, repeats, timings, data.rows)
    return timings


# ---------------------------------------------------------------------- peak memory


def _child(tool: str, extract: Path, lookups: Path) -> None:
    """Run ``tool`` once (in a fresh process) and print its peak RSS in KiB."""
    import pyarrow.parquet  # noqa: F401  (every tool pays for it; so does the baseline)

    import didcore  # noqa: F401

    if tool == "didcore":
        _didcore(extract, lookups)
    elif tool == "didcore (pyarrow read)":
        os.environ["DIDCORE_PARQUET"] = "pyarrow"
        _didcore(extract, lookups)
    elif tool == "duckdb expert":
        duckdb_expert_cube(extract, lookups)
    elif tool == "duckdb":
        duckdb_cube(extract, lookups)
    elif tool == "polars":
        polars_cube(extract, lookups)
    elif tool == "pyarrow floor":
        pyarrow_floor(extract)
    elif tool != "baseline":
        raise SystemExit(f"unknown tool {tool!r}")
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            print(f"peak_rss_kib={line.split()[1]}")
            return
    import resource  # not Linux: the best there is

    print(f"peak_rss_kib={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}")


def _run_child(tool: str, data: BenchData) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MB) of a subprocess running ``tool`` once."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", tool]
    cmd += ["--extract", str(data.extract), "--lookups", str(data.lookups)]
    start = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - start
    for line in out.splitlines():
        if line.startswith("peak_rss_kib="):
            return wall, int(line.split("=", 1)[1]) / 1024
    raise RuntimeError(f"{' '.join(cmd)} printed no peak RSS: {out!r}")


def peak_rss_mb(tool: str, data: BenchData) -> float:
    """Peak resident memory (MB) of a subprocess running ``tool`` once on ``data``."""
    return _run_child(tool, data)[1]


def time_processes(
    data: BenchData, repeats: int, tools: Sequence[str] = PROCESS_TOOLS
) -> dict[str, list[tuple[float, float]]]:
    """Each tool ``repeats`` times as a whole process (interpreter start, imports, the job,
    exit), interleaved round-robin with the order rotated each round: (wall s, peak MB)."""
    runs: dict[str, list[tuple[float, float]]] = {t: [] for t in tools}
    names = list(tools)
    for r in range(repeats):
        for tool in names[r % len(names) :] + names[: r % len(names)]:
            runs[tool].append(_run_child(tool, data))
        print(
            f"  process round {r + 1}/{repeats}: "
            + ", ".join(f"{t} {runs[t][-1][0]:.2f}s" for t in names),
            file=sys.stderr,
            flush=True,
        )
    return runs


def process_table(by_rows: dict[int, dict[str, list[tuple[float, float]]]]) -> str:
    """Markdown: whole-process median wall seconds, peak RSS and the ratios to didcore."""
    lines = [
        "| rows | tool | median wall s | peak RSS MB | ÷ didcore |",
        "|---:|---|---:|---:|---:|",
    ]
    for rows, runs in sorted(by_rows.items()):
        d = statistics.median(w for w, _ in runs["didcore"])
        for tool, rs in runs.items():
            m = statistics.median(w for w, _ in rs)
            peak = max(p for _, p in rs)
            lines.append(f"| {rows:,} | {LABELS[tool]} | {m:.3f} | {peak:,.0f} | {m / d:.2f} |")
    return "\n".join(lines)


def layout_table(by_rows: dict[int, dict[str, list[tuple[float, float]]]]) -> str:
    """Markdown: didcore and the floor on each layout: median wall, peak RSS, the ratio."""
    lines = [
        "| rows | layout | didcore s | didcore MB | floor s | floor MB | didcore ÷ floor |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for rows, runs in sorted(by_rows.items()):
        for layout in dict.fromkeys(k.split(": ")[0] for k in runs):
            d, f = runs[f"{layout}: didcore"], runs[f"{layout}: pyarrow floor"]
            dm, fm = statistics.median(w for w, _ in d), statistics.median(w for w, _ in f)
            lines.append(
                f"| {rows:,} | {layout} | {dm:.3f} | {max(p for _, p in d):,.0f} | "
                f"{fm:.3f} | {max(p for _, p in f):,.0f} | {dm / fm:.2f} |"
            )
    return "\n".join(lines)


# ---------------------------------------------------------------------- report


def _versions() -> str:
    import duckdb
    import polars
    import pyarrow

    import didcore

    return (
        f"didcore {didcore.__version__}, DuckDB {duckdb.__version__}, polars {polars.__version__}, "
        f"pyarrow {pyarrow.__version__}, Python {platform.python_version()}"
    )


def _cpu() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} logical CPUs ({model})"


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def timings_table(all_timings: Sequence[Timings]) -> str:
    """Markdown: median seconds per tool and the ratios, one row per input and size."""
    lines = [
        "| rows | input | didcore s | DuckDB expert s | DuckDB s | polars s | pyarrow read s | "
        "DuckDB expert ÷ didcore | DuckDB ÷ didcore | polars ÷ didcore | didcore ÷ read |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in all_timings:
        d = t.median("didcore")
        floor = t.median("pyarrow floor") if "pyarrow floor" in t.seconds else None
        lines.append(
            f"| {t.rows:,} | {t.source} | {d:.3f} | {t.median('duckdb expert'):.3f} | "
            f"{t.median('duckdb'):.3f} | "
            f"{t.median('polars'):.3f} | {'' if floor is None else f'{floor:.3f}'} | "
            f"{t.median('duckdb expert') / d:.2f} | "
            f"{t.median('duckdb') / d:.2f} | {t.median('polars') / d:.2f} | "
            f"{'' if floor is None else f'{d / floor:.2f}'} |"
        )
    return "\n".join(lines)


def detail_table(t: Timings) -> str:
    """Markdown: every tool's median, min, throughput and agreement for one input."""
    d = t.median("didcore")
    lines = [
        f"**{t.source}, {t.rows:,} rows** ({len(t.seconds['didcore'])} interleaved runs each)",
        "",
        "| tool | median s | min s | M rows/s | ÷ didcore | cube vs didcore |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for tool, secs in t.seconds.items():
        m = statistics.median(secs)
        lines.append(
            f"| {LABELS[tool]} | {m:.3f} | {min(secs):.3f} | {t.rows / m / 1e6:.1f} | "
            f"{m / d:.2f} | {t.agree[tool]} |"
        )
    return "\n".join(lines)


def rss_table(rss: dict[int, dict[str, float]]) -> str:
    """Markdown: peak RSS (MB) per tool and size."""
    head = "| rows | " + " | ".join(
        "python + imports" if t == "baseline" else LABELS[t] for t in RSS_TOOLS
    )
    lines = [head + " |", "|---:|" + "---:|" * len(RSS_TOOLS)]
    for rows, by_tool in sorted(rss.items()):
        cells = " | ".join(f"{by_tool[t]:,.0f}" for t in RSS_TOOLS)
        lines.append(f"| {rows:,} | {cells} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", nargs="+", default=["1M"], help="extract sizes (1M, 10M, 50M...)")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/didcore-bench"), help="cache folder")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per tool (default 5)")
    ap.add_argument("--rss-rows", nargs="*", help="sizes for peak RSS (default: --rows)")
    ap.add_argument("--no-table", action="store_true", help="skip the in-memory inputs")
    ap.add_argument("--no-rss", action="store_true", help="skip the peak-RSS measurements")
    ap.add_argument(
        "--processes",
        type=int,
        default=0,
        help="also time each tool N times as a whole process (interleaved), at each --rss-rows",
    )
    ap.add_argument(
        "--layouts",
        nargs="*",
        choices=LAYOUTS,
        default=[],
        help="also time didcore and the floor as whole processes on the same rows laid out "
        "as other writers lay them out, at each --rss-rows (3 runs, or --processes)",
    )
    ap.add_argument("--out", type=Path, help="also write the Markdown report here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--extract", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--lookups", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        _child(args.child, args.extract, args.lookups)
        return 0

    sizes = [parse_rows(r) for r in args.rows]
    rss_sizes = sizes if args.rss_rows is None else [parse_rows(r) for r in args.rss_rows]
    load_before = _load()
    started = time.perf_counter()
    all_timings: list[Timings] = []
    for rows in sizes:
        print(f"{rows:,} rows: generating or reusing the extract ...", file=sys.stderr)
        t0 = time.perf_counter()
        data = ensure_bench_data(args.dir, rows)
        print(f"  ready in {time.perf_counter() - t0:.1f}s: {data.extract}", file=sys.stderr)
        print("  parquet", file=sys.stderr)
        all_timings.append(time_parquet(data, args.repeats))
        if not args.no_table:
            for encoding in ("plain", "dictionary"):
                print(f"  table ({encoding})", file=sys.stderr)
                all_timings.append(time_table(data, args.repeats, encoding))
                gc.collect()
    rss: dict[int, dict[str, float]] = {}
    if not args.no_rss:
        for rows in rss_sizes:
            data = ensure_bench_data(args.dir, rows)
            print(f"{rows:,} rows: peak RSS ...", file=sys.stderr)
            rss[rows] = {tool: peak_rss_mb(tool, data) for tool in RSS_TOOLS}
    processes: dict[int, dict[str, list[tuple[float, float]]]] = {}
    if args.processes:
        for rows in rss_sizes:
            data = ensure_bench_data(args.dir, rows)
            print(f"{rows:,} rows: whole processes ...", file=sys.stderr)
            processes[rows] = time_processes(data, args.processes)

    layouts: dict[int, dict[str, list[tuple[float, float]]]] = {}
    for rows in rss_sizes if args.layouts else []:
        for layout in args.layouts:
            data = ensure_layout(ensure_bench_data(args.dir, rows), layout)
            print(f"{rows:,} rows, {layout}: whole processes ...", file=sys.stderr)
            runs = time_processes(data, args.processes or 3, ("didcore", "pyarrow floor"))
            layouts.setdefault(rows, {}).update(
                {f"{layout}: {tool}": r for tool, r in runs.items()}
            )

    parts = [
        f"Machine: {_cpu()}; {_versions()}.",
        f"Load average before: {load_before}; after: {_load()}; "
        f"wall time {time.perf_counter() - started:.0f}s. Extract: {args.dir} "
        f"(codes from {ensure_bench_data(args.dir, sizes[0]).codes}).",
        "",
        "Median seconds over interleaved runs; ratios > 1 mean didcore is faster "
        "(didcore ÷ read: how far didcore is above just reading the columns).",
        "",
        timings_table(all_timings),
    ]
    for t in all_timings:
        parts += ["", detail_table(t)]
    if rss:
        parts += [
            "",
            "Peak RSS (MB) of one run from the Parquet file, each in a fresh process "
            "(python + imports: pyarrow and didcore imported, nothing run).",
            "",
            rss_table(rss),
        ]
    if processes:
        parts += [
            "",
            f"Whole processes ({args.processes} interleaved runs of each; median wall time, "
            "the highest peak RSS): what a user waits for from the command line.",
            "",
            process_table(processes),
        ]
    if layouts:
        parts += [
            "",
            "Other writers' layouts of the same rows (whole processes, interleaved; "
            "`--layouts`, see `benches/_benchdata.py`).",
            "",
            layout_table(layouts),
        ]
    report = "\n".join(parts)
    print(report)
    if args.out:
        args.out.write_text(report + "\n", encoding="utf-8")
    return 0 if all("DIFFERS" not in v for t in all_timings for v in t.agree.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
