"""Annex A (didcore.quality) on hand-built quality counters and on the fixture cube."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from _report_fixtures import QUALITY_COUNTERS, make_fixture, provider_missing_table
from didcore.errors import InputError, MissingColumnError
from didcore.quality import QualityThresholds, annex_a, read_provider_missing


def _counters(key: str, rows: list[dict]) -> pa.Table:
    """A quality table: every documented counter, zero unless given."""
    data = {key: pa.array([r[key] for r in rows], pa.string())}
    for c in QUALITY_COUNTERS:
        data[c] = pa.array([int(r.get(c, 0)) for r in rows], pa.int64())
    return pa.table(data)


def _cube(
    providers: list[dict], icbs: list[dict], mix: list[tuple] | None = None
) -> SimpleNamespace:
    codes = tuple(r["icb_code"] for r in icbs if r["icb_code"] is not None)
    return SimpleNamespace(
        icb_codes=codes,
        exclusions={
            "rows_read": 1000,
            "no_icb": 10,
            "no_imd": 20,
            "no_sex": 30,
            "no_age": 5,
            "no_measure": 0,
            "included": 935,
        },
        icb_source={"gp_practice": 900, "lsoa": 80, "other_valid_practice": 12, "unknown": 8},
        provider_quality=_counters("provider_code", providers),
        icb_quality=_counters("icb_code", icbs),
        provider_icb=pa.table(
            {
                "provider_code": pa.array([m[0] for m in mix or []], pa.string()),
                "icb_code": pa.array([m[1] for m in mix or []], pa.string()),
                "rows": pa.array([m[2] for m in mix or []], pa.int64()),
            }
        ),
    )


PROVIDERS = [
    # above both A.1 thresholds
    {"provider_code": "RM3", "rows": 736_200, "no_practice": 736_000, "no_practice_no_lsoa": 8_500},
    # exactly 10%: not "more than"
    {"provider_code": "RAA", "rows": 200_000, "no_practice": 20_000},
    # above the share but not the count
    {"provider_code": "RBB", "rows": 50_000, "no_practice": 9_999},
    # above the count, below the share
    {"provider_code": "RCC", "rows": 1_000_000, "no_practice": 99_000},
    {"provider_code": "REM", "rows": 414_000, "no_practice": 253_000, "no_practice_no_lsoa": 5_300},
    # A.2: missing sex most common
    {
        "provider_code": "RCB",
        "rows": 392_000,
        "missing_any": 100_000,
        "missing_imd": 10_000,
        "missing_sex": 85_000,
        "missing_age": 5_000,
    },
    # A.2: LSOA most common (tie with sex goes to LSOA, the publication's first)
    {
        "provider_code": "NYR",
        "rows": 152_000,
        "missing_any": 47_000,
        "missing_imd": 30_000,
        "missing_sex": 30_000,
    },
    # A.2: below 5%
    {"provider_code": "RDD", "rows": 1_000_000, "missing_any": 49_000, "missing_imd": 49_000},
]

ICBS = [
    {
        "icb_code": "QOQ",
        "rows": 1_552_000,
        "missing_any": 97_200,
        "missing_sex": 90_000,
        "missing_imd": 7_200,
    },
    {"icb_code": "QKK", "rows": 1_121_000, "missing_any": 38_300, "missing_imd": 38_300},
    # 1% exactly: not listed
    {"icb_code": "QMM", "rows": 1_000_000, "missing_any": 10_000, "missing_imd": 10_000},
    # records with no ICB: never listed even above the thresholds
    {"icb_code": None, "rows": 100_000, "missing_any": 90_000, "missing_imd": 90_000},
]


def test_table_a1_thresholds_are_strict_and_sorted():
    annex = annex_a(_cube(PROVIDERS, ICBS), provider_names={"RM3": "Northern Care Alliance"})
    a1 = annex.table_a1.to_pylist()
    assert [r["provider_code"] for r in a1] == ["RM3", "REM"]
    assert a1[0]["provider_name"] == "Northern Care Alliance"
    assert a1[0]["no_practice_pct"] == pytest.approx(100 * 736_000 / 736_200)
    assert a1[0]["no_practice_no_lsoa_pct"] == pytest.approx(100 * 8_500 / 736_200)
    assert a1[1]["provider_name"] == ""


def test_table_a2_most_common_missing_field():
    a2 = annex_a(_cube(PROVIDERS, ICBS)).table_a2.to_pylist()
    assert [r["provider_code"] for r in a2] == ["RCB", "NYR"]
    assert [r["most_common_missing"] for r in a2] == ["Sex", "LSOA"]
    assert a2[0]["missing_pct"] == pytest.approx(100 * 100_000 / 392_000)


def test_table_a3_uses_icbs_with_a_valid_code_only():
    a3 = annex_a(_cube(PROVIDERS, ICBS)).table_a3.to_pylist()
    assert [r["icb_code"] for r in a3] == ["QOQ", "QKK"]
    assert [r["most_common_missing"] for r in a3] == ["Sex", "LSOA"]


def test_thresholds_are_configurable():
    th = QualityThresholds(no_practice_share=0.05, no_practice_count=5_000)
    a1 = annex_a(_cube(PROVIDERS, ICBS), thresholds=th).table_a1
    assert set(a1["provider_code"].to_pylist()) == {"RM3", "REM", "RAA", "RBB", "RCC"}


@pytest.mark.parametrize(
    "kwargs",
    [{"no_practice_share": 10}, {"icb_missing_count": -1}, {"icb_missing_share": float("nan")}],
)
def test_bad_thresholds_are_refused(kwargs):
    with pytest.raises(ValueError):
        QualityThresholds(**kwargs)


def test_source_shares_and_exclusions_percentages():
    annex = annex_a(_cube(PROVIDERS, ICBS))
    shares = {r["source"]: r for r in annex.source_shares.to_pylist()}
    assert list(shares) == ["gp_practice", "lsoa", "other_valid_practice", "unknown"]
    assert shares["gp_practice"]["percent"] == pytest.approx(90.0)
    assert sum(r["percent"] for r in shares.values()) == pytest.approx(100.0)
    ex = {r["reason"]: r for r in annex.exclusions.to_pylist()}
    assert ex["rows_read"]["percent"] == 100.0
    assert ex["no_sex"]["count"] == 30
    assert ex["no_sex"]["percent"] == pytest.approx(3.0)
    assert annex.exclusions.column_names[:2] == ["reason", "count"]  # SPEC section 6 order
    assert annex.figures["no_icb_pct"] == pytest.approx(1.0)


def test_table_a4_allocates_by_provider_icb_mix():
    icbs = [
        {"icb_code": "QKK", "rows": 1_121_000},
        {"icb_code": "QU9", "rows": 1_115_000},
        {"icb_code": "QKS", "rows": 1_492_000},
    ]
    mix = [
        ("RJZ", "QKK", 900),  # 90% of RJZ's tests are QKK's
        ("RJZ", "QKS", 100),
        ("RXQ", "QU9", 1_000),
        ("RVV", "QKS", 500),
        ("RVV", "QKK", 500),
    ]
    missing = pa.table(
        {
            "provider_code": ["RJZ", "RXQ", "RVV", "RXX"],
            "missing_records": [400_000, 202_000, 2_000, 7_000],
        }
    )
    annex = annex_a(
        _cube(PROVIDERS, icbs, mix),
        provider_missing=missing,
        icb_names={"QKK": "NHS South East London ICB"},
        provider_names={"RJZ": "King's College Hospital"},
    )
    alloc = {r["icb_code"]: r for r in annex.a4_allocation.to_pylist()}
    assert alloc["QKK"]["missing_records"] == 360_000 + 1_000
    assert alloc["QKS"]["missing_records"] == 40_000 + 1_000
    assert alloc["QU9"]["missing_records"] == 202_000
    assert alloc["QKK"]["main_provider_code"] == "RJZ"
    assert alloc["QKK"]["main_provider_name"] == "King's College Hospital"
    # allocation conserves the allocatable records
    assert sum(r["missing_records"] for r in alloc.values()) == 400_000 + 202_000 + 2_000
    a4 = annex.table_a4.to_pylist()
    # QKS: 41,000 of 1,492,000 = 2.7%, under 5%: not listed
    assert [r["icb_code"] for r in a4] == ["QKK", "QU9"]
    assert a4[0]["missing_pct"] == pytest.approx(100 * 361_000 / 1_121_000)
    assert annex.a4_unallocated.to_pylist() == [
        {"provider_code": "RXX", "provider_name": "", "missing_records": 7_000}
    ]
    assert "annex_a_table_a4" in annex.tables()


def test_no_table_a4_without_missing_records():
    annex = annex_a(_cube(PROVIDERS, ICBS))
    assert annex.table_a4 is None
    assert "annex_a_table_a4" not in annex.tables()


def test_read_provider_missing_csv(tmp_path: Path):
    path = tmp_path / "missing.csv"
    path.write_text("provider_code,missing_records\n rjz ,400000\nRXQ,1000\nRJZ,5\n,7\n")
    table = read_provider_missing(path)
    assert dict(zip(*(table[c].to_pylist() for c in table.column_names), strict=True)) == {
        "RJZ": 400_005.0,
        "RXQ": 1_000.0,
    }


def test_read_provider_missing_errors(tmp_path: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text("provider,records\nRJZ,1\n")
    with pytest.raises(MissingColumnError, match="missing_records"):
        read_provider_missing(bad)
    neg = tmp_path / "neg.csv"
    neg.write_text("provider_code,missing_records\nRJZ,-5\n")
    with pytest.raises(InputError, match="RJZ"):
        read_provider_missing(neg)
    with pytest.raises(InputError, match="not found"):
        read_provider_missing(tmp_path / "absent.csv")


def test_missing_counter_is_named():
    cube = _cube(PROVIDERS, ICBS)
    cube.provider_quality = cube.provider_quality.drop_columns(["missing_any"])
    with pytest.raises(MissingColumnError, match="missing_any"):
        annex_a(cube)


def test_fixture_cube_annex_is_consistent():
    fx = make_fixture(n_measures=2)
    annex = annex_a(fx.cube, provider_missing=provider_missing_table())
    pq = fx.cube.provider_quality
    rows = np.asarray(pq["rows"])
    no_gp = np.asarray(pq["no_practice"])
    expected = {
        c
        for c, r, n in zip(pq["provider_code"].to_pylist(), rows, no_gp, strict=True)
        if n > 10_000 and n / r > 0.10
    }
    assert set(annex.table_a1["provider_code"].to_pylist()) == expected
    assert annex.a4_unallocated["provider_code"].to_pylist() == ["ZZZ"]
