"""Writing the output folder's files other than the extract: :class:`SynthPaths`, the lookups,
the population file and truth.json.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from didcore import refdata
from didcore.axes import AGE_BANDS, BROAD_AGE_BANDS
from didcore.synth.model import _measures_file, _Model, spec_statistics
from didcore.synth.params import (
    _N_IMD,
    _N_SEX,
    _NO_IMD_BY_PROVIDER,
    _NO_PRACTICE_BY_PROVIDER,
    _NO_SEX_BY_PROVIDER,
    _PUBLISHED_TOTAL,
    _REASONS,
    _UNKNOWN_BY_PROVIDER,
    SYNTH_VERSION,
)
from didcore.synth.plan import _Plan
from didcore.synth.tally import _Tally


@dataclass(frozen=True)
class SynthPaths:
    """Where :func:`write_synthetic` put its outputs."""

    root: Path
    """The output folder."""
    extract: Path
    """Folder of Parquet file(s) with the record-level extract."""
    lookups: Path
    """Lookups folder (docs/inputs.md)."""
    population: Path
    """Population file (docs/inputs.md)."""
    truth: Path
    """JSON file with what was planted and exact counts of the rows written."""

    @classmethod
    def under(cls, root: str | Path) -> SynthPaths:
        """The paths :func:`write_synthetic` uses under ``root``."""
        root = Path(root)
        return cls(
            root=root,
            extract=root / "extract",
            lookups=root / "lookups",
            population=root / "population.csv",
            truth=root / "truth.json",
        )


# =============================================================================================
# Writing
# =============================================================================================


def _write_csv(path: Path, header: list[str], rows: Iterator[list[Any]] | list[list[Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _write_lookups(model: _Model, folder: Path) -> None:
    """The lookups folder (docs/inputs.md) (deterministic: the same for every seed)."""
    folder.mkdir(parents=True, exist_ok=True)
    english = np.flatnonzero(model.practice_kind == 0)
    order = english[np.argsort(model.practice_codes[english])]
    _write_csv(
        folder / "practice_icb.csv",
        ["gp_practice_code", "icb_code"],
        [[model.practice_codes[j], model.icb_codes[model.practice_icb[j]]] for j in order],
    )
    other = np.flatnonzero((model.practice_kind == 1) | (model.practice_kind == 2))
    _write_csv(
        folder / "other_practices.csv",
        ["gp_practice_code"],
        [[c] for c in sorted(model.practice_codes[other].tolist())],
    )
    n_eng = len(model.lsoa_icb)
    codes = model.lsoa_codes[:n_eng]
    _write_csv(
        folder / "lsoa_icb.csv",
        ["lsoa11", "icb_code"],
        [[c, model.icb_codes[i]] for c, i in zip(codes, model.lsoa_icb, strict=True)],
    )
    _write_csv(
        folder / "lsoa_imd.csv",
        ["lsoa11", "imd_decile"],
        [[c, int(d)] for c, d in zip(codes, model.lsoa_decile, strict=True)],
    )
    (folder / "measures.csv").write_bytes(_measures_file().read_bytes())
    _write_csv(
        folder / "icb.csv",
        ["icb_code", "icb_name", "region"],
        [
            [c, n, r]
            for c, n, r in zip(model.icb_codes, model.icb_names, model.icb_regions, strict=True)
        ],
    )


def _write_population(model: _Model, plan: _Plan, path: Path, years: int = 1) -> None:
    """The population file (docs/inputs.md): persons as shortest round-trip floats, with the
    financial year (2023/24) it is for. An extract spanning ``years`` years has a year's rows
    over this population: the planned population divided by ``years``.
    """
    rows = []
    for i, code in enumerate(model.icb_codes):
        for s in range(_N_SEX):
            for a, band in enumerate(AGE_BANDS):
                for q in range(_N_IMD):
                    people = float(plan.population[i, s, a, q]) / years
                    rows.append([code, s + 1, band, q + 1, repr(people), "2023/24"])
    header = ["icb_code", "sex", "age_band", "imd_quintile", "population", "year"]
    _write_csv(path, header, rows)


def _level_table(values: np.ndarray, levels: tuple[str, ...] | list[str]) -> dict[str, float]:
    return {lvl: float(v) for lvl, v in zip(levels, values, strict=True)}


def _statistics_json(model: _Model, cube: np.ndarray, population: np.ndarray) -> dict[str, Any]:
    """National rates, rates ratios and ICB standardised rates of a cube (per 10,000)."""
    levels = {
        "sex": ("female", "male"),
        "imd_quintile": ("1", "2", "3", "4", "5"),
        "age": BROAD_AGE_BANDS,
    }
    out: dict[str, Any] = {
        "national_rate_per_10000": {},
        "rates_ratios": {f: {} for f in levels},
        "standardised_rate_per_10000": {f: {} for f in levels},
        "icb_standardised_rate_per_10000": {},
        "icb_summary": {},
    }
    for k, name in enumerate(model.measures.names):
        st = spec_statistics(cube[..., k], population)
        out["national_rate_per_10000"][name] = float(st["national"]) * 10_000
        for f, lv in levels.items():
            sr = st[f] * 10_000
            out["standardised_rate_per_10000"][f][name] = _level_table(sr, lv)
            ratio = np.divide(sr, sr[0], out=np.full_like(sr, np.nan), where=sr[0] > 0)
            out["rates_ratios"][f][name] = _level_table(ratio, lv)
        sr = st["icb"] * 10_000
        out["icb_standardised_rate_per_10000"][name] = _level_table(sr, model.icb_codes.tolist())
        mean, sd = float(sr.mean()), float(sr.std(ddof=1))
        out["icb_summary"][name] = {
            "mean_sr": mean,
            "sd_sr": sd,
            "share_within_1sd": float((np.abs(sr - mean) <= sd).mean()),
        }
    return out


def _truth(
    model: _Model,
    plan: _Plan,
    tally: _Tally,
    planted: dict[str, int],
    settings: dict[str, Any],
) -> dict[str, Any]:
    pub = refdata.publication()
    names = model.measures.names
    rr = pub["rates_ratios"]
    counts = tally.counters()
    cube = tally.cube
    observed = cube.sum((0, 1, 2, 3))
    per_icb = cube.sum((1, 2, 3))
    expected_by_reason = {name: int(planted[f"rows_{name}"]) for name in _REASONS}
    p_index = {c: j for j, c in enumerate(model.provider_codes)}
    return {
        "generator": {"module": "didcore.synth", "synth_version": SYNTH_VERSION, **settings},
        "conventions": {
            "rates": "per 10,000 population",
            "population_scale": plan.scale,
            "annex_a_scale": settings["rows"] / _PUBLISHED_TOTAL,
            "annex_a_scale_note": (
                "rows / 47,160,300 (the 2023/24 DID total): multiply Annex A's absolute "
                "thresholds (10,000 and 5,000 tests) by this to list the same providers and ICBs"
            ),
            "population_note": (
                "population.csv = ONS mid-2022 persons split by IMD quintile, times "
                "population_scale, so that the expected number of rows equals rows"
            ),
            "code_normalisation": (
                "codes are compared after trimming whitespace and upper-casing; blank or "
                "whitespace-only codes count as missing; sex is valid when the trimmed value is "
                "'1' or '2'; age is valid when present and not negative"
            ),
            "counts": (
                "'counts' are exact: the derivation rules applied to the written columns with the "
                "written lookups"
            ),
        },
        "planted": {
            "national_rate_per_10000": {m: pub["national_rate_per_10000"][m] for m in names},
            "rates_ratios": {
                f: {m: _level_table(rr[f]["ratio"][m], rr[f]["levels"]) for m in names}
                for f in ("sex", "imd_quintile", "age")
            },
            "stars": {
                f: {m: dict(zip(rr[f]["levels"], rr[f]["stars"][m], strict=True)) for m in names}
                for f in ("sex", "imd_quintile", "age")
            },
            "icb_standardised_rate_per_10000": {
                m: _level_table(
                    model.icb_target[k] * pub["national_rate_per_10000"][m],
                    model.icb_codes.tolist(),
                )
                for k, m in enumerate(names)
            },
            "factors": model.factors,
            "expected_included_by_measure": {
                m: float((model.rate[k] * plan.population).sum()) for k, m in enumerate(names)
            },
            "rows_by_reason": expected_by_reason,
            "data_quality": {k: v for k, v in planted.items() if not k.startswith("rows_")},
            "no_practice_share_by_provider": {
                c: float(model.no_practice_prob[p_index[c]])
                for c in sorted(_NO_PRACTICE_BY_PROVIDER)
                if c in p_index
            },
            "excluded_share_by_provider": {
                reason: {
                    c: float(plan.problem_share[reason][p_index[c]].max())
                    for c in sorted(table)
                    if c in p_index
                }
                for reason, table in (
                    ("unknown", _UNKNOWN_BY_PROVIDER),
                    ("no_imd", _NO_IMD_BY_PROVIDER),
                    ("no_sex", _NO_SEX_BY_PROVIDER),
                )
            },
        },
        "counts": {
            **counts,
            "observed_by_measure": {m: int(observed[k]) for k, m in enumerate(names)},
            "observed_by_icb": {
                c: {m: int(per_icb[i, k]) for k, m in enumerate(names)}
                for i, c in enumerate(model.icb_codes.tolist())
            },
            "population_total": float(plan.population.sum()),
        },
        "realised": _statistics_json(model, cube, plan.population),
    }
