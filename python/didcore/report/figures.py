"""The publication's figures: a graph, a map and a funnel plot per measure, with alt texts.

:func:`draw_figures` turns the report's tables into figures (drawn by :mod:`didcore.report.charts`
and :mod:`didcore.report.maps`), writes them as ``charts/{graph,map,funnel}_NN_<measure>.{png,svg}``
and returns their PNGs with captions and alt texts for the HTML page. The alt text of each figure
says in words what it shows (highest and lowest ICB, how many in each band, which ICBs are outside
the funnel limits). The drawing itself is :mod:`didcore.report.drawing`'s, in worker processes:
:func:`start_figures` starts it, so the caller can write the tables and workbook meanwhile, and
:meth:`PendingFigures.collect` waits for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from didcore.report.drawing import Drawing
    from didcore.report.pipeline import _Steps

__all__ = ["PendingFigures", "draw_figures", "start_figures"]

# Resolution of the PNG charts: sharp on screen and in print at A4 width, and light enough for
# 42 of them to be embedded in the HTML page.
_DPI = 120


def _points(rows: Sequence[Mapping[str, Any]], icbs: Mapping[str, Any]) -> list[Any]:
    from didcore.report.charts import IcbPoint

    out = []
    for r in rows:
        info = icbs.get(r["icb_code"])
        out.append(
            IcbPoint(
                code=r["icb_code"],
                label=info.short_name if info else r["icb_code"],
                region=info.region if info else "",
                observed=r.get("observed"),
                expected=r.get("expected"),
                rate=r.get("standardised_rate"),
                lower=r.get("sr_lower_95"),
                upper=r.get("sr_upper_95"),
                funnel=r.get("funnel_998"),
            )
        )
    return out


def _alt_bar(measure: str, points: Sequence[Any], national: float) -> str:
    from didcore.report.fmt import fmt_rate, is_missing

    shown = sorted((p for p in points if not is_missing(p.rate)), key=lambda p: -p.rate)
    if not shown:
        return f"Bar chart of standardised {measure} rates by ICB: no rates to show."
    above = sum(p.rate > national for p in shown)
    return (
        f"Horizontal bar chart of standardised {measure} rates per 10,000 for {len(shown)} "
        f"ICBs, highest first, coloured by NHS region, with 95% confidence intervals. Highest: "
        f"{shown[0].label} ({fmt_rate(shown[0].rate)}); lowest: {shown[-1].label} "
        f"({fmt_rate(shown[-1].rate)}). A dashed line marks the national rate, "
        f"{fmt_rate(national)}; {above} ICBs are above it."
    )


def _alt_map(measure: str, points: Sequence[Any], bands: Any) -> str:
    from didcore.report.fmt import is_missing

    counts = [0] * len(bands.labels)
    for p in points:
        if not is_missing(p.rate):
            counts[bands.index(float(p.rate))] += 1
    parts = [f"{label}: {n} ICBs" for label, n in zip(bands.labels, counts, strict=True)]
    return (
        f"Map of England's ICBs shaded by standardised {measure} rate per 10,000, in "
        f"{len(bands.labels)} bands from light (low) to dark (high), with London enlarged. "
        + "; ".join(parts)
        + "."
    )


def _alt_funnel(measure: str, points: Sequence[Any]) -> str:
    high = sorted(p.label for p in points if p.funnel == "high")
    low = sorted(p.label for p in points if p.funnel == "low")
    text = (
        f"Funnel plot of standardised {measure} rates against expected number of tests, with "
        f"95% and 99.8% control limits around the national rate. {len(high)} ICBs are above "
        f"the 99.8% limits and {len(low)} below."
    )
    if 0 < len(high) <= 6:
        text += f" Above: {', '.join(high)}."
    if 0 < len(low) <= 6:
        text += f" Below: {', '.join(low)}."
    return text


class PendingFigures:
    """The figures of a report being drawn (see :func:`start_figures`)."""

    def __init__(
        self,
        drawing: Drawing,
        pages: list[tuple[str, str, str, str, list[tuple[str, str]]]],
        want_html: bool,
    ) -> None:
        self._drawing = drawing
        # per figure: measure, element id, caption, alt text, links to its files
        self._pages = pages
        self._want_html = want_html

    def collect(self, steps: _Steps) -> tuple[list[Path], dict[str, list[Any]]]:
        """Wait for every figure, in order: the files written, and PNGs for the HTML page
        (one progress step per measure, after its three figures).
        """
        from didcore.report.html import FigureImage

        written: list[Path] = []
        figures: dict[str, list[Any]] = {}
        results = self._drawing.results()
        for n, ((measure, fig_id, caption, alt, links), drawn) in enumerate(
            zip(self._pages, results, strict=True), start=1
        ):
            written += drawn.files
            if self._want_html:
                png = drawn.png
                if png is None:
                    png = next(f for f in drawn.files if f.suffix == ".png").read_bytes()
                figures.setdefault(measure, []).append(
                    FigureImage(
                        id=fig_id,
                        caption=caption,
                        alt=alt,
                        png=png,
                        width=drawn.width,
                        height=drawn.height,
                        files=links,
                    )
                )
            if n % 3 == 0:
                steps.step(f"charts: {measure}")
        return written, figures

    def close(self) -> None:
        """Stop the drawing (figures not started are cancelled); safe to call twice."""
        self._drawing.close()


def start_figures(
    tables: Mapping[str, pa.Table],
    icbs: Mapping[str, Any],
    out_dir: Path,
    formats: tuple[str, ...],
    period: str | None,
    *,
    measures: Sequence[str] | None = None,
    n_jobs: int | None = None,
) -> PendingFigures:
    """Start drawing the graphs, maps and funnel plots of every measure (see
    :mod:`didcore.report.drawing`: in ``n_jobs`` worker processes, default one a core, or in
    this process when ``n_jobs`` is 1); :meth:`PendingFigures.collect` waits for them.
    """
    from didcore.report import maps
    from didcore.report.drawing import Drawing, FigureJob
    from didcore.report.fmt import slug

    file_formats = tuple(f for f in ("png", "svg") if f in formats)
    want_html = "html" in formats
    national = {r["measure"]: r for r in tables["national_rates"].to_pylist()}
    funnel_rows: dict[str, dict[str, Any]] = {}
    for r in tables["funnel"].to_pylist():
        funnel_rows.setdefault(r["measure"], r)
    by_measure: dict[str, list[dict[str, Any]]] = {}
    for r in tables["icb_rates"].to_pylist():
        by_measure.setdefault(r["measure"], []).append(r)
    chart_dir = out_dir / "charts"
    if file_formats:
        chart_dir.mkdir(parents=True, exist_ok=True)
    period_sfx = f", {period}" if period else ""
    jobs: list[FigureJob] = []
    pages: list[tuple[str, str, str, str, list[tuple[str, str]]]] = []
    names = list(national)
    for number, measure in enumerate(names, start=1):
        if measures is not None and measure not in measures:
            continue
        points = tuple(_points(by_measure.get(measure, []), icbs))
        rate = national[measure]["rate_per_10000"]
        n_rate = float(rate) if rate is not None else 0.0
        bands = maps.rate_bands([p.rate for p in points])
        specs = (
            (
                "map",
                f"Map {number}. Standardised {measure} rates by ICB{period_sfx}",
                _alt_map(measure, points, bands),
            ),
            (
                "graph",
                f"Graph {number}. Standardised {measure} rates by ICB{period_sfx}",
                _alt_bar(measure, points, n_rate),
            ),
            (
                "funnel",
                f"Funnel plot {number}. {measure}: standardised rate against expected tests"
                f"{period_sfx}",
                _alt_funnel(measure, points),
            ),
        )
        for kind, caption, alt in specs:
            stem = f"{kind}_{number:02d}_{slug(measure)}"
            jobs.append(
                FigureJob(
                    kind=kind,
                    measure=measure,
                    title=caption,
                    points=points,
                    national_rate=n_rate,
                    bands=bands if kind == "map" else None,
                    funnel=funnel_rows.get(measure) if kind == "funnel" else None,
                    stem=str(chart_dir / stem),
                    formats=file_formats,
                    page_png=want_html,
                    dpi=_DPI,
                )
            )
            links = [(fmt.upper(), f"charts/{stem}.{fmt}") for fmt in file_formats]
            pages.append((measure, f"{kind}-{number:02d}", caption, alt, links))
    return PendingFigures(Drawing(jobs, n_jobs), pages, want_html)


def draw_figures(
    tables: Mapping[str, pa.Table],
    icbs: Mapping[str, Any],
    out_dir: Path,
    formats: tuple[str, ...],
    period: str | None,
    steps: _Steps,
    measures: Sequence[str] | None = None,
    n_jobs: int | None = None,
) -> tuple[list[Path], dict[str, list[Any]]]:
    """Graphs, maps and funnel plots per measure: files, and PNGs for the HTML page
    (:func:`start_figures`, then :meth:`PendingFigures.collect`).
    """
    pending = start_figures(
        tables, icbs, out_dir, formats, period, measures=measures, n_jobs=n_jobs
    )
    try:
        return pending.collect(steps)
    finally:
        pending.close()
