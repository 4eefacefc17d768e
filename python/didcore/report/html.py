"""The self-contained HTML report, laid out like the publication.

One file, no external requests: the CSS is inline, charts and maps are PNG ``data:`` URIs, and the
only links are to the report's own files (CSV, workbook, chart files) by relative path. There are
no ``http`` links at all; the publication's citations are given as plain text. Text comes from
:mod:`didcore.report.text`; the page is rendered with Jinja2 (autoescaped) from
``templates/report.html.j2``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa

from didcore.quality import AnnexA
from didcore.report import text as txt
from didcore.report.fmt import fmt_count, fmt_pct, fmt_rate, is_missing, slug

__all__ = ["FigureImage", "HtmlTable", "render_html"]


@dataclass
class FigureImage:
    """A chart for the page: PNG bytes plus caption, alt text and links to the saved files."""

    id: str
    caption: str
    alt: str
    png: bytes
    width: int
    height: int
    files: list[tuple[str, str]] = field(default_factory=list)

    @property
    def src(self) -> str:
        """The PNG as a ``data:`` URI, so the page needs no other file to show it."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass
class HtmlTable:
    """A table as display strings; ``numeric`` lists the right-aligned column indices."""

    caption: str
    headers: list[str]
    rows: list[list[str]]
    numeric: set[int] = field(default_factory=set)
    row_headers: bool = True
    note: str = ""
    # columns of long unbroken strings (SHA-256 hashes, file paths) that may break anywhere,
    # so the table fits the page width instead of overflowing it
    wrap: set[int] = field(default_factory=set)


def _national_tables(national: pa.Table, period: str) -> list[HtmlTable]:
    rows = national.to_pylist()
    out = []
    for n, (kind, what) in enumerate(
        (("modality", "modality"), ("edoc", "Early Diagnosis of Cancer")), start=1
    ):
        sel = [r for r in rows if r.get("kind", "modality") == kind]
        if not sel:
            continue
        headers = ["", *[r["measure"] for r in sel]]
        body = [["Rate per 10,000 people", *[fmt_rate(r["rate_per_10000"]) for r in sel]]]
        if any("previous_rate_per_10000" in r for r in sel):
            body.append(
                ["Previous rate", *[fmt_rate(r.get("previous_rate_per_10000")) for r in sel]]
            )
            body.append(
                [
                    "Change",
                    *[
                        "-" if is_missing(r.get("change_pct")) else f"{r['change_pct']:+.1f}%"
                        for r in sel
                    ],
                ]
            )
        body.append(["Tests in the rates", *[fmt_count(r["observed"]) for r in sel]])
        out.append(
            HtmlTable(
                caption=f"Table {n}. National Imaging Rates per 10,000 by {what}{period}",
                headers=headers,
                rows=body,
                numeric=set(range(1, len(headers))),
            )
        )
    return out


def _measure_table(rows: Sequence[Mapping[str, Any]], measure: str) -> HtmlTable:
    ordered = sorted(
        rows,
        key=lambda r: (
            is_missing(r.get("standardised_rate")),
            -(r.get("standardised_rate") or 0.0),
            r["icb_code"],
        ),
    )
    body = []
    for r in ordered:
        ci = (
            "*"
            if is_missing(r.get("sr_lower_95"))
            else f"{fmt_rate(r['sr_lower_95'])} to {fmt_rate(r['sr_upper_95'])}"
        )
        body.append(
            [
                f"{r['icb_code']} {txt.icb_label(r.get('icb_name', ''), r['icb_code'])}",
                r.get("region", ""),
                fmt_count(r.get("observed")),
                fmt_count(r.get("expected")),
                fmt_rate(r.get("crude_rate")),
                fmt_rate(r.get("standardised_rate")),
                ci,
                (r.get("funnel_998") or "*").capitalize(),
            ]
        )
    return HtmlTable(
        caption=f"Standardised {measure} rates per 10,000 by ICB, highest first",
        headers=[
            "ICB",
            "Region",
            "Observed",
            "Expected",
            "Crude rate",
            "Standardised rate",
            "95% CI",
            "Funnel (99.8%)",
        ],
        rows=body,
        numeric={2, 3, 4, 5, 6},
    )


def _ratio_blocks(ratios: pa.Table, period: str) -> list[dict[str, Any]]:
    rows = ratios.to_pylist()
    kinds: dict[str, str] = {}
    for r in rows:
        kinds.setdefault(r["measure"], r.get("kind", "modality"))
    measures = list(kinds)
    by = {(r["factor"], str(r["level"]), r["measure"]): r for r in rows}
    sentences = txt.ratios_sentences(rows, measures)
    blocks = []
    number = 0
    for factor, heading, label in (
        ("sex", "3.2.1 Sex", "Sex"),
        ("imd_quintile", "3.2.2 Deprivation", "Deprivation"),
        ("age", "3.2.3 Age", "Age band"),
    ):
        levels = list(txt.RATIO_LEVEL_LABELS[factor])
        if factor == "sex":
            levels = ["female", "male"]  # the base first, as published
        tables = []
        for kind, what in (("modality", "modality"), ("edoc", "Early Diagnosis of Cancer")):
            ms = [m for m in measures if kinds[m] == kind]
            if not ms:
                continue
            number += 1
            body = []
            for level in levels:
                cells = []
                for m in ms:
                    r = by.get((factor, level, m))
                    if r is None or is_missing(r.get("ratio")):
                        cells.append("-")
                    else:
                        cells.append(f"{float(r['ratio']):.2f}{r.get('stars') or ''}")
                body.append([txt.RATIO_LEVEL_LABELS[factor].get(level, level), *cells])
            tables.append(
                HtmlTable(
                    caption=f"Table {number}. {label} rates ratios by {what}{period}",
                    headers=["", *ms],
                    rows=body,
                    numeric=set(range(1, len(ms) + 1)),
                )
            )
        blocks.append({"heading": heading, "text": sentences[factor], "tables": tables})
    return blocks


def _annex_a_items(
    annex: AnnexA, tables: Mapping[str, pa.Table], period: str
) -> list[dict[str, Any]]:
    fig = annex.figures
    th = annex.thresholds
    shares = {r["source"]: r for r in tables["annex_a_source_shares"].to_pylist()}
    items: list[dict[str, Any]] = [
        {
            "kind": "p",
            "text": "The ICB of each test was derived from the patient's GP practice code or, "
            "where this was missing or not recognised, from the Lower Super Output Area (LSOA) "
            "of their postcode. Resident (LSOA-based) ICB may differ from responsible (GP "
            "practice-based) ICB, but the fallback improves the coverage of ICB activity.",
        }
    ]
    if shares:

        def share(key: str) -> str:
            r = shares.get(key, {})
            return f"{fmt_pct(r.get('percent'))} ({fmt_count(r.get('count'))})"

        items.append(
            {
                "kind": "p",
                "text": f"{share('gp_practice')} of imaging tests had an English ICB based on "
                f"GP practice. A further {share('lsoa')} had an English ICB derived from LSOA, "
                f"{share('other_valid_practice')} had a non-English or other valid GP practice "
                f"(e.g. prisons and Ministry of Defence practices) and {share('unknown')} were "
                "unknown or unidentified.",
            }
        )
        items.append({"kind": "table", "table": _simple(tables["annex_a_source_shares"], "src")})
    a1 = tables["annex_a_table_a1"]
    over = fig.get("providers_no_practice_no_lsoa_over_count", 0)
    items.append(
        {
            "kind": "p",
            "text": txt.annex_a1_lead(a1.num_rows, th.no_practice_share, th.no_practice_count)
            + " "
            + (
                f"No providers had more than {th.no_practice_count:,} imaging tests with no GP "
                "practice or LSOA from which to allocate ICB. "
                if over == 0
                else f"{over} provider{'s' if over != 1 else ''} had more than "
                f"{th.no_practice_count:,} imaging tests with neither GP practice nor LSOA. "
            )
            + f"Nationally, {fmt_count(fig.get('no_icb'))} ({fmt_pct(fig.get('no_icb_pct'))}) "
            "imaging tests were omitted from the ICB tables because no valid ICB could be "
            "identified.",
        }
    )
    items.append({"kind": "table", "table": _a1(a1, th, period)})
    items.append(
        {
            "kind": "p",
            "text": txt.annex_a2_lead(
                tables["annex_a_table_a2"].num_rows,
                th.provider_missing_share,
                th.provider_missing_count,
            )
            + " Nationally, "
            f"{fmt_count(fig.get('no_imd'))} ({fmt_pct(fig.get('no_imd_pct'))}) imaging tests "
            "with a valid ICB were omitted from standardised rates because no deprivation "
            f"quintile could be imputed from LSOA, a further {fmt_count(fig.get('no_sex'))} "
            f"({fmt_pct(fig.get('no_sex_pct'))}) had sex missing and a further "
            f"{fmt_count(fig.get('no_age'))} ({fmt_pct(fig.get('no_age_pct'))}) had no age.",
        }
    )
    items.append({"kind": "table", "table": _missing(tables["annex_a_table_a2"], "A.2", th)})
    a3 = tables["annex_a_table_a3"]
    text = txt.annex_a3_lead(a3.num_rows, th.icb_missing_share, th.icb_missing_count)
    if a3.num_rows:
        top = a3.to_pylist()[0]
        label = txt.icb_label(top.get("icb_name", ""), top["icb_code"])
        text += (
            f" The biggest shortfall is for {label} ({top['icb_code']}), which has standardised "
            "rates around "
            f"{fmt_pct(top['missing_pct'], 0)} lower than expected for this reason."
        )
    items.append({"kind": "p", "text": text})
    items.append({"kind": "table", "table": _missing(a3, "A.3", th)})
    if "annex_a_table_a4" in tables:
        a4 = tables["annex_a_table_a4"]
        text = txt.annex_a4_lead(a4.num_rows, th.icb_shortfall_share, th.icb_shortfall_count)
        lines = []
        for r in a4.to_pylist()[:3]:
            prov = r.get("main_provider_name") or r.get("main_provider_code")
            lines.append(
                f"{txt.icb_label(r.get('icb_name', ''), r['icb_code'])} ({r['icb_code']}): "
                f"{fmt_count(r['missing_records'])} ({fmt_pct(r['missing_pct'], 0)}) missing, "
                f"largely from {prov} ({r.get('main_provider_code')})"
            )
        if lines:
            text += " The biggest shortfalls are: " + "; ".join(lines) + "."
        unalloc = tables.get("annex_a_a4_unallocated")
        if unalloc is not None and unalloc.num_rows:
            text += (
                f" {unalloc.num_rows} provider{'s' if unalloc.num_rows != 1 else ''} with "
                "estimated missing records had no tests in the extract to allocate them by "
                "(see annex_a_a4_unallocated.csv)."
            )
        items.append({"kind": "p", "text": text})
        items.append({"kind": "table", "table": _a4(a4, th, period)})
    else:
        items.append({"kind": "p", "text": txt.ANNEX_A4_NOT_PRODUCED})
    return items


def _simple(table: pa.Table, kind: str) -> HtmlTable:
    rows = table.to_pylist()
    return HtmlTable(
        caption="Source of each test's ICB"
        if kind == "src"
        else "Records excluded from the rates, by first reason",
        headers=["", "No. tests", "% tests"],
        rows=[[r["label"], fmt_count(r["count"]), fmt_pct(r["percent"])] for r in rows],
        numeric={1, 2},
    )


def _a1(table: pa.Table, th: Any, period: str) -> HtmlTable:
    rows = table.to_pylist()
    return HtmlTable(
        caption=f"Table A.1. Providers with more than {th.no_practice_share:.0%} and "
        f"{th.no_practice_count:,} imaging tests with no GP Practice{period}",
        headers=[
            "Provider",
            "Tests with no GP practice",
            "% tests",
            "Of which, no LSOA",
            "% tests",
        ],
        rows=[
            [
                f"{r['provider_code']} {r.get('provider_name') or ''}".strip(),
                fmt_count(r["no_practice"]),
                fmt_pct(r["no_practice_pct"], 0),
                fmt_count(r["no_practice_no_lsoa"]),
                fmt_pct(r["no_practice_no_lsoa_pct"]),
            ]
            for r in rows
        ]
        or [["None", "", "", "", ""]],
        numeric={1, 2, 3, 4},
    )


def _icb_name(row: Mapping[str, Any]) -> str:
    """An Annex A row's ICB name as the rest of the report writes it ("NHS Devon ICB")."""
    name = row.get("icb_name") or ""
    return txt.icb_label(name, "") if name else ""


def _contents(measures: Sequence[Mapping[str, Any]], period_sfx: str) -> list[dict[str, Any]]:
    """The report's sections, numbered: the one source of the Contents list and the headings.

    Each entry is ``{"id", "number", "title", "children"}``; the template writes the headings
    from the same entries (looked up by id), so the Contents can never be numbered or ordered
    differently from the sections it links to.
    """

    def sec(id_: str, number: str, title: str, *children: dict[str, Any]) -> dict[str, Any]:
        return {"id": id_, "number": number, "title": title, "children": list(children)}

    return [
        sec("introduction", "1", "Introduction"),
        sec(
            "icb-rates",
            "2",
            "ICB Standardised Rates",
            sec("method", "2.1", "Method"),
            sec(
                "results",
                "2.2",
                "Results",
                *[sec(m["id"], f"2.2.{m['number']}", m["name"]) for m in measures],
            ),
        ),
        sec(
            "rates-ratios",
            "3",
            "Rates Ratios",
            sec("ratios-method", "3.1", "Method"),
            sec("ratios-results", "3.2", "Results"),
        ),
        sec(
            "annex",
            "4",
            "Annex",
            sec("annex-a", "4.1", "Annex A - Data quality and the impact of missing data"),
            sec(
                "annex-b",
                "4.2",
                f"Annex B - ICB Standardised Imaging Rates per 10,000{period_sfx}",
            ),
        ),
        sec("provenance", "", "Provenance of this run"),
    ]


def _flatten(entries: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for e in entries:
        out[e["id"]] = e
        out.update(_flatten(e["children"]))
    return out


def _missing(table: pa.Table, which: str, th: Any) -> HtmlTable:
    rows = table.to_pylist()
    key, name = ("provider_code", "provider_name") if which == "A.2" else ("icb_code", "icb_name")
    share, count = (
        (th.provider_missing_share, th.provider_missing_count)
        if which == "A.2"
        else (th.icb_missing_share, th.icb_missing_count)
    )
    what = "Providers" if which == "A.2" else "ICBs"
    label = (lambda r: r.get(name) or "") if which == "A.2" else _icb_name
    return HtmlTable(
        caption=f"Table {which}. {what} with more than {share:.0%} and {count:,} imaging tests "
        "with no Age or Sex or LSOA",
        headers=[
            "Provider" if which == "A.2" else "ICB",
            "Total no. tests",
            "Of which, age, sex or LSOA missing",
            "% missing",
            "Most common missing",
        ],
        rows=[
            [
                f"{r[key]} {label(r)}".strip(),
                fmt_count(r["rows"]),
                fmt_count(r["missing_any"]),
                fmt_pct(r["missing_pct"]),
                r.get("most_common_missing") or "",
            ]
            for r in rows
        ]
        or [["None", "", "", "", ""]],
        numeric={1, 2, 3},
    )


def _a4(table: pa.Table, th: Any, period: str) -> HtmlTable:
    rows = table.to_pylist()
    return HtmlTable(
        caption=f"Table A.4. ICBs with more than {th.icb_shortfall_share:.0%} and "
        f"{th.icb_shortfall_count:,} estimated missing imaging tests{period}",
        headers=["ICB", "Total no. tests", "Records missing", "% missing", "Mostly from"],
        rows=[
            [
                f"{r['icb_code']} {_icb_name(r)}".strip(),
                fmt_count(r["rows"]),
                fmt_count(r["missing_records"]),
                fmt_pct(r["missing_pct"], 0),
                f"{r.get('main_provider_code') or ''} {r.get('main_provider_name') or ''}".strip(),
            ]
            for r in rows
        ]
        or [["None", "", "", "", ""]],
        numeric={1, 2, 3},
    )


def _provenance_tables(prov: Mapping[str, Any]) -> list[HtmlTable]:
    inputs = prov.get("inputs", {})
    files: list[list[str]] = []
    for role, entries in (
        ("Extract", inputs.get("extracts", [])),
        ("Lookups", inputs.get("lookups", {}).get("files", [])),
        ("Population", [inputs["population"]] if inputs.get("population") else []),
        (
            "Provider missing records",
            [inputs["provider_missing"]] if inputs.get("provider_missing") else [],
        ),
    ):
        for e in entries:
            files.append(
                [
                    role,
                    str(e.get("path") or e.get("kind") or ""),
                    fmt_count(e.get("bytes")) if e.get("bytes") is not None else "",
                    fmt_count(e.get("rows")) if e.get("rows") is not None else "",
                    str(e.get("sha256") or ""),
                ]
            )
    rows = prov.get("rows", {})
    lookups_used = inputs.get("lookups", {}).get("description")
    run = [
        *([["Lookups", str(lookups_used)]] if lookups_used else []),
        ["didcore version", str(prov.get("didcore_version", ""))],
        ["Python", str(prov.get("python", ""))],
        *[[f"{k} version", str(v)] for k, v in sorted(prov.get("packages", {}).items())],
        ["Records read", fmt_count(rows.get("rows_read"))],
        ["Records in the rates", fmt_count(rows.get("included"))],
        *[["Guard overridden", str(w)] for w in prov.get("guards", {}).get("allowed", [])],
        *[[f"Option: {k}", str(v)] for k, v in sorted(prov.get("options", {}).items())],
    ]
    if inputs.get("previous"):
        run.append(["Previous report", str(inputs["previous"].get("path", ""))])
    return [
        HtmlTable(
            caption="Input files",
            headers=["Role", "File", "Bytes", "Rows", "SHA-256"],
            rows=files or [["", "(in-memory tables)", "", "", ""]],
            numeric={2, 3},
            wrap={1, 4},
        ),
        HtmlTable(caption="Software and run", headers=["", ""], rows=run),
    ]


def _funnelplotr_sentence(funnel: pa.Table) -> str:
    """Say so when the funnel limits are FunnelPlotR's (``--funnel-method funnelplotr``)."""
    if not funnel.num_rows or "limits" not in funnel.column_names:
        return ""
    if funnel["limits"][0].as_py() != "funnelplotr":
        return ""
    return (
        " This report uses FunnelPlotR-compatible limits: the funnel limits and High/Low flags "
        "are computed as FunnelPlotR 0.6.0 computes them, to match an existing FunnelPlotR "
        "chart (its square-root-scale limits are not squared back to the ratio scale, its z "
        "values are rounded, and it draws unadjusted limits when its dispersion ratio is 1 or "
        "less)."
    )


def _zero_notes(tables: Mapping[str, pa.Table], disclosure: bool) -> list[str]:
    """The workbook's note on measures where many ICBs recorded no tests, for the page too."""
    from didcore.report.pipeline import zero_count_notes

    return zero_count_notes(tables["icb_rates"], tables["funnel"], disclosure=disclosure)


def render_html(
    tables: Mapping[str, pa.Table],
    *,
    annex: AnnexA,
    figures: Mapping[str, Sequence[FigureImage]],
    title: str,
    period: str | None,
    previous_period: str | None,
    yoy_sentence: str | None,
    disclosure: str | None,
    provenance: Mapping[str, Any],
    downloads: Sequence[tuple[str, str, str]],
    attribution: str,
    publication: Any = None,
) -> str:
    """The report page as a string. ``figures`` maps measure -> its map, graph and funnel.

    ``publication`` (:func:`didcore.report.publication.load_publication_config`; None for the
    shipped defaults) gives the version line under the title and the "Contact us" lines, the
    same as the workbook's.
    """
    import jinja2

    from didcore.report.publication import load_publication_config

    pub = load_publication_config(publication)

    period_sfx = f", {period}" if period else ""
    national = tables["national_rates"]
    nat_rows = {r["measure"]: r for r in national.to_pylist()}
    summary = {r["measure"]: r for r in tables["summary"].to_pylist()}
    icb_rows: dict[str, list[dict[str, Any]]] = {}
    for r in tables["icb_rates"].to_pylist():
        icb_rows.setdefault(r["measure"], []).append(r)
    fig = annex.figures
    measures = []
    for number, measure in enumerate(national["measure"].to_pylist(), start=1):
        rows = icb_rows.get(measure, [])
        measures.append(
            {
                "id": f"measure-{slug(measure)}",
                "number": number,
                "name": measure,
                "paragraphs": txt.measure_paragraphs(
                    measure,
                    number,
                    rows,
                    nat_rows[measure],
                    summary.get(measure),
                    previous_period=previous_period,
                ),
                "figures": list(figures.get(measure, [])),
                "table": _measure_table(rows, measure),
                "n_icbs": len(rows),
            }
        )
    n_icbs = len({r["icb_code"] for r in tables["icb_rates"].to_pylist()})
    within10 = [
        float(s["share_within_10pct_of_crude"])
        for s in summary.values()
        if not is_missing(s.get("share_within_10pct_of_crude"))
    ]
    results = []
    if yoy_sentence:
        results.append(yoy_sentence)
    results.append(
        "These national rates exclude activity with missing age, sex, deprivation or ICB "
        f"({fmt_pct(100 - float(fig.get('included_pct', 100.0)))} of the records read). The "
        "rates for some ICBs were affected by missing data, as outlined in Annex A; rates at "
        "the lowest end of the distribution may therefore have shortfalls."
    )
    if within10:
        results.append(
            f"Across the {len(within10)} measures, on average "
            f"{100 * sum(within10) / len(within10):.0f}% of ICBs had a standardised rate within "
            "10% of their crude rate; the differences are bigger in areas with predominantly "
            "younger or older populations. The impact of age, sex and deprivation on imaging "
            "rates is explored in Section 3."
        )
    results.append(
        f"Standardised rates for the {n_icbs} ICBs are in Annex B (a separate workbook). The "
        "following sections summarise the distribution of rates for each modality or early "
        "diagnosis of cancer (EDOC) test and illustrate them on a map, a chart of ICBs ordered "
        "by rate, and a funnel plot."
    )
    contents = _contents(measures, period_sfx)
    ctx = {
        "contents": contents,
        "sections": _flatten(contents),
        "title": title,
        "subtitle": "Standardised ICB rates of imaging tests from the Diagnostic Imaging Dataset"
        f"{period_sfx}: rates per 10,000 population, standardised for age, sex and deprivation. "
        "Produced by didcore from a record-level extract.",
        "disclosure": disclosure,
        "version": provenance.get("didcore_version", ""),
        "generated_at": provenance.get("generated_at", ""),
        "period_phrase": f" in {period}" if period else "",
        "period_suffix": period_sfx,
        "intro": [
            "Imaging activity from the Diagnostic Imaging Dataset (DID) is presented here by "
            "Integrated Care Board (ICB) as a rate per population, for each imaging modality "
            "and for tests used in the early diagnosis of cancer (EDOC), standardised by age, "
            "sex and deprivation. Rates ratios show the impact of age, sex and deprivation on "
            "the rates.",
            "The layout follows NHS England's annual publication \u201cDiagnostic Imaging "
            "Dataset: Standardised ICB rates\u201d; see the Diagnostic Imaging Dataset Annual "
            "Statistical Release (NHS England) for the definitions of each modality and "
            "further details on the collection.",
        ],
        "method": [
            "The ICB of each test was derived from the patient's GP practice code or, where "
            "this was missing or not recognised, from the Lower Super Output Area (LSOA) of "
            "their postcode. Rates per 10,000 population were calculated by dividing DID "
            "activity for ICBs by the ICB populations. Both were available by age and sex, "
            "with the Index of Multiple Deprivation (IMD) quintile added from the LSOA.",
            "Counts of imaging activity by ICB, sex, 5-year age band, imputed IMD quintile and "
            "modality or EDOC test were extracted from the DID. " + txt.exclusion_sentence(fig),
            "Rates were indirectly standardised by applying the national rate by modality or "
            "EDOC test for each IMD/sex/age breakdown to the local ICB population, to obtain an "
            "expected number of tests for each ICB based on its demography. The extent to "
            "which the observed number differed from the expected number indicates how far the "
            "ICB differed from the national rate. A standardised rate for each ICB was "
            "calculated as:",
        ],
        "method_after": [
            "Indirect standardisation allows each rate to be compared with the national "
            "average but does not allow direct comparison between ICBs; the directly "
            "standardised rates (2013 European Standard Population) in icb_rates.csv do. "
            "Confidence intervals use Byar's method (exact Poisson for small counts); funnel "
            "plots show 95% and 99.8% control limits around the national rate, widened for "
            "overdispersion (Spiegelhalter's additive random-effects method on winsorised "
            "z-scores) when ICBs vary more than chance alone allows; each plot's legend says "
            "which limits it shows." + _funnelplotr_sentence(tables["funnel"]),
            *_zero_notes(tables, disclosure is not None),
        ],
        "national_tables": _national_tables(national, period_sfx),
        "results": results,
        "measures": measures,
        "ratios_method": [
            "Three factors that could affect the rate of diagnostic testing were considered: "
            "age (five-year age bands, reported in broader bands), sex (male and female) and "
            "deprivation (quintiles of the Index of Multiple Deprivation). Rates ratios show "
            "the impact of each factor while controlling for the other two: national rates "
            "were calculated by two of the factors at a time to estimate expected values for "
            "the third, giving a standardised rate per 10,000 for each level.",
            "Ratio = r2 / r1, where r1 is the standardised rate of the base category (female; "
            "IMD quintile 1, most deprived; age 0 - <45) and r2 that of the comparison "
            "category. The base level is always 1.00. Significance was tested with Pearson's "
            "chi-square test, as in the publication.",
        ],
        "ratio_blocks": _ratio_blocks(tables["rates_ratios"], period_sfx),
        "annex_a": _annex_a_items(annex, tables, period_sfx),
        "downloads": downloads,
        "attribution": attribution,
        "provenance_tables": _provenance_tables(provenance),
        "guard_warnings": list(provenance.get("guards", {}).get("allowed", [])),
        "version_line": pub.version,
        "contact": pub.contact_lines(),
    }
    template_text = (
        resources.files("didcore.report")
        .joinpath("templates", "report.html.j2")
        .read_text(encoding="utf-8")
    )
    env = jinja2.Environment(autoescape=True, trim_blocks=False, lstrip_blocks=False)
    return env.from_string(template_text).render(**ctx)


def write_html(path: Path, page: str) -> Path:
    """Write the page (UTF-8, Unix line ends)."""
    path.write_text(page, encoding="utf-8", newline="\n")
    return path
