"""The synthetic extract generator (didcore.synth) and the shipped reference data."""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import didcore
from _synth_helpers import AGE_BANDS, read_csv, recount
from didcore import refdata, synth
from didcore.errors import InputError

ROWS = 400_000
ROW_GROUP = 150_000
STRING_COLUMNS = ("provider_code", "gp_practice_code", "lsoa11", "sex", "modality", "exam_code")
TOTAL_2023_24 = 47_160_300  # DID tests in 2023/24, the denominator of Annex A's shares


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> synth.SynthPaths:
    return synth.write_synthetic(
        tmp_path_factory.mktemp("synth"), rows=ROWS, seed=7, row_group_size=ROW_GROUP
    )


@pytest.fixture(scope="module")
def truth(synth_dir: synth.SynthPaths) -> dict:
    return json.loads(synth_dir.truth.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def counted(synth_dir: synth.SynthPaths):
    return recount(synth_dir.root)


# ------------------------------------------------------------------------------ layout


def test_paths_and_files(synth_dir: synth.SynthPaths) -> None:
    assert synth_dir.extract == synth_dir.root / "extract"
    assert [p.name for p in synth_dir.extract.iterdir()] == ["part-00000.parquet"]
    assert synth_dir.population.name == "population.csv"
    names = {p.name for p in synth_dir.lookups.iterdir()}
    assert names == {
        "practice_icb.csv",
        "other_practices.csv",
        "lsoa_icb.csv",
        "lsoa_imd.csv",
        "measures.csv",
        "icb.csv",
    }


def test_schema_row_groups_and_encoding(synth_dir: synth.SynthPaths) -> None:
    f = pq.ParquetFile(synth_dir.extract / "part-00000.parquet")
    assert f.metadata.num_rows == ROWS
    sizes = [f.metadata.row_group(i).num_rows for i in range(f.metadata.num_row_groups)]
    assert sizes == [ROW_GROUP, ROW_GROUP, ROWS - 2 * ROW_GROUP]
    schema = f.schema_arrow
    for name in STRING_COLUMNS:
        assert pa.types.is_dictionary(schema.field(name).type), name
        assert schema.field(name).type.value_type == pa.string()
    assert pa.types.is_integer(schema.field("age").type)
    assert schema.field("test_date").type == pa.date32()
    assert schema.field("date_of_birth").type == pa.date32()
    for i in range(f.metadata.num_row_groups):
        rg = f.metadata.row_group(i)
        for j in range(rg.num_columns):
            col = rg.column(j)
            assert col.compression == "ZSTD"
            if col.path_in_schema in STRING_COLUMNS:
                # dictionary-encoded and no fallback to plain data pages
                assert col.has_dictionary_page, col.path_in_schema
                assert "RLE_DICTIONARY" in col.encodings, col.path_in_schema


def test_determinism(tmp_path: Path) -> None:
    kwargs = {"rows": 30_000, "seed": 3, "row_group_size": 12_000}
    a = synth.write_synthetic(tmp_path / "a", **kwargs)
    b = synth.write_synthetic(tmp_path / "b", **kwargs)
    c = synth.write_synthetic(tmp_path / "c", **{**kwargs, "seed": 4})
    part = Path("extract") / "part-00000.parquet"
    for rel in [part, Path("truth.json"), Path("population.csv")]:
        assert filecmp.cmp(a.root / rel, b.root / rel, shallow=False), rel
    cmp = filecmp.dircmp(a.lookups, b.lookups)
    assert not cmp.diff_files and not cmp.left_only and not cmp.right_only
    assert pq.read_table(a.root / part) != pq.read_table(c.root / part)
    # the population and the lookups depend on rows only, not on the seed
    assert filecmp.cmp(a.population, c.population, shallow=False)
    # rewriting into a used folder replaces everything
    again = synth.write_synthetic(tmp_path / "c", **kwargs)
    assert filecmp.cmp(a.root / part, again.root / part, shallow=False)


def test_bad_arguments(tmp_path: Path) -> None:
    for kwargs in ({"rows": 0}, {"rows": -5}, {"rows": True}, {"rows": 2.5}, {"seed": -1}):
        with pytest.raises(InputError):
            synth.write_synthetic(tmp_path, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        synth.write_synthetic(tmp_path, rows=10, row_group_size=0)


@pytest.mark.parametrize("rows", [1, 7, 1000])
def test_tiny_extracts(tmp_path: Path, rows: int) -> None:
    paths = synth.write_synthetic(tmp_path, rows=rows, seed=1, row_group_size=400)
    assert pq.read_metadata(paths.extract / "part-00000.parquet").num_rows == rows
    truth = json.loads(paths.truth.read_text())
    assert truth["counts"]["rows_read"] == rows
    assert sum(truth["planted"]["rows_by_reason"].values()) == rows


# ------------------------------------------------------------------------------ lookups, population


def test_lookups_formats(synth_dir: synth.SynthPaths) -> None:
    lk = synth_dir.lookups
    icbs = read_csv(lk / "icb.csv")
    assert list(icbs[0]) == ["icb_code", "icb_name", "region"]
    codes = [r["icb_code"] for r in icbs]
    assert len(codes) == len(set(codes)) == 42 and codes == sorted(codes)
    assert len({r["region"] for r in icbs}) == 7

    practices = read_csv(lk / "practice_icb.csv")
    assert list(practices[0]) == ["gp_practice_code", "icb_code"]
    assert len(practices) == 6445
    assert {r["icb_code"] for r in practices} == set(codes)
    assert len({r["gp_practice_code"] for r in practices}) == len(practices)
    other = [r["gp_practice_code"] for r in read_csv(lk / "other_practices.csv")]
    assert not set(other) & {r["gp_practice_code"] for r in practices}
    assert sum(c.startswith("W") for c in other) > 400  # Welsh practices (and HMPs in Wales)
    assert any(c.startswith("Y") for c in other)  # English justice estate

    lsoa_icb = read_csv(lk / "lsoa_icb.csv")
    lsoa_imd = read_csv(lk / "lsoa_imd.csv")
    assert list(lsoa_icb[0]) == ["lsoa11", "icb_code"]
    assert list(lsoa_imd[0]) == ["lsoa11", "imd_decile"]
    assert len(lsoa_icb) == len(lsoa_imd) == 32_844
    assert {r["lsoa11"] for r in lsoa_icb} == {r["lsoa11"] for r in lsoa_imd}
    assert Counter(int(r["imd_decile"]) for r in lsoa_imd).keys() == set(range(1, 11))

    shipped = (Path(didcore.__file__).parent / "data" / "measures.csv").read_bytes()
    assert (lk / "measures.csv").read_bytes() == shipped


def test_population_file(synth_dir: synth.SynthPaths, truth: dict) -> None:
    rows = read_csv(synth_dir.population)
    assert list(rows[0]) == ["icb_code", "sex", "age_band", "imd_quintile", "population", "year"]
    assert {r["year"] for r in rows} == {"2023/24"}
    assert len(rows) == 42 * 2 * 19 * 5
    assert {r["sex"] for r in rows} == {"1", "2"}
    assert {r["age_band"] for r in rows} == set(AGE_BANDS)
    assert {r["imd_quintile"] for r in rows} == {"1", "2", "3", "4", "5"}
    values = np.array([float(r["population"]) for r in rows])
    assert (values > 0).all()
    scale = truth["conventions"]["population_scale"]
    assert values.sum() == pytest.approx(truth["counts"]["population_total"], rel=1e-12)
    # splitting by quintile keeps the ONS ICB x sex x age band totals (times the scale)
    ons = refdata.icb_population()
    want = Counter()
    for c, s, a, v in zip(
        *(ons[k].to_pylist() for k in ("icb_code", "sex", "age_band", "population")), strict=True
    ):
        want[(c, str(s), a)] += v
    got = Counter()
    for r, v in zip(rows, values, strict=True):
        got[(r["icb_code"], r["sex"], r["age_band"])] += v / scale
    assert got.keys() == want.keys()
    assert max(abs(got[k] / want[k] - 1) for k in want) < 1e-9
    assert sum(want.values()) == 57_106_398


def test_population_scaled_to_rows(synth_dir: synth.SynthPaths, truth: dict) -> None:
    # expected included tests = population x planted national rates: rows less the exclusions
    pop = truth["counts"]["population_total"]
    modality = list(truth["planted"]["national_rate_per_10000"])[:9]
    expected = sum(truth["planted"]["national_rate_per_10000"][m] for m in modality) * pop / 1e4
    assert expected == pytest.approx(truth["counts"]["exclusions"]["included"], rel=1e-3)


# ------------------------------------------------------------------------------ truth = recount


def test_truth_counts_equal_independent_recount(truth: dict, counted) -> None:
    counts = truth["counts"]
    for key, value in counted.exclusions.items():
        assert counts["exclusions"][key] == value, key
    assert counts["exclusions"]["no_measure"] == 0
    assert counts["icb_source"] == counted.icb_source
    assert counts["observed_by_measure"] == {
        m: int(counted.cube[..., k].sum()) for k, m in enumerate(counted.measures)
    }
    per_icb = counted.cube.sum((1, 2, 3))
    assert counts["observed_by_icb"] == {
        c: {m: int(per_icb[i, k]) for k, m in enumerate(counted.measures)}
        for i, c in enumerate(counted.icb_codes)
    }
    for code, flags in counted.provider.items():
        for key, value in flags.items():
            assert counts["provider_quality"][code][key] == value, (code, key)
    assert set(counts["provider_quality"]) == set(counted.provider)
    for code, flags in counted.icb_missing.items():
        for key, value in flags.items():
            assert counts["icb_quality"][code][key] == value, (code, key)


def test_planted_reasons_are_the_exclusions(truth: dict) -> None:
    planted = truth["planted"]["rows_by_reason"]
    excl = truth["counts"]["exclusions"]
    assert excl["no_icb"] == planted["other_valid_practice"] + planted["unknown"]
    assert truth["counts"]["icb_source"]["other_valid_practice"] == planted["other_valid_practice"]
    assert excl["no_imd"] == planted["no_imd"]
    assert excl["no_sex"] == planted["no_sex"]
    assert excl["no_age"] == planted["no_age"]
    assert excl["included"] == planted["complete"]
    assert excl["rows_read"] == ROWS == sum(planted.values())


# ------------------------------------------------------------------------------ data quality


def test_annex_a_national_shares(truth: dict) -> None:
    t = truth["counts"]
    rows = t["rows_read"]
    share = {k: v / rows for k, v in t["icb_source"].items()}
    assert share["lsoa"] == pytest.approx(0.058, abs=0.004)
    assert share["other_valid_practice"] == pytest.approx(149_000 / TOTAL_2023_24, rel=0.02)
    assert share["unknown"] == pytest.approx(126_000 / TOTAL_2023_24, rel=0.02)
    assert share["gp_practice"] == pytest.approx(0.936, abs=0.005)
    excl = t["exclusions"]
    assert excl["no_imd"] / rows == pytest.approx(208_000 / TOTAL_2023_24, rel=0.02)
    assert excl["no_sex"] / rows == pytest.approx(144_000 / TOTAL_2023_24, rel=0.02)
    assert excl["no_age"] >= 1
    excluded = rows - excl["included"]
    assert excluded / rows == pytest.approx(643_000 / TOTAL_2023_24, rel=0.05)  # "1.3%"
    assert t["totals"]["no_practice"] / rows == pytest.approx(0.06, abs=0.005)


def test_annex_a_providers(truth: dict) -> None:
    pq_ = truth["counts"]["provider_quality"]

    def share(code: str, key: str) -> float:
        return pq_[code][key] / pq_[code]["rows"]

    # Table A.1: no GP practice
    assert share("RM3", "no_practice") == 1.0
    assert share("RWF", "no_practice") == 1.0
    assert share("REM", "no_practice") == pytest.approx(0.61, abs=0.03)
    assert share("NT9", "no_practice") == pytest.approx(0.54, abs=0.04)
    assert share("RVV", "no_practice") == pytest.approx(0.14, abs=0.02)
    # most of them have an LSOA: "No providers had more than 10,000 tests with no practice or
    # LSOA" (scaled to this extract's size)
    limit = 10_000 * ROWS / TOTAL_2023_24
    assert max(v["no_practice_no_lsoa"] for v in pq_.values()) < max(limit, 20)
    listed = {"RM3", "REM", "RWF", "RCX", "NT9", "RVV", "RN5", "RJ1", "NTP", "RGP", "NT4"}
    others = [c for c in pq_ if c not in listed and pq_[c]["rows"] >= 500]
    assert max(share(c, "no_practice") for c in others) < 0.10

    # Table A.2: missing age, sex or LSOA, and which is most common
    def most_common(code: str) -> str:
        v = pq_[code]
        return max(("missing_sex", "missing_imd", "missing_age"), key=lambda k: v[k])

    assert share("RCB", "missing_any") == pytest.approx(0.255, abs=0.03)
    assert most_common("RCB") == "missing_sex"
    assert share("RQ3", "missing_any") == pytest.approx(0.229, abs=0.04)
    assert most_common("RQ3") == "missing_sex"
    for code, want in (("NYR", 0.306), ("RJ2", 0.089), ("NFO", 0.833)):
        assert share(code, "missing_any") == pytest.approx(want, abs=0.05), code
        assert most_common(code) == "missing_imd", code
    big = [
        c for c in pq_ if pq_[c]["rows"] >= 2000 and c not in {"RCB", "RQ3", "NYR", "RJ2", "NFO"}
    ]
    assert max(share(c, "missing_any") for c in big) < 0.05


def test_annex_a_icbs(truth: dict) -> None:
    iq = truth["counts"]["icb_quality"]

    def share(code: str) -> float:
        return iq[code]["missing_any"] / iq[code]["rows"]

    # Table A.3: QOQ (sex, from RCB), QKK (LSOA, from RJ2), QHL (sex, from RQ3) lead; QH8, QMM,
    # QRV and QK1 follow at 1-2% (here with the sampling noise of a small extract)
    top = sorted((c for c in iq if c != "(none)"), key=share, reverse=True)
    assert top[:3] == ["QOQ", "QKK", "QHL"]
    assert share("QOQ") == pytest.approx(0.063, abs=0.01)
    assert iq["QOQ"]["missing_sex"] > iq["QOQ"]["missing_imd"]
    assert iq["QHL"]["missing_sex"] > iq["QHL"]["missing_imd"]
    for code in ("QKK", "QH8", "QMM", "QRV"):
        assert iq[code]["missing_imd"] > iq[code]["missing_sex"], code
        assert share(code) > 0.008, code


def test_messy_codes(counted, truth: dict) -> None:
    t = counted.table
    for name in ("provider_code", "gp_practice_code", "lsoa11"):
        values = t[name].cast(pa.string())
        lower = pc.sum(pc.cast(pc.utf8_is_lower(values), pa.int64())).as_py()
        spaced = pc.sum(
            pc.cast(pc.not_equal(pc.utf8_trim_whitespace(values), values), pa.int64())
        ).as_py()
        assert lower > 0 and spaced > 0, name
    sex = Counter(t["sex"].cast(pa.string()).to_pylist())
    assert sex["1"] > 0 and sex["2"] > 0 and sex[None] > 0 and sex["0"] > 0 and sex["9"] > 0
    assert sum(v for k, v in sex.items() if k and k != k.strip()) > 0
    practice = Counter(t["gp_practice_code"].cast(pa.string()).to_pylist())
    assert practice[None] > 0 and practice[""] > 0
    dq = truth["planted"]["data_quality"]
    assert dq["lsoa_cross_border"] > 0 and dq["practice_unrecognised"] > 0


# ------------------------------------------------------------------------------ record content


def test_edoc_tests_are_subsets_of_their_modality(counted) -> None:
    rows = read_csv(Path(didcore.__file__).parent / "data" / "measures.csv")
    # each code's first row names its DID modality (later rows: other spellings of it)
    edoc_modality = {r["exam_code"]: r["modality"] for r in rows[::-1] if r["kind"] == "edoc"}
    t = counted.table
    pairs = Counter(
        zip(
            t["exam_code"].cast(pa.string()).to_pylist(),
            t["modality"].cast(pa.string()).to_pylist(),
            strict=True,
        )
    )
    modalities = {r["modality"] for r in rows if r["kind"] == "modality"}
    for (code, modality), n in pairs.items():
        assert modality in modalities
        if code in edoc_modality:
            assert modality == edoc_modality[code], (code, modality, n)
    # every measure is observed; an EDOC never exceeds its modality in any cell
    cube = counted.cube
    assert (cube.sum((0, 1, 2, 3)) > 0).all()
    measures = counted.measures
    for k in range(9, len(measures)):
        mod = next(r["modality"] for r in rows if r["measure"] == measures[k])
        m = next(r["measure"] for r in rows if r["kind"] == "modality" and r["modality"] == mod)
        assert (cube[..., k] <= cube[..., measures.index(m)]).all()


def test_dates_ages_and_sexes(counted) -> None:
    t = counted.table
    test = t["test_date"].to_numpy().astype("datetime64[D]")
    assert test.min() >= np.datetime64("2023-04-01") and test.max() <= np.datetime64("2024-03-31")
    age = t["age"].to_numpy(zero_copy_only=False)
    dob_valid = t["date_of_birth"].is_valid().to_numpy(zero_copy_only=False)
    assert (t["age"].is_valid().to_numpy(zero_copy_only=False) == dob_valid).all()
    dob = t["date_of_birth"].drop_null().to_numpy().astype("datetime64[D]")
    td = test[dob_valid]
    a = age[dob_valid].astype(np.int64)
    ty, by = td.astype("datetime64[Y]").astype(int), dob.astype("datetime64[Y]").astype(int)
    # whole years between birth and test: one less when the test is before the birthday
    tm = td.astype("datetime64[M]").astype(int) % 12
    bm = dob.astype("datetime64[M]").astype(int) % 12
    tdd = (td - td.astype("datetime64[M]")).astype(int)
    bdd = (dob - dob.astype("datetime64[M]")).astype(int)
    before_birthday = (tm < bm) | ((tm == bm) & (tdd < bdd))
    assert (ty - by - before_birthday == a).all()
    assert a.min() == 0 and 90 <= a.max() <= 105
    # weekends are quieter; every month has tests
    weekday = (test.astype(np.int64) + 3) % 7
    per_day = np.bincount(weekday, minlength=7) / np.bincount(
        (np.arange(np.datetime64("2023-04-01"), np.datetime64("2024-04-01")).astype(np.int64) + 3)
        % 7,
        minlength=7,
    )
    assert per_day[5:].max() < 0.7 * per_day[:5].min()
    # no obstetric ultrasound for men, no prostate MRI for women
    sex = pc.utf8_trim_whitespace(t["sex"].cast(pa.string())).to_pylist()
    exam = t["exam_code"].cast(pa.string()).to_pylist()
    pairs = Counter(zip(sex, exam, strict=True))
    assert pairs[("1", "UOBST")] == 0 and pairs[("2", "UOBST")] > 0
    assert pairs[("2", "MPROS")] == 0 and pairs[("1", "MPROS")] > 0


def test_planted_model_matches_publication() -> None:
    model = synth._model()
    pub = refdata.publication()
    for k, name in enumerate(model.measures.names):
        st = synth.spec_statistics(model.rate[k] * model.population, model.population)
        assert float(st["national"]) * 1e4 == pytest.approx(
            pub["national_rate_per_10000"][name], rel=1e-9
        )
        for factor in ("sex", "imd_quintile", "age"):
            ratio = st[factor] / st[factor][0]
            assert ratio == pytest.approx(pub["rates_ratios"][factor]["ratio"][name], rel=1e-9)
    # EDOC tests are a subset of their modality in every cell
    assert (model.kind_rate >= 0).all()


# ------------------------------------------------------------------------------ memory, demo


def _peak_rss_mb(tmp: Path, rows: int) -> float:
    code = (
        "import sys\n"
        "from didcore import synth\n"
        f"synth.write_synthetic(sys.argv[1], rows={rows}, seed=5, row_group_size=200_000)\n"
        # VmHWM: ru_maxrss of a child carries its parent's (pytest's) peak on Linux
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "print(int(hwm.split()[1]) / 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(didcore.__file__).parents[1])},
    )
    return float(out.stdout.strip().splitlines()[-1])


def test_memory_stays_flat(tmp_path: Path) -> None:
    small = _peak_rss_mb(tmp_path / "small", 400_000)
    large = _peak_rss_mb(tmp_path / "large", 3_000_000)
    # 7.5x the rows in row groups of the same size: the peak must not grow with the rows
    assert large < small + 40, (small, large)


def test_demo_inputs_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (synth.DEMO_ROWS, synth.DEMO_SEED) == (1_000_000, 2324)
    monkeypatch.setattr(synth.api, "DEMO_ROWS", 20_000)  # read where demo_inputs lives
    paths = synth.demo_inputs(tmp_path / "demo")
    assert paths.root == tmp_path / "demo"
    truth = json.loads(paths.truth.read_text())
    assert truth["generator"]["rows"] == 20_000 and truth["generator"]["seed"] == synth.DEMO_SEED
    part = paths.extract / "part-00000.parquet"
    stamp = part.stat().st_mtime_ns
    assert synth.demo_inputs(tmp_path / "demo") == paths
    assert part.stat().st_mtime_ns == stamp  # cached, not regenerated
    paths.truth.unlink()  # an interrupted run leaves no truth.json: regenerate
    synth.demo_inputs(tmp_path / "demo")
    assert paths.truth.is_file() and part.stat().st_mtime_ns != stamp
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DIDCORE_CACHE_DIR", str(tmp_path / "x"))
    assert synth._default_cache_dir().parent == tmp_path / "x"
    monkeypatch.delenv("DIDCORE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "y"))
    assert synth._default_cache_dir().parent == tmp_path / "y" / "didcore"


# ------------------------------------------------------------------------------ reference data


def test_refdata_loaders() -> None:
    icbs = refdata.icbs()
    assert icbs.num_rows == 42
    assert {"icb_code", "icb_name", "icb_short_name", "region", "region_code"} <= set(
        icbs.column_names
    )
    assert refdata.lsoas().num_rows == 32_844
    assert refdata.icb_population().num_rows == 1596
    assert sum(refdata.icb_population()["population"].to_pylist()) == 57_106_398
    providers = refdata.providers()
    assert "RM3" in providers["provider_code"].to_pylist()
    vol = refdata.did_volumes()
    england = pc.equal(vol["provider_code"], "ENGLAND")
    modality = pc.and_(england, pc.equal(vol["kind"], "modality"))
    assert pc.sum(vol.filter(modality)["count"]).as_py() == TOTAL_2023_24
    shares = Counter()
    for p, s in zip(
        refdata.catchment()["provider_code"].to_pylist(),
        refdata.catchment()["share"].to_pylist(),
        strict=True,
    ):
        shares[p] += s
    assert all(abs(v - 1) < 1e-3 for v in shares.values())
    kinds = Counter(refdata.gp_practices()["kind"].to_pylist())
    assert kinds["english_gp"] == 6445 and kinds["welsh_gp"] == 403
    pub = refdata.publication()
    assert sum(len(s) - 1 for f in pub["rates_ratios"].values() for s in f["stars"].values()) == 126
    assert "Open Government Licence v3.0" in refdata.attribution()
