"""The ``didcore`` command line (every input it reads is described in docs/inputs.md).

* ``didcore cube EXTRACT... [--lookups DIR] --out DIR``: the count cube and exclusions as CSV;
* ``didcore report EXTRACT... [--lookups DIR] --population FILE --out DIR``: the publication;
* ``didcore demo --out DIR``: the publication on the embedded demo data;
* ``didcore synth --rows N --seed S --out DIR``: a synthetic extract, lookups and population;
* ``didcore lookups --out DIR``: the shipped lookups as an editable folder.

Without ``--lookups`` the national lookups shipped with didcore are used
(:meth:`didcore.Lookups.default`); every output names the lookups and their vintage. Output
folders are written beside ``--out`` and moved into place (:mod:`didcore.outputs`).

Exit status: 0 on success, 2 on bad input (one line on stderr saying what and what to do),
1 on an internal error.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from didcore.arguments import MAX_THREADS, max_age_option, threads_option
from didcore.errors import DidcoreError, InputError

__all__ = ["main"]


def _columns(pairs: Sequence[str]) -> Any:
    from didcore.io import Columns

    fields = Columns.__dataclass_fields__
    mapping: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in fields or not value:
            raise InputError(
                f"--column {pair!r}: use NAME=COLUMN with NAME one of {', '.join(fields)}"
            )
        mapping[key] = value
    return Columns(**mapping)


def _progress(args: argparse.Namespace) -> bool | None:
    return False if args.quiet else None


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message)


def _count_table(key: str, counts: dict[str, int]) -> Any:
    """A table of ``key`` (each name) and ``count``, built without pa.array's pandas check
    (it imports pandas where installed: didcore._arrow_compat).
    """
    import pyarrow as pa

    from didcore._arrow_compat import int64_array, text_array

    return pa.table({key: text_array(list(counts)), "count": int64_array(list(counts.values()))})


def _write_cube_outputs(cube: Any, out: Path) -> list[Path]:
    """``cube.csv``, ``exclusions.csv`` and the data-quality counters (docs/inputs.md)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    out.mkdir(parents=True, exist_ok=True)
    written = []
    long = cube.to_arrow()
    plain = pa.table(
        {
            name: long.column(name).cast(pa.string())
            if pa.types.is_dictionary(long.schema.field(name).type)
            else long.column(name)
            for name in long.column_names
        }
    )
    tables = {
        "cube.csv": plain,
        "exclusions.csv": _count_table("reason", cube.exclusions),
        "icb_source.csv": _count_table("source", cube.icb_source),
        "provider_quality.csv": cube.provider_quality.sort_by("provider_code"),
        "icb_quality.csv": cube.icb_quality,
    }
    for name, table in tables.items():
        path = out / name
        pacsv.write_csv(table, path)
        written.append(path)
    return written


def _write_year_outputs(years: Any, out: Path) -> list[Path]:
    """One folder per financial year (``2023-24/``: :func:`_write_cube_outputs`), and for
    the whole extract ``exclusions.csv`` (with ``no_test_date``) and ``years.csv`` (each
    year's exclusions, and the undated rows).
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from didcore._arrow_compat import bool_array, int64_array, text_array

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for label, cube in years.items():
        written += _write_cube_outputs(cube, out / label.replace("/", "-"))
    ex = years.exclusions
    whole = _count_table("reason", ex)
    pacsv.write_csv(whole, out / "exclusions.csv")
    minor = set(years.minor)
    groups = [*years.items(), ("undated", years.undated)]
    reasons = list(groups[-1][1].exclusions)
    table = pa.table(
        {
            "year": text_array([k for k, _ in groups]),
            **{r: int64_array([c.exclusions[r] for _, c in groups]) for r in reasons},
            "minor": bool_array([k in minor for k, _ in groups]),
        }
    )
    pacsv.write_csv(table, out / "years.csv")
    return [*written, out / "exclusions.csv", out / "years.csv"]


def _lookups(args: argparse.Namespace) -> Any:
    """``--lookups DIR``, or the shipped lookups when it is not given."""
    from didcore.lookup import as_lookups

    return as_lookups(args.lookups)


def _cmd_cube(args: argparse.Namespace) -> int:
    from didcore.counting import require_rows
    from didcore.cube import aggregate
    from didcore.outputs import atomic_output_dir, check_output_dir
    from didcore.years import YearCubes, has_test_dates

    start = time.perf_counter()
    check_output_dir(args.out)  # before the costly count
    lookups = _lookups(args)
    source = args.extract if len(args.extract) > 1 else args.extract[0]
    columns = _columns(args.column)
    # One cube per financial year when the test dates (or --year) say which; an extract with
    # neither is one cube, as its year is unknown.
    by_year = args.year is not None or has_test_dates(source, columns)
    allow, maps = _guard_args(args)
    result = aggregate(
        source,
        lookups,
        columns=columns,
        n_threads=args.threads,
        max_age=args.max_age,
        progress=_progress(args),
        by_year=by_year,
        year=args.year,
        **_early_guard(lookups, columns, allow, maps),
    )
    require_rows(result, source)
    allowed = _guard_cube(result, lookups, columns, allow)
    with atomic_output_dir(args.out) as work:
        if by_year:
            _write_year_outputs(result, work)
        else:
            _write_cube_outputs(result, work)
        _write_allowed(allowed, work)
        # the cube's lookups and their vintage, as every output names them
        (work / "lookups.txt").write_text(f"lookups: {lookups.description}\n", encoding="utf-8")
    ex = result.exclusions
    if isinstance(result, YearCubes):
        folders = ", ".join(f"{k.replace('/', '-')}/" for k in result)
        written = f"{folders} and exclusions.csv" if folders else "exclusions.csv and years.csv"
        where = f"wrote {written} to {args.out}"
        years = f" in financial years {result.describe()}"
    else:
        where = f"wrote {Path(args.out) / 'cube.csv'} and exclusions.csv"
        years = " (no test_date column: one cube for the whole extract; --year names its year)"
    _say(
        args,
        f"didcore cube: {ex['rows_read']:,} rows read{years}; {ex['included']:,} included, "
        f"{ex['rows_read'] - ex['included']:,} excluded, in {time.perf_counter() - start:.1f} s; "
        f"{where}; lookups: {lookups.description}",
    )
    return 0


def _report_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    return {
        "previous": args.previous,
        "disclosure_control": args.disclosure_control,
        "formats": formats,
        "provider_missing": args.provider_missing,
        "progress": _progress(args),
        "quiet": args.quiet,
        "max_age": args.max_age,
        "n_threads": args.threads,
        "year": args.year,
        "population_year": args.population_year,
        "period": _label_option(args.period, "--period"),
        "title": _label_option(args.title, "--title"),
        "publication_config": args.publication_config,
        "funnel_method": args.funnel_method,
    }


def _label_option(value: str | None, option: str) -> str | None:
    """A --period or --title as given, stripped; blank or control characters are refused
    (they would print as an empty or broken title in every table and figure).
    """
    if value is None:
        return None
    text = value.strip()
    if not text or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise InputError(f"{option} {value!r}: give printable text, e.g. {option} 2023/24")
    return text


def _cmd_report(args: argparse.Namespace) -> int:
    if args.cube is not None and args.extract:
        raise InputError("give an extract or --cube FILE, not both")
    if not args.extract and args.cube is None:
        raise InputError(
            "no extract given: name Parquet/CSV files or folders, with --population (and "
            "--lookups for lookups other than the shipped ones); or run `didcore demo --out DIR` "
            "to see the report on demo data"
        )
    missing = [f"--{n}" for n in ("population", "out") if getattr(args, n) is None]
    if missing:
        raise InputError(
            f"didcore report needs {', '.join(missing)} (the population file: see docs/inputs.md)"
        )
    from didcore.extras import require

    require("report", "didcore report")
    from didcore.report.pipeline import run_report

    sources: Any = args.extract
    if args.cube is not None:  # counted elsewhere (docs/spark.md)
        from didcore.years import YearCubes

        sources = YearCubes.read(args.cube)
    result = run_report(
        sources,
        lookups=args.lookups,
        population=args.population,
        out_dir=args.out,
        columns=_columns(args.column),
        **_report_kwargs(args),
        **_report_guard_kwargs(args),
    )
    _say(args, result.summary)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from didcore.extras import require

    require("report", "didcore demo")
    from didcore.outputs import check_output_dir
    from didcore.report.pipeline import run_report
    from didcore.synth import demo_inputs

    check_output_dir(args.out)  # before the demo data are made
    _say(args, "didcore demo: preparing the embedded demo data (synthetic England 2023/24)")
    paths = demo_inputs(args.cache)
    kwargs = _report_kwargs(args)
    kwargs.update(_demo_annex_a(paths.truth, kwargs.get("provider_missing")))
    scale = kwargs.pop("publication_scale", None)
    if scale is not None and kwargs.get("publication_config") is None:
        # Annex A's rounding (to the nearest 100 or 1,000) scaled as the thresholds are
        from didcore.report.publication import load_publication_config

        kwargs["publication_config"] = load_publication_config().scaled(scale)
    kwargs["title"] = kwargs["title"] or "Standardised ICB rates 2023/24 (synthetic demo data)"
    result = run_report(
        [paths.extract],
        lookups=None,  # the shipped lookups (the demo's folder holds the same), named as such
        population=paths.population,
        out_dir=args.out,
        **kwargs,
    )
    _say(args, result.summary)
    html = Path(args.out) / "report.html"
    _say(args, f"Open {html.resolve()} in a browser to read the report.")
    return 0


def _demo_annex_a(truth: Path, provider_missing: Any) -> dict[str, Any]:
    """Annex A settings for the demo, which is about 1/47 of a national year.

    The publication's count thresholds (10,000 and 5,000 tests) are scaled by the demo's size
    so Tables A.1-A.3 are as selective as published, and so is Annex A's rounding in the
    workbook (unless a --publication-config is given); Table A.4 is drawn from illustrative
    estimates of the providers' missing records named in the publication's Annex A (King's
    RJZ, Buckinghamshire RXQ, East Kent RVV, ...), scaled the same way.
    """
    import json
    from importlib import resources

    import pyarrow as pa
    import pyarrow.compute as pc

    from didcore.quality import QualityThresholds, read_provider_missing

    scale = float(json.loads(Path(truth).read_text())["conventions"]["annex_a_scale"])
    # the scale also scales Annex A's rounding in the workbook (see _cmd_demo)
    out: dict[str, Any] = {
        "thresholds": QualityThresholds().scaled(scale),
        "publication_scale": scale,
    }
    if provider_missing is None:
        ref = resources.files("didcore") / "data" / "demo_provider_missing_2023_24.csv"
        with resources.as_file(ref) as path:
            table = read_provider_missing(path)
        scaled = pc.round(pc.multiply(table["missing_records"].cast(pa.float64()), scale))
        out["provider_missing"] = table.set_column(
            table.schema.get_field_index("missing_records"),
            "missing_records",
            scaled.cast(pa.int64()),
        )
    return out


def _cmd_lookups(args: argparse.Namespace) -> int:
    from didcore.defaults import VINTAGE, write_lookups

    out = write_lookups(args.out)  # checked before anything is read
    _say(
        args,
        f"didcore lookups: wrote the shipped lookups ({VINTAGE}) to {out}; edit them and pass "
        f"--lookups {out} (see README.txt there and docs/inputs.md)",
    )
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from didcore.synth import write_synthetic

    start = time.perf_counter()
    paths = write_synthetic(
        args.out,
        rows=args.rows,
        seed=args.seed,
        row_group_size=args.row_group_size,
        progress=not args.quiet and sys.stderr.isatty(),
        years=args.years,
    )
    span = "2023/24" if args.years == 1 else f"{args.years} financial years ending 2023/24"
    _say(
        args,
        f"didcore synth: {args.rows:,} rows ({span}) in {time.perf_counter() - start:.1f} s: "
        "extract "
        f"{paths.extract}, lookups {paths.lookups}, population {paths.population}",
    )
    return 0


_DOCS = (
    "Inputs (extract columns, lookups files, population, measures, value maps) are described "
    "in docs/inputs.md of the didcore repository."
)
_LOOKUPS_HELP = (
    "lookups folder (default: the national lookups shipped with didcore; write them with "
    "`didcore lookups --out DIR`; files and columns: docs/inputs.md)"
)
_OUT_HELP = (
    "output folder: written beside it and moved into place when complete, replacing an "
    "earlier didcore output there"
)


# ------------------------------------------------------------------ guards and didcore check


def _guard_options(p: argparse.ArgumentParser) -> None:
    """``--allow NAME`` and ``--map COLUMN=FROM:TO,...`` (both repeatable)."""
    from didcore.guards import GUARDS

    p.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="GUARD",
        help=f"let a guard that trips pass, noted in every output: {', '.join(GUARDS)}; "
        "repeatable (thresholds and what each checks: docs/guards.md)",
    )
    p.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="COLUMN=FROM:TO,...",
        help="recode the extract's values before reading them, e.g. --map sex=M:1,F:2 or "
        "--map 'modality=XR:Plain Radiography'; COLUMN is sex, modality, exam_code, "
        "gp_practice_code or lsoa11; repeatable",
    )


def _guard_args(args: argparse.Namespace) -> tuple[frozenset[str], dict[str, dict[str, str]]]:
    """The checked ``--allow`` names and the parsed ``--map`` value maps."""
    from didcore.guards import check_allow
    from didcore.valuemaps import parse_map_options

    return check_allow(getattr(args, "allow", [])), parse_map_options(getattr(args, "map", []))


def _early_guard(
    lookups: Any, columns: Any, allow: frozenset[str], maps: dict[str, dict[str, str]]
) -> dict[str, Any]:
    """``aggregate`` keyword arguments: the value maps and the first-batch coding guards."""
    from didcore.guards import early_guard

    return {
        "value_maps": maps,
        "on_first_batch": early_guard(lookups, columns=columns, allow=allow),
    }


def _warn_allowed(lines: Sequence[str]) -> None:
    for line in lines:
        print(f"didcore: warning: {line}", file=sys.stderr)


def _guard_cube(result: Any, lookups: Any, columns: Any, allow: frozenset[str]) -> list[str]:
    """The extract's guards on a count: raise on a failure, print and return the allowed."""
    from didcore.guards import guard_cube

    allowed = guard_cube(result, lookups, columns=columns, allow=allow)
    _warn_allowed(allowed)
    return allowed


def _write_allowed(lines: Sequence[str], out: Path) -> None:
    """``guards_allowed.txt`` in a cube folder: the guards that tripped and were allowed."""
    if lines:
        (out / "guards_allowed.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _report_guard_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    allow, maps = _guard_args(args)
    return {"allow": allow, "value_maps": maps, "on_guard_warning": _warn_allowed}


def _cmd_check(args: argparse.Namespace) -> int:
    import json

    from didcore.check import render, run_check

    allow, maps = _guard_args(args)
    result = run_check(
        args.extract,
        lookups=args.lookups,
        population=args.population,
        columns=_columns(args.column),
        allow=allow,
        value_maps=maps,
        year=args.year,
        population_year=args.population_year,
        n_threads=args.threads,
        progress=False if args.json else _progress(args),
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    elif not args.quiet:
        render(result)
    for v in result.verdicts:
        if v.status == "fail":
            print(f"didcore: error: {v.message}", file=sys.stderr)
        elif v.status == "allowed":
            print(f"didcore: warning: {v.message} (allowed)", file=sys.stderr)
    return 0 if result.ok else 2


def _check_parser(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help="pre-flight profile of an extract and every guard's verdict; writes nothing",
        description="Profile an extract as didcore report would read it (rows by financial "
        "year, columns and types, sex and modality values, codes matching no lookup, "
        "exclusions) and run every guard. Exit status 0 when every guard passes, 2 otherwise.",
        epilog=_DOCS,
    )
    p.add_argument("extract", nargs="+", help="Parquet/CSV files or folders")
    p.add_argument("--lookups", help=_LOOKUPS_HELP)
    p.add_argument("--population", help="population file, to run its guards too")
    p.add_argument("--year", help="financial year to check (default: the latest in the extract)")
    p.add_argument("--population-year", help="the population's financial year, e.g. 2023/24")
    p.add_argument("--json", action="store_true", help="print the profile as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="verdicts only")
    _extract_options(p)
    _guard_options(p)
    p.set_defaults(func=_cmd_check)


def _extract_options(p: argparse.ArgumentParser) -> None:
    """``--column`` and ``--threads``: how the extract is read, for every command that counts."""
    p.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="NAME=COLUMN",
        help="use COLUMN of the extract for NAME (e.g. sex=gender); repeatable",
    )
    p.add_argument(
        "--threads",
        type=threads_option,
        default=None,
        help=f"worker threads, 1 to {MAX_THREADS} (default: all cores); for report and demo "
        "also the processes drawing the charts and maps (1: drawn in one process)",
    )


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line (exit status 2), as every other bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    from didcore import __version__

    parser = _Parser(
        prog="didcore",
        description="Standardised ICB imaging rates from Diagnostic Imaging Dataset extracts.",
        epilog=_DOCS,
    )
    parser.add_argument("--version", action="version", version=f"didcore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("-q", "--quiet", action="store_true", help="no progress, no summary")
        _extract_options(p)
        p.add_argument(
            "--max-age",
            type=max_age_option,
            default=None,
            help="ages above this count as missing (default: no limit, 90 and over is one band)",
        )

    p = sub.add_parser("cube", help="count cube and exclusions from an extract", epilog=_DOCS)
    p.add_argument("extract", nargs="+", help="Parquet/CSV files or folders")
    p.add_argument("--lookups", help=_LOOKUPS_HELP)
    p.add_argument("--out", required=True, help=_OUT_HELP)
    p.add_argument(
        "--year",
        help="financial year (2023/24) of an extract with no test_date column; with test "
        "dates, each record's year is its test date's and a folder is written per year",
    )
    common(p)
    _guard_options(p)
    p.set_defaults(func=_cmd_cube)

    def report_options(p: argparse.ArgumentParser, *, out_required: bool) -> None:
        p.add_argument("--out", help=_OUT_HELP, required=out_required)
        p.add_argument(
            "--previous",
            help="an earlier year's report folder, for year-on-year (by default the year "
            "before is taken from the extract when it is there)",
        )
        p.add_argument(
            "--year",
            help="financial year to publish, e.g. 2023/24 (default: the latest year in the "
            "extract's test dates; required for an extract with no test_date column)",
        )
        p.add_argument(
            "--population-year",
            help="financial year the population is for, e.g. 2023/24, when the population "
            "file has no year column",
        )
        p.add_argument(
            "--disclosure-control",
            action="store_true",
            help="suppress small counts and round the rest in published tables",
        )
        p.add_argument(
            "--formats",
            default="csv,xlsx,png,svg,html",
            help="comma-separated outputs (default: csv,xlsx,png,svg,html)",
        )
        p.add_argument(
            "--provider-missing",
            help="CSV of providers' estimated missing records (provider_code, missing_records)",
        )
        p.add_argument(
            "--period",
            help="the period the report covers, as every title shows it, e.g. 2023/24 or "
            "'April 2023 to March 2024' (default: the financial year published)",
        )
        p.add_argument(
            "--title",
            help="the report's title (default: 'Diagnostic Imaging Dataset: Standardised ICB "
            "rates' and the period)",
        )
        p.add_argument(
            "--funnel-method",
            choices=("didcore", "funnelplotr"),
            default="didcore",
            help="funnel-plot limits: didcore's (default) or 'funnelplotr' to reproduce an "
            "existing FunnelPlotR 0.6.0 chart, labelled 'FunnelPlotR-compatible limits' "
            "(docs/statistics.md, section 5.3)",
        )
        p.add_argument(
            "--publication-config",
            metavar="FILE",
            help="TOML file of the publication's version, contact and footnote lines and Annex "
            "A rounding, for the keys it gives (default: the 2023/24 publication's; "
            "docs/report.md)",
        )

    p = sub.add_parser("report", help="the whole publication from an extract", epilog=_DOCS)
    p.add_argument("extract", nargs="*", help="Parquet/CSV files or folders")
    p.add_argument(
        "--cube",
        metavar="FILE",
        help="a cube file of financial years (YearCubes.write, e.g. after "
        "didcore.spark.aggregate(..., by_year=True): docs/spark.md) instead of an extract",
    )
    p.add_argument("--lookups", help=_LOOKUPS_HELP)
    p.add_argument(
        "--population",
        help="population file: ICB x sex x age band x IMD quintile (required: the ONS population "
        "shipped with didcore has no IMD split; columns: docs/inputs.md)",
    )
    report_options(p, out_required=False)
    common(p)
    _guard_options(p)
    p.set_defaults(func=_cmd_report)
    _check_parser(sub)

    p = sub.add_parser("demo", help="the publication on the embedded demo data", epilog=_DOCS)
    report_options(p, out_required=True)
    p.add_argument("--cache", help="where to keep the generated demo data")
    common(p)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "synth", help="write a synthetic extract, lookups and population", epilog=_DOCS
    )
    p.add_argument("--rows", type=int, default=1_000_000, help="rows (default 1,000,000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--row-group-size", type=int, default=1_000_000, help="Parquet row group size")
    p.add_argument(
        "--years",
        type=int,
        default=1,
        help="financial years the test dates span, ending 2023/24 (default 1); the population "
        "is one year's",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress, no summary")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser(
        "lookups",
        help="write the shipped lookups as an editable folder",
        description="Write the national lookups shipped with didcore (the ones used without "
        "--lookups) as a folder of CSV files with a README.txt giving their vintage and "
        "attribution; edit them and pass the folder with --lookups.",
        epilog=_DOCS,
    )
    p.add_argument("--out", required=True, help=_OUT_HELP)
    p.add_argument("-q", "--quiet", action="store_true", help="no summary")
    p.set_defaults(func=_cmd_lookups)
    return parser


def _ignore_file_size_signal() -> None:
    """Past a file-size limit (``ulimit -f``) a write then fails with EFBIG, which becomes an
    OutputError (exit 2, old outputs intact), instead of SIGXFSZ killing the process with a
    file cut mid-row.
    """
    import contextlib
    import signal

    if hasattr(signal, "SIGXFSZ"):
        # not in the main thread signals cannot be set (ValueError): leave it as it is
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


class _Interrupts:
    """Ctrl-C while a command runs: the first raises ``KeyboardInterrupt``, so reader threads
    are stopped and joined and partial outputs removed; exit status 130 and one line. A second
    Ctrl-C during that clean-up exits at once, with the same single line: cleaning up after a
    first Ctrl-C (waiting for a row group being read) must neither be cut short into a
    traceback nor print one. ``os._exit`` skips the interpreter's teardown, so a reader thread
    still inside pyarrow cannot abort the process either.
    """

    def __init__(self) -> None:
        self._pressed = 0
        self._said = False
        self._previous: Any = None

    def said(self) -> int:
        """Print the one line (once) and return the exit status, 130."""
        if not self._said:
            self._said = True
            print("didcore: interrupted", file=sys.stderr, flush=True)
        return 130

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self._pressed += 1
        if self._pressed == 1:
            raise KeyboardInterrupt
        import os

        os._exit(self.said())

    def __enter__(self) -> _Interrupts:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        if self._previous is not None:
            # After a Ctrl-C the process is only exiting (status 130): a second one arriving
            # now, past this handler, would kill it by SIGINT with no line; ignore it instead.
            signal.signal(signal.SIGINT, signal.SIG_IGN if self._pressed else self._previous)
            self._previous = None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring)."""
    import warnings

    from didcore.errors import TooManyProvidersWarning, UnreadableValuesWarning

    _ignore_file_size_signal()
    try:  # building the parser imports modules: a Ctrl-C there is one line too
        parser = _parser()
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second one while exiting: ignored
        print("didcore: interrupted", file=sys.stderr, flush=True)
        return 130

    def note(message: Any, category: Any, *rest: Any, **kw: Any) -> None:
        # One line per warning, never a source path and line: didcore's own notes as they
        # are, another library's (matplotlib, pyarrow) named by its category.
        text = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
        if category.__module__.split(".")[0] != "didcore":
            text = f"{category.__name__}: {text}"
        print(f"didcore: note: {text}", file=sys.stderr)

    interrupts = _Interrupts()
    try:
        with warnings.catch_warnings(), interrupts:
            # dirty values counted as missing are reported, one line each, even with -q
            warnings.simplefilter("always", UnreadableValuesWarning)
            warnings.simplefilter("always", TooManyProvidersWarning)
            warnings.showwarning = note
            return int(args.func(args))
    except InputError as exc:
        # one line, but spaces inside it kept: a value's double space may be the fault
        message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"didcore: error: {message}", file=sys.stderr)
        return 2
    except DidcoreError as exc:
        print(f"didcore: internal error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return interrupts.said()


if __name__ == "__main__":
    sys.exit(main())
