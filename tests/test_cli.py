"""The command line: `didcore cube` files and exit statuses (SPEC section 6)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import didcore
from didcore.cli import main
from test_cube import _big_table

# _big_table is dirty on purpose: about 29% of rows match no ICB, some have no measure, half
# the sex values are 9 or blank; these guards would refuse it
ALLOW_DIRTY = ["--allow", "exclusions", "--allow", "no-measure", "--allow", "sex-coding"]


def test_cube_command_writes_cube_and_exclusions(tmp_path: Path, lookups_dir: Path) -> None:
    table = _big_table(20_000, seed=11)
    extract = tmp_path / "extract.parquet"
    pq.write_table(table, extract, row_group_size=7_000)
    out = tmp_path / "out"
    # _big_table is dirty on purpose (about 29% of rows match no ICB): allow the exclusions
    argv = ["cube", str(extract), "--lookups", str(lookups_dir), "--out", str(out), "-q"]
    assert main([*argv, *ALLOW_DIRTY]) == 0
    # every test date is in 2023/24: that year's folder, and the whole extract's exclusions
    with (out / "2023-24" / "cube.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["icb_code", "sex", "age_band", "imd_quintile", "measure", "count"]
    assert {r["sex"] for r in rows} <= {"male", "female"}
    expected = didcore.aggregate(extract, didcore.Lookups.read(lookups_dir))
    assert sum(int(r["count"]) for r in rows) == int(expected.counts.sum())
    with (out / "exclusions.csv").open() as f:
        excl = {r["reason"]: int(r["count"]) for r in csv.DictReader(f)}
    assert excl.pop("no_test_date") == 0
    assert list(excl) == [
        "rows_read",
        "no_icb",
        "no_imd",
        "no_sex",
        "no_age",
        "included",
        "no_measure",
    ]
    assert excl["rows_read"] == 20_000
    assert excl["rows_read"] == sum(
        excl[k] for k in ("no_icb", "no_imd", "no_sex", "no_age", "included")
    )


def test_cube_command_reads_a_folder_of_files(tmp_path: Path, lookups_dir: Path) -> None:
    folder = tmp_path / "extract"
    folder.mkdir()
    table = _big_table(6_000, seed=12)
    pq.write_table(table.slice(0, 2_000), folder / "a.parquet")
    # a folder per year, and what Spark leaves beside its output: all but the data skipped
    (folder / "year=2023").mkdir()
    pq.write_table(table.slice(2_000), folder / "year=2023" / "part-0.snappy.parquet")
    (folder / "_SUCCESS").write_text("")
    (folder / "_temporary").mkdir()
    pq.write_table(table.slice(0, 10), folder / "_temporary" / "x.parquet")
    (folder / ".part-0.parquet.crc").write_bytes(b"crc")
    (folder / ".hidden.parquet").write_bytes(b"not parquet")
    out = tmp_path / "out"
    argv = ["cube", str(folder), "--lookups", str(lookups_dir), "--out", str(out), "-q"]
    # _big_table is dirty on purpose
    assert main([*argv, *ALLOW_DIRTY]) == 0
    with (out / "exclusions.csv").open() as f:
        assert {r["reason"]: r["count"] for r in csv.DictReader(f)}["rows_read"] == "6000"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "didcore", *args], capture_output=True, text=True, check=False
    )


def test_bad_input_exits_2_with_one_line(tmp_path: Path, lookups_dir: Path) -> None:
    extract = tmp_path / "extract.parquet"
    pq.write_table(_big_table(100).drop(["modality"]), extract)
    proc = _run("cube", str(extract), "--lookups", str(lookups_dir), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "'modality'" in lines[0]


def test_missing_lookups_folder_exits_2(tmp_path: Path) -> None:
    proc = _run("cube", str(tmp_path), "--lookups", str(tmp_path / "none"), "--out", "o")
    assert proc.returncode == 2
    assert "lookups folder" in proc.stderr


def test_renamed_columns_on_the_command_line(tmp_path: Path, lookups_dir: Path) -> None:
    table = _big_table(500, seed=13).rename_columns(
        [
            "prov",
            "gp_practice_code",
            "lsoa11",
            "gender",
            "age",
            "test_date",
            "modality",
            "exam_code",
        ]
    )
    extract = tmp_path / "e.parquet"
    pq.write_table(table, extract)
    out = tmp_path / "out"
    argv = [
        "cube",
        str(extract),
        "--lookups",
        str(lookups_dir),
        "--out",
        str(out),
        "-q",
        "--column",
        "provider_code=prov",
        "--column",
        "sex=gender",
        "--allow",
        "exclusions",  # _big_table is dirty on purpose
        "--allow",
        "no-measure",
        "--allow",
        "sex-coding",  # half its sex values are 9 or blank
    ]
    assert main(argv) == 0
    assert (
        main(
            [
                "cube",
                str(extract),
                "--lookups",
                str(lookups_dir),
                "--out",
                str(out),
                "--column",
                "bogus=x",
            ]
        )
        == 2
    )


def test_report_without_inputs_points_at_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report"]) == 2
    assert "didcore demo" in capsys.readouterr().err


def test_report_and_demo_pass_counting_options_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--max-age and --threads are accepted by every command, so each must reach aggregate."""
    import didcore.report.pipeline as pipeline

    seen: list[dict[str, object]] = []

    def fake_run_report(*args: object, **kwargs: object) -> object:
        seen.append(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr(pipeline, "run_report", fake_run_report)
    options = ["--max-age", "100", "--threads", "1", "-q"]
    report = ["report", "x.parquet", "--lookups", "l", "--population", "p", "--out", "o"]
    for argv in (report, ["demo", "--out", str(tmp_path), "--cache", str(tmp_path / "c")]):
        if argv[0] == "demo":
            import didcore.synth as synth

            monkeypatch.setattr(synth, "demo_inputs", lambda cache: _DemoPaths(tmp_path))
            monkeypatch.setattr("didcore.cli._demo_annex_a", lambda truth, missing: {})
        with pytest.raises(SystemExit):
            main([*argv, *options])
    assert [(k["max_age"], k["n_threads"]) for k in seen] == [(100, 1), (100, 1)]


class _DemoPaths:
    def __init__(self, root: Path) -> None:
        self.extract = self.lookups = self.population = self.truth = root


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    # (--lookups is optional: the shipped lookups; --out is not)
    for argv in (["cube", "x.parquet"], ["bogus"], []):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error:" in err and "--help" in err


def test_bad_input_message_keeps_the_spaces_in_values(
    tmp_path: Path, lookups_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (lookups_dir / "measures.csv").write_text(
        "measure,kind,modality,exam_code\nX-ray,modality,Plain  Radiography,\n"
    )
    extract = tmp_path / "e.parquet"
    pq.write_table(_big_table(10, seed=1), extract)
    assert main(["cube", str(extract), "--lookups", str(lookups_dir), "--out", "o"]) == 2
    assert "'Plain  Radiography'" in capsys.readouterr().err


def test_unreadable_ages_are_a_one_line_note(
    tmp_path: Path, lookups_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extract = tmp_path / "e.csv"
    extract.write_text(
        "provider_code,gp_practice_code,lsoa11,sex,age,modality,exam_code\n"
        "RM3,A81001,E01000001,1,NK,Plain Radiography,XCHES\n"
        "RM3,A81001,E01000001,1,40,Plain Radiography,XCHES\n"
    )
    out = tmp_path / "out"
    argv = ["cube", str(extract), "--lookups", str(lookups_dir), "--out", str(out), "-q"]
    # 1 row of 2 with no age trips the exclusions guard: allowed, and said in one line
    assert main([*argv, "--allow", "exclusions"]) == 0
    note, warning = capsys.readouterr().err.splitlines()
    assert note == (
        "didcore: note: column 'age': 1 row holds a value that is not a number (e.g. 'NK'); "
        "counted as missing age"
    )
    assert warning.startswith("didcore: warning: guard exclusions: 50.0% of rows")
    with (out / "exclusions.csv").open() as f:
        assert {r["reason"]: int(r["count"]) for r in csv.DictReader(f)}["no_age"] == 1


def test_an_extract_without_rows_is_refused_by_every_command(
    tmp_path: Path, lookups_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty export counted 0 rows, passed every guard and wrote empty tables with exit 0
    (and report blamed the test dates): now each command refuses it, naming the file.
    """
    extract = tmp_path / "empty.parquet"
    pq.write_table(_big_table(10, seed=1).slice(0, 0), extract)
    lookups = ["--lookups", str(lookups_dir)]
    for argv in (
        ["cube", str(extract), *lookups, "--out", str(tmp_path / "o")],
        ["check", str(extract), *lookups],
        ["report", str(extract), *lookups, "--population", "p.csv", "--out", str(tmp_path / "r")],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"the extract {extract} holds no rows" in err, err
    assert not (tmp_path / "o").exists()
    # a library caller counting an empty table still gets its empty cube
    assert didcore.aggregate(extract, lookups_dir).exclusions["rows_read"] == 0


def test_cube_of_undated_rows_says_what_it_wrote(
    tmp_path: Path, lookups_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extract = tmp_path / "e.csv"
    extract.write_text(
        "provider_code,gp_practice_code,lsoa11,sex,age,test_date,modality,exam_code\n"
        "RM3,A81001,E01000001,1,40,,Plain Radiography,XCHES\n"
    )
    out = tmp_path / "out"
    argv = ["cube", str(extract), "--lookups", str(lookups_dir), "--out", str(out)]
    assert main([*argv, *ALLOW_DIRTY]) == 0
    summary = capsys.readouterr().out
    assert f"wrote exclusions.csv and years.csv to {out}" in summary, summary
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == []


def test_test_dates_under_another_name_are_refused_until_named(
    tmp_path: Path, lookups_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An export with upper-case names: following the missing-columns message used to name
    every role but the test date, and the extract's years were then counted as one cube
    (cube) or declared one year (report's advice). The message names TEST_DATE too, and
    naming only the others is refused.
    """
    table = _big_table(300, seed=5)
    extract = tmp_path / "upper.parquet"
    pq.write_table(table.rename_columns([n.upper() for n in table.column_names]), extract)
    argv = ["cube", str(extract), "--lookups", str(lookups_dir), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--column test_date=TEST_DATE" in err and "--column sex=SEX" in err, err
    roles = ["provider_code", "gp_practice_code", "lsoa11", "modality", "sex", "exam_code", "age"]
    named = [a for r in roles for a in ("--column", f"{r}={r.upper()}")]
    for extra in ([], ["--year", "2023/24"]):
        assert main([*argv, *named, *extra, *ALLOW_DIRTY]) == 2
        err = capsys.readouterr().err
        assert "its test dates look to be in 'TEST_DATE'" in err, err
    assert not (tmp_path / "o").exists()
    named += ["--column", "test_date=TEST_DATE"]
    assert main([*argv, *named, *ALLOW_DIRTY]) == 0
    assert "in financial years" in capsys.readouterr().out
    # in Python too, and for a test date under one of its usual other names
    renamed = table.rename_columns(
        ["diagnostic_test_date" if n == "test_date" else n for n in table.column_names]
    )
    with pytest.raises(didcore.errors.MissingColumnError, match="'diagnostic_test_date'"):
        didcore.aggregate(renamed, lookups_dir)
