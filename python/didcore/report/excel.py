"""The Excel workbook: Annex B laid out like the published one, and a sheet per other table.

Sheet "Annex B" has the ICBs (code, name, region, population) as rows, sorted by NHS region and
name, one column group per measure (observed, expected, crude rate, standardised rate, its 95%
confidence limits, whether it is within 10% of the crude rate, and where it lies against the
99.8% funnel limits), the national (England) row first, then notes and the attribution. The other
published tables follow, one sheet each, and a "Notes" sheet with the method, thresholds,
disclosure rule and provenance. The cube is too big for a useful sheet; it is in ``cube.csv``.

openpyxl is imported inside the functions. The file is byte-for-byte reproducible: the document
properties carry no creation or modification time and the zip entries a fixed date.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from didcore.report.fmt import REGION_ORDER, is_missing

__all__ = ["SHEETS", "write_workbook"]

#: Sheet name for each published table, in workbook order (Annex B comes first).
SHEETS: dict[str, str] = {
    "national_rates": "Tables 1-2 national rates",
    "rates_ratios": "Rates ratios",
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

_CAPTIONS: dict[str, str] = {
    "national_rates": "Tables 1-2. National imaging rates per 10,000 by modality and by early "
    "diagnosis of cancer (EDOC) test",
    "rates_ratios": "Rates ratios by sex, deprivation (IMD quintile) and age band, with the "
    "published chi-square test (stars: * p < 0.05, ** p < 0.01, *** p < 0.001)",
    "icb_rates": "ICB rates per 10,000: every column of icb_rates.csv",
    "summary": "Spread of ICB standardised rates by measure (mean, SD, share within one SD)",
    "funnel": "Funnel-plot limits and overdispersion by measure",
    "annex_a_source_shares": "Annex A. How each test's ICB was derived",
    "exclusions": "Annex A. Records excluded from the rates, by first reason",
    "annex_a_table_a1": "Table A.1. Providers with more than {a1} of tests with no GP practice",
    "annex_a_table_a2": "Table A.2. Providers with more than {a2} of tests with no age, sex or "
    "LSOA",
    "annex_a_table_a3": "Table A.3. ICBs with more than {a3} of tests with no age, sex or LSOA",
    "annex_a_table_a4": "Table A.4. ICBs with more than {a4} estimated missing tests",
    "annex_a_a4_allocation": "Estimated missing tests allocated to every ICB by its providers' "
    "ICB mix",
    "annex_a_a4_unallocated": "Providers with estimated missing tests but no tests in the "
    "extract, so no ICB mix to allocate them by",
}

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
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)


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
    }


def _value(value: Any, suppressed: bool) -> Any:
    """A cell value: ``*`` for a suppressed number, blank for missing, text for booleans."""
    if is_missing(value):
        return "*" if suppressed else None
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return value


def _number_format(name: str, type_: pa.DataType) -> str | None:
    if pa.types.is_integer(type_):
        return "#,##0"
    if pa.types.is_floating(type_):
        if name in ("p_value", "p_value_counts"):
            return "0.0000"
        if "ratio" in name and "rate" not in name:
            return "0.00"
        if name.endswith(("_pct", "percent", "share")) or name.startswith("share"):
            return "0.0"
        if name in ("population", "expected", "observed"):
            return "#,##0"
        return "#,##0.0"
    return None


def _annex_b(
    wb: Any,
    icb_rates: pa.Table,
    national: pa.Table,
    *,
    title: str,
    notes: Sequence[str],
    attribution: str,
) -> None:
    from openpyxl.utils import get_column_letter

    st = _styles()
    ws = wb.active
    ws.title = "Annex B"
    measures = national["measure"].to_pylist()
    rows = icb_rates.to_pylist()
    by_icb: dict[str, dict[str, dict[str, Any]]] = {}
    meta: dict[str, tuple[str, str, Any]] = {}
    for r in rows:
        by_icb.setdefault(r["icb_code"], {})[r["measure"]] = r
        meta.setdefault(
            r["icb_code"], (r.get("icb_name", ""), r.get("region", ""), r["population"])
        )

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
    # row 4: group headers; row 5: column headers
    ws.merge_cells(start_row=4, start_column=1, end_row=4, end_column=n_fixed)
    cell = ws.cell(row=4, column=1, value="Integrated Care Board")
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


def _table_sheet(wb: Any, name: str, table: pa.Table, caption: str) -> None:
    from openpyxl.utils import get_column_letter

    st = _styles()
    ws = wb.create_sheet(SHEETS.get(name, name)[:31])
    ws.cell(row=1, column=1, value=caption).font = st["title"]
    ws.cell(row=2, column=1, value=f"Also in {name}.csv").font = st["note"]
    header_row = 4
    cols = table.column_names
    for k, col in enumerate(cols, start=1):
        c = ws.cell(row=header_row, column=k, value=col)
        c.font, c.fill, c.border = st["bold"], st["head_fill"], st["box"]
    formats = [_number_format(c, table.schema.field(c).type) for c in cols]
    supp = table["suppressed"].to_pylist() if "suppressed" in cols else [False] * table.num_rows
    data = [table[c].to_pylist() for c in cols]
    widths = [len(c) for c in cols]
    for r_i in range(table.num_rows):
        for k in range(len(cols)):
            value = _value(data[k][r_i], bool(supp[r_i]))
            c = ws.cell(row=header_row + 1 + r_i, column=k + 1, value=value)
            if formats[k] and not isinstance(value, str):
                c.number_format = formats[k]
            widths[k] = max(widths[k], min(len(str(value)) if value is not None else 0, 60))
    for k, w in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(k)].width = min(max(w + 2, 8), 62)
    ws.freeze_panes = ws.cell(row=header_row + 1, column=1)
    if table.num_rows:
        ws.auto_filter.ref = (
            f"A{header_row}:{get_column_letter(len(cols))}{header_row + table.num_rows}"
        )


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


def write_workbook(
    path: Path,
    tables: Mapping[str, pa.Table],
    *,
    title: str,
    notes: Sequence[str],
    attribution: str,
    thresholds: Mapping[str, str],
    notes_sections: Mapping[str, Sequence[str]],
) -> Path:
    """Write the workbook to ``path``.

    ``tables`` are the published tables (see :func:`didcore.report.tables.build_tables`);
    ``thresholds`` fills the Annex A captions (``a1``..``a4``, e.g. ``"10% and 10,000"``).
    """
    from openpyxl import Workbook

    wb = Workbook()
    _annex_b(
        wb,
        tables["icb_rates"],
        tables["national_rates"],
        title=title,
        notes=notes,
        attribution=attribution,
    )
    for name in SHEETS:
        if name in tables:
            caption = _CAPTIONS.get(name, name).format(**thresholds)
            _table_sheet(wb, name, tables[name], caption)
    _notes_sheet(wb, notes_sections)
    _text_not_formulas(wb)
    wb.properties.creator = "didcore"
    wb.properties.title = title
    buf = io.BytesIO()
    wb.save(buf)
    path.write_bytes(_reproducible(buf.getvalue()))
    return path
