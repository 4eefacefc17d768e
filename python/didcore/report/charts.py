"""Charts: ICBs ordered by standardised rate (Graphs 1-14) and funnel plots, with matplotlib.

Matplotlib is imported inside the functions (with the non-interactive Agg backend), so
``import didcore`` stays fast. Figures are made from plain Python rows, taken from the published
``icb_rates`` table, so charts show exactly what the tables publish (a suppressed rate has no
bar). :func:`render` writes PNG and SVG bytes that are identical from run to run.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from didcore.report.fmt import (
    OKABE_ITO,
    REGION_ORDER,
    as_float,
    fmt_rate,
    is_missing,
    mpl_style,
    region_colour,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.text import Text

__all__ = ["IcbPoint", "bar_chart", "funnel_limits", "funnel_plot", "render", "set_title"]

_HIGH = OKABE_ITO[5]  # vermillion
_LOW = OKABE_ITO[4]  # blue
_WITHIN = "#8c8c8c"


@dataclass(frozen=True)
class IcbPoint:
    """One ICB's published figures for one measure."""

    code: str
    label: str
    region: str
    observed: float | None
    expected: float | None
    rate: float | None
    lower: float | None
    upper: float | None
    funnel: str | None


def _figure(width: float, height: float) -> Figure:
    """A new figure that is not registered with pyplot (no global state, nothing to close)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def set_title(
    fig: Figure, title: str, *, x: float = 0.01, y: float | None = None, fontsize: float = 11.0
) -> Text:
    """The figure's title at its top left, wrapped onto as many lines as it needs to fit.

    The title is measured with the Agg renderer and re-wrapped (:func:`textwrap.fill`, at the
    number of characters that fit) until its widest line ends at least 1% of the figure width
    before the right edge, so a long title ("Funnel plot 13. Computerised Tomography: ...") is
    never cut off. Measuring, not counting characters, because bold DejaVu Sans glyphs differ in
    width. With ``y=None`` a constrained-layout figure places the title and makes room for all
    its lines (it reserves none for a title at an explicit ``y``); fixed-layout figures (the
    maps) give ``y`` and move their axes down with :func:`title_bottom`.
    """
    import textwrap

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    where: dict[str, float] = {"x": x} if y is None else {"x": x, "y": y}
    text = fig.suptitle(title, ha="left", va="top", fontsize=fontsize, fontweight="bold", **where)
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    room = fig.bbox.width * (1.0 - x - 0.01)
    chars = len(title)
    while chars > 8:
        extent = text.get_window_extent(renderer)
        if extent.width <= room:
            break
        longest = max(len(line) for line in text.get_text().split("\n"))
        chars = max(8, min(longest - 1, int(longest * room / extent.width)))
        text.set_text(textwrap.fill(title, chars, break_long_words=False))
    return text


def title_bottom(fig: Figure, text: Text) -> float:
    """Where the title ends, as a fraction of the figure height from the bottom (0-1)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    extent = text.get_window_extent(canvas.get_renderer())
    return float(extent.y0 / fig.bbox.height)


def render(fig: Figure, formats: Iterable[str], dpi: int = 120) -> dict[str, bytes]:
    """The figure as bytes per format (``png``, ``svg``), reproducibly.

    SVG gets no date and a fixed hash salt; PNG carries only matplotlib's Software tag.
    """
    import matplotlib

    out: dict[str, bytes] = {}
    with matplotlib.rc_context(mpl_style()):
        for fmt in formats:
            buf = io.BytesIO()
            if fmt == "svg":
                fig.savefig(buf, format="svg", metadata={"Date": None})
            elif fmt == "png":
                fig.savefig(buf, format="png", dpi=dpi)
            else:
                raise ValueError(f"unknown chart format {fmt!r} (use png or svg)")
            out[fmt] = buf.getvalue()
    return out


def bar_chart(
    points: Sequence[IcbPoint],
    *,
    national_rate: float,
    title: str,
    measure: str,
) -> Figure:
    """ICBs ordered by standardised rate, 95% confidence bars, the national rate as a line.

    Bars are coloured by NHS region (Okabe-Ito colours, with a legend), so regional patterns
    show; the highest rate is at the top.
    """
    import matplotlib

    with matplotlib.rc_context(mpl_style()):
        shown = sorted(
            points,
            key=lambda p: (is_missing(p.rate), -(p.rate or 0.0), p.label),
        )
        n = len(shown)
        fig = _figure(8.0, max(4.0, 1.2 + 0.2 * n))
        ax = fig.add_subplot()
        ys = list(range(n))
        rates = [0.0 if is_missing(p.rate) else as_float(p.rate) for p in shown]
        colours = [region_colour(p.region) for p in shown]
        ax.barh(ys, rates, color=colours, edgecolor="#404040", linewidth=0.3, height=0.75)
        lo_err, hi_err, err_y = [], [], []
        for y, p in zip(ys, shown, strict=True):
            if is_missing(p.rate) or is_missing(p.lower) or is_missing(p.upper):
                continue
            err_y.append(y)
            lo_err.append(max(as_float(p.rate) - as_float(p.lower), 0.0))
            hi_err.append(max(as_float(p.upper) - as_float(p.rate), 0.0))
        if err_y:
            ax.errorbar(
                [rates[y] for y in err_y],
                err_y,
                xerr=[lo_err, hi_err],
                fmt="none",
                ecolor="#1a1a1a",
                elinewidth=0.8,
                capsize=1.5,
                capthick=0.8,
            )
        labels = [p.label + (" (suppressed)" if is_missing(p.rate) else "") for p in shown]
        ax.set_yticks(ys, labels)
        ax.set_ylim(n - 0.4, -0.6)  # highest rate at the top
        ax.axvline(national_rate, color="black", linestyle="--", linewidth=1.1)
        ax.text(
            national_rate,
            -0.9,
            f" England {fmt_rate(national_rate)}",
            ha="left",
            va="bottom",
            fontsize=8,
            clip_on=False,
        )
        ax.set_xlabel(f"Standardised {measure} rate per 10,000 population")
        ax.grid(axis="x", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.xaxis.set_major_formatter(
            matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:,.0f}" if v >= 10 else f"{v:g}")
        )
        present = [r for r in REGION_ORDER if any(p.region == r for p in shown)]
        present += sorted({p.region for p in shown} - set(REGION_ORDER))
        handles: list[Any] = [
            matplotlib.patches.Patch(facecolor=region_colour(r), edgecolor="#404040", label=r)
            for r in present
        ]
        handles.append(
            matplotlib.lines.Line2D(
                [], [], color="black", linestyle="--", label="National (England) rate"
            )
        )
        handles.append(
            matplotlib.lines.Line2D(
                [],
                [],
                color="#1a1a1a",
                marker="|",
                markersize=8,
                linestyle="-",
                linewidth=0.8,
                label="95% confidence interval",
            )
        )
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=3,
            title="NHS region",
            title_fontsize=8,
        )
        set_title(fig, title)
    return fig


def funnel_limits(
    expected: Sequence[float], level: float, funnel: Mapping[str, Any] | None = None
) -> tuple[list[float], list[float]]:
    """Control limits for O/E at each expected count, as ratios (1 = the national rate).

    The limits are :func:`didcore.stats.funnel_limits`, the ones the statistics flag ICBs
    against: exact (interpolated) Poisson limits, or, when the measure's row of the funnel table
    carries an overdispersion estimate (``tau2`` > 0, with its ``scale``), Spiegelhalter's
    random-effects limits back-transformed to the ratio scale.
    """
    from didcore.stats import funnel_limits as limits

    row = funnel or {}
    raw = row.get("tau2")
    tau2 = 0.0 if is_missing(raw) else max(as_float(raw), 0.0)
    scale = str(row.get("scale") or "sqrt")
    method = str(row.get("limits") or "didcore")  # "funnelplotr": FunnelPlotR-compatible limits
    lower, upper = limits(list(expected), level, tau2=tau2, scale=scale, method=method)  # type: ignore[arg-type]
    return [float(v) for v in lower], [float(v) for v in upper]


def _label_outliers(ax: Any, shown: Sequence[IcbPoint], national_rate: float) -> None:
    """Name the points furthest outside the 99.8% limits, skipping labels that would collide.

    At most eight are named (a wall of labels helps nobody); each label goes above its point,
    or below when that spot is taken, or is left out when both are.
    """
    outside = [p for p in shown if (p.funnel or "within") != "within"]
    outside.sort(key=lambda p: (-abs(as_float(p.rate) - national_rate), p.label))
    boxes: list[tuple[float, float, float, float]] = []
    to_axes = ax.transAxes.inverted()
    for p in outside:
        if len(boxes) >= 8:
            break
        x, y = to_axes.transform(ax.transData.transform((as_float(p.expected), as_float(p.rate))))
        width = 0.0088 * len(p.label) + 0.01  # 7-point text on an 8-inch figure
        # near the right edge the label goes to the left of its point, inside the axes
        left = x + width > 0.99
        x0 = x - width if left else x
        for dy, y0 in ((4, y + 0.008), (-11, y - 0.04)):
            box = (x0, y0, x0 + width, y0 + 0.032)
            clash = any(
                box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in boxes
            )
            if not clash:
                boxes.append(box)
                ax.annotate(
                    p.label,
                    (as_float(p.expected), as_float(p.rate)),
                    xytext=(-4 if left else 4, dy),
                    textcoords="offset points",
                    ha="right" if left else "left",
                    fontsize=7,
                    color="#1a1a1a",
                )
                break


def funnel_plot(
    points: Sequence[IcbPoint],
    *,
    national_rate: float,
    title: str,
    measure: str,
    funnel: Mapping[str, Any] | None = None,
) -> Figure:
    """Standardised rate against expected count, with 95% and 99.8% control limits.

    Points outside the 99.8% limits (as flagged by the statistics, ``funnel_998``) are drawn as
    up/down triangles in distinct colours (shape as well as colour, for colour-blind readers)
    and labelled.
    """
    import matplotlib
    import numpy as np

    with matplotlib.rc_context(mpl_style()):
        fig = _figure(8.0, 5.6)
        ax = fig.add_subplot()
        shown = [
            p
            for p in points
            if not is_missing(p.rate) and not is_missing(p.expected) and as_float(p.expected) > 0
        ]
        if shown:
            e_vals = [as_float(p.expected) for p in shown]
            e_min, e_max = min(e_vals), max(e_vals)
            log_x = e_max / max(e_min, 1e-9) > 20
            lo_e = max(e_min * (0.5 if log_x else 0.8), 0.5)
            hi_e = e_max * (1.6 if log_x else 1.1)
            grid = (
                np.geomspace(lo_e, hi_e, 200) if log_x else np.linspace(lo_e, hi_e, 200)
            ).tolist()
            narrowest_upper = national_rate
            raw_tau2 = (funnel or {}).get("tau2")
            adjusted = not is_missing(raw_tau2) and as_float(raw_tau2) > 0
            # say which limits these are: Poisson, or widened for overdispersion
            kind = " (overdispersion-adjusted)" if adjusted else " (Poisson)"
            if (funnel or {}).get("limits") == "funnelplotr":
                kind = " (FunnelPlotR-compatible" + (", adjusted)" if adjusted else ")")
            for level, style, label in (
                (0.95, ":", "95% limits" + kind),
                (0.998, "-", "99.8% limits" + kind),
            ):
                lo, hi = funnel_limits(grid, level, funnel)
                narrowest_upper = max(narrowest_upper, national_rate * hi[-1])
                ax.plot(grid, [national_rate * v for v in lo], style, color="#555555", lw=1)
                ax.plot(
                    grid, [national_rate * v for v in hi], style, color="#555555", lw=1, label=label
                )
            ax.axhline(national_rate, color="black", linewidth=1.8, label="National rate")
            groups = (
                ("within", _WITHIN, "o", "Within 99.8% limits"),
                ("high", _HIGH, "^", "Above 99.8% limits"),
                ("low", _LOW, "v", "Below 99.8% limits"),
            )
            for flag, colour, marker, label in groups:
                sel = [p for p in shown if (p.funnel or "within") == flag]
                if sel:
                    ax.scatter(
                        [as_float(p.expected) for p in sel],
                        [as_float(p.rate) for p in sel],
                        c=colour,
                        marker=marker,
                        s=34,
                        edgecolors="#1a1a1a",
                        linewidths=0.5,
                        label=f"{label} ({len(sel)})",
                        zorder=3,
                    )
            if log_x:
                ax.set_xscale("log")
            ax.set_xlim(lo_e, hi_e)
            rates = [as_float(p.rate) for p in shown]
            ymin = min(min(rates), national_rate) * 0.85
            # room for the points and for the 99.8% limits where the funnel is narrowest
            ymax = max(max(rates) * 1.1, narrowest_upper * 1.05)
            # a little room below zero so markers at 0 are not cut in half
            ax.set_ylim(max(ymin, 0.0) - 0.02 * ymax, ymax)
            _label_outliers(ax, shown, national_rate)
        ax.set_xlabel(
            f"Expected number of {measure} tests" + (" (log scale)" if shown and log_x else "")
        )
        ax.xaxis.set_major_formatter(
            matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:,.0f}" if v >= 1 else f"{v:g}")
        )
        ax.set_ylabel("Standardised rate per 10,000")
        ax.yaxis.set_major_formatter(
            matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:,.0f}" if v >= 10 else f"{v:g}")
        )
        ax.grid(color="#e5e5e5", linewidth=0.6)
        ax.set_axisbelow(True)
        # a measure with no ICB points (no tests at all) has nothing to put in a legend
        if ax.get_legend_handles_labels()[0]:
            fig.legend(loc="outside lower center", ncols=3)
        set_title(fig, title)
    return fig
