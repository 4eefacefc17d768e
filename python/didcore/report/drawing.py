"""Drawing the report's figures, in this process or in worker processes.

Each figure of the publication (a map, a graph and a funnel plot per measure) is independent of
the others, and drawing them is most of a report's time: about 1 s of CPU per measure (0.5 s the
graph, 0.3 s the funnel plot, 0.2 s the map; matplotlib's text layout and rasterising, not the
data), so 13 of the 15 s an England-scale report takes on one core. :class:`Drawing` hands them to
worker processes, one a core, and collects them in order.

Workers are started with the ``forkserver`` method where the platform has it (Linux), else
``spawn``; never ``fork``: the parent has threads by then (pyarrow's pools, didcore's counting
threads) and a forked child of a threaded process can hang on a lock a thread held at the fork.
Either method starts each worker as a fresh interpreter that imports only what drawing needs
(numpy, matplotlib and the chart modules, not pyarrow: about 0.5 s), and imports the main
module as ``__mp_main__``: a script calling :func:`didcore.run_report` must keep the call under
``if __name__ == "__main__":`` (as for any Python multiprocessing), or pass ``n_jobs=1``. A
call made while a worker is starting is refused (:func:`refuse_in_worker_start`), so an
unguarded script fails at once instead of counting its extract again in every worker.

A job (:class:`FigureJob`) is small: the measure's points (one per ICB), its rate bands and a
title; the worker draws the figure, writes its files itself and returns its size. Only the page's
PNG comes back through the pipe, when no PNG file is written. The map geometry is read and
projected once per process (:func:`didcore.report.maps._shapes`, cached) and reused for every
map the process draws; it takes about 30 ms, so a cache on disk would save nothing measurable.

Workers ignore Ctrl-C: the parent gets it, cancels the figures not started and waits for the
ones being drawn (under a second), so no worker writes into an output folder after the parent
has given it up.
"""

from __future__ import annotations

import multiprocessing
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from didcore.errors import InputError

__all__ = ["Drawing", "DrawnFigure", "FigureJob", "draw", "refuse_in_worker_start", "workers_for"]

#: A worker costs about 0.5 s of CPU to start, half a measure's figures: with fewer than this
#: many figures per worker the figures are drawn in this process instead.
FIGURES_PER_WORKER = 6


@dataclass(frozen=True)
class FigureJob:
    """One figure to draw and write: what the worker process receives (a few KB pickled).

    ``kind`` is ``map``, ``graph`` or ``funnel``; ``points`` the measure's
    :class:`~didcore.report.charts.IcbPoint` rows; ``bands`` the map's
    :class:`~didcore.report.maps.RateBands`; ``funnel`` the measure's row of the funnel table.
    ``stem`` is the files' path without suffix, ``formats`` the files to write (``png``,
    ``svg``), and ``page_png`` whether the HTML page needs the PNG.
    """

    kind: str
    measure: str
    title: str
    points: tuple[Any, ...]
    national_rate: float
    bands: Any
    funnel: Mapping[str, Any] | None
    stem: str
    formats: tuple[str, ...]
    page_png: bool
    dpi: int


@dataclass(frozen=True)
class DrawnFigure:
    """A figure drawn: its files, its size on the page (pixels at 100 per inch), and the PNG
    bytes when the page needs a PNG that was not written as a file.
    """

    files: tuple[Path, ...]
    width: int
    height: int
    png: bytes | None


def draw(job: FigureJob) -> DrawnFigure:
    """Draw one figure and write its files (in a worker process, or in this one)."""
    from didcore.report import charts, maps

    if job.kind == "map":
        fig = maps.choropleth(
            {p.code: p.rate for p in job.points}, title=job.title, bands=job.bands
        )
    elif job.kind == "graph":
        fig = charts.bar_chart(
            job.points, national_rate=job.national_rate, title=job.title, measure=job.measure
        )
    elif job.kind == "funnel":
        fig = charts.funnel_plot(
            job.points,
            national_rate=job.national_rate,
            title=job.title,
            measure=job.measure,
            funnel=job.funnel,
        )
    else:
        raise ValueError(f"unknown figure kind {job.kind!r} (map, graph or funnel)")
    # one PNG serves the file and the page (rendering dominates the run time)
    extra = ("png",) if job.page_png and "png" not in job.formats else ()
    rendered = charts.render(fig, job.formats + extra, dpi=job.dpi)
    files = []
    for fmt in job.formats:
        path = Path(f"{job.stem}.{fmt}")
        path.write_bytes(rendered[fmt])
        files.append(path)
    # displayed at 100 px per inch; the 120-dpi image stays sharp when zoomed
    width, height = (round(v * 100) for v in fig.get_size_inches())
    return DrawnFigure(
        files=tuple(files), width=width, height=height, png=rendered["png"] if extra else None
    )


def _cores() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def workers_for(n_jobs: int | None, n_figures: int) -> int:
    """Worker processes for ``n_figures``: ``n_jobs`` (default every core), at most one per
    :data:`FIGURES_PER_WORKER` figures; 1 means drawing in this process.
    """
    if multiprocessing.current_process().daemon:
        return 1  # a daemonic process (a multiprocessing pool's worker) may not have children
    want = _cores() if n_jobs is None else n_jobs
    return max(1, min(want, n_figures // FIGURES_PER_WORKER))


def refuse_in_worker_start(what: str) -> None:
    """Refuse ``what`` (a report) while this process is a worker importing its parent's main
    module: the parent's script calls it at top level, without ``if __name__ == "__main__":``.
    """
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise InputError(
            f"{what} was called while a chart-drawing worker process was starting: the script "
            'that calls it must do so under `if __name__ == "__main__":` (worker processes '
            "import the script), or pass n_jobs=1 to draw the figures in one process"
        )


def _ignore_interrupt() -> None:
    """Worker initialiser: Ctrl-C is the parent's to handle (it stops the workers itself)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _context() -> Any:
    """``forkserver`` where available (Linux), else ``spawn``; never ``fork`` (see above)."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


class Drawing:
    """Figures being drawn: started on creation, collected in order by :meth:`results`.

    With one worker (``n_jobs=1``, or too few figures) nothing starts until :meth:`results`,
    which then draws each figure in this process. Otherwise every figure is submitted to a pool
    of worker processes at once, so they are drawn while the caller writes other files.
    :meth:`close` (always call it, e.g. in ``finally``) cancels what has not started.
    """

    def __init__(self, jobs: Sequence[FigureJob], n_jobs: int | None = None) -> None:
        self.jobs = list(jobs)
        self.workers = workers_for(n_jobs, len(self.jobs))
        self._pool: ProcessPoolExecutor | None = None
        self._futures: list[Future[DrawnFigure]] = []
        if self.workers > 1:
            try:
                self._pool = ProcessPoolExecutor(
                    self.workers, mp_context=_context(), initializer=_ignore_interrupt
                )
                self._futures = [self._pool.submit(draw, job) for job in self.jobs]
            except (OSError, NotImplementedError, BrokenProcessPool) as exc:
                # no processes here (a sandbox without semaphores, a process limit): one core
                self._fall_back(exc)

    def _fall_back(self, exc: BaseException) -> None:
        warnings.warn(
            f"didcore report: chart-drawing processes unavailable ({type(exc).__name__}: "
            f"{exc}); drawing the figures in this process",
            RuntimeWarning,
            stacklevel=3,
        )
        self.close()
        self._futures = []
        self.workers = 1

    def results(self) -> Iterator[DrawnFigure]:
        """Each job's :class:`DrawnFigure`, in the jobs' order (an error in a figure is raised
        here, as drawing it in this process would).
        """
        for i, job in enumerate(self.jobs):
            if i < len(self._futures):
                try:
                    yield self._futures[i].result()
                    continue
                except BrokenProcessPool as exc:
                    # a worker died (killed, out of memory): the rest are drawn here
                    self._fall_back(exc)
            yield draw(job)

    def close(self) -> None:
        """Stop the workers: figures not started are cancelled, ones being drawn finished."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
