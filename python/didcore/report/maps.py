"""Choropleth maps of England by ICB (Maps 1-14), drawn with matplotlib from the shipped GeoJSON.

The boundaries are ONS *Integrated Care Boards (July 2022) EN BUC* in WGS84. They are drawn in a
simple equirectangular projection, x = longitude x cos(53 deg), y = latitude, which at England's
latitudes looks like the British National Grid without needing a projection library. London's
five ICBs are small, so they are repeated, enlarged, in an inset.

Rates are shown in five bands with round-number edges near the quintiles of the ICB rates, from a
colour-blind-safe sequential palette (ColorBrewer YlGnBu, light = low, dark = high); an ICB with no
published rate is hatched grey.
"""

from __future__ import annotations

import itertools
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from didcore.report.charts import set_title, title_bottom
from didcore.report.fmt import as_float, fmt_rate, is_missing, mpl_style
from didcore.report.reference import load_boundaries, short_name

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["RateBands", "choropleth", "hex_map", "rate_bands"]

_COS_LAT = math.cos(math.radians(53.0))
_NO_DATA = "#e6e6e6"


@dataclass(frozen=True)
class RateBands:
    """Band edges (ascending, the inner ones), colours and legend labels."""

    edges: tuple[float, ...]
    colours: tuple[str, ...]
    labels: tuple[str, ...]

    def index(self, value: float) -> int:
        """The band of ``value`` (band i holds edges[i-1] <= value < edges[i])."""
        return sum(value >= e for e in self.edges)


def _nice(value: float, digits: int = 2) -> float:
    """Round to ``digits`` significant figures (3,551 -> 3,600 at 2; 8.43 -> 8.4)."""
    if value <= 0:
        return 0.0
    return round(value, digits - 1 - math.floor(math.log10(value)))


def _fmt_edge(value: float) -> str:
    """A band edge with as many decimals as it has (43.5 stays 43.5, not "44")."""
    for decimals in (0, 1, 2, 3):
        if abs(value - round(value, decimals)) < 1e-9 * max(abs(value), 1.0):
            return f"{value:,.{decimals}f}"
    return fmt_rate(value)


def rate_bands(values: Sequence[float | None], n: int = 5) -> RateBands:
    """Up to ``n`` bands with round-number edges at the quantiles of ``values``.

    Edges are the quantiles rounded to two significant figures, or three or four when the
    rates are too close together for two to keep the bands apart.
    """
    import matplotlib
    import numpy as np

    vals = np.array([v for v in values if not is_missing(v)], dtype=float)
    edges: list[float] = []
    if vals.size:
        quantiles = np.quantile(vals, [k / n for k in range(1, n)])
        for digits in (2, 3, 4):
            trial: list[float] = []
            for q in quantiles:
                e = _nice(float(q), digits)
                if vals.min() < e <= vals.max() and (not trial or e > trial[-1]):
                    trial.append(e)
            if len(trial) > len(edges):
                edges = trial
            if len(edges) == n - 1:
                break
    k = len(edges) + 1
    cmap = matplotlib.colormaps["YlGnBu"]
    # light end kept off white so the lowest band stands out from the "no rate" grey
    colours = tuple(
        matplotlib.colors.to_hex(cmap(0.18 + 0.77 * i / max(k - 1, 1))) for i in range(k)
    )
    labels: tuple[str, ...]
    if not edges:
        labels = (f"{fmt_rate(vals.min())} to {fmt_rate(vals.max())}" if vals.size else "All",)
    else:
        labels = (
            f"Under {_fmt_edge(edges[0])}",
            *(f"{_fmt_edge(a)} to under {_fmt_edge(b)}" for a, b in itertools.pairwise(edges)),
            f"{_fmt_edge(edges[-1])} and over",
        )
    return RateBands(edges=tuple(edges), colours=colours, labels=labels)


@cache
def _shapes() -> tuple[tuple[str, str, Any], ...]:
    """(ICB code, region, matplotlib Path in projected coordinates) for each ICB, built once."""
    import numpy as np
    from matplotlib.path import Path

    out = []
    for feature in load_boundaries()["features"]:
        props = feature["properties"]
        geom = feature["geometry"]
        polys = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
        verts: list[Any] = []
        codes: list[int] = []
        for poly in polys:
            for ring in poly:
                xy = np.asarray(ring, dtype=float)
                xy[:, 0] *= _COS_LAT
                verts.extend(xy.tolist())
                codes.extend(
                    [int(Path.MOVETO)] + [int(Path.LINETO)] * (len(xy) - 2) + [int(Path.CLOSEPOLY)]
                )
        out.append((props["icb_code"], props["region_name"], Path(verts, codes)))
    return tuple(out)


def _draw(ax: Any, values: Mapping[str, float | None], bands: RateBands, lw: float) -> None:
    """Shade every ICB: one collection per fill, not a patch each (matplotlib would re-fit the
    axes limits after every single patch, which dominates the drawing time).
    """
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import PathPatch

    shaded: list[Any] = []
    colours: list[str] = []
    missing: list[Any] = []
    for code, _region, path in _shapes():
        value = values.get(code)
        if is_missing(value):
            missing.append(PathPatch(path))
        else:
            shaded.append(PathPatch(path))
            colours.append(bands.colours[bands.index(as_float(value))])
    if shaded:
        ax.add_collection(
            PatchCollection(shaded, facecolors=colours, edgecolors="white", linewidths=lw),
            autolim=False,
        )
    if missing:
        ax.add_collection(
            PatchCollection(
                missing, facecolors=_NO_DATA, edgecolors="white", linewidths=lw, hatch="////"
            ),
            autolim=False,
        )
    ax.set_aspect("equal")
    ax.set_axis_off()


def choropleth(
    values: Mapping[str, float | None],
    *,
    title: str,
    legend_title: str = "Standardised rate per 10,000",
    bands: RateBands | None = None,
) -> Figure:
    """A map of England with each ICB shaded by its value's band, and a London inset."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Rectangle

    matplotlib.use("Agg", force=False)
    bands = bands or rate_bands(list(values.values()))
    with matplotlib.rc_context(mpl_style()):
        fig = Figure(figsize=(7.0, 8.0))
        ax = fig.add_axes((0.0, 0.0, 1.0, 0.93))
        _draw(ax, values, bands, lw=0.5)
        # the canvas runs east into the North Sea, where the London inset goes
        ax.set_xlim(-6.45 * _COS_LAT, 3.3 * _COS_LAT)
        ax.set_ylim(49.8, 55.9)
        london = [p.get_extents() for _c, r, p in _shapes() if r == "London"]
        if london:
            lx0 = min(b.x0 for b in london)
            lx1 = max(b.x1 for b in london)
            ly0 = min(b.y0 for b in london)
            ly1 = max(b.y1 for b in london)
            # placed in map coordinates: east of the Yorkshire coast, north of the Wash
            ix0, iy0 = 0.05 * _COS_LAT, 53.75
            iw = 3.2 * _COS_LAT
            ih = iw * (ly1 - ly0) / (lx1 - lx0)
            inset = ax.inset_axes((ix0, iy0, iw, ih), transform=ax.transData)
            _draw(inset, values, bands, lw=0.9)
            pad = 0.01
            inset.set_xlim(lx0 - pad, lx1 + pad)
            inset.set_ylim(ly0 - pad, ly1 + pad)
            inset.set_title("London", fontsize=9)
            inset.set_axis_on()
            inset.set_xticks([])
            inset.set_yticks([])
            for spine in inset.spines.values():
                spine.set_visible(True)
                spine.set_color("#666666")
            ax.add_patch(
                Rectangle(
                    (lx0 - pad, ly0 - pad),
                    lx1 - lx0 + 2 * pad,
                    ly1 - ly0 + 2 * pad,
                    fill=False,
                    edgecolor="#333333",
                    linewidth=0.8,
                )
            )
        handles = [
            Patch(facecolor=c, edgecolor="#666666", linewidth=0.5, label=label)
            for c, label in zip(bands.colours, bands.labels, strict=True)
        ]
        if any(is_missing(v) for v in values.values()) or any(
            code not in values for code, _r, _p in _shapes()
        ):
            handles.append(
                Patch(facecolor=_NO_DATA, edgecolor="#666666", hatch="////", label="No rate")
            )
        ax.legend(
            handles=handles,
            loc="upper left",
            title=legend_title,
            title_fontsize=8,
            fontsize=8,
            frameon=False,
        )
        heading = set_title(fig, title, x=0.02, y=0.985)
        # a title wrapped onto more lines pushes the map down rather than overlapping it
        ax.set_position((0.0, 0.0, 1.0, min(0.93, title_bottom(fig, heading) - 0.015)))
        fig.text(
            0.99,
            0.005,
            "Boundaries: ONS ICB (July 2022) BUC. Contains OS data © Crown copyright and "
            "database right 2022.",
            ha="right",
            va="bottom",
            fontsize=6,
            color="#555555",
        )
    return fig


@cache
def _hex_cells() -> tuple[tuple[str, str, int, int], ...]:
    """(ICB code, short name, column, row) of the shipped hex layout (odd-r, row 0 = south)."""
    import csv
    import io
    from importlib import resources

    text = (
        resources.files("didcore")
        .joinpath("data", "icb_hex_layout.csv")
        .read_text(encoding="utf-8")
    )
    return tuple(
        (r["icb_code"], r["icb_short_name"], int(r["col"]), int(r["row"]))
        for r in csv.DictReader(io.StringIO(text))
    )


def hex_map(
    values: Mapping[str, float | None],
    *,
    title: str,
    legend_title: str = "Standardised rate per 10,000",
    bands: RateBands | None = None,
    names: Mapping[str, str] | None = None,
) -> Figure:
    """The same bands on a hex cartogram: one equal-sized hexagon per ICB.

    Every ICB gets the same area, so London's five ICBs are as visible as Lincolnshire; the
    layout (``icb_hex_layout.csv``) keeps regions together and most neighbours adjacent. Each
    hexagon is labelled with its ICB code and a short name.
    """
    import matplotlib
    from matplotlib.collections import PatchCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, RegularPolygon

    matplotlib.use("Agg", force=False)
    bands = bands or rate_bands(list(values.values()))
    root3 = math.sqrt(3.0)
    with matplotlib.rc_context(mpl_style()):
        fig = Figure(figsize=(7.0, 8.0))
        ax = fig.add_axes((0.0, 0.0, 1.0, 0.93))
        hexes, colours, hatched = [], [], []
        for code, short, col, row in _hex_cells():
            # odd-r layout, pointy-top hexagons of circumradius 1
            x = root3 * (col + (0.5 if row % 2 else 0.0))
            y = 1.5 * row
            value = values.get(code)
            poly = RegularPolygon((x, y), numVertices=6, radius=0.97, orientation=0.0)
            if is_missing(value):
                hatched.append(poly)
                fill = _NO_DATA
            else:
                hexes.append(poly)
                fill = bands.colours[bands.index(as_float(value))]
                colours.append(fill)
            dark = matplotlib.colors.rgb_to_hsv(matplotlib.colors.to_rgb(fill))[2] < 0.55
            label = short_name((names or {}).get(code, "")) if names else short
            # three short lines fit a hexagon; a longer name ends in an ellipsis
            lines = textwrap.wrap(label, 14, break_long_words=False)
            if len(lines) > 3:
                lines = [*lines[:2], lines[2] + "\u2026"]
            ax.text(
                x,
                y + 0.22,
                code,
                ha="center",
                va="center",
                fontsize=7.5,
                fontweight="bold",
                color="white" if dark else "#1a1a1a",
            )
            ax.text(
                x,
                y - 0.3,
                "\n".join(lines),
                ha="center",
                va="center",
                fontsize=5.2,
                color="white" if dark else "#1a1a1a",
                linespacing=1.0,
            )
        if hexes:
            ax.add_collection(
                PatchCollection(hexes, facecolors=colours, edgecolors="white", linewidths=1.0)
            )
        if hatched:
            ax.add_collection(
                PatchCollection(
                    hatched, facecolors=_NO_DATA, edgecolors="white", linewidths=1.0, hatch="////"
                )
            )
        cols = [c for _, _, c, _ in _hex_cells()]
        rows = [r for _, _, _, r in _hex_cells()]
        ax.set_xlim(-1.2, root3 * (max(cols) + 1) + 0.3)
        ax.set_ylim(-1.2, 1.5 * max(rows) + 1.2)
        ax.set_aspect("equal")
        ax.set_axis_off()
        handles = [
            Patch(facecolor=c, edgecolor="#666666", linewidth=0.5, label=label)
            for c, label in zip(bands.colours, bands.labels, strict=True)
        ]
        if hatched:
            handles.append(
                Patch(facecolor=_NO_DATA, edgecolor="#666666", hatch="////", label="No rate")
            )
        ax.legend(handles=handles, loc="upper left", title=legend_title, title_fontsize=8)
        heading = set_title(fig, title, x=0.02, y=0.985)
        ax.set_position((0.0, 0.0, 1.0, min(0.93, title_bottom(fig, heading) - 0.015)))
        fig.text(
            0.99,
            0.005,
            "Hex layout derived from ONS ICB label points (Open Government Licence v3.0).",
            ha="right",
            va="bottom",
            fontsize=6,
            color="#555555",
        )
    return fig
