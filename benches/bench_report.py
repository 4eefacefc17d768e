"""Benchmarks: the whole publication from a cube file (statistics, tables, workbook, 42 maps,
graphs and funnel plots, HTML), with the figures drawn by worker processes and in one process.

Group ``report (from a cube)``: ``run_report(YearCubes.read(FILE), ...)``, as
``didcore report --cube FILE`` runs it (reading the cube file, guards, statistics, every output),
on a synthetic England extract (``didcore.synth``: every ICB and measure) counted once per
session and written as a cube file:

* ``workers``: the figures drawn in worker processes (``n_jobs=None``, one a core) while the
  tables and workbook are written;
* ``one process``: ``n_jobs=1``, the figures drawn one after another, as before issue 16.

Both must write the same files byte for byte (``SOURCE_DATE_EPOCH`` fixes the one timestamp);
``pytest benches`` (``--benchmark-disable``) runs each once and checks that. Timed:
``pytest benches/bench_report.py --benchmark-enable``. Environment:

* ``DIDCORE_BENCH_REPORT_ROWS`` rows of the synthetic extract (default 1,000,000; the report's
  time barely depends on it: at 5M rows the cube has 97k non-zero cells against 80k at 1M, and
  the figures, four fifths of the time, are the same 42);
* ``DIDCORE_BENCH_DIR`` keeps the extract between sessions (as for the other benchmarks);
* ``DIDCORE_BENCH_ROUNDS`` timed rounds (default 5, after one warm-up round).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import didcore
from _benchdata import parse_rows
from didcore.report.pipeline import ReportResult, run_report

GROUP = "report (from a cube)"


def _rows() -> int:
    return parse_rows(os.environ.get("DIDCORE_BENCH_REPORT_ROWS", "1M"))


@pytest.fixture(scope="module")
def counted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The synthetic extract counted into a cube file, with its lookups and population file."""
    from didcore.synth import write_synthetic

    rows = _rows()
    folder = os.environ.get("DIDCORE_BENCH_DIR")
    root = (
        Path(folder) / f"report-synth-{rows}" if folder else tmp_path_factory.mktemp("report-synth")
    )
    if not (root / "truth.json").is_file():  # written last: a complete folder
        write_synthetic(root, rows=rows, seed=0)
    cube_file = root / "cubes.didcube"
    if not cube_file.is_file():
        years = didcore.aggregate(
            str(root / "extract"), str(root / "lookups"), by_year=True, progress=False
        )
        years.write(cube_file)
    return {"cube": cube_file, "lookups": root / "lookups", "population": root / "population.csv"}


def _report(counted: dict[str, Path], out: Path, n_jobs: int | None) -> ReportResult:
    """``didcore report --cube FILE``: read the cubes, statistics, tables, figures, HTML."""
    return run_report(
        didcore.YearCubes.read(counted["cube"]),
        lookups=counted["lookups"],
        population=counted["population"],
        out_dir=out,
        quiet=True,
        n_jobs=n_jobs,
    )


_written: dict[str, Path] = {}


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("how", ["workers", "one process"])
def test_report_from_a_cube(
    benchmark: Any,
    counted: dict[str, Path],
    pedantic: dict[str, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    out = tmp_path / "report"
    n_jobs = None if how == "workers" else 1
    result = benchmark.pedantic(_report, args=(counted, out, n_jobs), **pedantic)
    assert "42 ICBs" in result.summary and "14 measures" in result.summary
    charts = sorted(p.name for p in (out / "charts").iterdir())
    assert len(charts) == 14 * 3 * 2  # map, graph, funnel plot per measure; PNG and SVG
    assert (out / "report.html").stat().st_size > 1_000_000  # the 42 PNGs are in the page
    listed = {p.relative_to(out) for p in result.files}
    assert listed == {p.relative_to(out) for p in out.rglob("*") if p.is_file()} - {
        Path(".didcore-output")  # the folder's marker, not an output
    }
    _written[how] = out


def test_workers_write_what_one_process_writes() -> None:
    """The two benchmarks' outputs, file for file (run after them, in this module's order)."""
    if set(_written) != {"workers", "one process"}:
        pytest.skip("needs both report benchmarks to have run in this session")
    a, b = _written["workers"], _written["one process"]
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    differ = [str(f) for f in files if (a / f).read_bytes() != (b / f).read_bytes()]
    assert differ == []
