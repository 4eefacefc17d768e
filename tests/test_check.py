"""``didcore check``: the pre-flight profile, its verdicts and exit status; it writes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from didcore.check import run_check
from didcore.cli import main
from didcore.synth import write_synthetic


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return write_synthetic(tmp_path_factory.mktemp("synth"), rows=12_000, seed=8)


@pytest.fixture(scope="module")
def mf_extract(synthetic: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    t = pq.read_table(synthetic.extract)
    sex = pc.utf8_trim_whitespace(t["sex"].cast(pa.string()))
    mf = pc.if_else(pc.equal(sex, "1"), "M", pc.if_else(pc.equal(sex, "2"), "F", sex))
    path = tmp_path_factory.mktemp("mf") / "mf.parquet"
    pq.write_table(t.set_column(t.schema.get_field_index("sex"), "sex", mf), path)
    return path


def _check(synthetic: Any, extract: Path, *more: str) -> list[str]:
    return ["check", str(extract), "--lookups", str(synthetic.lookups), *more]


def _files(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


def test_check_of_a_clean_extract_passes(synthetic, capsys) -> None:
    before = _files(synthetic.extract.parent.parent)
    argv = _check(synthetic, synthetic.extract, "--population", str(synthetic.population))
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["rows"] == 12_000
    assert report["years"] == {"2023/24": 12_000} and report["undated_rows"] == 0
    assert report["published_year"] == "2023/24" and report["population_year"] == "2023/24"
    names = {c["name"]: c["type"] for c in report["columns"]}
    assert {"sex", "modality", "exam_code", "gp_practice_code", "lsoa11"} <= set(names)
    assert names["sex"].startswith("dictionary")
    assert [g["guard"] for g in report["guards"]] == [
        "sex-coding",
        "modality-coding",
        "exclusions",
        "no-measure",
        "empty-measure",
        "population-icbs",
        "population-strata",
        "population-year",
    ]
    assert {g["status"] for g in report["guards"]} == {"pass"}
    sexes = dict((v, c) for v, c in report["values"]["sex"])
    assert sexes["2"] > sexes["1"] > 0
    assert sum(c for _, c in report["values"]["modality"]) == 12_000
    ex = report["exclusions"]
    assert ex["rows_read"] == 12_000 and "no_test_date" in ex
    assert 0 < report["unmatched"]["gp_practice_code"]["unmatched_share"] < 0.05
    assert _files(synthetic.extract.parent.parent) == before  # writes nothing


def test_check_refuses_sex_coded_m_f(synthetic, mf_extract, capsys) -> None:
    assert main([*_check(synthetic, mf_extract), "--json"]) == 2
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["ok"] is False
    verdicts = {g["guard"]: g for g in report["guards"]}
    assert verdicts["sex-coding"]["status"] == "fail"
    assert "--map sex=F:2,M:1" in verdicts["sex-coding"]["message"]
    assert {v for v, _ in report["values"]["sex"]} >= {"M", "F"}
    errors = captured.err.strip().splitlines()
    assert errors[0].startswith("didcore: error: guard sex-coding: ")
    assert all(e.startswith("didcore: error: guard ") for e in errors)


def test_check_with_the_map_passes(synthetic, mf_extract, capsys) -> None:
    assert main([*_check(synthetic, mf_extract), "--map", "sex=M:1,F:2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["value_maps"] == {"sex": {"M": "1", "F": "2"}}
    assert report["exclusions"]["no_sex"] < 0.01 * report["rows"]


def test_check_with_allow_passes_and_warns(synthetic, mf_extract, capsys) -> None:
    argv = [*_check(synthetic, mf_extract), "--allow", "sex-coding", "--allow", "exclusions", "-q"]
    assert main(argv) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert [e.split(":")[2].strip() for e in err] == ["guard sex-coding", "guard exclusions"]
    assert all(e.startswith("didcore: warning: ") for e in err)


def test_check_population_guards(synthetic, tmp_path, capsys) -> None:
    t = pacsv.read_csv(synthetic.population)
    first = t["icb_code"][0].as_py()
    pop = tmp_path / "p.csv"
    pacsv.write_csv(t.filter(pc.not_equal(t["icb_code"], first)), pop)
    assert main([*_check(synthetic, synthetic.extract, "--population", str(pop)), "--json"]) == 2
    verdicts = {g["guard"]: g for g in json.loads(capsys.readouterr().out)["guards"]}
    assert verdicts["population-icbs"]["status"] == "fail"
    assert first in verdicts["population-icbs"]["message"]
    result = run_check(
        synthetic.extract, lookups=synthetic.lookups, population=pop, allow={"population-icbs"}
    )
    assert result.ok


def test_check_prints_tables_on_a_terminal(synthetic, capsys) -> None:
    assert main(_check(synthetic, synthetic.extract)) == 0
    out = capsys.readouterr().out
    for words in ("didcore check", "columns read", "values of sex", "exclusions", "guards"):
        assert words in out
    assert "sex-coding" in out and "pass" in out
