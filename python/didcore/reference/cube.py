"""Reference for the derivation rules (docs/inputs.md): each record in plain Python."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from didcore.codes import normalise_code
from didcore.io import Columns
from didcore.lookup import Lookups

__all__ = [
    "ReferenceCube",
    "aggregate_reference",
    "aggregate_reference_by_year",
    "derive_record",
    "financial_year_of",
]

AGE_BANDS = (*(f"{a}-{a + 4}" for a in range(0, 90, 5)), "90+")
MISSING_PROVIDER = "(missing)"


@dataclass
class Derived:
    """What the derivation rules (docs/inputs.md) derive for one record."""

    provider: str
    icb: str | None
    source: str
    imd_quintile: int | None
    sex: str | None
    age_band: str | None
    measures: list[str]
    outcome: str
    no_practice: bool
    no_lsoa: bool


@dataclass
class ReferenceCube:
    """Counts keyed by (icb, sex, age band, quintile, measure); counters keyed by group."""

    cells: Counter[tuple[str, str, str, int, str]] = field(default_factory=Counter)
    exclusions: Counter[str] = field(default_factory=Counter)
    icb_source: Counter[str] = field(default_factory=Counter)
    provider: dict[str, Counter[str]] = field(default_factory=dict)
    icb: dict[str | None, Counter[str]] = field(default_factory=dict)
    provider_icb: Counter[tuple[str, str | None]] = field(default_factory=Counter)


def _sex(value: Any) -> str | None:
    """NHS Person Gender Code: 1 male, 2 female; anything else (0, 9, text, null) missing."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        # a whole number written as text: "1", "01", "+2", "1.0", "2."
        text = value.strip()
        if text.startswith("+"):
            text = text[1:]
        whole, dot, fraction = text.partition(".")
        if not (whole.isascii() and whole.isdigit()) or (dot and fraction.strip("0")):
            return None
        return {1: "male", 2: "female"}.get(int(whole))
    if isinstance(value, float | Decimal):
        # a float or decimal column (pandas, SQL NUMERIC) holding a whole code: 1.0 is 1
        if not math.isfinite(value) or value != math.floor(value):  # NaN, infinite, 1.5
            return None
        value = int(value)
    return {1: "male", 2: "female"}.get(value) if isinstance(value, int) else None


# A number written as text: ASCII digits, an optional fraction, an optional exponent.
_NUMBER_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _age_value(value: Any) -> int | None:
    """An age in completed years: a whole number as it is, a fractional one rounded down
    (40.7 is 40), text as the number it spells; ``None`` for null, NaN, infinity and text
    that is not a number.
    """
    if isinstance(value, str):
        text = value.strip()
        if not _NUMBER_TEXT.fullmatch(text):
            return None
        value = float(text)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float | Decimal):
        if not math.isfinite(value):
            return None  # NaN is how pandas writes a missing number
        return math.floor(value)
    return int(value)


# What may follow an ISO date in a date-time: nothing, or a time after "T" or a space, then a
# UTC offset or "Z" (the date is taken as written).
_ISO_TIME = re.compile(r"([T ]\d{2}(:?\d{2}(:?\d{2}([.,]\d+)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _date_value(value: Any) -> dt.date | None:
    """A date: a date as it is, a date-time's date, ISO text ("2023-04-01", "2023-04-01
    10:30", "2023-04-01T23:30+01:00") as the date written; ``None`` for anything else.
    """
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        if not _ISO_DATE.fullmatch(text[:10]) or not _ISO_TIME.fullmatch(text[10:]):
            return None
        try:
            return dt.date.fromisoformat(text[:10])
        except ValueError:  # 2023-02-30
            return None
    return None


def financial_year_of(row: Mapping[str, Any], columns: Columns | None = None) -> str | None:
    """The financial year ("2023/24": 1 April 2023 to 31 March 2024) of a record's test date;
    ``None`` when it has no usable test date (null, unreadable, before the DID began on 1 April
    2012 or after the day of the run).
    """
    from didcore.years import USABLE_FROM, usable_until

    day = _date_value(row.get((columns or Columns()).test_date))
    if day is None or not USABLE_FROM <= day <= usable_until():
        return None
    start = day.year if day.month >= 4 else day.year - 1
    return f"{start:04d}/{(start + 1) % 100:02d}"


def _age_years(row: Mapping[str, Any], columns: Columns, use_age: bool) -> int | None:
    if use_age:
        return _age_value(row.get(columns.age))
    birth = _date_value(row.get(columns.date_of_birth))
    test = _date_value(row.get(columns.test_date))
    if birth is None or test is None:
        return None
    years = test.year - birth.year
    if (test.month, test.day) < (birth.month, birth.day):
        years -= 1
    return years


def derive_record(
    row: Mapping[str, Any],
    lookups: Lookups,
    columns: Columns | None = None,
    *,
    use_age: bool = True,
    max_age: int | None = None,
) -> Derived:
    """Apply the derivation rules to one record (a mapping of column name to value)."""
    c = columns or Columns()
    practice = normalise_code(row.get(c.gp_practice_code))
    lsoa = normalise_code(row.get(c.lsoa11))
    provider = normalise_code(row.get(c.provider_code)) or MISSING_PROVIDER

    if practice is not None and practice in lookups.practice_icb:
        icb, source = lookups.practice_icb[practice], "gp_practice"
    elif practice is not None and practice in lookups.other_practices:
        icb, source = None, "other_valid_practice"
    elif lsoa is not None and lsoa in lookups.lsoa_icb:
        icb, source = lookups.lsoa_icb[lsoa], "lsoa"
    else:
        icb, source = None, "unknown"

    quintile = lookups.lsoa_quintile.get(lsoa) if lsoa is not None else None
    sex = _sex(row.get(c.sex))
    age = _age_years(row, c, use_age)
    band = None
    if age is not None and age >= 0 and (max_age is None or age <= max_age):
        band = AGE_BANDS[min(age // 5, 18)]
    indices = lookups.measures_of(row.get(c.modality), row.get(c.exam_code))
    measures = [lookups.measures[i] for i in indices]

    if icb is None:
        outcome = "no_icb"
    elif quintile is None:
        outcome = "no_imd"
    elif sex is None:
        outcome = "no_sex"
    elif band is None:
        outcome = "no_age"
    else:
        outcome = "included"
    return Derived(
        provider=provider,
        icb=icb,
        source=source,
        imd_quintile=quintile,
        sex=sex,
        age_band=band,
        measures=measures,
        outcome=outcome,
        no_practice=practice is None,
        no_lsoa=lsoa is None,
    )


def aggregate_reference(
    rows: Iterable[Mapping[str, Any]],
    lookups: Lookups,
    columns: Columns | None = None,
    *,
    use_age: bool = True,
    max_age: int | None = None,
) -> ReferenceCube:
    """Count ``rows`` (mappings, e.g. from ``pyarrow.Table.to_pylist()``) one at a time."""
    out = ReferenceCube()
    for row in rows:
        d = derive_record(row, lookups, columns, use_age=use_age, max_age=max_age)
        out.exclusions["rows_read"] += 1
        out.exclusions[d.outcome] += 1
        if d.outcome == "included" and not d.measures:
            out.exclusions["no_measure"] += 1
        out.icb_source[d.source] += 1
        if d.outcome == "included":
            assert d.icb is not None and d.sex is not None and d.age_band is not None
            assert d.imd_quintile is not None
            for m in d.measures:
                out.cells[(d.icb, d.sex, d.age_band, d.imd_quintile, m)] += 1
        flags = {
            "rows": True,
            "no_practice": d.no_practice,
            "no_lsoa": d.no_lsoa,
            "no_practice_no_lsoa": d.no_practice and d.no_lsoa,
            f"src_{d.source}": True,
            "included" if d.outcome == "included" else f"excl_{d.outcome}": True,
            "no_measure": d.outcome == "included" and not d.measures,
            "missing_imd": d.imd_quintile is None,
            "missing_sex": d.sex is None,
            "missing_age": d.age_band is None,
            "missing_any": d.imd_quintile is None or d.sex is None or d.age_band is None,
        }
        for group, key in ((out.provider, d.provider), (out.icb, d.icb)):
            counter = group.setdefault(key, Counter())  # type: ignore[arg-type]
            for name, on in flags.items():
                if on:
                    counter[name] += 1
        out.provider_icb[(d.provider, d.icb)] += 1
    return out


def aggregate_reference_by_year(
    rows: Iterable[Mapping[str, Any]],
    lookups: Lookups,
    columns: Columns | None = None,
    *,
    use_age: bool = True,
    max_age: int | None = None,
) -> tuple[dict[str, ReferenceCube], ReferenceCube]:
    """The records grouped by the financial year of their test date, each group counted as
    :func:`aggregate_reference` counts: ``({year: cube}, undated cube)``, years in order.
    """
    groups: dict[str | None, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(financial_year_of(row, columns), []).append(row)

    def count(group: list[Mapping[str, Any]]) -> ReferenceCube:
        return aggregate_reference(group, lookups, columns, use_age=use_age, max_age=max_age)

    undated = count(groups.pop(None, []))
    return {y: count(groups[y]) for y in sorted(y for y in groups if y is not None)}, undated
