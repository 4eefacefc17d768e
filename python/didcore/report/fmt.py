"""Number formatting and chart styling shared by the workbook, charts, maps and HTML."""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = [
    "OKABE_ITO",
    "REGION_ORDER",
    "as_float",
    "fmt_count",
    "fmt_pct",
    "fmt_rate",
    "is_missing",
    "mpl_style",
    "region_colour",
    "slug",
]

#: Okabe & Ito (2008) colour-blind-safe palette, without black (used for text and lines).
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")

#: NHS England regions, north to south; each keeps one colour in every chart.
REGION_ORDER = (
    "North East and Yorkshire",
    "North West",
    "Midlands",
    "East of England",
    "London",
    "South East",
    "South West",
)


def region_colour(region: str) -> str:
    """The fixed Okabe-Ito colour of an NHS region (grey for an unknown one)."""
    if region in REGION_ORDER:
        return OKABE_ITO[REGION_ORDER.index(region)]
    return "#999999"


def as_float(value: Any) -> float:
    """A number as float, NaN for None (for values already known to be present)."""
    return math.nan if value is None else float(value)


def is_missing(value: Any) -> bool:
    """True for None and NaN (a suppressed or undefined value)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_rate(value: Any) -> str:
    """A rate per 10,000 as the publication shows it: whole numbers (it prints SPECT's 8.0 as
    "8"), with decimals only below 5, where a whole number would hide the difference between
    rates.
    """
    if is_missing(value):
        return "*"
    v = float(value)
    if abs(v) >= 5 or v == 0:
        return f"{v:,.0f}"
    if abs(v) >= 0.5:
        return f"{v:,.1f}"
    return f"{v:,.2f}"


def fmt_count(value: Any) -> str:
    """A count with thousands separators; ``*`` when suppressed."""
    if is_missing(value):
        return "*"
    return f"{round(float(value)):,}"


def fmt_pct(value: Any, digits: int = 1) -> str:
    """A percentage (already 0-100) with ``digits`` decimals."""
    if is_missing(value):
        return "*"
    return f"{float(value):.{digits}f}%"


def slug(text: str) -> str:
    """File-name-safe lower-case slug: ``Kidney or Bladder Ultrasound`` -> ``kidney-or-...``."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s or "measure"


def mpl_style() -> Any:
    """Matplotlib settings for every figure: readable sizes and byte-reproducible SVG."""
    return {
        "font.family": "DejaVu Sans",
        "font.size": 9,
        "axes.titlesize": 11,
        "axes.labelsize": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "xtick.labelsize": 8,
        "ytick.labelsize": 8,
        "legend.fontsize": 8,
        "legend.frameon": False,
        # fixed salt: otherwise SVG element ids are random and every run differs
        "svg.hashsalt": "didcore",
        # labels stay <text> in the SVG files, so they can be searched, read by screen
        # readers and edited (the font is named, not embedded; DejaVu Sans falls back to the
        # viewer's sans-serif)
        "svg.fonttype": "none",
        "path.simplify": True,
    }
