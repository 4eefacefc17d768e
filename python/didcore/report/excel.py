"""The Excel workbook, laid out as the publication lays out each table.

Sheets, in order: **Contents** (every sheet with its title, the version line, "Contact us" and
the attribution); **Annex B** (ICBs as rows, sorted by NHS region and name, one column group per
measure, the England row first, then notes and the attribution); the national rates
(Tables 1-2) and the rates ratios (Tables 1-6) in the publication's wide form, the ratios with
their significance stars; the worked example of section 3.1 computed from the run's own rates;
the rates ratios' tests and confidence intervals; every column of the ICB rates, the spread
summary and the funnel limits; Annex A (ICB source shares, exclusions, Tables A.1-A.4, the A.4
allocation and unallocated providers); and **Notes** (method, thresholds, provenance).

Every table sheet has its title (``Table N. ...`` as published, with the period), the report's
title and version line, human headers (never a CSV column name), number formats (thousands
separators, rates to the publication's decimals, ratios to two decimals, percentages), its
footnotes under it, frozen title and header rows and set column widths. The publication's fixed
lines (version, contact, footnotes) and Annex A's rounding come from
:mod:`didcore.report.publication`.

Cell values are numbers wherever the publication shows a number: a ratio's stars are part of
its number format (``0.00"***"``), so the cell is 0.79 and shows ``0.79***``; percentages are
fractions with a ``%`` format. Annex A counts are rounded as published (the CSV files keep them
exact). Suppressed values (``--disclosure-control``) show ``*``.

openpyxl is imported inside the functions. The file is byte-for-byte reproducible: the document
properties carry no creation or modification time and the zip entries a fixed date.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pyarrow as pa

from didcore.report.fmt import REGION_ORDER, fmt_rate, is_missing

if TYPE_CHECKING:
    from didcore.report.publication import PublicationConfig

__all__ = ["SHEETS", "rate_format", "stars_format", "write_workbook"]

#: Sheet name of each long table laid out with human headers (after the publication's tables).
SHEETS: dict[str, str] = {
    "rates_ratios": "Ratios rates and tests",
    "icb_rates": "ICB rates (all columns)",
    "summary": "ICB spread summary",
    "funnel": "Funnel limits",
    "annex_a_source_shares": "A ICB source shares",
    "exclusions": "A exclusions",
    "annex_a_table_a1": "Table A.1",
    "annex_a_table_a2": "Table A.2",
    "annex_a_table_a3": "Table A.3",
    "annex_a_table_a4": "Table A.4",
    "annex_a_a4_allocation": "A.4 allocation, all ICBs",
    "annex_a_a4_unallocated": "A.4 unallocated providers",
}

# ------------------------------------------------------------------------ number formats

#: A count with thousands separators.
COUNT = "#,##0"
#: Annex A's rounded counts: a count that rounds to 0 shows "-", as published.
COUNT_DASH = '#,##0;-#,##0;"-"'
PCT0 = "0%"
PCT1 = "0.0%"
RATIO = "0.00"
#: Funnel limits and O/E ratios: three decimals, as they sit close to 1.
LIMIT = "0.000"
#: p-values: three decimals, "<0.001" below that.
P_VALUE = '[<0.001]"<0.001";0.000'
CHANGE_PCT = "+0.0%;-0.0%;0.0%"

#: The note under every rates-ratio table.
STARS_NOTE = (
    "* p < 0.05, ** p < 0.01, *** p < 0.001: Pearson's chi-square test (one degree of freedom) "
    "of the level's standardised rate per 10,000 against the base level's, as published. The "
    "stars are part of each cell's number format, so the cells are numbers and calculate; the "
    "standardised rates, the tests and 95% confidence intervals of every ratio are on the sheet "
    "'Ratios rates and tests'."
)


def rate_format(value: Any) -> str:
    """The number format of a rate per 10,000 as the publication prints it (as
    :func:`didcore.report.fmt.fmt_rate`): whole numbers from 5 up, one decimal from 0.5 and two
    below, where a whole number would hide the difference between rates.
    """
    if is_missing(value) or isinstance(value, bool) or not isinstance(value, int | float):
        return "#,##0"
    v = abs(float(value))
    if v >= 5 or v == 0:
        return "#,##0"
    if v >= 0.5:
        return "0.0"
    return "0.00"


def stars_format(stars: str) -> str:
    """A ratio's number format with its significance stars as literal text: the cell holds the
    ratio (0.7928...) and shows ``0.79***``, as the publication's tables do.
    """
    return RATIO + (f'"{stars}"' if stars else "")


_FIXED_DATE = (1980, 1, 1, 0, 0, 0)

# Annex B column group per measure: (header, icb_rates column, number format)
_GROUP: tuple[tuple[str, str, str], ...] = (
    ("Observed", "observed", "#,##0"),
    ("Expected", "expected", "#,##0"),
    ("Crude rate", "crude_rate", "#,##0.0"),
    ("Standardised rate", "standardised_rate", "#,##0.0"),
    ("Lower 95% CI", "sr_lower_95", "#,##0.0"),
    ("Upper 95% CI", "sr_upper_95", "#,##0.0"),
    ("Within 10% of crude", "within_10pct_of_crude", "@"),
    ("Funnel (99.8%)", "funnel_998", "@"),
)


def _styles() -> dict[str, Any]:
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side

    thin = Side(style="thin", color="808080")
    return {
        "title": Font(bold=True, size=14),
        "bold": Font(bold=True),
        "note": Font(italic=True, size=9, color="404040"),
        "head_fill": PatternFill("solid", fgColor="D9E2F3"),
        "group_fill": PatternFill("solid", fgColor="B4C6E7"),
        "nat_fill": PatternFill("solid", fgColor="F2F2F2"),
        "border": Border(bottom=thin),
        "box": Border(left=thin, right=thin, top=thin, bottom=thin),
        "wrap": Alignment(wrap_text=True, vertical="top"),
        "centre": Alignment(horizontal="center", vertical="center", wrap_text=True),
        "right": Alignment(horizontal="right"),
        "link": Font(color="0563C1", underline="single"),
    }


def _value(value: Any, suppressed: bool) -> Any:
    """A cell value: ``*`` for a suppressed number, blank for missing, text for booleans."""
    if is_missing(value):
        return "*" if suppressed else None
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return value


def _annex_b(
    wb: Any,
    icb_rates: pa.Table,
    national: pa.Table,
    *,
    title: str,
    notes: Sequence[str],
    attribution: str,
    subtitle: str = "",
) -> None:
    from openpyxl.utils import get_column_letter

    from didcore.report.text import icb_label

    st = _styles()
    ws = wb.create_sheet("Annex B")
    measures = national["measure"].to_pylist()
    rows = icb_rates.to_pylist()
    by_icb: dict[str, dict[str, dict[str, Any]]] = {}
    meta: dict[str, tuple[str, str, Any]] = {}
    for r in rows:
        by_icb.setdefault(r["icb_code"], {})[r["measure"]] = r
        # "NHS Devon ICB", as the rest of the publication writes it
        name = icb_label(r.get("icb_name") or "", r["icb_code"])
        meta.setdefault(r["icb_code"], (name, r.get("region", ""), r["population"]))

    def region_key(code: str) -> tuple[int, str, str]:
        name, region, _ = meta[code]
        pos = REGION_ORDER.index(region) if region in REGION_ORDER else len(REGION_ORDER)
        return (pos, region or "", name or code)

    icbs = sorted(by_icb, key=region_key)
    n_fixed = 4
    width = len(_GROUP)
    ws.cell(row=1, column=1, value=title).font = st["title"]
    ws.cell(
        row=2,
        column=1,
        value="Indirectly standardised by age (5-year bands), sex and deprivation (IMD "
        "quintile); rates per 10,000 population. Standardised rates compare each ICB with "
        "England, not ICBs with each other.",
    ).font = st["note"]
    if subtitle:
        ws.cell(row=3, column=1, value=subtitle).font = st["note"]
    # row 4: group headers; row 5: column headers
    ws.merge_cells(start_row=4, start_column=1, end_row=4, end_column=n_fixed)
    cell = ws.cell(row=4, column=1, value="ICB")
    cell.font, cell.fill, cell.alignment = st["bold"], st["group_fill"], st["centre"]
    for k, header in enumerate(("ICB code", "ICB name", "NHS region", "Population"), start=1):
        c = ws.cell(row=5, column=k, value=header)
        c.font, c.fill, c.alignment, c.border = st["bold"], st["head_fill"], st["centre"], st["box"]
    for m_i, measure in enumerate(measures):
        col0 = n_fixed + 1 + m_i * width
        ws.merge_cells(start_row=4, start_column=col0, end_row=4, end_column=col0 + width - 1)
        c = ws.cell(row=4, column=col0, value=measure)
        c.font, c.fill, c.alignment = st["bold"], st["group_fill"], st["centre"]
        for g_i, (header, _col, _fmt) in enumerate(_GROUP):
            c = ws.cell(row=5, column=col0 + g_i, value=header)
            c.font, c.fill, c.alignment = st["bold"], st["head_fill"], st["centre"]
            c.border = st["box"]
    # England row: national observed and rate; expected equals observed by construction
    nat = {r["measure"]: r for r in national.to_pylist()}
    row_i = 6
    first_pop = national["population"][0].as_py() if national.num_rows else None
    for k, value in enumerate(("ENG", "England", "", first_pop), start=1):
        c = ws.cell(row=row_i, column=k, value=value)
        c.font, c.fill = st["bold"], st["nat_fill"]
    ws.cell(row=row_i, column=4).number_format = "#,##0"
    for m_i, measure in enumerate(measures):
        col0 = n_fixed + 1 + m_i * width
        r = nat.get(measure, {})
        values = (
            r.get("observed"),
            r.get("observed"),
            r.get("rate_per_10000"),
            r.get("rate_per_10000"),
            None,
            None,
            None,
            None,
        )
        for g_i, value in enumerate(values):
            c = ws.cell(row=row_i, column=col0 + g_i, value=_value(value, False))
            c.font, c.fill = st["bold"], st["nat_fill"]
            c.number_format = _GROUP[g_i][2]
    for code in icbs:
        row_i += 1
        name, region, pop = meta[code]
        for k, value in enumerate((code, name, region, pop), start=1):
            ws.cell(row=row_i, column=k, value=_value(value, False))
        ws.cell(row=row_i, column=4).number_format = "#,##0"
        for m_i, measure in enumerate(measures):
            col0 = n_fixed + 1 + m_i * width
            r = by_icb[code].get(measure, {})
            supp = bool(r.get("suppressed", False))
            for g_i, (_header, col, fmt) in enumerate(_GROUP):
                value = r.get(col)
                if col == "funnel_998" and isinstance(value, str):
                    value = value.capitalize()
                c = ws.cell(row=row_i, column=col0 + g_i, value=_value(value, supp))
                c.number_format = fmt
    row_i += 2
    ws.cell(row=row_i, column=1, value="Notes").font = st["bold"]
    for k, note in enumerate(notes, start=1):
        ws.cell(row=row_i + k, column=1, value=f"{k}. {note}").font = st["note"]
    row_i += len(notes) + 2
    ws.cell(row=row_i, column=1, value="Source and attribution").font = st["bold"]
    for k, line in enumerate(attribution.splitlines(), start=1):
        ws.cell(row=row_i + k, column=1, value=line).font = st["note"]
    ws.column_dimensions["A"].width = 10
    ws.column_dimensions["B"].width = 44
    ws.column_dimensions["C"].width = 24
    ws.column_dimensions["D"].width = 12
    for m_i in range(len(measures)):
        for g_i in range(width):
            letter = get_column_letter(n_fixed + 1 + m_i * width + g_i)
            ws.column_dimensions[letter].width = 11
    ws.row_dimensions[5].height = 32
    ws.freeze_panes = "E7"


class Styled(NamedTuple):
    """A cell value with its own number format (a rate's decimals, a ratio's stars)."""

    value: Any
    fmt: str | None


@dataclass(frozen=True)
class Col:
    """One column of a laid-out table: its header, how to get the cell from a row, its format.

    ``group`` is the merged header above (consecutive columns with the same group share it).
    """

    header: str
    get: Callable[[Mapping[str, Any]], Any]
    fmt: str | None = None
    group: str = ""
    width: float | None = None


@dataclass
class SheetSpec:
    """A sheet holding one table: title, columns, rows, notes under it, text above it."""

    name: str
    title: str
    columns: list[Col]
    rows: Sequence[Mapping[str, Any]]
    notes: list[str] = field(default_factory=list)
    intro: list[str] = field(default_factory=list)
    #: the row shown when the table has none ("None", as the publication's empty Table A.2)
    empty: str | None = "None"
    #: columns kept in view when scrolling right (codes and names)
    freeze_cols: int = 1
    filter: bool = False


def _shown_len(value: Any, fmt: str | None) -> int:
    """About how many characters a cell shows, for the column width."""
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value)
    if isinstance(value, bool):
        return 3
    v = float(value)
    if fmt and "%" in fmt:
        return len(f"{100 * v:,.1f}%") + 1
    text = f"{v:,.0f}"
    if fmt and "0.0" in fmt:
        text += ".00"
    stars = fmt.count("*") if fmt else 0
    return len(text) + stars


def _write_sheet(wb: Any, spec: SheetSpec, subtitle: str) -> None:
    """Write ``spec`` on a new sheet: title, subtitle, text, group and column headers, rows,
    numbered notes; frozen title/header rows and first columns; column widths from the
    headers and the values shown.
    """
    from openpyxl.utils import get_column_letter

    st = _styles()
    ws = wb.create_sheet(spec.name[:31])
    ws.cell(row=1, column=1, value=spec.title).font = st["title"]
    ws.cell(row=2, column=1, value=subtitle).font = st["note"]
    row = 2
    for line in spec.intro:
        row += 1
        ws.cell(row=row, column=1, value=line)
    row += 2
    cols = spec.columns
    if any(c.group for c in cols):
        k = 0
        while k < len(cols):
            end = k
            while end + 1 < len(cols) and cols[end + 1].group == cols[k].group:
                end += 1
            if cols[k].group:
                if end > k:
                    ws.merge_cells(
                        start_row=row, start_column=k + 1, end_row=row, end_column=end + 1
                    )
                c = ws.cell(row=row, column=k + 1, value=cols[k].group)
                c.font, c.fill, c.alignment = st["bold"], st["group_fill"], st["centre"]
            k = end + 1
        row += 1
    header_row = row
    for k, col in enumerate(cols, start=1):
        c = ws.cell(row=row, column=k, value=col.header)
        c.font, c.fill, c.border, c.alignment = st["bold"], st["head_fill"], st["box"], st["centre"]
    # headers wrap onto two or three lines, so they count for less than their length
    widths = [min(len(col.header), 14) for col in cols]
    if not spec.rows and spec.empty is not None:
        row += 1
        ws.cell(row=row, column=1, value=spec.empty)
    for r in spec.rows:
        row += 1
        supp = bool(r.get("suppressed", False))
        for k, col in enumerate(cols, start=1):
            raw = col.get(r)
            fmt = col.fmt
            if isinstance(raw, Styled):
                raw, fmt = raw.value, raw.fmt or fmt
            value = _value(raw, supp)
            c = ws.cell(row=row, column=k, value=value)
            if fmt and value is not None and not isinstance(value, str):
                c.number_format = fmt
            if not isinstance(value, str):
                c.alignment = st["right"]
            widths[k - 1] = max(widths[k - 1], _shown_len(value, fmt))
    last = row
    if spec.notes:
        row += 2
        ws.cell(row=row, column=1, value="Notes").font = st["bold"]
        for n, note in enumerate(spec.notes, start=1):
            ws.cell(row=row + n, column=1, value=f"{n}. {note}").font = st["note"]
    for k, col in enumerate(cols, start=1):
        width = col.width or min(max(widths[k - 1] + 2, 8), 60)
        ws.column_dimensions[get_column_letter(k)].width = width
    if any(len(c.header) > (c.width or widths[i] + 2) for i, c in enumerate(cols)):
        ws.row_dimensions[header_row].height = 45 if max(len(c.header) for c in cols) > 28 else 30
    ws.freeze_panes = ws.cell(row=header_row + 1, column=spec.freeze_cols + 1)
    if spec.filter and spec.rows:
        ws.auto_filter.ref = f"A{header_row}:{get_column_letter(len(cols))}{last}"


# ------------------------------------------------------------------ the publication's tables


def _key(name: str) -> Callable[[Mapping[str, Any]], Any]:
    return lambda r: r.get(name)


def _pct100(name: str) -> Callable[[Mapping[str, Any]], Any]:
    """A per-cent column (0-100) as a fraction, for a ``%`` format."""

    def get(r: Mapping[str, Any]) -> Any:
        v = r.get(name)
        return None if v is None or is_missing(v) else float(v) / 100.0

    return get


def _rate(name: str) -> Callable[[Mapping[str, Any]], Any]:
    def get(r: Mapping[str, Any]) -> Any:
        v = r.get(name)
        return Styled(v, rate_format(v))

    return get


def _label_col(header: str = "", width: float = 28) -> Col:
    return Col(header, _key("label"), width=width)


def _national_sheets(
    national: pa.Table, sfx: str, pub: PublicationConfig, values: Mapping[str, Any]
) -> list[SheetSpec]:
    """Tables 1-2: the national rates per 10,000, measures as columns (as published)."""
    rows = national.to_pylist()
    out = []
    number = 0
    for kind, what in (("modality", "modality"), ("edoc", "Early Diagnosis of Cancer")):
        sel = [r for r in rows if r.get("kind", "modality") == kind]
        if not sel:
            continue
        number += 1
        ms = [r["measure"] for r in sel]

        def line(label: str, get: Callable[[Mapping[str, Any]], Any], sel: Any = sel) -> dict:
            return {"label": label, **{r["measure"]: get(r) for r in sel}}

        body = [line("Rate per 10,000 people", _rate("rate_per_10000"))]
        if any("previous_rate_per_10000" in r for r in sel):
            body.append(line("Previous year's rate per 10,000", _rate("previous_rate_per_10000")))
            body.append(
                line("Change in rate", lambda r: Styled(_pct100("change_pct")(r), CHANGE_PCT))
            )
        body.append(line("Tests in the rates", lambda r: Styled(r.get("observed"), COUNT)))
        if any("observed_change_pct" in r for r in sel):
            body.append(
                line(
                    "Change in tests",
                    lambda r: Styled(_pct100("observed_change_pct")(r), CHANGE_PCT),
                )
            )
        body.append(line("Population", lambda r: Styled(r.get("population"), COUNT)))
        notes = pub.footnotes_for("national_rates", **values)
        if kind == "edoc":
            notes += pub.footnotes_for("edoc", **values)
        out.append(
            SheetSpec(
                name=f"Table {number} National rates",
                title=f"Table {number}. National Imaging Rates per 10,000 by {what}{sfx}",
                columns=[_label_col(), *[Col(m, _key(m)) for m in ms]],
                rows=body,
                notes=notes,
            )
        )
    return out


_RATIO_FACTORS = (
    ("sex", "Sex", "Sex"),
    ("imd_quintile", "Deprivation", "Deprivation"),
    ("age", "Age band", "Age"),
)


def _ratio_sheets(
    ratios: pa.Table, sfx: str, pub: PublicationConfig, values: Mapping[str, Any]
) -> list[SheetSpec]:
    """Rates-ratio Tables 1-6: levels as rows, measures as columns, ratios with their stars."""
    from didcore.report.text import RATIO_LEVEL_LABELS

    rows = ratios.to_pylist()
    kinds: dict[str, str] = {}
    for r in rows:
        kinds.setdefault(r["measure"], r.get("kind") or "modality")
    by = {(r["factor"], str(r["level"]), r["measure"]): r for r in rows}
    out = []
    number = 0
    for factor, label, short in _RATIO_FACTORS:
        labels = RATIO_LEVEL_LABELS.get(factor, {})
        present = [str(r["level"]) for r in rows if r["factor"] == factor]
        levels = [lv for lv in labels if lv in present] + [
            lv for lv in dict.fromkeys(present) if lv not in labels
        ]
        if not levels:
            continue
        for kind, what in (("modality", "modality"), ("edoc", "Early Diagnosis of Cancer")):
            ms = [m for m in kinds if kinds[m] == kind]
            if not ms:
                continue
            number += 1
            body = []
            for level in levels:
                line: dict[str, Any] = {"label": labels.get(level, level)}
                for m in ms:
                    r = by.get((factor, level, m))
                    if r is None or is_missing(r.get("ratio")):
                        line[m] = "-"
                    else:
                        line[m] = Styled(float(r["ratio"]), stars_format(r.get("stars") or ""))
                body.append(line)
            notes = pub.footnotes_for("rates_ratios", **values)
            if factor == "age":
                notes += pub.footnotes_for("age", **values)
            if kind == "edoc":
                notes += pub.footnotes_for("edoc", **values)
            notes.append(STARS_NOTE)
            out.append(
                SheetSpec(
                    name=f"Ratios Table {number} {short}",
                    title=f"Table {number}. {label} rates ratios by {what}{sfx}",
                    columns=[_label_col(width=18), *[Col(m, _key(m)) for m in ms]],
                    rows=body,
                    notes=notes,
                )
            )
    return out


def _worked_example(ratios: pa.Table, sfx: str) -> SheetSpec | None:
    """Section 3.1's worked example (the male X-ray rates ratio) from the run's own rates.

    The first measure (a modality before an EDOC test) with both sexes' standardised rates
    is used; None when there is none.
    """
    from didcore.report.text import measure_noun

    rows = [r for r in ratios.to_pylist() if r["factor"] == "sex"]
    order = sorted(
        dict.fromkeys(r["measure"] for r in rows),
        key=lambda m: next(r.get("kind") != "modality" for r in rows if r["measure"] == m),
    )
    for m in order:
        pair = {r["level"]: r for r in rows if r["measure"] == m}
        f, mm = pair.get("female"), pair.get("male")
        if (
            f is None
            or mm is None
            or any(is_missing(x.get(k)) for x in (f, mm) for k in ("standardised_rate", "ratio"))
            or not f["standardised_rate"]
        ):
            continue
        noun = measure_noun(m)
        ratio = float(mm["ratio"])
        diff = round(abs(1.0 - ratio) * 100)
        sentence = (
            f"In this example, the rate of {noun} was about the same in males and females, "
            if diff == 0
            else f"In this example, the rate of {noun} was {diff}% "
            f"{'lower' if ratio < 1 else 'higher'} in males than females, "
        ) + "even after standardising for the effect of age and IMD."
        r1, r2 = float(f["standardised_rate"]), float(mm["standardised_rate"])
        return SheetSpec(
            name="Ratios worked example",
            title=f"Section 3.1. Rates ratios: a worked example (male {noun}){sfx}",
            intro=[
                "National rates of diagnostic testing activity were calculated by two of the "
                "three factors at a time, in order to estimate expected values for the third "
                "factor (IMD, sex or age). For example, if rates ratios were being calculated "
                "for IMD, rates were standardised by sex and age.",
                "Rates ratios were calculated as Ratio = r2 / r1, where r1 = standardised rate "
                "for the base category (e.g. female) and r2 = standardised rate for the "
                "comparison category (e.g. male), expressed per unit of population.",
                f"So for example the rates ratio for male {noun} was calculated by:",
            ],
            columns=[
                _label_col(width=12),
                Col("Standardised rate per 10,000", _rate("rate"), width=16),
                Col("Rates Ratio", _key("ratio"), fmt=RATIO, width=12),
            ],
            rows=[
                {"label": "Female", "rate": r1, "ratio": 1.0},
                {"label": "Male", "rate": r2, "ratio": ratio},
            ],
            notes=[
                "The base level will always be set to 1 with other levels given as a ratio of "
                "this.",
                f"Ratio = r2 / r1 = {fmt_rate(r2)} / {fmt_rate(r1)} = {ratio:.2f} (computed from "
                "the unrounded rates of this run).",
                sentence,
                "Further statistical analysis of the rates ratios was conducted using Pearson's "
                "chi-square test of significance (the stars of rates-ratio Tables 1-6).",
            ],
        )
    return None


# Long tables: column -> (header, kind). Kinds: count, rate, ratio, limit, pct100 (0-100),
# share (0-1), p, flag (high/low/within), kind (modality/edoc), icb_name, factor, level, text.
_LONG: dict[str, dict[str, tuple[str, str]]] = {
    "rates_ratios": {
        "factor": ("Factor", "factor"),
        "level": ("Level", "level"),
        "measure": ("Measure", "text"),
        "kind": ("Measure type", "kind"),
        "standardised_rate": ("Standardised rate per 10,000", "rate"),
        "ratio": ("Rates ratio", "ratio"),
        "stars": ("Significance", "text"),
        "chi2": ("Chi-square (rates, as published)", "limit"),
        "p_value": ("p-value (rates)", "p"),
        "observed": ("Observed tests", "count"),
        "expected": ("Expected tests", "count"),
        "chi2_counts": ("Chi-square (counts)", "limit"),
        "p_value_counts": ("p-value (counts)", "p"),
        "ratio_lower_95": ("Ratio lower 95% CI", "ratio"),
        "ratio_upper_95": ("Ratio upper 95% CI", "ratio"),
    },
    "icb_rates": {
        "icb_code": ("ICB code", "text"),
        "icb_name": ("ICB name", "icb_name"),
        "region": ("NHS region", "text"),
        "measure": ("Measure", "text"),
        "kind": ("Measure type", "kind"),
        "observed": ("Observed", "count"),
        "population": ("Population", "count"),
        "crude_rate": ("Crude rate per 10,000", "rate"),
        "expected": ("Expected", "count"),
        "ratio": ("Observed / expected", "limit"),
        "standardised_rate": ("Standardised rate per 10,000", "rate"),
        "sr_lower_95": ("Lower 95% CI", "rate"),
        "sr_upper_95": ("Upper 95% CI", "rate"),
        "sr_lower_998": ("Lower 99.8% CI", "rate"),
        "sr_upper_998": ("Upper 99.8% CI", "rate"),
        "within_10pct_of_crude": ("Within 10% of crude", "text"),
        "funnel_95": ("Funnel (95%)", "flag"),
        "funnel_998": ("Funnel (99.8%)", "flag"),
        "dsr": ("Directly standardised rate per 10,000", "rate"),
        "dsr_lower_95": ("DSR lower 95% CI", "rate"),
        "dsr_upper_95": ("DSR upper 95% CI", "rate"),
        "suppressed": ("Suppressed", "text"),
        "previous_standardised_rate": ("Previous year's standardised rate", "rate"),
        "sr_change": ("Change in standardised rate", "rate"),
        "sr_change_pct": ("Change in standardised rate (%)", "pct100"),
    },
    "summary": {
        "measure": ("Measure", "text"),
        "national_rate": ("National rate per 10,000", "rate"),
        "mean_sr": ("Mean of ICB standardised rates", "rate"),
        "sd_sr": ("Standard deviation (SD)", "rate"),
        "lower_1sd": ("Mean minus one SD", "rate"),
        "upper_1sd": ("Mean plus one SD", "rate"),
        "share_within_1sd": ("ICBs within one SD of the mean", "share"),
        "share_within_10pct_of_crude": ("ICBs within 10% of their crude rate", "share"),
        "n_icbs": ("ICBs", "count"),
    },
    "funnel": {
        "measure": ("Measure", "text"),
        "kind": ("Measure type", "kind"),
        "expected": ("Expected tests", "count"),
        "lower_95": ("Lower 95% limit (O/E)", "limit"),
        "upper_95": ("Upper 95% limit (O/E)", "limit"),
        "lower_998": ("Lower 99.8% limit (O/E)", "limit"),
        "upper_998": ("Upper 99.8% limit (O/E)", "limit"),
        "national_rate": ("National rate per 10,000", "rate"),
        "method": ("Overdispersion adjustment", "method"),
        "scale": ("z-score scale", "text"),
        "phi": ("Overdispersion factor (phi)", "limit"),
        "tau2": ("Between-ICB variance (tau squared)", "small"),
        "n_units": ("ICBs", "count"),
        "limits": ("Limits as computed by (didcore, or funnelplotr: FunnelPlotR 0.6.0)", "text"),
    },
    "annex_a_source_shares": {
        "label": ("Source of the test's ICB", "text"),
        "count": ("No. tests", "count"),
        "percent": ("% tests", "pct100"),
    },
    "exclusions": {
        "label": ("Records", "text"),
        "count": ("No. records", "count"),
        "percent": ("% of records read", "pct100"),
    },
    "annex_a_a4_allocation": {
        "icb_code": ("ICB code", "text"),
        "icb_name": ("ICB name", "icb_name"),
        "rows": ("Total no. tests", "count"),
        "missing_records": ("Estimated records missing", "count"),
        "missing_pct": ("% missing", "pct100"),
        "main_provider_code": ("Main provider code", "text"),
        "main_provider_name": ("Main provider name", "text"),
        "main_provider_missing": ("Main provider's share of the missing records", "count"),
        "suppressed": ("Suppressed", "text"),
    },
    "annex_a_a4_unallocated": {
        "provider_code": ("Provider code", "text"),
        "provider_name": ("Provider name", "text"),
        "missing_records": ("Estimated records missing", "count"),
        "suppressed": ("Suppressed", "text"),
    },
}
_LONG_TITLES: dict[str, str] = {
    "rates_ratios": "Rates ratios by sex, deprivation and age band: standardised rates, tests "
    "and confidence intervals",
    "icb_rates": "ICB rates per 10,000 by measure: every column of icb_rates.csv",
    "summary": "Spread of ICB standardised rates by measure",
    "funnel": "Funnel-plot limits and overdispersion by measure",
    "annex_a_source_shares": "Annex A. Source of each test's ICB",
    "exclusions": "Annex A. Records excluded from the rates, by first reason",
    "annex_a_a4_allocation": "Annex A. Estimated missing tests allocated to every ICB by its "
    "providers' ICB mix",
    "annex_a_a4_unallocated": "Annex A. Providers with estimated missing tests but no tests in "
    "the extract, so no ICB mix to allocate them by",
}
_LONG_NOTES: dict[str, list[str]] = {
    "rates_ratios": [
        "The base level of each factor (female; IMD quintile 1, most deprived; age 0 - <45) has "
        "ratio 1 and no test.",
        "Chi-square (rates) is the publication's test, on the two standardised rates per 10,000 "
        "treated as counts; it gives the stars of Tables 1-6. Chi-square (counts) is a Wald "
        "test on the observed and expected counts, which does not depend on the rate unit; "
        "the 95% confidence interval of the ratio is from it (docs/statistics.md).",
    ],
    "icb_rates": [
        "Funnel: High or Low when the ICB's observed/expected ratio lies outside the funnel-plot "
        "control limits; Within otherwise.",
        "Directly standardised rates use the 2013 European Standard Population and, unlike the "
        "indirectly standardised rates, compare ICBs with each other.",
    ],
    "summary": ["The shares are of the ICBs with a published standardised rate."],
    "funnel": [
        "Limits for the ratio of observed to expected tests on a grid of expected counts; "
        "multiplied by the national rate they are the limits of the standardised rate."
    ],
    "annex_a_source_shares": ["National figures: not rounded."],
    "exclusions": ["Each record is counted under the first reason that excludes it."],
}
# columns left out of a sheet: codes that the sheet's label column says in words
_DROP: dict[str, set[str]] = {"annex_a_source_shares": {"source"}, "exclusions": {"reason"}}
_METHOD_LABELS = {
    "winsorise": "Winsorised z-scores (Spiegelhalter)",
    "truncate": "Truncated z-scores (Spiegelhalter)",
    "poisson": "None (Poisson limits)",
}
_FACTOR_LABELS = {"sex": "Sex", "imd_quintile": "Deprivation", "age": "Age band"}
_KIND_LABELS = {"modality": "Modality", "edoc": "Early Diagnosis of Cancer"}


def _long_col(name: str, header: str, kind: str) -> Col:
    from didcore.report.text import RATIO_LEVEL_LABELS, icb_label

    formats = {
        "count": COUNT,
        "ratio": RATIO,
        "limit": LIMIT,
        "pct100": PCT1,
        "share": PCT0,
        "p": P_VALUE,
        "small": "0.0000",
    }
    get: Callable[[Mapping[str, Any]], Any] = _key(name)
    if kind == "rate":
        get = _rate(name)
    elif kind == "pct100":
        get = _pct100(name)
    elif kind == "flag":
        get = lambda r: (r.get(name) or None) and str(r[name]).capitalize()  # noqa: E731
    elif kind == "kind":
        get = lambda r: _KIND_LABELS.get(r.get(name) or "", r.get(name))  # noqa: E731
    elif kind == "method":
        get = lambda r: _METHOD_LABELS.get(r.get(name) or "", r.get(name))  # noqa: E731
    elif kind == "factor":
        get = lambda r: _FACTOR_LABELS.get(r.get(name) or "", r.get(name))  # noqa: E731
    elif kind == "level":
        get = lambda r: RATIO_LEVEL_LABELS.get(r.get("factor") or "", {}).get(  # noqa: E731
            str(r.get(name)), r.get(name)
        )
    elif kind == "icb_name":
        get = lambda r: icb_label(r.get(name) or "", r.get("icb_code") or "")  # noqa: E731
    return Col(header, get, fmt=formats.get(kind))


def _human(name: str) -> str:
    """A header for a column no layout names: words, not snake_case."""
    return name.replace("_", " ").strip().capitalize()


def _long_sheet(
    key: str, table: pa.Table, sfx: str, round_to: Mapping[str, int] | None = None
) -> SheetSpec:
    """A long table with human headers, its columns in a readable order (names after codes)."""
    spec = _LONG.get(key, {})
    drop = _DROP.get(key, set())
    names = [c for c in spec if c in table.column_names and c not in drop] + [
        c for c in table.column_names if c not in spec and c not in drop
    ]
    rows = table.to_pylist()
    if round_to:
        rows = _round_counts(rows, round_to)
    cols = []
    for c in names:
        header, kind = spec.get(c, (_human(c), "text"))
        if kind == "text" and c not in spec:
            t = table.schema.field(c).type
            kind = (
                "count" if pa.types.is_integer(t) else "limit" if pa.types.is_floating(t) else kind
            )
        cols.append(_long_col(c, header, kind))
    freeze = 2 if names[:2] in (["icb_code", "icb_name"], ["provider_code", "provider_name"]) else 1
    return SheetSpec(
        name=SHEETS.get(key, key),
        title=_LONG_TITLES.get(key, _human(key)) + sfx,
        columns=cols,
        rows=rows,
        notes=list(_LONG_NOTES.get(key, [])),
        empty="None",
        freeze_cols=freeze,
        filter=len(rows) > 20,
    )


def _round_counts(rows: list[dict[str, Any]], units: Mapping[str, int]) -> list[dict[str, Any]]:
    """Round count columns to the nearest unit (halves up, as the disclosure rule rounds:
    :meth:`DisclosureRule.round`); suppressed (None) counts stay None.
    """
    from didcore.report.disclosure import DisclosureRule

    for key, unit in units.items():
        if unit <= 1 or not rows or key not in rows[0]:
            continue
        values = np.array([np.nan if is_missing(r.get(key)) else float(r[key]) for r in rows])
        rounded = DisclosureRule(max_suppressed=0, round_to=unit).round(values)
        for r, v in zip(rows, rounded, strict=True):
            r[key] = None if np.isnan(v) else int(v)
    return rows


def _rounding_note(units: Sequence[tuple[str, int]], csv: str) -> str:
    """Say how a table's counts were rounded, and where the counts before rounding are."""
    done = [(what, u) for what, u in units if u > 1]
    if not done:
        return f"Counts are exact (as in {csv})."
    if len({u for _, u in done}) == 1:
        how = f"Counts are rounded to the nearest {done[0][1]:,}"
    else:
        how = "Counts are rounded, " + " and ".join(
            f"{what} to the nearest {u:,}" for what, u in done
        )
    return (
        f"{how} (a dash is a count that rounds to 0); percentages are computed before this "
        f"rounding. The counts before this rounding are in {csv}."
    )


def _annex_a_sheets(
    tables: Mapping[str, pa.Table],
    sfx: str,
    thresholds: Mapping[str, str],
    pub: PublicationConfig,
    values: Mapping[str, Any],
) -> list[SheetSpec]:
    """Tables A.1-A.4 as published: code and name under one header, counts rounded."""
    from didcore.report.text import icb_label

    rnd = pub.rounding
    extra = pub.footnotes_for("annex_a", **values)
    did = " in the Diagnostic Imaging Dataset"
    out = []

    def code_name(what: str, code: str, name: str, icb: bool = False) -> list[Col]:
        get_name = (
            (lambda r: icb_label(r.get(name) or "", r.get(code) or ""))
            if icb
            else (lambda r: r.get(name) or "")
        )
        return [
            Col("Code", _key(code), group=f"{what} code and name", width=9),
            Col("Name", get_name, group=f"{what} code and name"),
        ]

    if "annex_a_table_a1" in tables:
        u = rnd.get("a1", 1)
        rows = _round_counts(
            tables["annex_a_table_a1"].to_pylist(), {"no_practice": u, "no_practice_no_lsoa": u}
        )
        grp1, grp2 = "Activity with no GP Practice", "Of which, activity with no LSOA"
        out.append(
            SheetSpec(
                name="Table A.1",
                title=f"Table A.1. Providers with more than {thresholds.get('a1', '')} imaging "
                f"tests with no GP Practice{did}{sfx}",
                columns=[
                    *code_name("Provider", "provider_code", "provider_name"),
                    Col("No. tests", _key("no_practice"), COUNT_DASH, group=grp1, width=11),
                    Col("% tests", _pct100("no_practice_pct"), PCT0, group=grp1, width=9),
                    Col("No. tests", _key("no_practice_no_lsoa"), COUNT_DASH, group=grp2, width=11),
                    Col("% tests", _pct100("no_practice_no_lsoa_pct"), PCT1, group=grp2, width=9),
                ],
                rows=rows,
                notes=[
                    _rounding_note([("tests", u)], "annex_a_table_a1.csv"),
                    *extra,
                ],
                freeze_cols=2,
            )
        )
    for key, which, what, icb, lead in (
        ("annex_a_table_a2", "a2", "Provider", False, "Providers"),
        ("annex_a_table_a3", "a3", "ICB", True, "ICBs"),
    ):
        if key not in tables:
            continue
        ut, um = rnd.get(f"{which}_total", 1), rnd.get(f"{which}_missing", 1)
        rows = _round_counts(tables[key].to_pylist(), {"rows": ut, "missing_any": um})
        code, name = ("icb_code", "icb_name") if icb else ("provider_code", "provider_name")
        out.append(
            SheetSpec(
                name=f"Table {which.upper().replace('A', 'A.')}",
                title=f"Table {which.upper().replace('A', 'A.')}. {lead} with more than "
                f"{thresholds.get(which, '')} imaging tests with no Age or Sex or LSOA{did}{sfx}",
                columns=[
                    *code_name(what, code, name, icb),
                    Col("Total no. tests", _key("rows"), COUNT_DASH, width=12),
                    Col("Of which, age, sex or LSOA missing", _key("missing_any"), COUNT_DASH),
                    Col("% missing", _pct100("missing_pct"), PCT1, width=10),
                    Col("Most common missing", _key("most_common_missing"), width=12),
                ],
                rows=rows,
                notes=[
                    _rounding_note([("total tests", ut), ("missing tests", um)], f"{key}.csv"),
                    *extra,
                ],
                freeze_cols=2,
            )
        )
    if "annex_a_table_a4" in tables:
        ut, um = rnd.get("a4_total", 1), rnd.get("a4_missing", 1)
        rows = _round_counts(
            tables["annex_a_table_a4"].to_pylist(),
            {"rows": ut, "missing_records": um, "main_provider_missing": um},
        )
        grp = "Mostly missing from"
        out.append(
            SheetSpec(
                name="Table A.4",
                title=f"Table A.4. ICBs with more than {thresholds.get('a4', '')} estimated "
                f"missing imaging tests{did}{sfx}",
                columns=[
                    *code_name("ICB", "icb_code", "icb_name", True),
                    Col("Total no. tests", _key("rows"), COUNT_DASH, width=12),
                    Col("Records missing", _key("missing_records"), COUNT_DASH, width=12),
                    Col("% missing", _pct100("missing_pct"), PCT0, width=10),
                    Col("Provider code", _key("main_provider_code"), group=grp, width=10),
                    Col("Provider name", _key("main_provider_name"), group=grp),
                ],
                rows=rows,
                notes=[
                    _rounding_note(
                        [("total tests", ut), ("missing records", um)], "annex_a_table_a4.csv"
                    ),
                    "Providers' estimated missing records are shared among ICBs in proportion "
                    "to the provider's tests with a derived ICB in the extract; the provider "
                    "contributing most to the ICB's missing records is named.",
                    *extra,
                ],
                freeze_cols=2,
            )
        )
    return out


def _contents_sheet(
    ws: Any,
    entries: Sequence[tuple[str, str]],
    *,
    report_title: str,
    pub: PublicationConfig,
    attribution: str,
) -> None:
    """The first sheet: the title, version line, every sheet with its title (linked), the
    publication's "Contact us" lines and the attribution.
    """
    from openpyxl.worksheet.hyperlink import Hyperlink

    st = _styles()
    ws.title = "Contents"
    ws.cell(row=1, column=1, value=report_title).font = st["title"]
    if pub.version:
        ws.cell(row=2, column=1, value=pub.version).font = st["note"]
    ws.cell(
        row=3,
        column=1,
        value="Annex B and the publication's other tables, one table a sheet. The same figures, "
        "unrounded, are in the CSV files written with this workbook.",
    ).font = st["note"]
    for k, header in enumerate(("Sheet", "Contents"), start=1):
        c = ws.cell(row=5, column=k, value=header)
        c.font, c.fill, c.border = st["bold"], st["head_fill"], st["box"]
    row = 5
    for name, title in entries:
        row += 1
        c = ws.cell(row=row, column=1, value=name)
        c.hyperlink = Hyperlink(ref=c.coordinate, location=f"'{name}'!A1", display=name)
        c.font = st["link"]
        ws.cell(row=row, column=2, value=title)
    row += 2
    contact = pub.contact_lines()
    if contact:
        ws.cell(row=row, column=1, value="Contact us").font = st["bold"]
        for head, paras in contact:
            row += 1
            ws.cell(row=row, column=1, value=head).font = st["bold"]
            for para in paras:
                row += 1
                ws.cell(row=row, column=1, value=para)
        row += 2
    ws.cell(row=row, column=1, value="Source and attribution").font = st["bold"]
    for line in attribution.splitlines():
        row += 1
        ws.cell(row=row, column=1, value=line).font = st["note"]
    ws.column_dimensions["A"].width = 26
    ws.column_dimensions["B"].width = 110
    ws.freeze_panes = "A6"


def _notes_sheet(wb: Any, sections: Mapping[str, Sequence[str]]) -> None:
    st = _styles()
    ws = wb.create_sheet("Notes")
    row = 1
    for heading, lines in sections.items():
        ws.cell(row=row, column=1, value=heading).font = st["bold"]
        row += 1
        for line in lines:
            c = ws.cell(row=row, column=1, value=line)
            c.alignment = st["wrap"]
            row += 1
        row += 1
    ws.column_dimensions["A"].width = 140


def _reproducible(data: bytes) -> bytes:
    """Rewrite the xlsx zip with no timestamps, so two runs give the same bytes.

    openpyxl stamps the save time into ``docProps/core.xml`` and the zip entries; both are
    removed (a workbook's time of writing is in the report's provenance instead).
    """
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                body = re.sub(rb"<dcterms:(created|modified)[^>]*>[^<]*</dcterms:\1>", b"", body)
            entry = zipfile.ZipInfo(info.filename, date_time=_FIXED_DATE)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o600 << 16
            dst.writestr(entry, body)
    return out.getvalue()


# What makes a spreadsheet read a typed or imported cell as a formula (OWASP, "CSV
# injection"): =, +, - and @ first, or a tab or carriage return before them.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text_not_formulas(wb: Any) -> None:
    """Every text cell stays text, whatever it starts with.

    The workbook has no formulas of its own, but its cells carry values from the extract
    (provider codes in Annex A's tables, measure names from the measures file): openpyxl
    stores a string starting with "=" as a formula, so "=HYPERLINK(...)" in a provider code
    would be a live formula in the publication. Such cells are set back to text
    (``data_type "s"``), and every text cell starting with a formula character gets Excel's
    quote prefix (shown as typed, kept as text when edited).
    """
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                value = cell.value
                if not isinstance(value, str) or not value.startswith(_FORMULA_START):
                    continue
                cell.data_type = "s"
                cell.quotePrefix = True


def _excluded_pct(exclusions: pa.Table | None) -> str | None:
    """The share of the records read that are not in the rates, as "1.3%" (None if unknown)."""
    if exclusions is None or "reason" not in exclusions.column_names:
        return None
    pct = {r["reason"]: r.get("percent") for r in exclusions.to_pylist()}
    included = pct.get("included")
    return None if included is None or is_missing(included) else f"{100.0 - included:.1f}%"


def write_workbook(
    path: Path,
    tables: Mapping[str, pa.Table],
    *,
    title: str,
    notes: Sequence[str],
    attribution: str,
    thresholds: Mapping[str, str],
    notes_sections: Mapping[str, Sequence[str]],
    report_title: str | None = None,
    period: str | None = None,
    publication: PublicationConfig | str | Path | None = None,
) -> Path:
    """Write the workbook to ``path``.

    ``tables`` are the published tables (see :func:`didcore.report.tables.build_tables`);
    ``title`` is Annex B's title and ``report_title`` the publication's (on every sheet, with
    the version line); ``period`` ends every table title (", 2023/24"); ``thresholds`` fills
    the Annex A titles (``a1``..``a4``, e.g. ``"10% and 10,000"``); ``publication`` the
    version, contact and footnote lines and Annex A rounding (a
    :class:`~didcore.report.publication.PublicationConfig`, a TOML file, or None for the
    shipped defaults).
    """
    from openpyxl import Workbook

    from didcore.report.publication import load_publication_config

    pub = load_publication_config(publication)
    sfx = f", {period}" if period else ""
    report_title = report_title or title
    subtitle = report_title + (f". {pub.version}" if pub.version else "")
    values = {"period": period, "excluded_pct": _excluded_pct(tables.get("exclusions"))}
    wb = Workbook()
    contents = wb.active
    _annex_b(
        wb,
        tables["icb_rates"],
        tables["national_rates"],
        title=title,
        notes=[*notes, *pub.footnotes_for("annex_b", **values)],
        attribution=attribution,
        subtitle=subtitle,
    )
    entries: list[tuple[str, str]] = [("Annex B", title)]
    specs = _national_sheets(tables["national_rates"], sfx, pub, values)
    if "rates_ratios" in tables:
        specs += _ratio_sheets(tables["rates_ratios"], sfx, pub, values)
        example = _worked_example(tables["rates_ratios"], sfx)
        if example is not None:
            specs.append(example)
    rounding = {
        "annex_a_a4_allocation": {
            "rows": pub.rounding.get("a4_total", 1),
            "missing_records": pub.rounding.get("a4_missing", 1),
            "main_provider_missing": pub.rounding.get("a4_missing", 1),
        },
        "annex_a_a4_unallocated": {"missing_records": pub.rounding.get("a4_missing", 1)},
    }
    annex_a = {s.name: s for s in _annex_a_sheets(tables, sfx, thresholds, pub, values)}
    for key in SHEETS:
        if key in annex_a or SHEETS[key] in annex_a:
            specs.append(annex_a[SHEETS[key]])
        elif key in tables:
            spec = _long_sheet(key, tables[key], sfx, rounding.get(key))
            if key in rounding:
                units = rounding[key]
                spec.notes.insert(
                    0,
                    _rounding_note(
                        [
                            ("tests", units.get("rows", 1)),
                            ("missing records", units["missing_records"]),
                        ],
                        f"{key}.csv",
                    ),
                )
            specs.append(spec)
    for spec in specs:
        _write_sheet(wb, spec, subtitle)
        entries.append((spec.name[:31], spec.title))
    _notes_sheet(wb, notes_sections)
    entries.append(("Notes", "Notes: method, Annex A thresholds, provenance and attribution"))
    _contents_sheet(contents, entries, report_title=report_title, pub=pub, attribution=attribution)
    _text_not_formulas(wb)
    wb.properties.creator = "didcore"
    wb.properties.title = title
    buf = io.BytesIO()
    wb.save(buf)
    path.write_bytes(_reproducible(buf.getvalue()))
    return path
