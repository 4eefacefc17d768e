"""A typed user script on didcore's public API, checked with ``mypy --strict`` in CI
(scripts/test.sh): if a public signature or return type regresses (a ``Cube`` no longer
accepted by ``standardise``, ``aggregate(by_year=True)`` no longer a ``YearCubes``), this file
stops type-checking. It is also runnable: ``python tests/typing/user_script.py EXTRACT POP``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

import didcore
from didcore import Cube, Lookups, Population, StandardisedRates, YearCubes


def national_rates(extract: Path, population_csv: Path, lookups: Path | None = None) -> pa.Table:
    """Count an extract, standardise it and return the national rates with ratios joined."""
    lk: Lookups = Lookups.read(lookups) if lookups is not None else Lookups.default()
    whole: Cube = didcore.aggregate(extract, lk, progress=False)  # every year in one cube
    year_rows: Mapping[str, int] | None = whole.year_rows
    print(f"rows per financial year: {dict(year_rows or {})}")
    # rates are per year: standardise one year's cube (a cube of several is refused)
    years: YearCubes = didcore.aggregate(extract, lk, by_year=True, progress=False)
    cube: Cube = years[years.latest]
    counts: NDArray[np.int64] = cube.counts
    assert counts.ndim == 5
    pop: Population = Population.read(population_csv, cube.icb_codes)
    rates: StandardisedRates = didcore.standardise(cube, pop, overdispersion="winsorise")
    ratios: pa.Table = didcore.rates_ratios(cube, pop, allow=())
    print(f"{len(ratios)} rates ratios; {rates.icb.num_rows} ICB rows")
    return rates.national


def per_year(extract: Path) -> dict[str, int]:
    """Rows counted per financial year, and the cube of the latest as plain-string Arrow."""
    years: YearCubes = didcore.aggregate(extract, by_year=True, progress=False)
    latest: Cube = years[years.latest]
    long: pa.Table = latest.to_arrow(dictionary=False)
    stacked: pa.Table = years.to_arrow()
    print(f"{long.num_rows} cells in {years.latest}; {stacked.num_rows} over every year")
    return {label: cube.exclusions["included"] for label, cube in years.items()}


def partial_cubes(extracts: list[Path], folder: Path) -> Cube:
    """Cubes counted apart, written as cube files, read back and added: the whole's cube."""
    paths: list[Path] = []
    for i, extract in enumerate(extracts):
        cube: Cube = didcore.aggregate(extract, progress=False)
        path = folder / f"part-{i}.cube.arrow"
        cube.write(path)
        paths.append(path)
    total: Cube = Cube.read(paths[0])
    for path in paths[1:]:
        total = total + Cube.read(path)
    years: YearCubes = didcore.aggregate(extracts[0], by_year=True, progress=False)
    again: YearCubes = YearCubes.read(years.to_bytes()) + years
    print(f"{len(again)} years; {total.exclusions['rows_read']} rows")
    return total


def main(argv: list[str]) -> int:
    """``user_script.py EXTRACT POPULATION_CSV [LOOKUPS]``."""
    extract, population = Path(argv[0]), Path(argv[1])
    lookups = Path(argv[2]) if len(argv) > 2 else None
    try:
        print(national_rates(extract, population, lookups))
        print(per_year(extract))
    except didcore.InputError as exc:
        print(f"cannot use the input: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
