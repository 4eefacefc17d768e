"""Benchmarks: the whole publication from a counted cube (statistics, tables, workbook, 42 maps,
graphs and funnel plots, HTML), with the figures drawn by worker processes and in one process.

Group ``report (from a cube)``: ``Population.read`` -> ``standardise`` -> ``rates_ratios`` ->
Annex A -> ``write_report``, everything ``run_report`` does after counting, on a synthetic
England extract (``didcore.synth``: every ICB and measure) counted once per session:

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
from didcore.lookup import as_lookups
from didcore.population import Population
from didcore.quality import annex_a
from didcore.ratios import rates_ratios
from didcore.report.pipeline import ReportResult, write_report
from didcore.report.reference import icb_info, provider_names
from didcore.report.tables import ReportInputs
from didcore.standardise import standardise

GROUP = "report (from a cube)"


def _rows() -> int:
    return parse_rows(os.environ.get("DIDCORE_BENCH_REPORT_ROWS", "1M"))


@pytest.fixture(scope="module")
def counted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The synthetic extract counted into a cube, with its lookups and population file."""
    from didcore.synth import write_synthetic

    rows = _rows()
    folder = os.environ.get("DIDCORE_BENCH_DIR")
    root = (
        Path(folder) / f"report-synth-{rows}" if folder else tmp_path_factory.mktemp("report-synth")
    )
    if not (root / "truth.json").is_file():  # written last: a complete folder
        write_synthetic(root, rows=rows, seed=0)
    lookups = as_lookups(root / "lookups")
    cube = didcore.aggregate(str(root / "extract"), lookups, progress=False)
    assert len(cube.icb_codes) == 42 and len(cube.measures) == 14
    return {"cube": cube, "lookups": lookups, "population": root / "population.csv"}


def _report(counted: dict[str, Any], out: Path, n_jobs: int | None) -> ReportResult:
    """Everything after counting: statistics, tables, workbook, figures, HTML."""
    cube, lookups = counted["cube"], counted["lookups"]
    pop = Population.read(counted["population"], cube.icb_codes)
    rates = standardise(cube, pop)
    ratios = rates_ratios(cube, pop)
    info = icb_info(cube.icb_codes, lookups.icb_names, lookups.icb_regions)
    annex = annex_a(
        cube, provider_names=provider_names(), icb_names={c: i.name for c, i in info.items()}
    )
    inputs = ReportInputs(
        cube=cube, rates=rates, ratios=ratios, annex=annex, icbs=info, period="2023/24"
    )
    return write_report(inputs, out, quiet=True, n_jobs=n_jobs)


_written: dict[str, Path] = {}


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("how", ["workers", "one process"])
def test_report_from_a_cube(
    benchmark: Any,
    counted: dict[str, Any],
    pedantic: dict[str, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    out = tmp_path / "report"
    n_jobs = None if how == "workers" else 1
    result = benchmark.pedantic(_report, args=(counted, out, n_jobs), **pedantic)
    charts = sorted(p.name for p in (out / "charts").iterdir())
    assert len(charts) == 14 * 3 * 2  # map, graph, funnel plot per measure; PNG and SVG
    assert (out / "report.html").stat().st_size > 1_000_000  # the 42 PNGs are in the page
    assert len(result.files) == len(list(p for p in out.rglob("*") if p.is_file()))
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
