"""``didcore check``: a pre-flight profile of an extract that writes no publication.

:func:`run_check` counts the extract once (by financial year when it has test dates), as
``didcore report`` would, and reports what a publication would rest on: rows and financial
years, the columns read and their Arrow types, the distinct sex and modality values with
counts, the shares of practice, LSOA and exam codes that match no lookup with their top
values, the exclusion shares, and every guard's verdict (:mod:`didcore.guards`), including
the population's when a population is given. :func:`render` prints it as tables on a
terminal (rich); :meth:`CheckResult.to_dict` is the ``--json`` form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from didcore.guards import Verdict

__all__ = ["CheckResult", "render", "run_check"]

_TOP = 10


@dataclass
class CheckResult:
    """What :func:`run_check` found. ``ok`` is True when no guard failed (allowed guards
    that tripped are reported, and do not fail the check).
    """

    rows: int
    years: dict[str, int]
    undated: int | None
    published_year: str | None
    columns: list[tuple[str, str]]
    values: dict[str, list[tuple[str | None, int]]]
    unmatched: dict[str, dict[str, Any]]
    exclusions: dict[str, int]
    verdicts: list[Verdict]
    lookups: str = ""
    population: str | None = None
    population_year: str | None = None
    value_maps: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Parquet row groups decoded by the core (``native``) and read through pyarrow
    #: (``pyarrow``), with why (``reasons``: reason -> row groups); empty without Parquet.
    parquet_reads: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every guard passed (or was allowed)."""
        return all(v.status != "fail" for v in self.verdicts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``didcore check --json``)."""
        return {
            "ok": self.ok,
            "rows": self.rows,
            "years": self.years,
            "undated_rows": self.undated,
            "published_year": self.published_year,
            "columns": [{"name": n, "type": t} for n, t in self.columns],
            "values": {k: [[v, c] for v, c in items] for k, items in self.values.items()},
            "unmatched": self.unmatched,
            "exclusions": self.exclusions,
            "guards": [v.to_dict() for v in self.verdicts],
            "lookups": self.lookups,
            "population": self.population,
            "population_year": self.population_year,
            "value_maps": self.value_maps,
            "parquet_reads": self.parquet_reads,
        }


def _schema(source: Any, columns: Any) -> list[tuple[str, str]]:
    """The columns didcore reads from the extract, with their Arrow types (first batch)."""
    from didcore.counting import _close
    from didcore.io import open_extract

    extract = open_extract(source, columns)
    try:
        for batch in extract.batches:
            return [(f.name, str(f.type)) for f in batch.schema]
    finally:
        _close(extract.batches)
    return []


def _unmatched(profile: Any, cube: Any, lookups: Any, columns: Any) -> dict[str, dict[str, Any]]:
    """Shares of rows whose practice, LSOA or exam code matches no lookup, with top values."""
    from didcore.lookup import normalise_code
    from didcore.valuemaps import map_value

    rows = max(profile.rows, 1)
    q = {k: int(v) for k, v in zip(_counters(), cube.icb_counts.sum(axis=0), strict=True)}
    out: dict[str, dict[str, Any]] = {}
    for role, name, blank_key in (
        ("gp_practice_code_unmatched", columns.gp_practice_code, "no_practice"),
        ("lsoa11_unmatched", columns.lsoa11, "no_lsoa"),
    ):
        top = profile.top(role, 10_000)
        n = sum(c for _, c in top) + profile.dropped.get(role, 0)
        out[name] = {
            "unmatched_rows": n,
            "unmatched_share": n / rows,
            "blank_rows": q.get(blank_key, 0),
            "top_unmatched": [[v, c] for v, c in top[:_TOP]],
        }
    codes = {r.exam_code for r in lookups.measure_rules if r.exam_code}
    mapping = profile.value_maps.get("exam_code")
    other = [
        (v, c)
        for v, c in profile.top("exam_code", 10_000)
        if normalise_code(map_value(v, mapping)) not in codes
    ]
    n = sum(c for _, c in other)
    out[columns.exam_code] = {
        "unmatched_rows": n,
        "unmatched_share": n / rows,
        "note": "exam codes in no early-diagnosis (EDOC) measure; the modality measures count "
        "every exam code",
        "top_unmatched": [[v, c] for v, c in other[:_TOP]],
    }
    return out


def _counters() -> tuple[str, ...]:
    from didcore.cube import QUALITY_COUNTERS

    return QUALITY_COUNTERS


def run_check(
    sources: Any,
    *,
    lookups: Any = None,
    population: Any = None,
    columns: Any = None,
    allow: Iterable[str] | None = None,
    value_maps: Mapping[str, Mapping[str, str]] | None = None,
    year: str | None = None,
    population_year: str | None = None,
    n_threads: int | None = None,
    progress: bool | None = None,
) -> CheckResult:
    """Profile an extract and run every guard, writing nothing (see the module docstring).

    ``year`` is the financial year to check the population against (default: the latest in
    the extract; for an extract with no test dates, its declared year).
    """
    from didcore.counting import require_rows
    from didcore.cube import aggregate
    from didcore.guards import check_allow, cube_verdicts, population_verdicts
    from didcore.io import Columns
    from didcore.lookup import as_lookups
    from didcore.profile import ValueProfile
    from didcore.years import YearCubes, has_test_dates, year_label

    cols = columns or Columns()
    names = check_allow(allow)
    lk = as_lookups(lookups)
    src = list(sources) if isinstance(sources, list | tuple) else [sources]
    source = src if len(src) > 1 else src[0]
    schema = _schema(source, cols)
    by_year = (
        has_test_dates(source, cols)
        if all(isinstance(s, str) or hasattr(s, "__fspath__") for s in src)
        else False
    )
    declared = None
    if year is not None and not by_year:
        declared = year_label(year)
    from didcore.parquet_native import READS

    READS.reset()
    result = aggregate(
        source,
        lk,
        columns=cols,
        n_threads=n_threads,
        progress=progress,
        by_year=by_year or declared is not None,
        year=declared,
        value_maps=value_maps,
        full_profile=True,
    )
    require_rows(result, source)
    years: dict[str, int] = {}
    undated: int | None = None
    published: str | None = None
    if isinstance(result, YearCubes):
        total = cube = result.total
        years = dict(result.rows)
        undated = result.undated.rows_read
        published = year_label(year) if year is not None else (result.latest if years else None)
        if published is not None and published in result:
            cube = result[published]
    else:
        total = cube = result
    profile = total.value_profile or ValueProfile()
    verdicts = cube_verdicts(result, lk, columns=cols, allow=names)
    pop_year = None
    if population is not None:
        import warnings

        from didcore.population import Population, PopulationWarning

        with warnings.catch_warnings():
            # an ICB with no population is the population-icbs guard's to report
            warnings.simplefilter("ignore", PopulationWarning)
            pop = Population.read(population, cube.icb_codes, year=population_year)
        pop_year = getattr(pop, "year", None)
        verdicts += population_verdicts(cube, pop, published_year=published, allow=names)
    return CheckResult(
        rows=total.rows_read,
        years=years,
        undated=undated,
        published_year=published,
        columns=schema,
        values={
            cols.sex: profile.top("sex", _TOP * 3),
            cols.modality: profile.top("modality", _TOP * 3),
        },
        unmatched=_unmatched(profile, total, lk, cols),
        exclusions=dict(result.exclusions),
        verdicts=verdicts,
        lookups=lk.description,
        population=None if population is None else str(population),
        population_year=pop_year,
        value_maps=profile.value_maps,
        parquet_reads=(
            {"native": READS.native, "pyarrow": READS.pyarrow, "reasons": dict(READS.reasons)}
            if READS.native or READS.pyarrow
            else {}
        ),
    )


def render(result: CheckResult, console: Any = None) -> None:
    """Print a :class:`CheckResult` as tables (rich), for a terminal."""
    from rich.console import Console
    from rich.table import Table

    out = console or Console()
    rows = max(result.rows, 1)

    def pct(n: int, total: int = rows) -> str:
        return f"{100 * n / max(total, 1):.1f}%"

    head = Table(title="didcore check", show_header=False)
    head.add_row("rows", f"{result.rows:,}")
    if result.years:
        for k, n in result.years.items():
            head.add_row(f"financial year {k}", f"{n:,}")
    if result.undated is not None:
        head.add_row("no usable test date", f"{result.undated:,}")
    if result.published_year:
        head.add_row("year a report would publish", result.published_year)
    head.add_row("lookups", result.lookups)
    if result.population:
        head.add_row("population", f"{result.population} (year {result.population_year or '?'})")
    if result.value_maps:
        maps = "; ".join(
            f"{k}: " + ", ".join(f"{a}->{b}" for a, b in v.items())
            for k, v in result.value_maps.items()
        )
        head.add_row("value maps", maps)
    reads = result.parquet_reads
    if reads:
        line = f"{reads['native']:,} decoded by didcore, {reads['pyarrow']:,} read by pyarrow"
        if reads["reasons"]:
            line += " (" + "; ".join(f"{r}: {n:,}" for r, n in reads["reasons"].items()) + ")"
        head.add_row("Parquet row groups", line)
    out.print(head)

    cols = Table(title="columns read")
    cols.add_column("column")
    cols.add_column("Arrow type")
    for name, kind in result.columns:
        cols.add_row(name, kind)
    out.print(cols)

    for name, items in result.values.items():
        t = Table(title=f"values of {name}")
        t.add_column("value")
        t.add_column("rows", justify="right")
        t.add_column("share", justify="right")
        for v, c in items:
            t.add_row("(null)" if v is None else repr(v), f"{c:,}", pct(c))
        out.print(t)

    t = Table(title="codes matching no lookup")
    t.add_column("column")
    t.add_column("rows", justify="right")
    t.add_column("share", justify="right")
    t.add_column("top values")
    for name, info in result.unmatched.items():
        top = ", ".join(f"{v!r} {c:,}" for v, c in info["top_unmatched"][:5])
        if "note" in info:  # exam codes: most are in no EDOC measure, as expected
            name = f"{name} (in no EDOC measure)"
        t.add_row(name, f"{info['unmatched_rows']:,}", pct(info["unmatched_rows"]), top)
    out.print(t)

    t = Table(title="exclusions")
    t.add_column("reason")
    t.add_column("rows", justify="right")
    t.add_column("share", justify="right")
    read = result.exclusions.get("rows_read", 0)
    included = result.exclusions.get("included", 0)
    for k, n in result.exclusions.items():
        share = pct(n, included) + " of included" if k == "no_measure" else pct(n, read)
        t.add_row(k, f"{n:,}", share)
    out.print(t)

    t = Table(title="guards")
    t.add_column("guard")
    t.add_column("verdict")
    t.add_column("detail", overflow="fold")
    style = {"pass": "green", "fail": "bold red", "allowed": "yellow"}
    for verdict in result.verdicts:
        t.add_row(verdict.guard, f"[{style[verdict.status]}]{verdict.status}[/]", verdict.message)
    out.print(t)
