"""The public generator: :func:`write_synthetic` streams the extract and writes the rest of the
folder; :func:`demo_inputs` makes (once, then caches) the embedded demo data set.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from didcore.errors import InputError
from didcore.synth.files import SynthPaths, _truth, _write_lookups, _write_population
from didcore.synth.model import _model
from didcore.synth.params import SYNTH_VERSION
from didcore.synth.plan import _plan
from didcore.synth.records import _SCHEMA, _RowMaker
from didcore.synth.tally import _Tally

#: Size and seed of the embedded demo data set (:func:`demo_inputs`).
DEMO_ROWS = 1_000_000
DEMO_SEED = 2324


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def write_synthetic(
    out_dir: str | Path,
    *,
    rows: int = 1_000_000,
    seed: int = 0,
    row_group_size: int = 1_000_000,
    progress: bool = False,
    years: int = 1,
) -> SynthPaths:
    """Write a synthetic DID extract with its lookups, population and ground truth.

    ``years`` > 1 spreads the rows evenly at random over that many financial years ending
    2023/24 (the same model each year) and writes one year's population (the planned one
    divided by ``years``), so each year's rates are the model's; ``truth.json`` describes all
    the rows over the planned population, i.e. the average year.

    ``rows`` is the exact number of rows of the extract (tests), ``seed`` makes everything
    random reproducible (the same arguments give byte-identical files), ``row_group_size`` is
    the rows per Parquet row group and per generated batch (memory use is proportional to it,
    not to ``rows``), ``progress`` shows a progress bar on stderr.

    The extract is ``out_dir/extract/part-00000.parquet`` (zstd, dictionary-encoded strings).
    ``truth.json`` is written last, so its presence marks a complete folder. Existing files of
    the same names are replaced. Raises :class:`didcore.errors.InputError` for bad arguments.
    """
    rows = _check_int("rows", rows, 1)
    seed = _check_int("seed", seed, 0)
    row_group_size = _check_int("row_group_size", row_group_size, 1)
    years = _check_int("years", years, 1)
    if years > 50:
        raise InputError(f"years={years}: at most 50 financial years are written")
    paths = SynthPaths.under(out_dir)
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.truth.unlink(missing_ok=True)
    model = _model()
    plan = _plan(model, rows, seed)
    _write_lookups(model, paths.lookups)
    _write_population(model, plan, paths.population, years)
    paths.extract.mkdir(exist_ok=True)
    for stale in paths.extract.glob("*.parquet"):
        stale.unlink()

    maker = _RowMaker(model, plan)
    maker.years = years
    tally = _Tally(model)
    planted: dict[str, int] = {}
    remaining = plan.counts.copy()
    split = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    bar = _progress(rows, progress)
    with pq.ParquetWriter(
        paths.extract / "part-00000.parquet",
        _SCHEMA,
        compression="zstd",
        use_dictionary=True,
        # Large enough that no string column falls back from dictionary to plain encoding.
        dictionary_pagesize_limit=64 << 20,
        write_statistics=True,
    ) as writer:
        for index, start in enumerate(range(0, rows, row_group_size)):
            size = min(row_group_size, rows - start)
            if size == int(remaining.sum()):
                take = remaining.copy()
            else:
                take = split.multivariate_hypergeometric(remaining, size, method="marginals")
            remaining -= take
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2, index)))
            category = np.repeat(np.arange(len(take)), take)
            rng.shuffle(category)
            table, counts = maker.make(category, rng)
            writer.write_table(table, row_group_size=size)
            tally.add(table)
            for key, value in counts.items():
                planted[key] = planted.get(key, 0) + value
            bar(size)
    bar(0, done=True)
    # No timings in truth.json: the same arguments must give byte-identical files.
    settings = {"rows": rows, "seed": seed, "row_group_size": row_group_size}
    if years > 1:
        settings["years"] = years
    truth = _truth(model, plan, tally, planted, settings)
    partial = paths.truth.with_suffix(".json.partial")
    partial.write_text(json.dumps(truth, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    partial.replace(paths.truth)
    return paths


def _progress(total: int, enabled: bool) -> Any:
    """A callable ``update(n, done=False)`` showing progress on stderr when ``enabled``."""
    if not enabled:
        return lambda n, done=False: None
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is a dependency, but a plain counter does the job without it
        state = {"n": 0}

        def plain(n: int, done: bool = False) -> None:
            state["n"] += n
            print(
                f"\rsynth: {state['n']:,}/{total:,} rows", end="\n" if done else "", file=sys.stderr
            )

        return plain
    bar = tqdm(total=total, unit="rows", unit_scale=True, desc="synth", file=sys.stderr)

    def update(n: int, done: bool = False) -> None:
        bar.update(n)
        if done:
            bar.close()

    return update


# =============================================================================================
# The embedded demo data set
# =============================================================================================


def _default_cache_dir() -> Path:
    try:
        from importlib.metadata import PackageNotFoundError, version

        package_version = version("didcore")
    except PackageNotFoundError:
        package_version = "dev"
    explicit = os.environ.get("DIDCORE_CACHE_DIR")
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = (
        Path(explicit) if explicit else (Path(xdg) if xdg else Path.home() / ".cache") / "didcore"
    )
    return base / f"demo-{package_version}-synth{SYNTH_VERSION}"


def _is_complete(paths: SynthPaths) -> bool:
    try:
        generator = json.loads(paths.truth.read_text(encoding="utf-8"))["generator"]
    except (OSError, ValueError, KeyError):
        return False
    wanted = {"rows": DEMO_ROWS, "seed": DEMO_SEED, "synth_version": SYNTH_VERSION}
    files_there = [
        paths.extract / "part-00000.parquet",
        paths.population,
        *(
            paths.lookups / f
            for f in ("practice_icb.csv", "lsoa_icb.csv", "lsoa_imd.csv", "measures.csv")
        ),
    ]
    return all(generator.get(k) == v for k, v in wanted.items()) and all(
        f.is_file() for f in files_there
    )


def demo_inputs(cache_dir: str | Path | None = None) -> SynthPaths:
    """The embedded demo data set: 1,000,000 rows, fixed seed, generated once and cached.

    ``cache_dir`` is the folder to hold it (default ``$DIDCORE_CACHE_DIR`` or
    ``~/.cache/didcore`` (``$XDG_CACHE_HOME`` honoured), subfolder
    ``demo-<didcore version>-synth<SYNTH_VERSION>``). A missing or incomplete folder is
    regenerated (a few seconds); concurrent callers each build in a private folder and the first
    to finish wins.
    """
    root = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    paths = SynthPaths.under(root)
    if _is_complete(paths):
        return paths
    root.parent.mkdir(parents=True, exist_ok=True)
    building = root.with_name(f".{root.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    write_synthetic(building, rows=DEMO_ROWS, seed=DEMO_SEED)
    if root.exists() and not _is_complete(paths):
        shutil.rmtree(root)
    try:
        building.rename(root)
    except OSError:
        shutil.rmtree(building, ignore_errors=True)
        if not _is_complete(paths):
            raise
    return paths
