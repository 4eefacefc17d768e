"""Benchmarks of the statistics layer on a publication-sized cube (42 ICBs x 14 measures).

Run with ``pytest benches/test_bench_stats.py --benchmark-enable``; without it (the default in
pyproject.toml) each benchmark runs once as a smoke test.
"""

from __future__ import annotations

import numpy as np
import pytest

from didcore.cube import Cube
from didcore.population import Population
from didcore.ratios import rates_ratios
from didcore.standardise import standardise

MEASURES = (
    "X-ray", "Ultrasound", "CT Scan", "MRI", "Fluoroscopy", "Nuclear Medicine", "PET Scan",
    "SPECT Scan", "Medical Photography", "Brain MRI", "Chest X-ray", "Chest CT",
    "Kidney or Bladder Ultrasound", "Abdomen or Pelvis Ultrasound",
)  # fmt: skip
# national rates per person of the 2023/24 publication (Tables 1-2)
RATES = np.array([3551, 1703, 1207, 694, 143, 50, 43, 8, 11, 150, 1289, 127, 34, 199]) / 1e4


@pytest.fixture(scope="module")
def cube_and_population() -> tuple[Cube, Population]:
    rng = np.random.default_rng(2024)
    codes = tuple(f"Q{i:02d}" for i in range(42))
    # ~1.36M people per ICB, 57M in all; rates rising with age, ICB effects of +/- 20%
    people = rng.uniform(0.5, 1.5, (42, 2, 19, 5)) * 57e6 / (42 * 190)
    age = np.geomspace(0.3, 4.0, 19)[None, None, :, None, None]
    icb = rng.uniform(0.8, 1.2, (42, 1, 1, 1, 1))
    counts = rng.poisson(people[..., None] * RATES * age * icb).astype(np.int64)
    kinds = ("modality",) * 9 + ("edoc",) * 5
    return Cube(counts, codes, MEASURES, kinds), Population(people, codes)


@pytest.mark.benchmark(group="stats")
def test_bench_standardise(benchmark, cube_and_population) -> None:
    cube, pop = cube_and_population
    result = benchmark(standardise, cube, pop)
    assert result.icb.num_rows == 42 * 14


@pytest.mark.benchmark(group="stats")
def test_bench_standardise_overdispersion(benchmark, cube_and_population) -> None:
    cube, pop = cube_and_population
    result = benchmark(standardise, cube, pop, overdispersion="winsorise", funnel_scale="log")
    assert set(result.funnel.column("method").to_pylist()) == {"winsorise"}


@pytest.mark.benchmark(group="stats")
def test_bench_rates_ratios(benchmark, cube_and_population) -> None:
    cube, pop = cube_and_population
    result = benchmark(rates_ratios, cube, pop)
    assert result.num_rows == 14 * (2 + 5 + 5)
