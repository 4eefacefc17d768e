"""The whole publication from one call: statistics, tables, workbook, charts, maps and HTML.

:func:`run_report` runs ``aggregate`` -> ``Population.read`` -> ``standardise`` ->
``rates_ratios`` -> Annex A, then :func:`write_report` writes every output. ``write_report`` can
also be given results computed elsewhere (a notebook, a cube built from several years).

This module is the orchestration: the order of the steps, progress, the workbook's and page's
notes, the atomic output folder. The run's record is made by :mod:`didcore.report.provenance`
(:func:`build_provenance`, importable from here too) and the graphs, maps and funnel plots with
their alt texts by :mod:`didcore.report.figures`.

Output folder::

    national_rates.csv  icb_rates.csv  rates_ratios.csv  summary.csv  funnel.csv  cube.csv
    exclusions.csv  annex_a_*.csv  annex_b.xlsx  report.html  provenance.json
    charts/graph_NN_<measure>.{png,svg}  charts/map_NN_<measure>.{png,svg}
    charts/funnel_NN_<measure>.{png,svg}

Every file is byte-for-byte the same when the same inputs are run again, except the one field
``generated_at`` of ``provenance.json`` and the one ``<time id="generated-at">`` element of
``report.html`` (set ``SOURCE_DATE_EPOCH`` to fix that too).
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from didcore.errors import InputError
from didcore.quality import QualityThresholds, annex_a
from didcore.report.disclosure import DisclosureRule
from didcore.report.figures import PendingFigures, start_figures
from didcore.report.provenance import build_provenance, didcore_version, now
from didcore.report.reference import icb_info, provider_names
from didcore.report.tables import ReportInputs, build_tables, write_csvs
from didcore.report.yoy import (
    PreviousReport,
    check_previous_period,
    read_previous,
    yoy_sentence,
)

__all__ = [
    "ALL_FORMATS",
    "ATTRIBUTION",
    "ReportResult",
    "run_report",
    "write_report",
]

#: Every output format, the default.
ALL_FORMATS: tuple[str, ...] = ("csv", "xlsx", "png", "svg", "html")

#: The attribution shown in the workbook and the HTML (Open Government Licence v3.0 asks for it).
ATTRIBUTION = (
    "Source: NHS England, Diagnostic Imaging Dataset (the extract given to didcore). Contains "
    "public sector information licensed under the Open Government Licence v3.0. ICB boundaries "
    "and populations: Office for National Statistics; contains OS data © Crown copyright and "
    "database right 2022. Deprivation: Ministry of Housing, Communities and Local Government, "
    "English Indices of Deprivation 2019. Produced with didcore."
)

ProgressArg = bool | None | Callable[[str, int, int], None]


@dataclass
class ReportResult:
    """What a report run wrote, and its one-line summary."""

    out_dir: Path
    files: list[Path]
    tables: dict[str, pa.Table]
    provenance: dict[str, Any]
    summary: str
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class _Steps:
    """Progress over the report's steps: a tqdm bar, a caller's callback, or nothing."""

    def __init__(self, total: int, progress: ProgressArg, quiet: bool) -> None:
        self.total = total
        self.done = 0
        self.callback = progress if callable(progress) else None
        self.bar = None
        show = not quiet and (progress is True or (progress is None and sys.stderr.isatty()))
        if show and self.callback is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="didcore report", unit=" step", leave=False)

    def step(self, what: str) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(what, refresh=False)
            self.bar.update(1)
        if self.callback is not None:
            self.callback(what, self.done, self.total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _check_formats(formats: Iterable[str]) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(f.strip().lower() for f in formats if f.strip()))
    unknown = [f for f in out if f not in ALL_FORMATS]
    if unknown:
        raise InputError(
            f"unknown output format(s) {', '.join(unknown)}; choose from {', '.join(ALL_FORMATS)}"
        )
    if not out:
        raise InputError(f"no output format chosen; choose from {', '.join(ALL_FORMATS)}")
    return out


# ------------------------------------------------------------------------------ writing


def _notes(
    period: str | None, rule: DisclosureRule | None, funnel: pa.Table, *, a4: bool = True
) -> list[str]:
    method = ""
    if funnel.num_rows and "method" in funnel.column_names:
        m = funnel["method"][0].as_py()
        if m and m != "poisson":
            method = (
                " The limits allow for overdispersion between ICBs (Spiegelhalter's random-"
                f"effects method, {m}d z-scores)."
            )
    has_limits = funnel.num_rows and "limits" in funnel.column_names
    if has_limits and funnel["limits"][0].as_py() == "funnelplotr":
        method += (
            " FunnelPlotR-compatible limits: computed as FunnelPlotR 0.6.0 does, to match an "
            "existing FunnelPlotR chart (square-root-scale limits not squared back, z rounded "
            "to 1.959964 and 3.090232, unadjusted limits where its dispersion ratio is 1 or "
            "less; docs/statistics.md, section 5.3)."
        )
    notes = [
        "Rates are per 10,000 population. Standardised rates are indirectly standardised for "
        "age (19 five-year bands), sex and deprivation (IMD quintile) using the national rates"
        + (f" of {period}" if period else "")
        + ".",
        "Observed: tests in the rates (records with a valid ICB, deprivation quintile, sex and "
        "age). Expected: the tests the ICB would have had at the national rates for its "
        "population.",
        "95% confidence intervals by Byar's method (exact Poisson for small counts).",
        "Within 10% of crude: whether the standardised rate is within 10% of the crude rate.",
        "Funnel (99.8%): High or Low when the ICB's observed/expected ratio lies outside the "
        "99.8% funnel-plot control limits." + method,
        "Indirectly standardised rates compare each ICB with England; they do not allow ICBs to "
        "be compared directly with each other (icb_rates.csv also has directly standardised "
        "rates, which do).",
        # Table A.4 is there only with --provider-missing: never point to a missing sheet
        "Some ICBs' rates are reduced by missing data: see Annex A (sheets Table A.1 to "
        + ("A.4)." if a4 else "A.3; Table A.4 was not produced)."),
    ]
    if rule is not None:
        notes.append("Disclosure control: " + rule.describe())
    return notes


#: A measure's funnel note is written when at least this share of its ICBs recorded no test.
ZERO_SHARE_NOTE = 0.25


def zero_count_notes(icb: pa.Table, funnel: pa.Table, *, disclosure: bool = False) -> list[str]:
    """One note per measure where many ICBs recorded no test and the funnel limits were widened.

    Spiegelhalter's overdispersion adjustment reads ICBs with no tests (usually how a test is
    provided or recorded, not need) as variation between ICBs: the random-effects variance
    ``tau2`` becomes large and the limits very wide, so an ICB several times the national rate
    can lie within them (docs/statistics.md, section 5.5). The note says so, with the 99.8% upper
    limit at the measure's median expected count. Under disclosure control the number of ICBs
    with no tests is not given.
    """
    import numpy as np

    from didcore.stats import funnel_limits

    out: list[str] = []
    params = {r["measure"]: r for r in funnel.select(
        [c for c in ("measure", "tau2", "scale", "limits") if c in funnel.column_names]
    ).to_pylist()}  # fmt: skip
    rows = icb.select(["measure", "observed", "expected"]).to_pylist()
    for measure, p in params.items():
        tau2 = p.get("tau2") or 0.0
        mine = [r for r in rows if r["measure"] == measure and (r["expected"] or 0) > 0]
        zeros = sum(1 for r in mine if r["observed"] == 0)
        if not mine or tau2 <= 0 or zeros < ZERO_SHARE_NOTE * len(mine):
            continue
        e = float(np.median([r["expected"] for r in mine]))
        scale, method = p.get("scale") or "sqrt", p.get("limits") or "didcore"
        _, hi = funnel_limits([e], 0.998, tau2=tau2, scale=scale, method=method)  # type: ignore[arg-type]
        who = "At least a quarter of ICBs" if disclosure else f"{zeros} of {len(mine)} ICBs"
        out.append(
            f"{measure}: {who} recorded no tests. The overdispersion adjustment counts the gap "
            "between ICBs that record these tests and ICBs that record none as variation "
            "between ICBs, so the funnel limits are very wide (the 99.8% upper limit is "
            f"{float(hi[0]):.1f} times the national rate at a typical ICB's expected count) and "
            "an ICB several times the national rate can lie within them. Zero counts usually "
            "reflect how a test is provided or recorded; compare the ICBs' rates directly."
        )
    return out


def write_report(
    inputs: ReportInputs,
    out_dir: str | Path,
    *,
    previous: str | Path | PreviousReport | None = None,
    disclosure_control: bool | DisclosureRule = False,
    formats: Iterable[str] = ALL_FORMATS,
    progress: ProgressArg = None,
    quiet: bool = False,
    provenance: dict[str, Any] | None = None,
    measures: Sequence[str] | None = None,
    n_jobs: int | None = None,
    publication: Any = None,
) -> ReportResult:
    """Write every output for results already computed (see :class:`ReportInputs`).

    ``publication``: the version, contact and footnote lines and Annex A rounding (a TOML
    file, a :class:`~didcore.report.publication.PublicationConfig`, or None for the shipped
    defaults; docs/report.md, "The publication file").

    ``measures`` limits the charts to some measures (the tables always have all of them).
    ``n_jobs``: processes drawing the figures (default one a core; 1 draws them in this
    process), while this one writes the tables and workbook (:mod:`didcore.report.drawing`).
    """
    from didcore.arguments import check_threads
    from didcore.report.drawing import refuse_in_worker_start

    refuse_in_worker_start("didcore.write_report")
    n_jobs = check_threads(n_jobs, "n_jobs")
    start = time.perf_counter()
    fmts = _check_formats(formats)
    from didcore.report.publication import load_publication_config

    pub = load_publication_config(publication)  # a bad file is refused before any output
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rule: DisclosureRule | None
    if isinstance(disclosure_control, DisclosureRule):
        rule = disclosure_control
    else:
        rule = DisclosureRule() if disclosure_control else None
    prev = (
        previous
        if isinstance(previous, PreviousReport) or previous is None
        else read_previous(previous)
    )
    n_measures = len(inputs.rates.national)
    steps = _Steps(
        total=3 + (n_measures if {"png", "svg", "html"} & set(fmts) else 0),
        progress=progress,
        quiet=quiet,
    )
    pending: PendingFigures | None = None
    try:
        if prev is not None:
            check_previous_period(prev, inputs.period, previous)
        tables = build_tables(inputs, disclosure=rule, previous=prev)
        period = inputs.period
        if {"png", "svg", "html"} & set(fmts):
            # drawn in worker processes while the tables and workbook are written here
            pending = start_figures(
                tables, inputs.icbs, out, fmts, period, measures=measures, n_jobs=n_jobs
            )
        title = inputs.title or (
            "Diagnostic Imaging Dataset: Standardised ICB rates" + (f" {period}" if period else "")
        )
        prov = dict(provenance or {})
        prov.setdefault("title", title)
        prov.setdefault("period", period)
        prov.setdefault("generated_at", now(None))
        prov.setdefault("didcore_version", didcore_version())
        prov.setdefault("rows", {k: int(v) for k, v in dict(inputs.cube.exclusions).items()})
        prov["options"] = {
            **prov.get("options", {}),
            "disclosure_control": rule.describe() if rule else "none",
            "formats": ",".join(fmts),
            "publication_config": pub.source or "shipped defaults",
            "annex_a_thresholds": json.dumps(asdict(inputs.annex.thresholds), sort_keys=True),
        }
        files: list[Path] = []
        if "csv" in fmts:
            files += write_csvs(tables, out)
        steps.step("tables")
        notes = _notes(period, rule, tables["funnel"], a4="annex_a_table_a4" in tables)
        notes += zero_count_notes(inputs.rates.icb, inputs.rates.funnel, disclosure=bool(rule))
        if "annex_a_table_a4" not in tables:
            from didcore.report.text import ANNEX_A4_NOT_PRODUCED

            notes.append(ANNEX_A4_NOT_PRODUCED)
        if prev is not None and prev.basis:
            notes.append(prev.basis)
        # guards that tripped and were allowed (--allow) are said in every output
        notes += [f"Guard overridden: {w}" for w in prov.get("guards", {}).get("allowed", [])]
        lookups_used = prov.get("inputs", {}).get("lookups", {}).get("description")
        if lookups_used:
            notes.append(f"Lookups (practice and LSOA to ICB, IMD, measures): {lookups_used}.")
        th = inputs.annex.thresholds
        if "xlsx" in fmts:
            from didcore.report.excel import write_workbook

            files.append(
                write_workbook(
                    out / "annex_b.xlsx",
                    tables,
                    title="Annex B - ICB Standardised Imaging Rates per 10,000"
                    + (f", {period}" if period else ""),
                    notes=notes,
                    attribution=ATTRIBUTION,
                    report_title=title,
                    period=period,
                    publication=pub,
                    thresholds={
                        "a1": f"{th.no_practice_share:.0%} and {th.no_practice_count:,}",
                        "a2": f"{th.provider_missing_share:.0%} and {th.provider_missing_count:,}",
                        "a3": f"{th.icb_missing_share:.0%} and {th.icb_missing_count:,}",
                        "a4": f"{th.icb_shortfall_share:.0%} and {th.icb_shortfall_count:,}",
                    },
                    notes_sections={
                        "About this workbook": [title, *notes],
                        "Annex A thresholds (a row is listed above both)": [
                            "Table A.1, providers' tests with no GP practice: more than "
                            f"{th.no_practice_share:.0%} and {th.no_practice_count:,}",
                            "Table A.2, providers' tests with no age, sex or LSOA: more than "
                            f"{th.provider_missing_share:.0%} and {th.provider_missing_count:,}",
                            "Table A.3, ICBs' tests with no age, sex or LSOA: more than "
                            f"{th.icb_missing_share:.0%} and {th.icb_missing_count:,}",
                            "Table A.4, ICBs' estimated missing tests: more than "
                            f"{th.icb_shortfall_share:.0%} and {th.icb_shortfall_count:,}",
                            "(didcore.quality.QualityThresholds: "
                            + ", ".join(f"{k}={v}" for k, v in asdict(th).items())
                            + ")",
                        ],
                        "Provenance (see provenance.json for the full record)": [
                            f"didcore {prov.get('didcore_version')}",
                            *[
                                f"{e.get('path') or e.get('kind')}: sha256 {e.get('sha256', '-')}"
                                for e in prov.get("inputs", {}).get("extracts", [])
                            ],
                        ],
                        "Attribution": [ATTRIBUTION],
                        "Not in this workbook": [
                            "The count cube (ICB x sex x age band x IMD quintile x measure) is in "
                            "cube.csv."
                        ],
                    },
                )
            )
        steps.step("workbook")
        figures: dict[str, list[Any]] = {}
        if pending is not None:
            chart_files, figures = pending.collect(steps)
            files += chart_files
        yoy = None
        if prev is not None:
            changes = {r["measure"]: r.get("change") for r in tables["national_rates"].to_pylist()}
            yoy = yoy_sentence(changes, prev.period)
            prov.setdefault("inputs", {}).setdefault("previous", {"period": prev.period})
            prov["inputs"]["previous"]["period"] = prev.period
            if prev.basis:
                yoy += " " + prev.basis
                prov["inputs"]["previous"]["basis"] = prev.basis
        (out / "provenance.json").write_text(
            json.dumps(prov, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
        )
        files.append(out / "provenance.json")
        if "html" in fmts:
            from didcore.report.html import render_html, write_html

            downloads = _downloads(files, out)
            page = render_html(
                tables,
                annex=inputs.annex,
                figures=figures,
                title=title,
                period=period,
                previous_period=prev.period if prev else None,
                yoy_sentence=yoy,
                disclosure=rule.describe() if rule else None,
                provenance=prov,
                downloads=downloads,
                attribution=ATTRIBUTION,
                publication=pub,
            )
            files.append(write_html(out / "report.html", page))
        steps.step("HTML report")
    finally:
        if pending is not None:
            pending.close()
        steps.close()
    seconds = time.perf_counter() - start
    ex = dict(inputs.cube.exclusions)
    read = int(ex.get("rows_read", 0))
    included = int(ex.get("included", 0))
    share = f" ({100 * included / read:.1f}%)" if read else ""
    summary = (
        f"didcore report: {read:,} records read, {included:,}{share} in the rates; "
        f"{n_measures} measures x {len(inputs.cube.icb_codes)} ICBs; "
        f"{len(files)} files written to {out}"
    )
    return ReportResult(
        out_dir=out,
        files=files,
        tables=tables,
        provenance=prov,
        summary=summary,
        seconds=seconds,
        extra={"figures": figures},
    )


def _downloads(files: Sequence[Path], out: Path) -> list[tuple[str, str, str]]:
    what = {
        "annex_b.xlsx": "Annex B workbook (Excel), with a sheet for every table",
        "national_rates.csv": "Tables 1-2: national rates by measure",
        "icb_rates.csv": "Annex B: every ICB and measure, with confidence limits and funnel flags",
        "rates_ratios.csv": "rates-ratio Tables 1-6, with tests and confidence intervals",
        "summary.csv": "spread of ICB rates by measure (mean, SD, shares)",
        "funnel.csv": "funnel-plot limits and overdispersion by measure",
        "cube.csv": "the count cube: ICB x sex x age band x IMD quintile x measure",
        "exclusions.csv": "records excluded from the rates, by reason (Annex A)",
        "annex_a_source_shares.csv": "Annex A: how each test's ICB was derived",
        "annex_a_table_a1.csv": "Annex A Table A.1: providers with tests with no GP practice",
        "annex_a_table_a2.csv": "Annex A Table A.2: providers with tests missing age, sex or LSOA",
        "annex_a_table_a3.csv": "Annex A Table A.3: ICBs with tests missing age, sex or LSOA",
        "annex_a_table_a4.csv": "Annex A Table A.4: ICBs with estimated missing tests",
        "annex_a_a4_allocation.csv": "estimated missing tests allocated to every ICB",
        "annex_a_a4_unallocated.csv": "providers whose missing tests could not be allocated",
        "provenance.json": "inputs, hashes, versions and options of this run",
    }
    out_list = []
    for f in files:
        rel = f.relative_to(out).as_posix()
        if rel.startswith("charts/"):
            continue
        desc = what.get(rel) or rel
        out_list.append((rel, rel, desc))
    return out_list


def _moved(result: ReportResult, work: Path, out: Path) -> ReportResult:
    """``result`` of a report written to ``work``, naming its files as moved to ``out``."""
    from dataclasses import replace

    return replace(
        result,
        out_dir=out,
        files=[out / f.relative_to(work) for f in result.files],
        summary=result.summary.replace(str(work), str(out)),
    )


def _counted_with(years: Any, lk: Any) -> Any:
    """``years`` (a YearCubes counted elsewhere), refused unless its ICBs and measures are the
    lookups': the report names ICBs and measures from the lookups.
    """
    if years.undated.icb_codes != lk.icb_codes or years.undated.measures != lk.measures:
        raise InputError(
            "the cubes were counted with other lookups than these (their ICBs or measures "
            "differ): pass the lookups they were counted with (--lookups)"
        )
    return years


def run_report(
    sources: Any,
    *,
    lookups: Any = None,
    population: Any,
    out_dir: str | Path,
    previous: str | Path | None = None,
    disclosure_control: bool | DisclosureRule = False,
    formats: Iterable[str] = ALL_FORMATS,
    provider_missing: str | Path | pa.Table | None = None,
    progress: ProgressArg = None,
    quiet: bool = False,
    title: str | None = None,
    period: str | None = None,
    thresholds: QualityThresholds | None = None,
    columns: Any = None,
    overdispersion: str | None = "winsorise",
    measures: Sequence[str] | None = None,
    max_age: int | None = None,
    n_threads: int | None = None,
    year: str | int | None = None,
    population_year: str | int | None = None,
    allow: Iterable[str] | None = None,
    value_maps: Mapping[str, Mapping[str, str]] | None = None,
    guard_thresholds: Any = None,
    on_guard_warning: Callable[[list[str]], None] | None = None,
    n_jobs: int | None = None,
    publication_config: Any = None,
    funnel_method: str = "didcore",
) -> ReportResult:
    """Run the whole publication: statistics, then every output (see the module docstring).

    The extract is counted once, one cube per financial year of its test dates
    (:class:`didcore.YearCubes`); the publication is of one year, ``year`` or by default the
    latest year present (years with under 1% of the largest year's rows, stray dates, are
    never chosen by default). When the year before is in the extract too, the year-on-year
    comparison is made from it (see :mod:`didcore.report.yoy`), unless ``previous`` names a
    report folder to compare with instead.

    Parameters
    ----------
    sources:
        The extract: a path, a list of paths/folders, or an Arrow source (see
        :func:`didcore.aggregate`); or a :class:`didcore.YearCubes` counted already
        (:func:`didcore.spark.aggregate` with ``by_year=True``, :meth:`didcore.YearCubes.read`
        of a cube file), with the lookups it was counted with.
    lookups, population:
        The lookups folder (or a :class:`~didcore.Lookups`; ``None``, the default, for the
        national lookups shipped with didcore) and the population file or table (their files
        and columns: docs/inputs.md).
    out_dir:
        Output folder: written beside it and moved into place when complete, replacing an
        earlier didcore output there (see :mod:`didcore.outputs`).
    previous:
        An earlier report folder, for the year-on-year columns and sentence.
    disclosure_control:
        True for the NHS England small-count rule (:mod:`didcore.report.disclosure`), or a
        :class:`DisclosureRule` with other settings.
    formats:
        Any of ``csv``, ``xlsx``, ``png``, ``svg``, ``html``.
    provider_missing:
        Providers' estimated missing records, for Annex A Table A.4.
    progress, quiet:
        Progress bar (None: on a terminal only), or a callback ``(step, done, total)``;
        ``quiet`` turns both off.
    title, period:
        Report title; period label (e.g. ``"2023/24"``, inferred from Parquet statistics of
        ``test_date`` when not given).
    thresholds:
        Annex A thresholds (the publication's by default).
    publication_config:
        A TOML file (or a :class:`~didcore.report.publication.PublicationConfig`) with the
        publication's version, contact and footnote lines and Annex A rounding to use instead
        of the shipped defaults; read and checked before the extract is counted
        (docs/report.md, "The publication file").
    columns:
        Extract column names, when not the defaults (:class:`didcore.io.Columns`).
    overdispersion:
        Funnel-plot overdispersion adjustment (``"winsorise"``, ``"truncate"`` or None for
        plain Poisson limits).
    funnel_method:
        ``"didcore"`` (default) or ``"funnelplotr"``: FunnelPlotR 0.6.0's limits, for a
        publication that must reproduce an existing FunnelPlotR chart; the notes, the funnel
        plots' legends and funnel.csv say "FunnelPlotR-compatible limits"
        (:func:`didcore.standardise`, docs/statistics.md 5.3).
    measures:
        Draw charts and maps for these measures only (the tables always have every measure).
    max_age, n_threads:
        As for :func:`didcore.aggregate`: ages above ``max_age`` count as missing (default no
        limit), and the number of counting threads (default all cores).
    year:
        The financial year to publish (``"2023/24"``); it must be in the extract. For an
        extract with no ``test_date`` column, it declares the extract's year (required).
    population_year:
        The financial year of the population, when its file has no ``year`` column
        (:attr:`didcore.Population.year`).
    allow, value_maps, guard_thresholds, on_guard_warning:
        The guard rails (:mod:`didcore.guards`) run after counting and after reading the
        population, before any statistic or output: a tripped guard raises
        :class:`~didcore.errors.GuardError` unless its name is in ``allow``, and then every
        output says so. ``value_maps`` recode the extract's values (``{"sex": {"M": "1"}}``,
        :mod:`didcore.valuemaps`); ``guard_thresholds`` a
        :class:`~didcore.guards.GuardThresholds`. ``on_guard_warning`` is called with the
        allowed guards' lines as soon as they are known.
    n_jobs:
        Worker processes drawing the charts and maps (:mod:`didcore.report.drawing`): by
        default ``n_threads`` when it is given, else one a core; 1 draws them in this process.
        A script that runs a report must call it under ``if __name__ == "__main__":``, since
        the workers import the script (or pass ``n_jobs=1``).
    """
    # imported here so `import didcore.report` stays light
    from didcore.arguments import check_max_age, check_threads
    from didcore.extras import require

    require("report", "didcore.run_report")
    from didcore.report.drawing import refuse_in_worker_start

    refuse_in_worker_start("didcore.run_report")
    from didcore.counting import require_rows
    from didcore.cube import aggregate
    from didcore.lookup import as_lookups
    from didcore.outputs import atomic_output_dir, check_output_dir
    from didcore.population import Population, PopulationWarning
    from didcore.ratios import rates_ratios
    from didcore.standardise import standardise

    start = time.perf_counter()
    max_age = check_max_age(max_age)
    n_threads = check_threads(n_threads)
    n_jobs = check_threads(n_jobs, "n_jobs") if n_jobs is not None else n_threads
    fmts = _check_formats(formats)
    check_output_dir(out_dir)  # an unusable --out is refused before the costly count
    from didcore.report.publication import load_publication_config

    publication = load_publication_config(publication_config)  # so is a bad publication file
    src_list = list(sources) if isinstance(sources, list | tuple) else [sources]
    lk = as_lookups(lookups)
    show = False if quiet else progress if isinstance(progress, bool) else None
    kwargs: dict[str, Any] = {"progress": show, "max_age": max_age, "n_threads": n_threads}
    if columns is not None:
        kwargs["columns"] = columns
    from didcore.report.yoy import previous_from_cube
    from didcore.years import previous_year, year_label

    wanted = year_label(year) if year is not None else None
    from didcore.guards import early_guard, guard_cube, guard_population

    guard_kw: dict[str, Any] = {"allow": allow, "thresholds": guard_thresholds}
    kwargs["value_maps"] = value_maps
    kwargs["on_first_batch"] = early_guard(lk, columns=columns, **guard_kw)
    from didcore.years import YearCubes

    if isinstance(sources, YearCubes):  # counted elsewhere: a cube file, didcore.spark
        years = _counted_with(sources, lk)
    else:
        source = src_list if len(src_list) > 1 else src_list[0]
        years = aggregate(source, lk, by_year=True, year=year, **kwargs)
        require_rows(years, source)
    published_year = wanted or years.latest
    if published_year not in years:
        raise InputError(
            f"financial year {published_year} is not in the extract; it has "
            f"{years.describe()}: choose one with --year"
        )
    cube = years[published_year]
    if previous is not None and not isinstance(previous, PreviousReport):
        # refused here, before the standardising and drawing, as well as in write_report;
        # the year published is compared too, for a --period worded as text
        earlier = read_previous(previous)
        check_previous_period(earlier, published_year, previous, year=published_year)
        check_previous_period(earlier, period, previous)
    allowed = guard_cube(years, lk, columns=columns, **guard_kw)
    with warnings.catch_warnings():
        # an ICB with no population is the population-icbs guard's to report, in one line
        warnings.simplefilter("ignore", PopulationWarning)
        pop = Population.read(population, cube.icb_codes, year=population_year)
    allowed += guard_population(cube, pop, published_year=published_year, **guard_kw)
    if allowed and on_guard_warning is not None:
        on_guard_warning(allowed)
    # the year before, from the same extract, when it is there in earnest (not stray dates)
    before = previous_year(published_year)
    if previous is None and before in years and before not in years.minor:
        previous = previous_from_cube(  # type: ignore[assignment]
            years[before], pop, before, published_year, overdispersion=overdispersion
        )
    rates = standardise(
        cube,
        pop,  # type: ignore[arg-type]
        overdispersion=overdispersion,  # type: ignore[arg-type]
        funnel_method=funnel_method,  # type: ignore[arg-type]
    )
    ratios = rates_ratios(cube, pop)  # type: ignore[arg-type]
    info = icb_info(cube.icb_codes, lk.icb_names, lk.icb_regions)
    annex = annex_a(
        cube,
        thresholds=thresholds,
        provider_missing=provider_missing,
        provider_names=provider_names(),
        icb_names={c: i.name for c, i in info.items()},
    )
    period = period or published_year
    title = title or (
        "Diagnostic Imaging Dataset: Standardised ICB rates" + (f" {period}" if period else "")
    )
    prov = build_provenance(
        sources=src_list,
        lookups=lk,
        population=population,
        provider_missing=provider_missing,
        previous=previous if not isinstance(previous, PreviousReport) else None,
        cube=cube,
        options={"overdispersion": overdispersion or "none", "funnel_method": funnel_method},
        period=period,
        title=title,
    )
    prov["years"] = {
        "published": published_year,
        "rows": years.rows,
        "undated_rows": years.undated.rows_read,
        "minor": list(years.minor),
        "declared": years.declared,
        "population_year": pop.year,
    }
    prov["rows_whole_extract"] = dict(years.exclusions)
    prov["guards"] = {
        "allowed": allowed,
        "value_maps": {k: dict(v) for k, v in (cube.value_profile.value_maps or {}).items()}
        if cube.value_profile is not None
        else {},
    }
    inputs = ReportInputs(
        cube=cube, rates=rates, ratios=ratios, annex=annex, icbs=info, period=period, title=title
    )
    # written beside out_dir and moved into place: a failure leaves the old folder intact
    with atomic_output_dir(out_dir) as work:
        result = write_report(
            inputs,
            work,
            previous=previous,
            disclosure_control=disclosure_control,
            formats=fmts,
            progress=progress,
            quiet=quiet,
            provenance=prov,
            measures=measures,
            n_jobs=n_jobs,
            publication=publication,
        )
    result = _moved(result, work, Path(out_dir))
    result.seconds = time.perf_counter() - start
    several = len(years) > 1 or years.undated.rows_read
    result.summary += f" in {result.seconds:.1f} s; lookups: {lk.description}; " + (
        f"published {published_year} of the extract's financial years {years.describe()}"
        if several
        else f"financial year {published_year}"
    )
    if isinstance(previous, PreviousReport):
        result.summary += f"; compared with {previous.period} from the same extract"
    if allowed:
        names = sorted({line.split(":", 1)[0].removeprefix("guard ") for line in allowed})
        result.summary += f"; guards overridden (--allow): {', '.join(names)}"
        if "population-year" in names:
            result.summary += f" (population year {pop.year or 'unknown'})"
    return result
