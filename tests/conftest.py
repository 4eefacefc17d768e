"""Shared test configuration: hypothesis profiles chosen by DIDCORE_HYPOTHESIS_PROFILE, and
the lookups folder the command-line tests read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
settings.register_profile(
    "dev",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(
    os.environ.get("DIDCORE_HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")
)


@pytest.fixture
def lookups_dir(tmp_path: Path) -> Path:
    """test_cube's lookups written as a lookups folder of CSV files."""
    from test_cube import ICBS, LSOA_ICB, LSOA_IMD, OTHER, PRACTICES

    d = tmp_path / "lookups"
    d.mkdir()
    rows = "\n".join(f"{k},{v}" for k, v in PRACTICES.items())
    (d / "practice_icb.csv").write_text(f"gp_practice_code,icb_code\n{rows}\n")
    (d / "other_practices.csv").write_text("gp_practice_code\n" + "\n".join(OTHER) + "\n")
    rows = "\n".join(f"{k},{v}" for k, v in LSOA_ICB.items())
    (d / "lsoa_icb.csv").write_text(f"lsoa11,icb_code\n{rows}\n")
    rows = "\n".join(f"{k},{v}" for k, v in LSOA_IMD.items())
    (d / "lsoa_imd.csv").write_text(f"lsoa11,imd_decile\n{rows}\n")
    (d / "icb.csv").write_text("icb_code,icb_name,region\n" + "\n".join(f"{c},{c},R" for c in ICBS))
    return d
