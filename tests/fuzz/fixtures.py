"""The lookups every fuzz case counts against, and the oracles a result is checked with.

The lookups are tiny (3 ICBs, a handful of practices and LSOAs) so that generated codes hit
every rule of SPEC section 2: a practice with an ICB, an other-valid practice, an LSOA with an
ICB and an IMD decile, an LSOA with an ICB but no IMD (``E01000004``), one with IMD but no ICB
(``E01000005``). Measures are the ones shipped with didcore.

Oracles:

* :func:`conservation_errors`: ``rows_read = no_icb + no_imd + no_sex + no_age + included``
  in total and for every provider (and every derived ICB);
* :func:`reference_rows` then :func:`cube_differences`: the pure-Python reference
  (:func:`didcore.reference.cube.aggregate_reference`) applied to the rows the source holds
  as Arrow sees them, compared cell by cell and counter by counter.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

ICBS = ["QAA", "QBB", "QCC"]
PRACTICES = {"A81001": "QAA", "A81002": "QBB", "B82003": "QCC", "C83004": "QAA"}
OTHER = ["W91001", "P99001"]
LSOA_ICB = {"E01000001": "QAA", "E01000002": "QBB", "E01000003": "QCC", "E01000004": "QBB"}
# deciles; E01000004 has no IMD level, E01000005 has one but no ICB
LSOA_IMD = {"E01000001": 1, "E01000002": 4, "E01000003": 7, "E01000005": 10}
PROVIDERS = ["RM3", "RWF", "NT9"]
EXAMS = ["XCHES", "MBRAI", "CCHES", "UKIDB", "UABPE", "XKNEE", "ZZZZZ"]

#: The columns of an extract, in the order the generators write them.
CODE_COLUMNS = ("provider_code", "gp_practice_code", "lsoa11", "modality", "exam_code")


def lookup_tables() -> dict[str, dict[str, list[Any]]]:
    """The lookups as columns (``Lookups.from_tables`` keyword arguments, measures shipped)."""
    return {
        "practice_icb": {"gp_practice_code": list(PRACTICES), "icb_code": list(PRACTICES.values())},
        "lsoa_icb": {"lsoa11": list(LSOA_ICB), "icb_code": list(LSOA_ICB.values())},
        "lsoa_imd": {"lsoa11": list(LSOA_IMD), "imd_decile": [str(v) for v in LSOA_IMD.values()]},
        "other_practices": {"gp_practice_code": list(OTHER)},
        "icb": {
            "icb_code": ICBS,
            "icb_name": ["Alpha", "Beta", "Gamma"],
            "region": ["R", "R", "S"],
        },
    }


@cache
def lookups() -> Any:
    """The :class:`didcore.Lookups` built from :func:`lookup_tables` (built once a process)."""
    from didcore.lookup import Lookups

    return Lookups.from_tables(**lookup_tables())


def lookup_csv_texts() -> dict[str, str]:
    """The lookups folder as CSV file texts, ``{file name: text}``."""
    out = {}
    for name, cols in lookup_tables().items():
        header = ",".join(cols)
        rows = zip(*cols.values(), strict=True)
        out[f"{name}.csv"] = "\n".join([header, *(",".join(map(str, r)) for r in rows)]) + "\n"
    return out


def write_lookups(folder: Path) -> Path:
    """Write the lookups folder as CSV files; returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in lookup_csv_texts().items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


# ------------------------------------------------------------------ reference adapter

# What may follow an ISO date in a date-time, as docs/inputs.md has it: nothing, or a time
# after "T" or a space, then a UTC offset or "Z".
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_ISO_TIME = re.compile(r"([T ]\d{2}(:?\d{2}(:?\d{2}([.,]\d+)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?")


def iso_date(text: str) -> dt.date | None:
    """A date written as ISO 8601 text (the date of a date-time as written), else ``None``."""
    text = text.strip()
    m = _ISO_DATE.match(text)
    if not m or not _ISO_TIME.fullmatch(text[10:]):
        return None
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def _plain(value: Any, column: str, date_columns: Iterable[str]) -> Any:
    """A value as the reference takes it: bytes decoded, numpy scalars as Python numbers,
    dates written as text parsed (the reference reads only date objects).
    """
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value)  # not text: only ever in a column the count does not read
    if hasattr(value, "dtype") and hasattr(value, "item"):  # numpy scalar (half floats)
        value = value.item()
    if column in date_columns and isinstance(value, str):
        return iso_date(value)
    if isinstance(value, float) and math.isnan(value) and column not in ("age", "sex"):
        return None
    return value


def reference_rows(table: Any, columns: Any = None) -> list[dict[str, Any]]:
    """Rows of an Arrow table (or anything ``pa.table`` takes) for the reference."""
    import pyarrow as pa

    from didcore.io import Columns

    c = columns or Columns()
    t = table if isinstance(table, pa.Table) else pa.table(table)
    dates = (c.date_of_birth, c.test_date)
    return [{k: _plain(v, k, dates) for k, v in row.items()} for row in t.to_pylist()]


def reference(
    rows: list[dict[str, Any]],
    *,
    columns: Any = None,
    max_age: int | None = None,
    lk: Any = None,
    use_age: bool | None = None,
) -> Any:
    """:func:`didcore.reference.cube.aggregate_reference` of ``rows``."""
    from didcore.io import Columns
    from didcore.reference.cube import aggregate_reference

    c = columns or Columns()
    if use_age is None:
        use_age = not rows or c.age in rows[0]
    return aggregate_reference(rows, lk or lookups(), c, use_age=use_age, max_age=max_age)


# ------------------------------------------------------------------ oracles


def conservation_errors(cube: Any) -> list[str]:
    """Where ``rows_read = no_icb + no_imd + no_sex + no_age + included`` fails."""
    from didcore.cube import EXCLUSION_REASONS

    errors = []
    ex = cube.exclusions
    total = sum(ex[r] for r in EXCLUSION_REASONS) + ex["included"]
    if total != ex["rows_read"]:
        errors.append(f"total: rows_read {ex['rows_read']} != exclusions + included {total}")
    if ex["no_measure"] > ex["included"] or min(ex.values()) < 0:
        errors.append(f"total: impossible counters {ex}")
    for group, table in (("provider", cube.provider_quality), ("icb", cube.icb_quality)):
        for row in table.to_pylist():
            excluded = sum(row[f"excl_{r}"] for r in EXCLUSION_REASONS)
            if row["rows"] != excluded + row["included"]:
                key = row.get("provider_code", row.get("icb_code"))
                errors.append(
                    f"{group} {key!r}: rows {row['rows']} != {excluded + row['included']}"
                )
    n_prov = int(cube.provider_counts[:, 0].sum()) if len(cube.provider_codes) else 0
    if n_prov != ex["rows_read"]:
        errors.append(f"providers hold {n_prov} rows of {ex['rows_read']}")
    counted = int(cube.counts.sum())
    if ex["included"] == 0 and counted:
        errors.append(f"{counted} tests counted with no record included")
    return errors


def _counters(rows: Iterable[Mapping[str, Any]], key: str, names: Iterable[str]) -> dict:
    names = list(names)
    return {r[key]: Counter({k: r[k] for k in names if r[k]}) for r in rows if r["rows"]}


def cube_differences(cube: Any, ref: Any, *, providers: bool = True) -> list[str]:
    """How a :class:`didcore.Cube` differs from a reference cube (empty when equal);
    ``providers=False`` leaves out the per-provider counters (folded past ``max_providers``).
    """
    import numpy as np

    from didcore.cube import AGE_BANDS, EXCLUSION_REASONS, QUALITY_COUNTERS, SEXES

    out = []
    fast: Counter[tuple[Any, ...]] = Counter()
    for idx in zip(*np.nonzero(cube.counts), strict=True):
        i, s, a, q, m = (int(x) for x in idx)
        fast[(cube.icb_codes[i], SEXES[s], AGE_BANDS[a], q + 1, cube.measures[m])] = int(
            cube.counts[idx]
        )
    if fast != ref.cells:
        extra = dict(list((fast - ref.cells).items())[:3])
        missing = dict(list((ref.cells - fast).items())[:3])
        out.append(f"cells: fast-only {extra}, reference-only {missing}")
    want = {"rows_read": ref.exclusions["rows_read"]}
    for reason in (*EXCLUSION_REASONS, "included", "no_measure"):
        want[reason] = ref.exclusions[reason]
    if cube.exclusions != want:
        out.append(f"exclusions: {cube.exclusions} != reference {want}")
    got_src = {k: v for k, v in cube.icb_source.items() if v}
    if got_src != dict(ref.icb_source):
        out.append(f"icb_source: {got_src} != reference {dict(ref.icb_source)}")
    prov = _counters(cube.provider_quality.to_pylist(), "provider_code", QUALITY_COUNTERS)
    if providers and prov != ref.provider:
        keys = (
            sorted(set(prov) ^ set(ref.provider), key=repr)[:4]
            or [k for k in prov if prov[k] != ref.provider.get(k)][:2]
        )
        out.append(f"provider counters differ at {keys!r}")
    icb = _counters(cube.icb_quality.to_pylist(), "icb_code", QUALITY_COUNTERS)
    if icb != ref.icb:
        out.append("icb counters differ")
    pairs = Counter(
        {(r["provider_code"], r["icb_code"]): r["rows"] for r in cube.provider_icb.to_pylist()}
    )
    if providers and pairs != ref.provider_icb:
        out.append("provider x icb rows differ")
    return out
