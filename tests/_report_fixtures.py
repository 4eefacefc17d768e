"""Hand-built stand-ins for the cube and the statistics tables, for the report and quality tests.

The objects carry exactly the attributes and Arrow columns that ``docs/architecture.md`` fixes, so
the report code can be exercised without the Rust core or the statistics modules. The numbers are
made with a small numpy model (Poisson counts around age/sex/deprivation rates), and the
statistics are computed from them with the textbook formulas, so the tables are internally
consistent (sum of expected equals sum of observed, SR = O/E x N, ...).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats

from didcore.cube import QUALITY_COUNTERS as QUALITY_COUNTERS
from didcore.ratios import RATIO_COLUMNS

DATA = Path(__file__).resolve().parents[1] / "python" / "didcore" / "data"

AGE_BANDS = tuple([f"{a}-{a + 4}" for a in range(0, 90, 5)] + ["90+"])
MEASURES = (
    ("X-ray", "modality", 3500.0),
    ("Ultrasound", "modality", 1700.0),
    ("CT Scan", "modality", 1200.0),
    ("MRI", "modality", 700.0),
    ("Fluoroscopy", "modality", 140.0),
    ("Nuclear Medicine", "modality", 50.0),
    ("PET Scan", "modality", 43.0),
    ("SPECT Scan", "modality", 8.0),
    ("Medical Photography", "modality", 11.0),
    ("Brain MRI", "edoc", 150.0),
    ("Chest X-ray", "edoc", 1290.0),
    ("Chest CT", "edoc", 127.0),
    ("Kidney or Bladder Ultrasound", "edoc", 34.0),
    ("Abdomen or Pelvis Ultrasound", "edoc", 199.0),
)


def icb_reference() -> list[dict[str, str]]:
    """The 42 ICBs (code, name, region) from the boundaries shipped with didcore."""
    doc = json.loads((DATA / "icb_boundaries_jul2022_buc.geojson").read_text(encoding="utf-8"))
    rows = [
        {
            "icb_code": f["properties"]["icb_code"],
            "icb_name": f["properties"]["icb_name"],
            "region": f["properties"]["region_name"],
        }
        for f in doc["features"]
    ]
    return sorted(rows, key=lambda r: r["icb_code"])


@dataclass
class FakeCube:
    """The attributes of ``didcore.Cube`` that the report reads."""

    counts: np.ndarray
    icb_codes: tuple[str, ...]
    measures: tuple[str, ...]
    measure_kinds: tuple[str, ...]
    exclusions: dict[str, int]
    icb_source: dict[str, int]
    provider_quality: pa.Table
    icb_quality: pa.Table
    provider_icb: pa.Table
    sexes: tuple[str, ...] = ("male", "female")
    age_bands: tuple[str, ...] = AGE_BANDS
    imd_quintiles: tuple[int, ...] = (1, 2, 3, 4, 5)

    def to_arrow(self) -> pa.Table:
        """The long table of non-zero cells, in axis order."""
        idx = np.nonzero(self.counts)
        return pa.table(
            {
                "icb_code": [self.icb_codes[i] for i in idx[0]],
                "sex": [self.sexes[i] for i in idx[1]],
                "age_band": [self.age_bands[i] for i in idx[2]],
                "imd_quintile": pa.array([self.imd_quintiles[i] for i in idx[3]], pa.int64()),
                "measure": [self.measures[i] for i in idx[4]],
                "count": pa.array(self.counts[idx], pa.int64()),
            }
        )


@dataclass
class FakePopulation:
    """The attributes of ``didcore.Population`` that the report reads."""

    values: np.ndarray
    icb_codes: tuple[str, ...]


@dataclass
class FakeRates:
    """The tables of ``didcore.StandardisedRates``."""

    national: pa.Table
    icb: pa.Table
    summary: pa.Table
    funnel: pa.Table


@dataclass
class Fixture:
    """Everything a report needs, consistent with itself."""

    cube: FakeCube
    population: FakePopulation
    rates: FakeRates
    ratios: pa.Table
    icbs: list[dict[str, str]]
    extra: dict[str, Any] = field(default_factory=dict)


def _quality_table(key: str, codes: list[Any], rng: np.random.Generator, scale: int) -> pa.Table:
    """A quality-counter table whose counters obey the documented relations."""
    n = len(codes)
    rows = rng.integers(scale // 2, scale * 2, n)
    no_practice = (rows * rng.uniform(0, 0.2, n)).astype(np.int64)
    no_lsoa = (rows * rng.uniform(0, 0.03, n)).astype(np.int64)
    no_pl = np.minimum(no_practice, no_lsoa) // 3
    src_unknown = no_pl + rows // 400
    src_other = rows // 300
    src_lsoa = no_practice - no_pl
    src_gp = rows - src_unknown - src_other - src_lsoa
    missing_imd = (rows * rng.uniform(0, 0.02, n)).astype(np.int64)
    missing_sex = (rows * rng.uniform(0, 0.02, n)).astype(np.int64)
    missing_age = (rows * rng.uniform(0, 0.002, n)).astype(np.int64)
    missing_any = missing_imd + missing_sex + missing_age
    excl_no_icb = src_unknown + src_other
    excl_no_imd = missing_imd
    excl_no_sex = missing_sex
    excl_no_age = missing_age
    no_measure = np.zeros(n, np.int64)
    included = rows - excl_no_icb - excl_no_imd - excl_no_sex - excl_no_age
    cols = {
        "rows": rows,
        "no_practice": no_practice,
        "no_lsoa": no_lsoa,
        "no_practice_no_lsoa": no_pl,
        "src_gp_practice": src_gp,
        "src_other_valid_practice": src_other,
        "src_lsoa": src_lsoa,
        "src_unknown": src_unknown,
        "excl_no_icb": excl_no_icb,
        "excl_no_imd": excl_no_imd,
        "excl_no_sex": excl_no_sex,
        "excl_no_age": excl_no_age,
        "included": included,
        "no_measure": no_measure,
        "missing_imd": missing_imd,
        "missing_sex": missing_sex,
        "missing_age": missing_age,
        "missing_any": missing_any,
    }
    data: dict[str, Any] = {key: pa.array(codes, pa.string())}
    data.update({k: pa.array(v.astype(np.int64), pa.int64()) for k, v in cols.items()})
    return pa.table(data)


def _byar(o: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Byar's approximate Poisson limits for counts ``o`` (exact via chi-square when small)."""
    o = o.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = o * (1 - 1 / (9 * o) - z / (3 * np.sqrt(o))) ** 3
        hi = (o + 1) * (1 - 1 / (9 * (o + 1)) + z / (3 * np.sqrt(o + 1))) ** 3
    alpha = 2 * (1 - stats.norm.cdf(z))
    small = o < 10
    lo[small] = stats.chi2.ppf(alpha / 2, 2 * o[small]) / 2
    lo[o == 0] = 0.0
    hi[small] = stats.chi2.ppf(1 - alpha / 2, 2 * o[small] + 2) / 2
    return lo, hi


def _ratios(counts: np.ndarray, pop: np.ndarray, measures: tuple, kinds: tuple) -> pa.Table:
    """Rates ratios by sex, IMD quintile and broad age band, as ``rates_ratios`` documents."""
    o_all = counts.sum(0)  # (2, 19, 5, m)
    p_all = pop.sum(0)  # (2, 19, 5)
    national = o_all.sum((0, 1, 2)) / p_all.sum()
    broad = np.array([0] * 9 + [1, 1, 2, 2, 3, 3, 4, 4, 4, 4])
    specs = {
        "sex": (0, ["male", "female"], np.array([0, 1])),
        "imd_quintile": (2, ["1", "2", "3", "4", "5"], np.arange(5)),
        "age": (1, ["0-<45", "45-<55", "55-<65", "65-<75", "75+"], broad),
    }
    bases = {"sex": "female", "imd_quintile": "1", "age": "0-<45"}
    rows: dict[str, list[Any]] = {k: [] for k in RATIO_COLUMNS}
    for factor, (axis, levels, mapping) in specs.items():
        o_f = np.moveaxis(o_all, axis, 0)
        p_f = np.moveaxis(p_all, axis, 0)
        r_g = o_f.sum(0) / np.where(p_f.sum(0) > 0, p_f.sum(0), 1)[..., None]
        exp_unit = (r_g[None] * p_f[..., None]).reshape(o_f.shape[0], -1, o_f.shape[-1]).sum(1)
        obs_unit = o_f.reshape(o_f.shape[0], -1, o_f.shape[-1]).sum(1)
        n_lvl = len(levels)
        obs_lvl = np.zeros((n_lvl, len(measures)))
        exp_lvl = np.zeros((n_lvl, len(measures)))
        for u in range(o_f.shape[0]):
            obs_lvl[mapping[u]] += obs_unit[u]
            exp_lvl[mapping[u]] += exp_unit[u]
        sr = obs_lvl / exp_lvl * national * 1e4
        base = levels.index(bases[factor])
        for li, level in enumerate(levels):
            for mi, m in enumerate(measures):
                r1, r2 = sr[base, mi], sr[li, mi]
                chi2 = (r2 - r1) ** 2 / (r1 + r2) if li != base else 0.0
                p = float(stats.chi2.sf(chi2, 1)) if li != base else 1.0
                stars = "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""
                o1, o2 = obs_lvl[base, mi], obs_lvl[li, mi]
                chi2c = (o2 - o1) ** 2 / (o1 + o2) if li != base and o1 + o2 > 0 else 0.0
                se = math.sqrt(1 / max(o1, 1) + 1 / max(o2, 1)) if li != base else 0.0
                ratio = r2 / r1
                rows["factor"].append(factor)
                rows["level"].append(level)
                rows["measure"].append(m)
                rows["kind"].append(kinds[mi])
                rows["observed"].append(int(obs_lvl[li, mi]))
                rows["expected"].append(float(exp_lvl[li, mi]))
                rows["standardised_rate"].append(float(r2))
                rows["ratio"].append(float(ratio))
                rows["chi2"].append(float(chi2))
                rows["p_value"].append(p)
                rows["stars"].append(stars)
                rows["chi2_counts"].append(float(chi2c))
                rows["p_value_counts"].append(float(stats.chi2.sf(chi2c, 1)) if li != base else 1.0)
                rows["ratio_lower_95"].append(float(ratio * math.exp(-1.96 * se)))
                rows["ratio_upper_95"].append(float(ratio * math.exp(1.96 * se)))
    return pa.table({k: v for k, v in rows.items()}).cast(
        pa.schema(
            [
                ("factor", pa.string()),
                ("level", pa.string()),
                ("measure", pa.string()),
                ("kind", pa.string()),
                ("observed", pa.int64()),
                ("expected", pa.float64()),
                ("standardised_rate", pa.float64()),
                ("ratio", pa.float64()),
                ("chi2", pa.float64()),
                ("p_value", pa.float64()),
                ("stars", pa.string()),
                ("chi2_counts", pa.float64()),
                ("p_value_counts", pa.float64()),
                ("ratio_lower_95", pa.float64()),
                ("ratio_upper_95", pa.float64()),
            ]
        )
    )


def make_fixture(
    *, seed: int = 0, scale: float = 1.0, n_measures: int = 14, n_icbs: int = 42
) -> Fixture:
    """Build a consistent cube, population, statistics and quality counters.

    ``scale`` multiplies the population (0.001 gives small counts, for disclosure-control tests).
    """
    rng = np.random.default_rng(seed)
    icbs = icb_reference()[:n_icbs]
    codes = tuple(r["icb_code"] for r in icbs)
    measures = MEASURES[:n_measures]
    names = tuple(m[0] for m in measures)
    kinds = tuple(m[1] for m in measures)
    base = np.array([m[2] for m in measures])
    n = len(codes)
    # Population: ~1.3 million per ICB, older in the shires, poorer in the cities.
    age_shape = np.concatenate([np.full(13, 1.0), np.linspace(0.9, 0.15, 6)])
    pop = np.zeros((n, 2, 19, 5))
    for i in range(n):
        imd = rng.dirichlet(np.full(5, 2.0))
        old = rng.uniform(0.8, 1.25)
        ages = age_shape * np.where(np.arange(19) >= 13, old, 1.0)
        ages /= ages.sum()
        total = rng.uniform(0.5e6, 2.5e6) * scale
        for s in range(2):
            pop[i, s] = np.outer(ages, imd) * total / 2
    pop = np.round(pop)
    age_rr = np.exp(np.linspace(0, 1.7, 19))
    imd_rr = np.array([1.0, 0.9, 0.84, 0.8, 0.75])
    sex_rr = np.array([0.8, 1.0])
    stratum = (
        sex_rr[:, None, None, None] * age_rr[None, :, None, None] * imd_rr[None, None, :, None]
    )
    stratum = stratum / stratum.mean() * base[None, None, None, :] / 1e4 / 0.8
    icb_effect = rng.lognormal(0, 0.12, (n, 1, 1, 1, len(measures)))
    lam = pop[..., None] * stratum[None] * icb_effect
    counts = rng.poisson(lam).astype(np.int64)
    # A patchy measure: medical photography recorded by few ICBs only.
    if "Medical Photography" in names:
        mp = names.index("Medical Photography")
        keep = rng.uniform(size=n) < 0.3
        counts[~keep, ..., mp] = rng.poisson(0.02, counts[~keep, ..., mp].shape)

    modality = [k == "modality" for k in kinds]
    included = int(counts[..., modality].sum())
    pq = _quality_table(
        "provider_code",
        [f"R{c}{d}" for c in "ABCDEFGH" for d in "1234"] + ["(missing)"],
        rng,
        max(included // 33, 10),
    )
    iq = _quality_table("icb_code", [*codes, None], rng, max(included // 42, 10))
    exclusions = {
        "no_icb": int(pc.sum(pq["excl_no_icb"]).as_py()),
        "no_imd": int(pc.sum(pq["excl_no_imd"]).as_py()),
        "no_sex": int(pc.sum(pq["excl_no_sex"]).as_py()),
        "no_age": int(pc.sum(pq["excl_no_age"]).as_py()),
        "included": included,
    }
    exclusions["rows_read"] = sum(exclusions.values())
    exclusions["no_measure"] = 0
    icb_source = {
        "gp_practice": int(pc.sum(pq["src_gp_practice"]).as_py()),
        "other_valid_practice": int(pc.sum(pq["src_other_valid_practice"]).as_py()),
        "lsoa": int(pc.sum(pq["src_lsoa"]).as_py()),
        "unknown": int(pc.sum(pq["src_unknown"]).as_py()),
    }
    providers = pq["provider_code"].to_pylist()[:-1]
    pi_rows: dict[str, list[Any]] = {"provider_code": [], "icb_code": [], "rows": []}
    for k, p in enumerate(providers):
        home = k % n
        for j in (home, (home + 1) % n, (home + 7) % n):
            pi_rows["provider_code"].append(p)
            pi_rows["icb_code"].append(codes[j])
            pi_rows["rows"].append(int(rng.integers(1_000, 100_000)) * (5 if j == home else 1))
    provider_icb = pa.table(
        {
            "provider_code": pa.array(pi_rows["provider_code"], pa.string()),
            "icb_code": pa.array(pi_rows["icb_code"], pa.string()),
            "rows": pa.array(pi_rows["rows"], pa.int64()),
        }
    )
    cube = FakeCube(
        counts=counts,
        icb_codes=codes,
        measures=names,
        measure_kinds=kinds,
        exclusions=exclusions,
        icb_source=icb_source,
        provider_quality=pq,
        icb_quality=iq,
        provider_icb=provider_icb,
    )
    population = FakePopulation(values=pop, icb_codes=codes)
    rates = standardise_fixture(cube, population)
    ratios = _ratios(counts, pop, names, kinds)
    return Fixture(cube=cube, population=population, rates=rates, ratios=ratios, icbs=icbs)


def standardise_fixture(cube: FakeCube, population: FakePopulation) -> FakeRates:
    """Indirect standardisation of a fixture cube, with the documented output columns."""
    counts = cube.counts.astype(float)
    pop = population.values
    n, m = counts.shape[0], counts.shape[-1]
    o_s = counts.reshape(n, -1, m)
    p_s = pop.reshape(n, -1)
    tot_p = p_s.sum(0)
    r_s = o_s.sum(0) / np.where(tot_p > 0, tot_p, 1)[:, None]
    expected = p_s @ r_s  # (n, m)
    observed = o_s.sum(1)
    p_i = p_s.sum(1)
    nat_o = observed.sum(0)
    nat_p = p_i.sum()
    nat_rate = nat_o / nat_p * 1e4
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = observed / expected
        sr = ratio * nat_rate
        crude = observed / p_i[:, None] * 1e4
    icb_cols: dict[str, list[Any]] = {}
    recs = []
    z95, z998 = stats.norm.ppf(0.975), stats.norm.ppf(0.999)
    for j in range(m):
        lo95, hi95 = _byar(observed[:, j], z95)
        lo998, hi998 = _byar(observed[:, j], z998)
        e = expected[:, j]
        f95lo = stats.chi2.ppf(0.025, 2 * e) / (2 * e)
        f95hi = stats.chi2.ppf(0.975, 2 * e + 2) / (2 * e)
        f998lo = stats.chi2.ppf(0.001, 2 * e) / (2 * e)
        f998hi = stats.chi2.ppf(0.999, 2 * e + 2) / (2 * e)
        for i in range(n):
            y = ratio[i, j]

            def flag(lo: float, hi: float, y: float = y) -> str:
                return "high" if y > hi else "low" if y < lo else "within"

            recs.append(
                {
                    "icb_code": cube.icb_codes[i],
                    "measure": cube.measures[j],
                    "kind": cube.measure_kinds[j],
                    "observed": int(observed[i, j]),
                    "population": float(p_i[i]),
                    "crude_rate": float(crude[i, j]),
                    "expected": float(e[i]),
                    "ratio": float(y),
                    "standardised_rate": float(sr[i, j]),
                    "sr_lower_95": float(lo95[i] / e[i] * nat_rate[j]),
                    "sr_upper_95": float(hi95[i] / e[i] * nat_rate[j]),
                    "sr_lower_998": float(lo998[i] / e[i] * nat_rate[j]),
                    "sr_upper_998": float(hi998[i] / e[i] * nat_rate[j]),
                    "within_10pct_of_crude": bool(abs(sr[i, j] - crude[i, j]) <= 0.1 * crude[i, j]),
                    "funnel_95": flag(f95lo[i], f95hi[i]),
                    "funnel_998": flag(f998lo[i], f998hi[i]),
                    "dsr": float(crude[i, j]),
                    "dsr_lower_95": float(lo95[i] / p_i[i] * 1e4),
                    "dsr_upper_95": float(hi95[i] / p_i[i] * 1e4),
                }
            )
    for k in recs[0]:
        icb_cols[k] = [r[k] for r in recs]
    icb = pa.table(icb_cols)
    national = pa.table(
        {
            "measure": list(cube.measures),
            "kind": list(cube.measure_kinds),
            "observed": pa.array(nat_o.astype(np.int64), pa.int64()),
            "population": pa.array(np.full(m, nat_p), pa.float64()),
            "rate_per_10000": pa.array(nat_rate, pa.float64()),
        }
    )
    summ: dict[str, list[Any]] = {
        k: []
        for k in (
            "measure",
            "national_rate",
            "mean_sr",
            "sd_sr",
            "lower_1sd",
            "upper_1sd",
            "share_within_1sd",
            "share_within_10pct_of_crude",
            "n_icbs",
        )
    }
    for j in range(m):
        v = sr[:, j]
        mean, sd = float(v.mean()), float(v.std(ddof=1))
        summ["measure"].append(cube.measures[j])
        summ["national_rate"].append(float(nat_rate[j]))
        summ["mean_sr"].append(mean)
        summ["sd_sr"].append(sd)
        summ["lower_1sd"].append(mean - sd)
        summ["upper_1sd"].append(mean + sd)
        summ["share_within_1sd"].append(float(np.mean(np.abs(v - mean) <= sd)))
        w = np.abs(sr[:, j] - crude[:, j]) <= 0.1 * crude[:, j]
        summ["share_within_10pct_of_crude"].append(float(np.mean(w)))
        summ["n_icbs"].append(n)
    funnel = pa.table(
        {
            "measure": list(cube.measures),
            "method": ["poisson"] * m,
            "phi": [1.0] * m,
            "tau2": [0.0] * m,
        }
    )
    return FakeRates(national=national, icb=icb, summary=pa.table(summ), funnel=funnel)


def provider_missing_table() -> pa.Table:
    """Estimated missing records for three fixture providers and one unknown to the cube."""
    return pa.table(
        {
            "provider_code": ["RA1", "RB2", "RC3", "ZZZ"],
            "missing_records": pa.array([400_000, 150_000, 2_000, 9_000], pa.int64()),
        }
    )


SMALL_ICBS = (
    ("QOQ", "NHS Humber and North Yorkshire Integrated Care Board", "North East and Yorkshire"),
    ("QKK", "NHS South East London Integrated Care Board", "London"),
    ("QHL", "NHS Birmingham and Solihull Integrated Care Board", "Midlands"),
    ("QT6", "NHS Cornwall and the Isles of Scilly Integrated Care Board", "South West"),
    ("QMM", "NHS Norfolk and Waveney Integrated Care Board", "East of England"),
    ("QOP", "NHS Greater Manchester Integrated Care Board", "North West"),
)
_MODALITIES = (
    ("Plain Radiography", 0.48, ("XCHES", "XKNEE", "XCHEP", "XHAND")),
    ("Diagnostic Ultrasonography", 0.23, ("UABPE", "UKIDB", "UOBST", "UPELV")),
    ("Computerized Axial Tomography", 0.16, ("CCHES", "CHEAD", "CABDO")),
    ("Magnetic Resonance Imaging", 0.09, ("MBRAI", "MKNEE", "MSPIN")),
    ("Fluoroscopy", 0.02, ("FBARI",)),
    ("Nuclear Medicine Procedure", 0.008, ("NBONE",)),
    ("Positron Emission Tomography", 0.006, ("PWBOF",)),
    ("Single Photon Emission Computerized Tomography", 0.003, ("YMYOP",)),
    ("Medical Photography", 0.003, ("ZDERM",)),
)


def write_small_inputs(root: Path, *, rows: int = 20_000, seed: int = 0) -> dict[str, Path]:
    """A small but complete set of real inputs: extract (Parquet), lookups folder, population.

    Six real ICBs, 60 practices and 60 LSOAs, five providers, and every kind of defect the
    exclusions and Annex A count (no practice, Welsh practice, unknown practice, no LSOA,
    unknown sex, missing age).
    """
    import datetime as dt

    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    lk = root / "lookups"
    lk.mkdir(parents=True, exist_ok=True)
    codes = [c for c, _, _ in SMALL_ICBS]
    pcsv.write_csv(
        pa.table(
            {
                "icb_code": codes,
                "icb_name": [n for _, n, _ in SMALL_ICBS],
                "region": [r for _, _, r in SMALL_ICBS],
            }
        ),
        lk / "icb.csv",
    )
    practices = [f"P{i:05d}" for i in range(60)]
    lsoas = [f"E01{i:06d}" for i in range(60)]
    pcsv.write_csv(
        pa.table({"gp_practice_code": practices, "icb_code": [codes[i % 6] for i in range(60)]}),
        lk / "practice_icb.csv",
    )
    pcsv.write_csv(pa.table({"gp_practice_code": ["W00001", "W00002"]}), lk / "other_practices.csv")
    pcsv.write_csv(
        pa.table({"lsoa11": lsoas, "icb_code": [codes[i % 6] for i in range(60)]}),
        lk / "lsoa_icb.csv",
    )
    pcsv.write_csv(
        pa.table({"lsoa11": lsoas, "imd_decile": pa.array([1 + i % 10 for i in range(60)])}),
        lk / "lsoa_imd.csv",
    )

    n = rows
    providers = np.array(["RA1", "RB2", "RC3", "NT9", "RXQ"])
    prov = rng.choice(len(providers), n, p=[0.35, 0.25, 0.2, 0.1, 0.1])
    home = rng.integers(0, 60, n)
    practice = np.array(practices, dtype=object)[home]
    lsoa = np.array(lsoas, dtype=object)[(home + 6 * rng.integers(0, 10, n)) % 60]
    r = rng.uniform(size=n)
    practice[r < 0.06] = None  # no practice: ICB from LSOA
    practice[(r >= 0.06) & (r < 0.065)] = "W00001"
    practice[(r >= 0.065) & (r < 0.07)] = "Z99999"  # unrecognised
    practice[(prov == 3) & (rng.uniform(size=n) < 0.6)] = None  # NT9 rarely records practice
    lsoa[rng.uniform(size=n) < 0.02] = None
    lsoa[(prov == 4) & (rng.uniform(size=n) < 0.3)] = None  # RXQ: missing LSOA
    sex = rng.choice(np.array(["1", "2", "0", None], dtype=object), n, p=[0.45, 0.53, 0.01, 0.01])
    sex[(prov == 2) & (rng.uniform(size=n) < 0.2)] = "9"  # RC3: sex not specified
    age = np.minimum(rng.gamma(2.2, 22.0, n).astype(np.int64), 104)
    age_mask = rng.uniform(size=n) < 0.003
    weights = np.array([m[1] for m in _MODALITIES])
    mod_idx = rng.choice(len(_MODALITIES), n, p=weights / weights.sum())
    modality = np.array([_MODALITIES[i][0] for i in mod_idx], dtype=object)
    exam = np.array(
        [_MODALITIES[i][2][rng.integers(0, len(_MODALITIES[i][2]))] for i in mod_idx],
        dtype=object,
    )
    start = dt.date(2023, 4, 1)
    days = rng.integers(0, 366, n)
    test_date = pa.array([start + dt.timedelta(days=int(d)) for d in days], pa.date32())
    extract = pa.table(
        {
            "provider_code": pa.array(providers[prov].tolist(), pa.string()),
            "gp_practice_code": pa.array(practice.tolist(), pa.string()),
            "lsoa11": pa.array(lsoa.tolist(), pa.string()),
            "sex": pa.array(sex.tolist(), pa.string()),
            "age": pa.array(age, pa.int64(), mask=age_mask),
            "test_date": test_date,
            "modality": pa.array(modality.tolist(), pa.string()),
            "exam_code": pa.array(exam.tolist(), pa.string()),
        }
    )
    ext = root / "extract.parquet"
    pq.write_table(extract, ext, row_group_size=8_000)

    pop_rows: dict[str, list[Any]] = {
        "icb_code": [],
        "sex": [],
        "age_band": [],
        "imd_quintile": [],
        "population": [],
    }
    for c in codes:
        for s in (1, 2):
            for a in AGE_BANDS:
                for q in range(1, 6):
                    pop_rows["icb_code"].append(c)
                    pop_rows["sex"].append(s)
                    pop_rows["age_band"].append(a)
                    pop_rows["imd_quintile"].append(q)
                    pop_rows["population"].append(int(rng.integers(400, 3000)))
    pop = root / "population.csv"
    # the year the extract's test dates fall in (the population-year guard checks it)
    table = pa.table(pop_rows).append_column("year", pa.array(["2023/24"] * len(pop_rows["sex"])))
    pcsv.write_csv(table, pop)
    return {"extract": ext, "lookups": lk, "population": pop}


def report_inputs(fx: Any, *, period: str = "2023/24", missing: bool = True) -> Any:
    """The ``ReportInputs`` of a fixture from :func:`make_fixture`: its cube, rates and ratios,
    Annex A (with the provider-missing table unless ``missing`` is false) and the ICBs'
    reference names, for ``period``."""
    from didcore.quality import annex_a
    from didcore.report.reference import icb_info
    from didcore.report.tables import ReportInputs

    info = icb_info(fx.cube.icb_codes)
    annex = annex_a(
        fx.cube,
        provider_missing=provider_missing_table() if missing else None,
        icb_names={c: i.name for c, i in info.items()},
    )
    return ReportInputs(
        cube=fx.cube,
        rates=fx.rates,
        ratios=fx.ratios,
        annex=annex,
        icbs=info,
        period=period,
    )
