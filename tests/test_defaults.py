"""The shipped lookups as the default, their vintage in every output, and the input docs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pytest

import didcore
from didcore.cli import main
from didcore.defaults import SHIPPED_SOURCE, VINTAGE
from didcore.errors import InputError
from didcore.lookup import Lookups

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic extract with real codes (its lookups are the shipped ones)."""
    from didcore.synth import write_synthetic

    root = tmp_path_factory.mktemp("synth")
    write_synthetic(root, rows=3000, seed=5)
    return root


# ------------------------------------------------------------------------------ the default


def test_default_lookups_are_the_national_reference_data() -> None:
    lk = Lookups.default()
    assert len(lk.icb_codes) == 42
    assert len(lk.practice_icb) == 6445  # active English GP practices, epraccur 2023
    assert {c[0] for c in lk.other_practices} >= {"W"}  # Welsh practices are valid, not unknown
    assert len(lk.lsoa_icb) == len(lk.lsoa_quintile) == 32844  # every English LSOA 2011
    assert set(lk.lsoa_quintile.values()) == {1, 2, 3, 4, 5}
    assert set(lk.practice_icb.values()) <= set(lk.icb_codes)
    assert len(lk.measures) == 14
    assert lk.icb_names["QE1"].startswith("NHS Lancashire")
    assert lk.vintage == VINTAGE and lk.source == SHIPPED_SOURCE
    for part in ("July 2022", "epraccur", "2023", "IMD 2019"):
        assert part in lk.vintage
    assert VINTAGE in lk.description


def test_default_lookups_are_cached() -> None:
    assert Lookups.default() is Lookups.default()


def test_user_lookups_say_where_they_came_from(tmp_path: Path) -> None:
    assert main(["lookups", "--out", str(tmp_path / "lk"), "-q"]) == 0
    lk = Lookups.read(tmp_path / "lk")
    assert lk.vintage == f"user-supplied folder {tmp_path / 'lk'}"
    assert lk.description == lk.vintage
    tables = Lookups.from_tables(
        practice_icb={"gp_practice_code": ["A1"], "icb_code": ["QE1"]},
        lsoa_icb={"lsoa11": ["E1"], "icb_code": ["QE1"]},
        lsoa_imd={"lsoa11": ["E1"], "imd_decile": ["1"]},
    )
    assert tables.vintage is None and "user-supplied" in tables.description


def test_written_folder_reads_back_equal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "lookups"
    assert main(["lookups", "--out", str(out)]) == 0
    assert VINTAGE in capsys.readouterr().out
    names = {p.name for p in out.iterdir()}
    assert {
        "practice_icb.csv",
        "other_practices.csv",
        "lsoa_icb.csv",
        "lsoa_imd.csv",
        "measures.csv",
        "icb.csv",
        "README.txt",
    } <= names
    back = Lookups.read(out)
    assert back == Lookups.default()
    assert back.icb_codes == Lookups.default().icb_codes  # same ICB order
    readme = (out / "README.txt").read_text(encoding="utf-8")
    assert VINTAGE in readme
    assert "Open Government Licence v3.0" in readme
    assert "docs/inputs.md" in readme
    # editable: a changed practice is read back
    text = (out / "practice_icb.csv").read_text().replace("A81001,QHM", "A81001,QOQ")
    (out / "practice_icb.csv").write_text(text)
    assert Lookups.read(out).practice_icb["A81001"] == "QOQ"


def test_synthetic_lookups_are_the_shipped_ones(synthetic: Path) -> None:
    assert Lookups.read(synthetic / "lookups") == Lookups.default()


def test_aggregate_without_lookups_uses_the_default(synthetic: Path) -> None:
    table = pa.Table.from_batches(
        __import__("pyarrow.parquet", fromlist=["x"])
        .ParquetFile(next((synthetic / "extract").glob("*.parquet")))
        .iter_batches()
    )
    assert didcore.aggregate(table, progress=False) == didcore.aggregate(
        table, Lookups.default(), progress=False
    )
    assert didcore.aggregate(table, None, progress=False) == didcore.aggregate(
        table, synthetic / "lookups", progress=False
    )


@pytest.mark.parametrize("bad", [42, b"lookups", {"practice_icb": []}, 1.5])
def test_other_lookups_objects_are_input_errors(bad: object) -> None:
    table = pa.table({"gp_practice_code": ["A81001"]})
    with pytest.raises(InputError, match="lookups must be"):
        didcore.aggregate(table, bad)


# ------------------------------------------------------------------------------ outputs name it


def test_cube_without_lookups_names_the_vintage(
    synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cube", str(synthetic / "extract"), "--out", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "lookups: didcore shipped reference data" in out and VINTAGE in out
    assert VINTAGE in (tmp_path / "c" / "lookups.txt").read_text(encoding="utf-8")


def test_report_without_lookups_works_and_names_the_vintage(
    synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    argv = [
        "report",
        str(synthetic / "extract"),
        "--population",
        str(synthetic / "population.csv"),
        "--out",
        str(out),
        "--formats",
        "csv,xlsx",
    ]
    assert main(argv) == 0, capsys.readouterr().err
    summary = capsys.readouterr().out
    assert VINTAGE in summary
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["inputs"]["lookups"]["vintage"] == VINTAGE
    assert prov["inputs"]["lookups"]["path"] == SHIPPED_SOURCE
    from openpyxl import load_workbook

    book = load_workbook(out / "annex_b.xlsx", read_only=True)
    cells = [
        str(c) for ws in book.worksheets for row in ws.iter_rows(values_only=True) for c in row
    ]
    assert any(VINTAGE in c for c in cells)


def test_html_report_names_the_vintage(synthetic: Path, tmp_path: Path) -> None:
    import html

    from didcore.report.pipeline import run_report

    out = tmp_path / "report"
    run_report(
        [synthetic / "extract"],
        population=synthetic / "population.csv",
        out_dir=out,
        formats=("html",),
        measures=["X-ray"],
        quiet=True,
    )
    page = html.unescape((out / "report.html").read_text(encoding="utf-8"))
    assert VINTAGE in page


def test_report_with_a_folder_names_the_folder(synthetic: Path, tmp_path: Path) -> None:
    from didcore.report.pipeline import run_report

    out = tmp_path / "report"
    result = run_report(
        [synthetic / "extract"],
        lookups=synthetic / "lookups",
        population=synthetic / "population.csv",
        out_dir=out,
        formats=("csv",),
        quiet=True,
    )
    lookups = result.provenance["inputs"]["lookups"]
    assert lookups["vintage"] == f"user-supplied folder {synthetic / 'lookups'}"
    assert lookups["files"]  # hashed, as every input file


# ------------------------------------------------------------------------------ docs and help


def test_every_help_points_to_the_input_docs(capsys: pytest.CaptureFixture[str]) -> None:
    commands = [[], ["cube"], ["report"], ["demo"], ["synth"], ["lookups"]]
    from didcore.cli import _parser

    sub = _parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    commands += [[name] for name in sub if [name] not in commands]
    for command in commands:
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        text = capsys.readouterr().out
        assert "docs/inputs.md" in text, command
        assert not re.search(r"\bSPEC\b", text), command


def test_nothing_user_facing_points_to_spec() -> None:
    """Help, errors, README, user docs and the package's docstrings never cite SPEC (which
    users do not have); docs/architecture.md (for developers) may.
    """
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    files += sorted((ROOT / "python" / "didcore").rglob("*.py"))
    files += sorted((ROOT / "python" / "didcore").rglob("*.j2"))
    hits = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in files
        if path.name != "architecture.md"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"\bSPEC\b", line)
    ]
    assert hits == []


def test_readme_points_to_the_input_docs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/inputs.md" in readme
    assert 'pip install ".[report]" && didcore demo --out report' in readme  # quick start kept
    assert (ROOT / "docs" / "inputs.md").is_file()


def test_the_worked_example_counts_as_documented(tmp_path: Path) -> None:
    """The CSV blocks of docs/inputs.md's worked example, run: the counts it states."""
    doc = (ROOT / "docs" / "inputs.md").read_text(encoding="utf-8")
    blocks = dict(re.findall(r"\*\*`([\w.]+)`\*\*[^`]*```csv\n(.*?)```", doc, re.S))
    lookups = tmp_path / "lookups"
    lookups.mkdir()
    for name, body in blocks.items():
        folder = tmp_path if name in ("extract.csv", "population.csv") else lookups
        (folder / name).write_text(body, encoding="utf-8")
    cube = didcore.aggregate(tmp_path / "extract.csv", lookups, progress=False)
    stated = re.search(r"cube\.exclusions\s+# (\{.*?\})", doc)
    assert stated is not None
    assert dict(cube.exclusions) == eval(stated.group(1))  # the doc's own dict
    stated_years = re.search(r"cube\.year_rows\s+# (\{.*?\})", doc)
    assert stated_years is not None
    assert dict(cube.year_rows or {}) == eval(stated_years.group(1))
    assert cube.icb_source == {
        "gp_practice": 4,
        "other_valid_practice": 1,
        "lsoa": 1,
        "unknown": 0,
    }
    cells = {
        (r["icb_code"], r["measure"]): r["count"] for r in cube.to_arrow().to_pylist() if r["count"]
    }
    assert cells == {("QE1", "X-ray"): 1, ("QE1", "Chest X-ray"): 1, ("QF7", "MRI"): 1}
    pop = didcore.Population.read(tmp_path / "population.csv", cube.icb_codes)
    assert pop.year == "2023/24"
