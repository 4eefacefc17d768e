"""Year-on-year comparison: with the previous financial year of the same extract, or with a
previous report folder.

When the extract holds the year before the published one, :func:`previous_from_cube` computes
that year's figures from its own cube, counted and standardised exactly as the published
year's, with the published year's population (no population for the earlier year is given):
observed counts compare directly, and the change in a rate is the change in tests relative to
a fixed population (it leaves out population growth, about half a per cent a year in England).
The comparison says so (:attr:`PreviousReport.basis`) in the notes, the HTML and provenance.

A previous report is any folder written by ``didcore report`` (or by hand with the same CSV
columns): ``national_rates.csv`` (``measure``, ``rate_per_10000``; ``observed`` used when
present) is required, ``icb_rates.csv`` (``icb_code``, ``measure``, ``standardised_rate``) is
used when present, and the period label comes from its ``provenance.json`` (``period``) or,
failing that, the folder name.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from didcore.errors import InputError, MissingColumnError, UnreadableInputError

__all__ = [
    "PreviousReport",
    "change",
    "check_previous_period",
    "previous_from_cube",
    "read_previous",
    "yoy_sentence",
]


@dataclass(frozen=True)
class PreviousReport:
    """The figures of an earlier report that the comparison needs."""

    period: str
    national: dict[str, float]
    icb: dict[tuple[str, str], float] = field(default_factory=dict)
    #: national observed tests per measure (compared when present)
    observed: dict[str, float] = field(default_factory=dict)
    #: how the previous figures were made, when that needs saying (a sentence, or None)
    basis: str | None = None
    #: the financial year it published (``provenance.json`` ``years.published``), when known:
    #: it tells the same year apart when the period labels are worded differently
    year: str | None = None


def _float(text: str | None) -> float | None:
    """A CSV cell as a number; empty or ``*`` (suppressed) is None."""
    if text is None:
        return None
    text = text.strip().replace(",", "")
    if not text or text == "*":
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def _rows(path: Path, needed: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in needed if c not in (reader.fieldnames or [])]
            if missing:
                raise MissingColumnError(
                    f"{path} has no column(s) {', '.join(missing)}: is it a didcore report?"
                )
            return list(reader)
    except OSError as exc:
        raise UnreadableInputError(f"cannot read {path}: {exc}") from exc


def read_previous(folder: str | Path) -> PreviousReport:
    """Read the national and ICB rates of a previous report folder."""
    root = Path(folder)
    nat_path = root / "national_rates.csv"
    if not nat_path.is_file():
        raise UnreadableInputError(
            f"--previous {root}: no national_rates.csv there; give the output folder of an "
            "earlier `didcore report` run"
        )
    national: dict[str, float] = {}
    observed: dict[str, float] = {}
    for row in _rows(nat_path, ("measure", "rate_per_10000")):
        value = _float(row["rate_per_10000"])
        if value is not None:
            national[row["measure"]] = value
        count = _float(row.get("observed"))
        if count is not None:
            observed[row["measure"]] = count
    icb: dict[tuple[str, str], float] = {}
    icb_path = root / "icb_rates.csv"
    if icb_path.is_file():
        for row in _rows(icb_path, ("icb_code", "measure", "standardised_rate")):
            value = _float(row["standardised_rate"])
            if value is not None:
                icb[(row["icb_code"], row["measure"])] = value
    period = root.resolve().name
    year = None
    prov = root / "provenance.json"
    if prov.is_file():
        # a damaged provenance file only costs the period label
        with contextlib.suppress(OSError, ValueError, AttributeError):
            meta = json.loads(prov.read_text(encoding="utf-8"))
            period = meta.get("period") or period
            year = (meta.get("years") or {}).get("published")
    return PreviousReport(
        period=str(period),
        national=national,
        icb=icb,
        observed=observed,
        year=str(year) if year else None,
    )


def _same_period(a: str, b: str) -> bool:
    """Whether two period labels name the same period: as financial years when both read as
    one (``2023/24`` = ``2023-24``), else as text, ignoring case and spacing.
    """
    from didcore.years import year_label

    try:
        return year_label(a) == year_label(b)
    except InputError:
        return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def check_previous_period(
    previous: PreviousReport, period: str | None, source: Any, *, year: str | None = None
) -> None:
    """Refuse a previous report of the period being published.

    Comparing a year with itself gives "0.0% higher ... (0) ... (0)": never what an analyst
    meant, and usually ``--previous`` naming this year's own output folder, or a report re-run
    on the same extract. It is refused rather than warned about, since the publication would
    otherwise print a year-on-year section that says nothing. ``source`` names the folder in
    the message. The period labels are compared, and the financial years when both are
    known (``year``, the year published, against :attr:`PreviousReport.year`), so a period
    worded as text ("April 2023 to March 2024") is still matched; nothing is checked when
    neither side is known.
    """
    same_label = bool(period and previous.period and _same_period(previous.period, period))
    same_year = bool(year and previous.year and _same_period(previous.year, year))
    if not (same_label or same_year):
        return
    raise InputError(
        f"--previous {source}: that report is for {previous.period}, the period being "
        "published; give the output folder of an earlier year's report (or leave --previous "
        "out when the extract holds the year before)"
    )


def previous_from_cube(
    cube: Any,
    population: Any,
    period: str,
    published: str,
    *,
    overdispersion: Any = "winsorise",
) -> PreviousReport:
    """The previous year's figures from its own cube of the same extract.

    Counted and standardised exactly as the published year's, with the published year's
    population (``population``): the only one given. Observed tests compare directly; a
    rate's change is the change in tests over a fixed population, which :attr:`basis` says.
    """
    from didcore.standardise import standardise

    rates = standardise(cube, population, overdispersion=overdispersion)
    national: dict[str, float] = {}
    observed: dict[str, float] = {}
    for row in rates.national.to_pylist():
        if row["rate_per_10000"] is not None and not math.isnan(row["rate_per_10000"]):
            national[row["measure"]] = float(row["rate_per_10000"])
        observed[row["measure"]] = float(row["observed"])
    icb: dict[tuple[str, str], float] = {}
    for row in rates.icb.to_pylist():
        value = row["standardised_rate"]
        if value is not None and not math.isnan(value):
            icb[(row["icb_code"], row["measure"])] = float(value)
    pop_year = getattr(population, "year", None) or published
    basis = (
        f"Year-on-year: the {period} figures are from the {period} records of the same "
        f"extract, counted and standardised as {published}'s, with the {pop_year} population "
        f"(no {period} population was given); so the change in a rate is the change in tests "
        "over a fixed population, leaving out population growth (about 0.5% a year in England)."
    )
    return PreviousReport(period=period, national=national, icb=icb, observed=observed, basis=basis)


def change(current: float | None, previous: float | None) -> tuple[float | None, float | None]:
    """``(current - previous, percentage change)``; None where either side is unknown."""
    if current is None or previous is None or math.isnan(current) or math.isnan(previous):
        return None, None
    diff = current - previous
    pct = 100.0 * diff / previous if previous != 0 else None
    return diff, pct


def yoy_sentence(changes: dict[str, float | None], previous_period: str) -> str:
    """The publication's summary sentence on the change in the national rates.

    For example "Most of these rates are higher than in 2022/23." ``changes`` maps each
    measure to the change in its national rate (None when not comparable).
    """
    known = [v for v in changes.values() if v is not None]
    if not known:
        return f"No rates could be compared with {previous_period}."
    up = sum(v > 0 for v in known)
    down = sum(v < 0 for v in known)
    n = len(known)
    if up == n:
        return f"All of these rates are higher than in {previous_period}."
    if down == n:
        return f"All of these rates are lower than in {previous_period}."
    if up > n / 2:
        return f"Most of these rates are higher than in {previous_period}."
    if down > n / 2:
        return f"Most of these rates are lower than in {previous_period}."
    return (
        f"About as many of these rates are higher than in {previous_period} ({up}) as are "
        f"lower ({down})."
    )
