"""Annex A: data quality and the impact of missing data.

Builds the publication's Annex A from the quality counters that :func:`didcore.aggregate` keeps
alongside the cube (``cube.icb_source``, ``cube.exclusions``, ``cube.provider_quality``,
``cube.icb_quality`` and ``cube.provider_icb``; see ``docs/architecture.md``):

* the shares of tests whose ICB came from the GP practice, from the LSOA, from another valid
  practice (no English ICB) or from nowhere;
* the exclusions by reason, with counts and percentages of the rows read;
* Table A.1: providers with more than 10% **and** more than 10,000 tests with no GP practice, and
  of those tests how many also had no LSOA;
* Table A.2: providers with more than 5% and 5,000 tests missing age, sex or LSOA (no LSOA means
  no deprivation quintile could be imputed), with the most common missing field;
* Table A.3: ICBs with more than 1% and 5,000 such tests;
* Table A.4: ICBs with more than 5% and 5,000 estimated missing tests, from a table of providers'
  estimated missing records allocated to ICBs in proportion to each provider's ICB mix.

Every threshold is a field of :class:`QualityThresholds`. "More than" is strict, as published.
Percentages in the tables are per cent (0-100), of the provider's or ICB's total tests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from didcore.codes import normalise_text
from didcore.errors import MissingColumnError, UnreadableInputError

__all__ = [
    "EXCLUSION_LABELS",
    "SOURCE_LABELS",
    "AnnexA",
    "QualityThresholds",
    "annex_a",
    "read_provider_missing",
]

#: Row labels for the ICB source shares, in the publication's order.
SOURCE_LABELS: dict[str, str] = {
    "gp_practice": "English ICB from GP practice",
    "lsoa": "English ICB from LSOA of residence",
    "other_valid_practice": "Non-English or other valid GP practice",
    "unknown": "Unknown or unidentified",
}

#: Row labels for the exclusions, in the order the rules are applied.
EXCLUSION_LABELS: dict[str, str] = {
    "rows_read": "Records read",
    "no_icb": "No valid ICB (from GP practice or LSOA)",
    "no_imd": "No deprivation quintile (LSOA missing or unknown)",
    "no_sex": "Sex not known or not specified",
    "no_age": "Age missing",
    "included": "Included in the rates",
    # part of "included": complete records whose modality is in none of the measures
    "no_measure": "of which: modality or examination in no measure",
}

# The three fields whose absence removes a record with a valid ICB from the rates, with the
# names the publication uses for them ("LSOA" because the deprivation quintile comes from it).
_MISSING_FIELDS = (("missing_imd", "LSOA"), ("missing_sex", "Sex"), ("missing_age", "Age"))


@dataclass(frozen=True)
class QualityThresholds:
    """The Annex A thresholds: a row is listed when it exceeds both its share and its count.

    Shares are fractions (0.10 = 10%). The defaults are the publication's.
    """

    no_practice_share: float = 0.10
    no_practice_count: int = 10_000
    provider_missing_share: float = 0.05
    provider_missing_count: int = 5_000
    icb_missing_share: float = 0.01
    icb_missing_count: int = 5_000
    icb_shortfall_share: float = 0.05
    icb_shortfall_count: int = 5_000

    def __post_init__(self) -> None:
        """Reject thresholds that cannot select anything sensible."""
        for name, value in self.__dict__.items():
            if not isinstance(value, int | float) or math.isnan(value) or value < 0:
                raise ValueError(f"QualityThresholds.{name} must be a number >= 0, got {value!r}")
            if name.endswith("_share") and value > 1:
                raise ValueError(
                    f"QualityThresholds.{name} is a fraction (0.05 = 5%), got {value!r}"
                )

    def scaled(self, factor: float) -> QualityThresholds:
        """The same shares with the counts multiplied by ``factor`` (at least 1).

        For extracts much smaller than a national year (the demo has about 1/47 of the 47
        million tests of 2023/24), scaled counts keep the tables about as selective as
        published: ``QualityThresholds().scaled(rows_read / 47_160_000)``.
        """
        if not factor > 0:
            raise ValueError(f"scale factor must be > 0, got {factor!r}")
        counts = {
            name: max(1, round(value * factor))
            for name, value in self.__dict__.items()
            if name.endswith("_count")
        }
        return replace(self, **counts)


@dataclass(frozen=True)
class AnnexA:
    """The Annex A tables (Arrow) and the national figures its text quotes."""

    source_shares: pa.Table
    exclusions: pa.Table
    table_a1: pa.Table
    table_a2: pa.Table
    table_a3: pa.Table
    table_a4: pa.Table | None
    a4_allocation: pa.Table | None
    a4_unallocated: pa.Table | None
    thresholds: QualityThresholds
    figures: dict[str, Any] = field(default_factory=dict)

    def tables(self) -> dict[str, pa.Table]:
        """The tables by output file name, leaving out A.4 when it was not computed.

        The exclusions are ``exclusions`` (the file docs/report.md names); the others are
        ``annex_a_...``.
        """
        out = {
            "annex_a_source_shares": self.source_shares,
            "exclusions": self.exclusions,
            "annex_a_table_a1": self.table_a1,
            "annex_a_table_a2": self.table_a2,
            "annex_a_table_a3": self.table_a3,
        }
        if self.table_a4 is not None:
            out["annex_a_table_a4"] = self.table_a4
        if self.a4_allocation is not None:
            out["annex_a_a4_allocation"] = self.a4_allocation
        if self.a4_unallocated is not None:
            out["annex_a_a4_unallocated"] = self.a4_unallocated
        return out


def _pct(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray:
    """``100 * num / den`` with 0 where the denominator is 0 (an empty provider is 0% missing)."""
    num_a = np.asarray(num, dtype=float)
    den_a = np.asarray(den, dtype=float)
    out = np.zeros(np.broadcast(num_a, den_a).shape)
    np.divide(100.0 * num_a, den_a, out=out, where=den_a > 0)
    return out


def _column(table: pa.Table, name: str, what: str) -> np.ndarray:
    """An int64 counter column as numpy, or a clear error naming the table and column."""
    if name not in table.column_names:
        raise MissingColumnError(
            f"{what} has no column {name!r} (columns: {', '.join(table.column_names)})"
        )
    return np.asarray(table[name].fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)


def _most_common(table: pa.Table, what: str) -> list[str]:
    """The most common missing field per row; ties go to the publication's order (LSOA first)."""
    stacked = np.stack([_column(table, c, what) for c, _ in _MISSING_FIELDS], axis=1)
    labels = [label for _, label in _MISSING_FIELDS]
    return [
        labels[int(i)] if row.max() > 0 else ""
        for i, row in zip(stacked.argmax(1), stacked, strict=True)
    ]


def _exceeds(count: np.ndarray, total: np.ndarray, share: float, minimum: int) -> np.ndarray:
    """Rows above both thresholds ("more than 10% and 10,000")."""
    return (count > minimum) & (_pct(count, total) > 100.0 * share)


def _order(keys: list[str], counts: np.ndarray, mask: np.ndarray) -> list[int]:
    """Indices of the selected rows, largest count first, then by code (stable output)."""
    idx = [int(i) for i in np.nonzero(mask)[0]]
    return sorted(idx, key=lambda i: (-int(counts[i]), keys[i]))


def _source_shares(cube: Any) -> pa.Table:
    src = {k: int(cube.icb_source.get(k, 0)) for k in SOURCE_LABELS}
    total = sum(src.values())
    counts = np.array(list(src.values()))
    return pa.table(
        {
            "source": list(src),
            "count": pa.array(counts, pa.int64()),
            "percent": pa.array(_pct(counts, total), pa.float64()),
            "label": [SOURCE_LABELS[k] for k in src],
        }
    )


def _exclusions(cube: Any) -> pa.Table:
    ex = {k: int(cube.exclusions.get(k, 0)) for k in EXCLUSION_LABELS}
    counts = np.array(list(ex.values()))
    return pa.table(
        {
            "reason": list(ex),
            "count": pa.array(counts, pa.int64()),
            "percent": pa.array(_pct(counts, ex["rows_read"]), pa.float64()),
            "label": [EXCLUSION_LABELS[k] for k in ex],
        }
    )


def _names(codes: list[str], names: Mapping[str, str] | None) -> list[str]:
    return [(names or {}).get(c, "") for c in codes]


def _table_a1(pq: pa.Table, th: QualityThresholds, names: Mapping[str, str] | None) -> pa.Table:
    what = "cube.provider_quality"
    codes = pq["provider_code"].to_pylist()
    rows = _column(pq, "rows", what)
    no_gp = _column(pq, "no_practice", what)
    no_gp_no_lsoa = _column(pq, "no_practice_no_lsoa", what)
    keep = _order(codes, no_gp, _exceeds(no_gp, rows, th.no_practice_share, th.no_practice_count))
    sel = [codes[i] for i in keep]
    return pa.table(
        {
            "provider_code": pa.array(sel, pa.string()),
            "provider_name": pa.array(_names(sel, names), pa.string()),
            "rows": pa.array(rows[keep], pa.int64()),
            "no_practice": pa.array(no_gp[keep], pa.int64()),
            "no_practice_pct": pa.array(_pct(no_gp[keep], rows[keep]), pa.float64()),
            "no_practice_no_lsoa": pa.array(no_gp_no_lsoa[keep], pa.int64()),
            "no_practice_no_lsoa_pct": pa.array(
                _pct(no_gp_no_lsoa[keep], rows[keep]), pa.float64()
            ),
        }
    )


def _missing_table(
    table: pa.Table,
    key: str,
    name_col: str,
    share: float,
    minimum: int,
    names: Mapping[str, str] | None,
    what: str,
) -> pa.Table:
    """Tables A.2 and A.3: rows with too many tests missing LSOA, sex or age."""
    codes = table[key].to_pylist()
    rows = _column(table, "rows", what)
    missing = _column(table, "missing_any", what)
    mask = _exceeds(missing, rows, share, minimum) & np.array([c is not None for c in codes])
    keep = _order([c or "" for c in codes], missing, mask)
    sel = [codes[i] for i in keep]
    common = _most_common(table, what)
    return pa.table(
        {
            key: pa.array(sel, pa.string()),
            name_col: pa.array(_names(sel, names), pa.string()),
            "rows": pa.array(rows[keep], pa.int64()),
            "missing_any": pa.array(missing[keep], pa.int64()),
            "missing_pct": pa.array(_pct(missing[keep], rows[keep]), pa.float64()),
            **{c: pa.array(_column(table, c, what)[keep], pa.int64()) for c, _ in _MISSING_FIELDS},
            "most_common_missing": pa.array([common[i] for i in keep], pa.string()),
        }
    )


def read_provider_missing(source: str | Path | pa.Table) -> pa.Table:
    """Read providers' estimated missing records (``provider_code``, ``missing_records``).

    Accepts a CSV or Parquet file or an Arrow table. Codes are trimmed and upper-cased, as the
    extract's are; a provider listed twice has its estimates added.
    """
    if isinstance(source, pa.Table):
        table = source
    else:
        path = Path(source)
        if not path.is_file():
            raise UnreadableInputError(f"provider missing-records file not found: {path}")
        try:
            if path.suffix.lower() == ".parquet":
                import pyarrow.parquet as pq

                table = pq.read_table(path)
            else:
                import pyarrow.csv as pcsv

                table = pcsv.read_csv(
                    path,
                    convert_options=pcsv.ConvertOptions(
                        column_types={"provider_code": pa.string()}
                    ),
                )
        except (pa.ArrowInvalid, OSError) as exc:
            raise UnreadableInputError(f"cannot read {path}: {exc}") from exc
    for col in ("provider_code", "missing_records"):
        if col not in table.column_names:
            raise MissingColumnError(
                f"provider missing-records table has no column {col!r} "
                f"(columns: {', '.join(table.column_names)}); expected provider_code, "
                "missing_records"
            )
    totals: dict[str, float] = {}
    for code, value in zip(
        table["provider_code"].to_pylist(), table["missing_records"].to_pylist(), strict=True
    ):
        if code is None or value is None:
            continue
        key = normalise_text(str(code))
        if not key:
            continue  # a blank code names no provider; nothing to allocate it by
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise UnreadableInputError(
                f"missing_records for provider {key!r} is not a number: {value!r}"
            ) from exc
        if number < 0 or math.isnan(number):
            raise UnreadableInputError(
                f"missing_records for provider {key!r} must be >= 0, got {value!r}"
            )
        totals[key] = totals.get(key, 0.0) + number
    return pa.table(
        {
            "provider_code": pa.array(list(totals), pa.string()),
            "missing_records": pa.array(list(totals.values()), pa.float64()),
        }
    )


def _table_a4(
    cube: Any,
    missing: pa.Table,
    th: QualityThresholds,
    icb_names: Mapping[str, str] | None,
    provider_names: Mapping[str, str] | None,
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Allocate each provider's missing records to ICBs by its ICB mix; select the ICBs hit hard.

    The mix is the provider's tests with a derived ICB (``cube.provider_icb``), so a provider whose
    patients are 70% from one ICB has 70% of its missing records charged to that ICB. A provider
    with no tests in the extract has no mix; it is listed as unallocated rather than guessed.
    """
    mix = getattr(cube, "provider_icb", None)
    if mix is None:
        raise MissingColumnError(
            "Table A.4 needs the cube's provider x ICB counts (cube.provider_icb), which this "
            "cube does not carry"
        )
    what = "cube.provider_icb"
    mix_codes = mix["provider_code"].to_pylist()
    mix_icbs = mix["icb_code"].to_pylist()
    mix_rows = _column(mix, "rows", what)
    per_provider: dict[str, float] = {}
    for p, r in zip(mix_codes, mix_rows, strict=True):
        per_provider[p] = per_provider.get(p, 0.0) + float(r)

    icb_codes = list(cube.icb_codes)
    pos = {c: i for i, c in enumerate(icb_codes)}
    allocated = np.zeros(len(icb_codes))
    # provider contributions per ICB, to name the provider behind most of each shortfall
    contrib: dict[str, dict[str, float]] = {c: {} for c in icb_codes}
    est = dict(
        zip(
            missing["provider_code"].to_pylist(),
            missing["missing_records"].to_pylist(),
            strict=True,
        )
    )
    for p, icb, r in zip(mix_codes, mix_icbs, mix_rows, strict=True):
        if p not in est or icb not in pos or per_provider[p] <= 0:
            continue
        share = est[p] * float(r) / per_provider[p]
        allocated[pos[icb]] += share
        contrib[icb][p] = contrib[icb].get(p, 0.0) + share
    unallocated = [p for p in est if per_provider.get(p, 0.0) <= 0 and est[p] > 0]

    iq = cube.icb_quality
    iq_codes = iq["icb_code"].to_pylist()
    iq_rows = _column(iq, "rows", "cube.icb_quality")
    totals = np.zeros(len(icb_codes), dtype=np.int64)
    for c, r in zip(iq_codes, iq_rows, strict=True):
        if c in pos:
            totals[pos[c]] += r

    main = []
    for c in icb_codes:
        if contrib[c]:
            # largest contribution first; the code breaks ties so the output is stable
            p, v = min(contrib[c].items(), key=lambda kv: (-kv[1], kv[0]))
            main.append((p, v))
        else:
            main.append(("", 0.0))
    rounded = np.round(allocated)
    allocation = pa.table(
        {
            "icb_code": pa.array(icb_codes, pa.string()),
            "icb_name": pa.array(_names(icb_codes, icb_names), pa.string()),
            "rows": pa.array(totals, pa.int64()),
            "missing_records": pa.array(rounded.astype(np.int64), pa.int64()),
            "missing_pct": pa.array(_pct(allocated, totals), pa.float64()),
            "main_provider_code": pa.array([m[0] for m in main], pa.string()),
            "main_provider_name": pa.array(
                _names([m[0] for m in main], provider_names), pa.string()
            ),
            "main_provider_missing": pa.array(
                np.round([m[1] for m in main]).astype(np.int64), pa.int64()
            ),
        }
    )
    keep = _order(
        icb_codes,
        rounded,
        _exceeds(allocated, totals, th.icb_shortfall_share, th.icb_shortfall_count),
    )
    table = allocation.take(pa.array(keep, pa.int64()))
    unalloc = pa.table(
        {
            "provider_code": pa.array(sorted(unallocated), pa.string()),
            "provider_name": pa.array(_names(sorted(unallocated), provider_names), pa.string()),
            "missing_records": pa.array([round(est[p]) for p in sorted(unallocated)], pa.int64()),
        }
    )
    return table, allocation, unalloc


def annex_a(
    cube: Any,
    *,
    thresholds: QualityThresholds | None = None,
    provider_missing: str | Path | pa.Table | None = None,
    provider_names: Mapping[str, str] | None = None,
    icb_names: Mapping[str, str] | None = None,
) -> AnnexA:
    """Build Annex A from a cube's quality counters.

    Parameters
    ----------
    cube:
        A :class:`didcore.Cube` (anything with its ``icb_source``, ``exclusions``,
        ``provider_quality``, ``icb_quality``, ``icb_codes`` and, for A.4, ``provider_icb``).
    thresholds:
        The selection thresholds; the publication's by default.
    provider_missing:
        Providers' estimated missing records (``provider_code``, ``missing_records``) as a file
        or table; Table A.4 is built only when given.
    provider_names, icb_names:
        Code -> name, for the name columns (left empty for codes not in them).
    """
    th = thresholds or QualityThresholds()
    pq = cube.provider_quality
    iq = cube.icb_quality
    a1 = _table_a1(pq, th, provider_names)
    a2 = _missing_table(
        pq,
        "provider_code",
        "provider_name",
        th.provider_missing_share,
        th.provider_missing_count,
        provider_names,
        "cube.provider_quality",
    )
    a3 = _missing_table(
        iq,
        "icb_code",
        "icb_name",
        th.icb_missing_share,
        th.icb_missing_count,
        icb_names,
        "cube.icb_quality",
    )
    a4 = allocation = unallocated = None
    if provider_missing is not None:
        a4, allocation, unallocated = _table_a4(
            cube, read_provider_missing(provider_missing), th, icb_names, provider_names
        )

    ex = {k: int(cube.exclusions.get(k, 0)) for k in EXCLUSION_LABELS}
    no_gp_no_lsoa = _column(pq, "no_practice_no_lsoa", "cube.provider_quality")
    figures: dict[str, Any] = {
        "rows_read": ex["rows_read"],
        "icb_source_total": sum(int(cube.icb_source.get(k, 0)) for k in SOURCE_LABELS),
        # providers above the A.1 count threshold with neither practice nor LSOA: the
        # publication says when there are none
        "providers_no_practice_no_lsoa_over_count": int(
            np.sum(no_gp_no_lsoa > th.no_practice_count)
        ),
    }
    for reason in ("no_icb", "no_imd", "no_sex", "no_age", "included", "no_measure"):
        figures[reason] = ex[reason]
        figures[f"{reason}_pct"] = float(_pct(ex[reason], ex["rows_read"]))
    return AnnexA(
        source_shares=_source_shares(cube),
        exclusions=_exclusions(cube),
        table_a1=a1,
        table_a2=a2,
        table_a3=a3,
        table_a4=a4,
        a4_allocation=allocation,
        a4_unallocated=unallocated,
        thresholds=th,
        figures=figures,
    )
