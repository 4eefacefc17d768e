"""The published tables (docs/report.md) as Arrow tables, and their CSV files.

:func:`build_tables` turns the statistics into the tables every output shows: the CSV files, the
workbook, the charts and the HTML all read these, so disclosure control and the year-on-year
columns are applied once and agree everywhere. Column order puts the columns docs/report.md fixes
first, in its order, and didcore's extra columns after them.

CSV files are UTF-8, comma-separated, with a header row. Numbers are written in full precision
(the shortest text that reads back to the same float), missing values and suppressed values as
empty cells (a suppressed row has ``suppressed`` = ``true``), booleans as ``true``/``false``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from didcore.quality import AnnexA
from didcore.report.disclosure import DisclosureRule, apply_rule
from didcore.report.reference import IcbInfo
from didcore.report.yoy import PreviousReport, change

__all__ = [
    "BROAD_AGE_BANDS",
    "ReportInputs",
    "build_tables",
    "csv_bytes",
    "write_csvs",
]

#: Broad age bands of the rates-ratio tables, with the 5-year bands (by index) in each.
BROAD_AGE_BANDS: dict[str, range] = {
    "0-<45": range(0, 9),
    "45-<55": range(9, 11),
    "55-<65": range(11, 13),
    "65-<75": range(13, 15),
    "75+": range(15, 19),
}

_NATIONAL_FIRST = ("measure", "observed", "population", "rate_per_10000")
_ICB_FIRST = (
    "icb_code",
    "measure",
    "observed",
    "population",
    "crude_rate",
    "expected",
    "standardised_rate",
    "sr_lower_95",
    "sr_upper_95",
    "sr_lower_998",
    "sr_upper_998",
)
_RATIOS_FIRST = (
    "factor",
    "level",
    "measure",
    "standardised_rate",
    "ratio",
    "chi2",
    "p_value",
    "stars",
)
# Columns computed from an ICB's observed count: suppressed with it.
_ICB_DERIVED = (
    "ratio",
    "standardised_rate",
    "sr_lower_95",
    "sr_upper_95",
    "sr_lower_998",
    "sr_upper_998",
    "within_10pct_of_crude",
    "funnel_95",
    "funnel_998",
    "dsr",
    "dsr_lower_95",
    "dsr_upper_95",
)


@dataclass
class ReportInputs:
    """What the report is made from: the results of one run, before any publication step."""

    cube: Any
    rates: Any
    ratios: pa.Table
    annex: AnnexA
    icbs: Mapping[str, IcbInfo]
    period: str | None = None
    title: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _reorder(table: pa.Table, first: tuple[str, ...]) -> pa.Table:
    """Put the contract columns first (those present), keep the others in their order."""
    head = [c for c in first if c in table.column_names]
    tail = [c for c in table.column_names if c not in head]
    return table.select(head + tail)


def _float_array(values: np.ndarray) -> pa.Array:
    """float64 Arrow array with null where NaN (so CSV and Excel show an empty cell)."""
    v = np.asarray(values, dtype=float)
    return pa.array(v, pa.float64(), mask=np.isnan(v))


def _count_array(values: np.ndarray) -> pa.Array:
    """int64 Arrow array with null where NaN (suppressed)."""
    v = np.asarray(values, dtype=float)
    mask = np.isnan(v)
    return pa.array(np.where(mask, 0, v).astype(np.int64), pa.int64(), mask=mask)


def _set(table: pa.Table, name: str, array: pa.Array) -> pa.Table:
    idx = table.column_names.index(name)
    return table.set_column(idx, name, array)


def _null_where(table: pa.Table, name: str, mask: np.ndarray) -> pa.Table:
    """Null the cells of ``name`` where ``mask``, keeping the column's type."""
    if name not in table.column_names or not mask.any():
        return table
    col = table[name].combine_chunks()
    keep = pa.array(~mask)
    import pyarrow.compute as pc

    nulls = pa.nulls(len(col), col.type)
    return _set(table, name, pc.if_else(keep, col, nulls))


def _num(table: pa.Table, name: str) -> np.ndarray:
    """A numeric column as float64 numpy, NaN for null."""
    return np.asarray(table[name].to_numpy(zero_copy_only=False), dtype=float)


def _group_ids(*keys: list[Any]) -> np.ndarray:
    """Integer group id per row for the combination of the key columns."""
    seen: dict[tuple[Any, ...], int] = {}
    return np.array([seen.setdefault(k, len(seen)) for k in zip(*keys, strict=True)], np.int64)


def _national(inputs: ReportInputs, previous: PreviousReport | None) -> pa.Table:
    table = _reorder(inputs.rates.national, _NATIONAL_FIRST)
    if previous is not None and previous.observed:
        table = _append_changes(
            table,
            _num(table, "observed"),
            [previous.observed.get(m) for m in table["measure"].to_pylist()],
            ("previous_observed", "observed_change", "observed_change_pct"),
        )
    if previous is not None:
        prev = [previous.national.get(m) for m in table["measure"].to_pylist()]
        table = _append_changes(
            table,
            _num(table, "rate_per_10000"),
            prev,
            ("previous_rate_per_10000", "change", "change_pct"),
        )
    return table


def _append_changes(
    table: pa.Table, current: np.ndarray, prev: list[float | None], names: tuple[str, str, str]
) -> pa.Table:
    """Append the previous year's value, the change and the % change (NaN where unknown)."""
    pairs = [change(float(c), p) for c, p in zip(current, prev, strict=True)]
    columns = (prev, [d for d, _ in pairs], [q for _, q in pairs])
    for name, values in zip(names, columns, strict=True):
        array = np.array([np.nan if v is None else v for v in values], dtype=float)
        table = table.append_column(name, _float_array(array))
    return table


def _icb(
    inputs: ReportInputs, rule: DisclosureRule | None, previous: PreviousReport | None
) -> pa.Table:
    table = _reorder(inputs.rates.icb, _ICB_FIRST)
    codes = table["icb_code"].to_pylist()
    measures = table["measure"].to_pylist()
    info = inputs.icbs
    extra_at = len([c for c in _ICB_FIRST if c in table.column_names])
    table = table.add_column(
        extra_at,
        "icb_name",
        pa.array([info[c].name if c in info else c for c in codes], pa.string()),
    )
    table = table.add_column(
        extra_at + 1,
        "region",
        pa.array([info[c].region if c in info else "" for c in codes], pa.string()),
    )
    if rule is not None:
        observed = _num(table, "observed")
        # the national count per measure is published, so ICBs of a measure form a group
        published, mask = apply_rule(rule, observed, [_group_ids(measures)])
        table = _set(table, "observed", _count_array(published))
        crude = published / _num(table, "population") * 10_000.0
        table = _set(table, "crude_rate", _float_array(crude))
        for name in _ICB_DERIVED:
            table = _null_where(table, name, mask)
        table = table.append_column("suppressed", pa.array(mask, pa.bool_()))
    if previous is not None:
        prev = [previous.icb.get((c, m)) for c, m in zip(codes, measures, strict=True)]
        table = _append_changes(
            table,
            _num(table, "standardised_rate"),
            prev,
            ("previous_standardised_rate", "sr_change", "sr_change_pct"),
        )
    return table


def _cube(inputs: ReportInputs, rule: DisclosureRule | None) -> pa.Table:
    table = inputs.cube.to_arrow()
    if rule is None:
        return table
    icb = table["icb_code"].to_pylist()
    measure = table["measure"].to_pylist()
    sex = table["sex"].to_pylist()
    imd = table["imd_quintile"].to_pylist()
    band_of = {
        band: name
        for name, idx in BROAD_AGE_BANDS.items()
        for band in (inputs.cube.age_bands[i] for i in idx)
    }
    broad = [band_of.get(a, a) for a in table["age_band"].to_pylist()]
    groups = [
        _group_ids(icb, measure),  # an ICB's observed count (icb_rates)
        _group_ids(sex, measure),  # national totals by factor level (rates_ratios)
        _group_ids(imd, measure),
        _group_ids(broad, measure),
    ]
    published, mask = apply_rule(rule, _num(table, "count"), groups)
    table = _set(table, "count", _count_array(published))
    return table.append_column("suppressed", pa.array(mask, pa.bool_()))


def _control_counts(
    table: pa.Table, rule: DisclosureRule, counts: tuple[str, ...], pcts: dict[str, tuple[str, str]]
) -> pa.Table:
    """Round/suppress count columns of an Annex A table and recompute its percentages."""
    any_mask = np.zeros(table.num_rows, dtype=bool)
    for name in counts:
        if name in table.column_names:
            published, mask = apply_rule(rule, _num(table, name))
            table = _set(table, name, _count_array(published))
            any_mask |= mask
    for pct, (num, den) in pcts.items():
        if pct in table.column_names:
            n, d = _num(table, num), _num(table, den)
            with np.errstate(divide="ignore", invalid="ignore"):
                value = np.where(d > 0, 100.0 * n / d, np.nan)
            table = _set(table, pct, _float_array(value))
    return table.append_column("suppressed", pa.array(any_mask, pa.bool_()))


def _annex(annex: AnnexA, rule: DisclosureRule | None) -> dict[str, pa.Table]:
    tables = dict(annex.tables())
    if rule is None:
        return tables
    # source shares and exclusions are national: not controlled
    spec: dict[str, tuple[tuple[str, ...], dict[str, tuple[str, str]]]] = {
        "annex_a_table_a1": (
            ("rows", "no_practice", "no_practice_no_lsoa"),
            {
                "no_practice_pct": ("no_practice", "rows"),
                "no_practice_no_lsoa_pct": ("no_practice_no_lsoa", "rows"),
            },
        ),
        "annex_a_table_a2": (
            ("rows", "missing_any", "missing_imd", "missing_sex", "missing_age"),
            {"missing_pct": ("missing_any", "rows")},
        ),
        "annex_a_table_a3": (
            ("rows", "missing_any", "missing_imd", "missing_sex", "missing_age"),
            {"missing_pct": ("missing_any", "rows")},
        ),
        "annex_a_table_a4": (
            ("rows", "missing_records", "main_provider_missing"),
            {"missing_pct": ("missing_records", "rows")},
        ),
        "annex_a_a4_allocation": (
            ("rows", "missing_records", "main_provider_missing"),
            {"missing_pct": ("missing_records", "rows")},
        ),
        "annex_a_a4_unallocated": (("missing_records",), {}),
    }
    for name, (counts, pcts) in spec.items():
        if name in tables:
            tables[name] = _control_counts(tables[name], rule, counts, pcts)
    return tables


def build_tables(
    inputs: ReportInputs,
    *,
    disclosure: DisclosureRule | None = None,
    previous: PreviousReport | None = None,
) -> dict[str, pa.Table]:
    """The published tables by output name (the CSV file stem), in publication order."""
    tables: dict[str, pa.Table] = {
        "national_rates": _national(inputs, previous),
        "icb_rates": _icb(inputs, disclosure, previous),
        "rates_ratios": _reorder(inputs.ratios, _RATIOS_FIRST),
        "summary": inputs.rates.summary,
        "funnel": inputs.rates.funnel,
    }
    tables.update(_annex(inputs.annex, disclosure))
    tables["cube"] = _cube(inputs, disclosure)
    return tables


def _cell(value: Any) -> str:
    """One CSV cell: full-precision numbers, empty for missing, lower-case booleans."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        # an integral float from an integer quantity (a population) reads back the same
        return repr(value)
    return str(value)


# Text a spreadsheet takes for a formula when it opens a CSV (OWASP, "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_bytes(table: pa.Table) -> bytes:
    """A table as CSV bytes (UTF-8, Unix line ends, minimal quoting).

    Values are written exactly (these files are for machines: docs/report.md), but text that
    starts with a formula character (a provider code "=HYPERLINK(...)", "+1", "@SUM") is
    always in double quotes, so it reads back as the text it is, never as a bare cell.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table.column_names)
    columns = [table[c].to_pylist() for c in table.column_names]
    for row in zip(*columns, strict=True):
        cells = [_cell(v) for v in row]
        if any(isinstance(v, str) and v.startswith(_FORMULA_START) for v in row):
            buf.write(",".join(_quoted(c, v) for c, v in zip(cells, row, strict=True)) + "\n")
        else:
            writer.writerow(cells)
    return buf.getvalue().encode("utf-8")


def _quoted(cell: str, value: Any) -> str:
    """One CSV field: text from a string value in double quotes (quotes doubled), any other
    as :func:`csv.writer` writes it with minimal quoting.
    """
    if isinstance(value, str):
        return '"' + cell.replace('"', '""') + '"'
    if any(ch in cell for ch in ',"\n\r'):
        return '"' + cell.replace('"', '""') + '"'
    return cell


def write_csvs(tables: Mapping[str, pa.Table], out_dir: Path) -> list[Path]:
    """Write each table as ``<name>.csv`` in ``out_dir``; returns the paths, in table order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, table in tables.items():
        path = out_dir / f"{name}.csv"
        path.write_bytes(csv_bytes(table))
        paths.append(path)
    return paths
