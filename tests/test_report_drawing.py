"""Figures drawn in worker processes: the same files as drawn in one process, errors raised in
the parent, the worker count, and a report started from a worker's import refused.

Worker processes cost about half a second each to start, so only the first two tests start
them; the rest use the one-process path (``n_jobs=1``) or no drawing at all.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from _report_fixtures import make_fixture
from didcore.errors import InputError
from didcore.quality import annex_a
from didcore.report import drawing
from didcore.report.pipeline import write_report
from didcore.report.reference import icb_info
from didcore.report.tables import ReportInputs


def _inputs(n_measures: int) -> ReportInputs:
    fx = make_fixture(n_measures=n_measures)
    info = icb_info(fx.cube.icb_codes)
    annex = annex_a(fx.cube, icb_names={c: i.name for c, i in info.items()})
    return ReportInputs(
        cube=fx.cube, rates=fx.rates, ratios=fx.ratios, annex=annex, icbs=info, period="2023/24"
    )


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_worker_processes_write_the_same_figures_as_one_process(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    inputs = _inputs(n_measures=4)  # 12 figures: two workers
    assert drawing.workers_for(2, 12) == 2
    one = write_report(inputs, tmp_path / "one", formats=("png", "svg", "html"), n_jobs=1)
    two = write_report(inputs, tmp_path / "two", formats=("png", "svg", "html"), n_jobs=2)
    a, b = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert sorted(a) == sorted(b)
    assert len([k for k in a if k.startswith("charts/")]) == 24
    differ = [k for k in a if a[k] != b[k]]
    assert differ == [], f"files differ between one process and two workers: {differ}"
    # the same files listed in the same order, and the same figures for the page
    assert [p.relative_to(one.out_dir) for p in one.files] == [
        p.relative_to(two.out_dir) for p in two.files
    ]
    pngs = [(f.id, f.png, f.width, f.height) for fs in one.extra["figures"].values() for f in fs]
    assert pngs == [
        (f.id, f.png, f.width, f.height) for fs in two.extra["figures"].values() for f in fs
    ]


def test_an_error_in_a_worker_is_raised_in_the_parent(tmp_path, monkeypatch):
    monkeypatch.setattr(drawing, "FIGURES_PER_WORKER", 1)
    job = drawing.FigureJob(
        kind="pie",
        measure="X-ray",
        title="Pie 1",
        points=(),
        national_rate=1.0,
        bands=None,
        funnel=None,
        stem=str(tmp_path / "pie"),
        formats=("png",),
        page_png=False,
        dpi=72,
    )
    work = drawing.Drawing([job, job], n_jobs=2)
    try:
        assert work.workers == 2
        with pytest.raises(ValueError, match="unknown figure kind 'pie'"):
            list(work.results())
    finally:
        work.close()


def test_html_only_gets_its_png_back_from_the_drawing(tmp_path):
    """With no PNG file to write, the page's PNG comes back from the drawing itself."""
    result = write_report(_inputs(n_measures=1), tmp_path, formats=("html",), n_jobs=1)
    assert not (tmp_path / "charts").exists()
    figs = [f for fs in result.extra["figures"].values() for f in fs]
    assert len(figs) == 3
    assert all(f.png.startswith(b"\x89PNG") and f.files == [] for f in figs)


@pytest.mark.parametrize(
    ("n_jobs", "figures", "cores", "workers"),
    [
        (None, 42, 2, 2),  # a 14-measure report on two cores
        (None, 42, 64, 7),  # never fewer than FIGURES_PER_WORKER figures a worker
        (1, 42, 2, 1),  # n_jobs=1: this process
        (4, 42, 2, 4),  # n_jobs is obeyed beyond the cores
        (None, 6, 2, 1),  # two measures: not worth a worker's start
        (None, 0, 2, 1),
    ],
)
def test_workers_for(monkeypatch, n_jobs, figures, cores, workers):
    monkeypatch.setattr(drawing, "_cores", lambda: cores)
    assert drawing.workers_for(n_jobs, figures) == workers


def test_a_daemonic_process_draws_in_itself(monkeypatch):
    """A multiprocessing pool's worker may not start processes: it draws the figures itself."""
    monkeypatch.setattr(drawing, "_cores", lambda: 8)
    me = multiprocessing.current_process()
    monkeypatch.setattr(me, "_config", {**me._config, "daemon": True})
    assert drawing.workers_for(None, 42) == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_n_jobs_is_checked(tmp_path, bad: Any):
    with pytest.raises(InputError, match="n_jobs"):
        write_report(_inputs(n_measures=1), tmp_path, formats=("csv",), n_jobs=bad)


def test_a_report_started_by_a_workers_import_is_refused(tmp_path, monkeypatch):
    """A script without ``if __name__ == "__main__":`` runs again in every worker as it
    imports the script: the report it calls there is refused at once, with what to do."""
    monkeypatch.setattr(multiprocessing.current_process(), "_inheriting", True, raising=False)
    with pytest.raises(InputError, match='__name__ == "__main__"'):
        write_report(_inputs(n_measures=1), tmp_path, formats=("csv",))
