"""Guard rails: each ordinary mistake is refused with exit 2 and one line, and with the value
map or the override it is published with the right numbers (the unmodified extract's).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import didcore
from didcore import guards
from didcore.cli import main
from didcore.errors import GuardError, InputError
from didcore.synth import write_synthetic

SHORT = {
    "Plain Radiography": "XR",
    "Diagnostic Ultrasonography": "US",
    "Computerized Axial Tomography": "CT",
    "Magnetic Resonance Imaging": "MR",
    "Fluoroscopy": "RF",
    "Nuclear Medicine Procedure": "NM",
    "Positron Emission Tomography": "PET",
    "Single Photon Emission Computerized Tomography": "SPECT",
    "Medical Photography": "MP",
}
MAP_SHORT = "modality=" + ",".join(f"{v}:{k}" for k, v in SHORT.items())


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return write_synthetic(tmp_path_factory.mktemp("synth"), rows=20_000, seed=5)


@pytest.fixture(scope="module")
def table(synthetic: Any) -> pa.Table:
    return pq.read_table(synthetic.extract)


@pytest.fixture(scope="module")
def baseline(synthetic: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("baseline") / "out"
    assert main(_report(synthetic, synthetic.extract, out)) == 0
    return out


def _report(synthetic: Any, extract: Path, out: Path, *more: str, lookups: Any = None) -> list[str]:
    return [
        "report",
        str(extract),
        "--lookups",
        str(lookups or synthetic.lookups),
        "--population",
        str(synthetic.population),
        "--out",
        str(out),
        "--formats",
        "csv",
        "-q",
        *more,
    ]


def _with(table: pa.Table, name: str, values: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    column = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
    pq.write_table(table.set_column(table.schema.get_field_index(name), name, column), path)
    return path


def _sex_as(table: pa.Table, male: str, female: str) -> pa.Array:
    sex = pc.utf8_trim_whitespace(table["sex"].cast(pa.string()))
    return pc.if_else(
        pc.equal(sex, "1"),
        male,
        pc.if_else(pc.equal(sex, "2"), female, table["sex"].cast(pa.string())),
    )


def _one_error_line(err: str, guard: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"didcore: error: guard {guard}: "), err
    return lines[0]


def _same_rates(a: Path, b: Path) -> None:
    for name in ("national_rates.csv", "icb_rates.csv", "cube.csv", "exclusions.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def _lookups_with_did_names_only(synthetic: Any, folder: Path) -> Path:
    """The synthetic lookups with a measures file spelling modalities the DID way only."""
    shutil.copytree(synthetic.lookups, folder)
    rows = list(csv.reader((folder / "measures.csv").open()))
    with (folder / "measures.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows[:25])  # header, 9 modality rows, 15 EDOC rows
    return folder


# ---------------------------------------------------------------------------- sex coding


def test_sex_coded_m_f_is_refused_in_one_line(synthetic, table, tmp_path, capsys) -> None:
    extract = _with(table, "sex", _sex_as(table, "M", "F"), tmp_path / "mf.parquet")
    assert main(_report(synthetic, extract, tmp_path / "out")) == 2
    line = _one_error_line(capsys.readouterr().err, "sex-coding")
    assert "column 'sex'" in line and "'F'" in line and "'M'" in line
    assert "--map sex=F:2,M:1" in line and "--allow sex-coding" in line
    assert not (tmp_path / "out").exists()
    assert (
        main(
            [
                "cube",
                str(extract),
                "--lookups",
                str(synthetic.lookups),
                "--out",
                str(tmp_path / "c"),
                "-q",
            ]
        )
        == 2
    )
    _one_error_line(capsys.readouterr().err, "sex-coding")


@pytest.mark.parametrize(("male", "female"), [("M", "F"), ("Male", "female"), (" m ", "F")])
def test_sex_map_publishes_the_right_numbers(
    synthetic, table, baseline, tmp_path, male, female
) -> None:
    extract = _with(table, "sex", _sex_as(table, male, female), tmp_path / "mf.parquet")
    argv = _report(synthetic, extract, tmp_path / "out", "--map", f"sex={male}:1,{female}:2")
    assert main(argv) == 0
    _same_rates(baseline, tmp_path / "out")


def test_sex_map_in_the_lookups_folder(synthetic, table, baseline, tmp_path) -> None:
    extract = _with(table, "sex", _sex_as(table, "MALE", "FEMALE"), tmp_path / "mf.parquet")
    lookups = tmp_path / "lookups"
    shutil.copytree(synthetic.lookups, lookups)
    (lookups / "value_maps.csv").write_text("column,from,to\nsex,Male,1\nsex,female,2\n")
    assert main(_report(synthetic, extract, tmp_path / "out", lookups=lookups)) == 0
    _same_rates(baseline, tmp_path / "out")


def test_sex_map_in_the_api(synthetic, table) -> None:
    mf = table.set_column(table.schema.get_field_index("sex"), "sex", _sex_as(table, "M", "F"))
    lookups = didcore.Lookups.read(synthetic.lookups)
    expected = didcore.aggregate(table, lookups, progress=False)
    got = didcore.aggregate(mf, lookups, value_maps={"sex": {"m": "1", "F": "2"}}, progress=False)
    assert got == expected
    assert dict(got.value_profile.top("sex", 2)).keys() <= {"M", "F"}


def test_sex_0_9_and_blank_never_trip(synthetic, table, tmp_path) -> None:
    """8% of rows not known (0), 4% indeterminate (9), 2% blank: ordinary missing values."""
    rng = np.random.default_rng(0)
    sex = np.asarray(table["sex"].cast(pa.string()).to_pylist(), dtype=object)
    u = rng.uniform(size=len(sex))
    sex[u < 0.08] = "0"
    sex[(u >= 0.08) & (u < 0.12)] = "9"
    sex[(u >= 0.12) & (u < 0.14)] = ""
    extract = _with(table, "sex", pa.array(sex.tolist(), pa.string()), tmp_path / "s.parquet")
    out = tmp_path / "out"
    assert (
        main(["cube", str(extract), "--lookups", str(synthetic.lookups), "--out", str(out), "-q"])
        == 0
    )
    ex = {r["reason"]: int(r["count"]) for r in csv.DictReader((out / "exclusions.csv").open())}
    assert ex["no_sex"] > 0.1 * ex["rows_read"]
    # as integers too
    ints = pa.array([int(v) if v else None for v in sex.tolist()], pa.int16())
    extract = _with(table, "sex", ints, tmp_path / "i.parquet")
    assert (
        main(
            [
                "cube",
                str(extract),
                "--lookups",
                str(synthetic.lookups),
                "--out",
                str(tmp_path / "o2"),
                "-q",
            ]
        )
        == 0
    )


def test_a_few_odd_sex_values_pass_and_more_trip(synthetic, table) -> None:
    lookups = didcore.Lookups.read(synthetic.lookups)
    sex = np.asarray(table["sex"].cast(pa.string()).to_pylist(), dtype=object)
    sex[:100] = "U"  # 0.5% of 20,000: under the 1% threshold
    t = table.set_column(table.schema.get_field_index("sex"), "sex", pa.array(sex.tolist()))
    cube = didcore.aggregate(t, lookups, progress=False)
    assert guards.guard_cube(cube, lookups) == []
    sex[:400] = "U"  # 2%
    t = table.set_column(table.schema.get_field_index("sex"), "sex", pa.array(sex.tolist()))
    cube = didcore.aggregate(t, lookups, progress=False)
    with pytest.raises(GuardError) as info:
        guards.guard_cube(cube, lookups)
    assert info.value.guard == "sex-coding" and "'U' 400 (2.0%)" in str(info.value)
    assert "--map sex=U:0" in str(info.value)
    # a higher threshold lets it pass; an override returns the line
    assert (
        guards.guard_cube(cube, lookups, thresholds=guards.GuardThresholds(coding_share=0.05)) == []
    )
    (line,) = guards.guard_cube(cube, lookups, allow={"sex-coding"})
    assert line.startswith("guard sex-coding: ") and line.endswith("(allowed)")


def test_allowed_sex_coding_is_said_in_every_output(synthetic, table, tmp_path, capsys) -> None:
    sex = np.asarray(table["sex"].cast(pa.string()).to_pylist(), dtype=object)
    sex[:400] = "X"  # 2%: trips sex-coding, not the exclusions guard
    extract = _with(table, "sex", pa.array(sex.tolist()), tmp_path / "x.parquet")
    out = tmp_path / "out"
    assert (
        main(_report(synthetic, extract, out, "--allow", "sex-coding", "--formats", "csv,html"))
        == 0
    )
    err = capsys.readouterr().err
    assert err.startswith("didcore: warning: guard sex-coding: ") and err.count("\n") == 1
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["guards"]["allowed"][0].startswith("guard sex-coding")
    assert "Guard overridden (--allow): guard sex-coding" in (out / "report.html").read_text()


def test_early_guard_stops_after_the_first_batch(synthetic, table, tmp_path) -> None:
    extract = tmp_path / "mf.parquet"
    mf = table.set_column(table.schema.get_field_index("sex"), "sex", _sex_as(table, "M", "F"))
    pq.write_table(mf, extract, row_group_size=2_000)
    lookups = didcore.Lookups.read(synthetic.lookups)
    seen: list[int] = []
    check = guards.early_guard(lookups)

    def first(profile: Any) -> None:
        seen.append(profile.rows)
        check(profile)

    with pytest.raises(GuardError, match="sex-coding"):
        didcore.aggregate(extract, lookups, on_first_batch=first, progress=False)
    assert seen == [2_000]


# ---------------------------------------------------------------------------- modality coding


def _short_modalities(table: pa.Table) -> pa.Array:
    return pa.array([SHORT[m] for m in table["modality"].cast(pa.string()).to_pylist()])


def test_short_modality_codes_read_by_the_shipped_measures(
    synthetic, table, baseline, tmp_path
) -> None:
    extract = _with(table, "modality", _short_modalities(table), tmp_path / "xr.parquet")
    assert main(_report(synthetic, extract, tmp_path / "out")) == 0
    _same_rates(baseline, tmp_path / "out")


def test_short_modality_codes_refused_with_other_measures(
    synthetic, table, baseline, tmp_path, capsys
) -> None:
    lookups = _lookups_with_did_names_only(synthetic, tmp_path / "lk")
    extract = _with(table, "modality", _short_modalities(table), tmp_path / "xr.parquet")
    assert main(_report(synthetic, extract, tmp_path / "out", lookups=lookups)) == 2
    line = _one_error_line(capsys.readouterr().err, "modality-coding")
    assert "column 'modality'" in line and "'XR'" in line
    assert "--map 'modality=XR:Plain Radiography," in line and "--allow modality-coding" in line
    # the map it suggests publishes the right numbers
    argv = _report(synthetic, extract, tmp_path / "out", "--map", MAP_SHORT, lookups=lookups)
    assert main(argv) == 0
    _same_rates(baseline, tmp_path / "out")


def test_unknown_modalities_with_no_hint(synthetic, table) -> None:
    lookups = didcore.Lookups.read(synthetic.lookups)
    mod = table["modality"].cast(pa.string()).to_pylist()
    mod[:1_000] = ["Echocardiogram"] * 1_000  # 5%
    t = table.set_column(table.schema.get_field_index("modality"), "modality", pa.array(mod))
    cube = didcore.aggregate(t, lookups, progress=False)
    verdicts = guards.verdicts_by_name(guards.cube_verdicts(cube, lookups))
    assert verdicts["modality-coding"].status == "fail"
    assert "'Echocardiogram' 1,000 (5.0%)" in verdicts["modality-coding"].message
    assert "add them to the measures file" in verdicts["modality-coding"].message


# ---------------------------------------------------------------------------- exclusions


def test_exclusions_above_5_percent_are_refused(synthetic, table, tmp_path, capsys) -> None:
    practice = table["gp_practice_code"].cast(pa.string()).to_pylist()
    lsoa = table["lsoa11"].cast(pa.string()).to_pylist()
    for i in range(0, 2_000):  # 10% of rows: neither code in the lookups
        practice[i] = "ZZ999"
        lsoa[i] = "E09999999"
    t = table.set_column(
        table.schema.get_field_index("gp_practice_code"), "gp_practice_code", pa.array(practice)
    )
    extract = _with(t, "lsoa11", pa.array(lsoa), tmp_path / "e.parquet")
    out = tmp_path / "out"
    assert (
        main(["cube", str(extract), "--lookups", str(synthetic.lookups), "--out", str(out), "-q"])
        == 2
    )
    line = _one_error_line(capsys.readouterr().err, "exclusions")
    assert "no ICB" in line and "didcore check lists" in line and "--allow exclusions" in line
    assert (
        main(
            [
                "cube",
                str(extract),
                "--lookups",
                str(synthetic.lookups),
                "--out",
                str(out),
                "-q",
                "--allow",
                "exclusions",
            ]
        )
        == 0
    )
    assert "guard exclusions" in (out / "guards_allowed.txt").read_text()


def test_no_measure_above_5_percent_is_refused(synthetic, table) -> None:
    lookups = didcore.Lookups.read(synthetic.lookups)
    mod = table["modality"].cast(pa.string()).to_pylist()
    mod[:2_000] = [None] * 2_000  # blank modality: no coding to blame, no measure
    t = table.set_column(
        table.schema.get_field_index("modality"), "modality", pa.array(mod, pa.string())
    )
    cube = didcore.aggregate(t, lookups, progress=False)
    verdicts = guards.verdicts_by_name(guards.cube_verdicts(cube, lookups))
    assert verdicts["modality-coding"].status == "pass"
    assert verdicts["no-measure"].status == "fail"
    assert "blank" in verdicts["no-measure"].message


def test_thresholds_are_settings(synthetic, table) -> None:
    lookups = didcore.Lookups.read(synthetic.lookups)
    cube = didcore.aggregate(table, lookups, progress=False)
    assert all(v.status == "pass" for v in guards.cube_verdicts(cube, lookups))
    tight = guards.GuardThresholds(exclusion_share=0.001)
    verdicts = guards.verdicts_by_name(guards.cube_verdicts(cube, lookups, thresholds=tight))
    assert verdicts["exclusions"].status == "fail"
    assert guards.EXCLUSION_SHARE == guards.GuardThresholds().exclusion_share == 0.05


def test_unknown_allow_and_bad_maps_are_one_line_errors(synthetic, tmp_path, capsys) -> None:
    base = [
        "cube",
        str(synthetic.extract),
        "--lookups",
        str(synthetic.lookups),
        "--out",
        str(tmp_path / "o"),
    ]
    for extra, words in (
        (["--allow", "sex"], "no such guard"),
        (["--map", "age=1:2"], "cannot map column 'age'"),
        (["--map", "sex=M"], "is not FROM:TO"),
        (["--map", "sex"], "COLUMN=FROM:TO"),
    ):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, err
    with pytest.raises(InputError):
        didcore.aggregate(synthetic.extract, synthetic.lookups, value_maps={"provider": {"A": "B"}})


# ---------------------------------------------------------------------------- population


def _population(synthetic: Any, path: Path, edit: Any) -> Path:
    t = pacsv.read_csv(synthetic.population)
    pacsv.write_csv(edit(t), path)
    return path


def test_population_missing_an_icb_is_refused(synthetic, baseline, tmp_path, capsys) -> None:
    first = pacsv.read_csv(synthetic.population)["icb_code"][0].as_py()
    pop = _population(
        synthetic, tmp_path / "p.csv", lambda t: t.filter(pc.not_equal(t["icb_code"], first))
    )
    argv = _report(synthetic, synthetic.extract, tmp_path / "out")
    argv[argv.index("--population") + 1] = str(pop)
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err, "population-icbs")
    assert first in line and "tests" in line and "--allow population-icbs" in line
    assert main([*argv, "--allow", "population-icbs"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("didcore: warning: guard population-icbs") and "Warning" not in err


def test_population_of_another_year_is_refused(synthetic, tmp_path, capsys) -> None:
    pop = _population(
        synthetic,
        tmp_path / "p.csv",
        lambda t: t.set_column(
            t.schema.get_field_index("year"), "year", pa.array(["2022/23"] * t.num_rows)
        ),
    )
    argv = _report(synthetic, synthetic.extract, tmp_path / "out")
    argv[argv.index("--population") + 1] = str(pop)
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err, "population-year")
    assert "2022/23" in line and "2023/24" in line
    out = tmp_path / "out"
    assert main([*argv, "--allow", "population-year", "--formats", "csv,html"]) == 0
    prov = json.loads((out / "provenance.json").read_text())
    assert "2022/23" in prov["guards"]["allowed"][0]
    assert "for 2022/23" in (out / "report.html").read_text()


def test_population_of_unknown_year_is_refused(synthetic, baseline, tmp_path, capsys) -> None:
    pop = _population(synthetic, tmp_path / "p.csv", lambda t: t.drop_columns(["year"]))
    argv = _report(synthetic, synthetic.extract, tmp_path / "out")
    argv[argv.index("--population") + 1] = str(pop)
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err, "population-year")
    assert "--population-year 2023/24" in line
    assert main([*argv, "--population-year", "2023/24"]) == 0
    _same_rates(baseline, tmp_path / "out")


def test_population_strata_with_tests_and_no_people(synthetic, table) -> None:
    lookups = didcore.Lookups.read(synthetic.lookups)
    cube = didcore.aggregate(table, lookups, progress=False)
    pop = didcore.Population.read(synthetic.population, cube.icb_codes)
    guards.check_population_strata(cube, pop)
    values = np.array(pop.values)
    values[:, :, 14, :] = 0  # nobody aged 70-74 anywhere
    hollow = didcore.Population(values, pop.icb_codes)
    with pytest.raises(GuardError) as info:
        guards.check_population_strata(cube, hollow)
    assert info.value.guard == "population-strata" and "age 70-74" in str(info.value)
    verdicts = guards.population_verdicts(
        cube,
        hollow,
        published_year="2023/24",
        population_year="2023/24",
        allow={"population-strata"},
    )
    assert [v.status for v in verdicts] == ["pass", "allowed", "pass"]


# ---------------------------------------------------------------------------- value maps


def test_integer_sex_can_be_mapped(synthetic, table) -> None:
    """An integer sex column coded the other way round, read with a map."""
    lookups = didcore.Lookups.read(synthetic.lookups)
    sex = [
        {"1": 2, "2": 1}.get((v or "").strip(), 0)
        for v in table["sex"].cast(pa.string()).to_pylist()
    ]
    swapped = table.set_column(table.schema.get_field_index("sex"), "sex", pa.array(sex, pa.int8()))
    got = didcore.aggregate(swapped, lookups, value_maps={"sex": {1: 2, 2: 1}}, progress=False)
    plain = didcore.aggregate(swapped, lookups, progress=False)
    assert np.array_equal(got.counts, plain.counts[:, ::-1])


def test_exam_code_map(synthetic, table, baseline, tmp_path) -> None:
    codes = pc.replace_substring(table["exam_code"].cast(pa.string()), "XCHES", "CXR01")
    extract = _with(table, "exam_code", codes, tmp_path / "e.parquet")
    assert main(_report(synthetic, extract, tmp_path / "a")) == 0
    a = (tmp_path / "a" / "national_rates.csv").read_bytes()
    assert a != (baseline / "national_rates.csv").read_bytes()  # fewer chest X-rays
    assert main(_report(synthetic, extract, tmp_path / "b", "--map", "exam_code=cxr01:XCHES")) == 0
    _same_rates(baseline, tmp_path / "b")


def test_value_maps_file_needs_its_columns(synthetic, tmp_path, capsys) -> None:
    lookups = tmp_path / "lookups"
    shutil.copytree(synthetic.lookups, lookups)
    (lookups / "value_maps.csv").write_text("col,from,to\nsex,M,1\n")
    argv = ["cube", str(synthetic.extract), "--lookups", str(lookups), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "value_maps.csv" in err and "column, from, to" in err


# ---------------------------------------------------------------------------- measures


def test_every_spelling_names_one_modality_in_the_shipped_measures() -> None:
    """Each spelling in the shipped measures is listed under the measures of one DID
    modality only, with the same exam codes as the DID name; and no spelling is another
    modality's name.
    """
    from didcore.lookup import DID_MODALITIES, MODALITY_SPELLINGS, Lookups

    lk = Lookups.default()
    did = {m.upper(): m for m in DID_MODALITIES}
    meaning = {**did, **MODALITY_SPELLINGS}
    assert not set(MODALITY_SPELLINGS) & set(did)
    rules: dict[str, set[tuple[str, str | None]]] = {}
    for r in lk.measure_rules:
        rules.setdefault(r.modality, set()).add((r.measure, r.exam_code))
    for spelling, name in meaning.items():
        assert rules[spelling] == rules[name.upper()], spelling
    for modality in DID_MODALITIES:
        assert lk.measures_of(modality, "XCHES") == lk.measures_of(
            next(k for k, v in MODALITY_SPELLINGS.items() if v == modality), "XCHES"
        )


def test_sex_coded_0_1_is_refused(synthetic, table, baseline, tmp_path, capsys) -> None:
    """0 is "not known": as 39% of rows it is not missing data but a 0/1 coding."""
    sex = pc.utf8_trim_whitespace(table["sex"].cast(pa.string()))
    # the extract's own 0s (not known) become 9s, so that 0 means male alone
    sex = pc.if_else(pc.equal(sex, "0"), "9", sex)
    coded = pc.if_else(pc.equal(sex, "1"), "0", pc.if_else(pc.equal(sex, "2"), "1", sex))
    extract = _with(table, "sex", coded, tmp_path / "01.parquet")
    assert main(_report(synthetic, extract, tmp_path / "out")) == 2
    line = _one_error_line(capsys.readouterr().err, "sex-coding")
    assert "'0'" in line and "--map sex=0:1,1:2" in line
    assert main(_report(synthetic, extract, tmp_path / "out", "--map", "sex=0:1,1:2")) == 0
    _same_rates(baseline, tmp_path / "out")


def test_empty_measure_trips_when_a_modality_is_folded_into_another(tmp_path: Path) -> None:
    """SPECT folded into NM (as DICOM codes it) leaves the SPECT measure empty: refused."""
    import didcore
    from didcore.guards import check_empty_measure

    rules = pa.table(
        {
            "measure": ["Nuclear Medicine", "SPECT Scan", "Chest X-ray"],
            "kind": ["modality", "modality", "edoc"],
            "modality": ["NM", "SPECT", "XR"],
            "exam_code": [None, None, "XCHES"],
        }
    )
    lookups = didcore.Lookups.from_tables(
        practice_icb=pa.table({"gp_practice_code": ["A1"], "icb_code": ["QE1"]}),
        lsoa_icb=pa.table({"lsoa11": ["E01"], "icb_code": ["QE1"]}),
        lsoa_imd=pa.table({"lsoa11": ["E01"], "imd_decile": [3]}),
        measures=rules,
    )
    n = 120_000
    extract = pa.table(
        {
            "provider_code": ["R1"] * n,
            "gp_practice_code": ["A1"] * n,
            "lsoa11": ["E01"] * n,
            "sex": ["1", "2"] * (n // 2),
            "age": [40] * n,
            "test_date": pa.array([dt.date(2023, 6, 1)] * n, pa.date32()),
            "modality": ["NM"] * (n - 10) + ["XR"] * 10,
            "exam_code": ["XCHES"] * n,
        }
    )
    result = didcore.aggregate(extract, lookups, by_year=True)
    with pytest.raises(didcore.errors.GuardError, match=r"empty-measure.*SPECT Scan"):
        check_empty_measure(result, lookups)
    check_empty_measure(result, lookups, min_records=n + 1)  # too few records to tell
