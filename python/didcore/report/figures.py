"""The publication's figures: a graph, a map and a funnel plot per measure, with alt texts.

:func:`draw_figures` turns the report's tables into figures (drawn by :mod:`didcore.report.charts`
and :mod:`didcore.report.maps`), writes them as ``charts/{graph,map,funnel}_NN_<measure>.{png,svg}``
and returns their PNGs with captions and alt texts for the HTML page. The alt text of each figure
says in words what it shows (highest and lowest ICB, how many in each band, which ICBs are outside
the funnel limits).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from didcore.report.pipeline import _Steps

__all__ = ["draw_figures"]

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


def draw_figures(
    tables: Mapping[str, pa.Table],
    icbs: Mapping[str, Any],
    out_dir: Path,
    formats: tuple[str, ...],
    period: str | None,
    steps: _Steps,
    measures: Sequence[str] | None = None,
) -> tuple[list[Path], dict[str, list[Any]]]:
    """Graphs, maps and funnel plots per measure: files, and PNGs for the HTML page."""
    from didcore.report import charts, maps
    from didcore.report.fmt import slug
    from didcore.report.html import FigureImage

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
    written: list[Path] = []
    figures: dict[str, list[Any]] = {}
    names = list(national)
    for number, measure in enumerate(names, start=1):
        if measures is not None and measure not in measures:
            continue
        points = _points(by_measure.get(measure, []), icbs)
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
            if kind == "map":
                fig = maps.choropleth({p.code: p.rate for p in points}, title=caption, bands=bands)
            elif kind == "graph":
                fig = charts.bar_chart(points, national_rate=n_rate, title=caption, measure=measure)
            else:
                fig = charts.funnel_plot(
                    points,
                    national_rate=n_rate,
                    title=caption,
                    measure=measure,
                    funnel=funnel_rows.get(measure),
                )
            stem = f"{kind}_{number:02d}_{slug(measure)}"
            # one PNG serves the file and the page (rendering dominates the run time)
            render_formats = file_formats + (("png",) if want_html and "png" not in formats else ())
            rendered = charts.render(fig, render_formats, dpi=_DPI)
            links = []
            for fmt in file_formats:
                path = chart_dir / f"{stem}.{fmt}"
                path.write_bytes(rendered[fmt])
                written.append(path)
                links.append((fmt.upper(), f"charts/{stem}.{fmt}"))
            if want_html:
                png = rendered["png"]
                # displayed at 100 px per inch; the 120-dpi image stays sharp when zoomed
                width, height = (round(v * 100) for v in fig.get_size_inches())
                figures.setdefault(measure, []).append(
                    FigureImage(
                        id=f"{kind}-{number:02d}",
                        caption=caption,
                        alt=alt,
                        png=png,
                        width=width,
                        height=height,
                        files=links,
                    )
                )
        steps.step(f"charts: {measure}")
    return written, figures
