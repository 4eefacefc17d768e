"""The report outputs: CSV tables, workbook, charts, maps, HTML, disclosure control, year on year.

Most tests use the hand-built fixture (``_report_fixtures``); the agreement and reproducibility
tests run the real pipeline (Rust aggregation, statistics) on a small generated extract.
"""

from __future__ import annotations

import csv
import json
import math
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from _report_fixtures import make_fixture, report_inputs, write_small_inputs
from didcore.errors import InputError
from didcore.report.disclosure import DisclosureRule, apply_rule, secondary_suppression
from didcore.report.pipeline import run_report, write_report
from didcore.report.tables import ReportInputs, build_tables
from didcore.report.yoy import yoy_sentence

SPEC_CSVS = {
    "national_rates.csv": ["measure", "observed", "population", "rate_per_10000"],
    "icb_rates.csv": [
        "icb_code",
        "measure",
        "observed",
        "population",
        "crude_rate",
        "expected",
        "standardised_rate",
    ],
    "rates_ratios.csv": [
        "factor",
        "level",
        "measure",
        "standardised_rate",
        "ratio",
        "chi2",
        "p_value",
        "stars",
    ],
    "cube.csv": ["icb_code", "sex", "age_band", "imd_quintile", "measure", "count"],
    "exclusions.csv": ["reason", "count"],
}


def _inputs(fx: Any, *, period: str = "2023/24", missing: bool = True) -> ReportInputs:
    return report_inputs(fx, period=period, missing=missing)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _num(text: str) -> float | None:
    return None if text == "" else float(text)


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The whole set of outputs for all 14 measures, written once for several tests."""
    out = tmp_path_factory.mktemp("full")
    fx = make_fixture()
    result = write_report(_inputs(fx), out, quiet=True)
    return fx, result


@pytest.fixture(scope="module")
def small_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_small_inputs(tmp_path_factory.mktemp("small"), rows=20_000)


# ------------------------------------------------------------------------------ tables


def test_tables_agree_with_the_statistics_api(small_inputs, tmp_path):
    from didcore.cube import aggregate
    from didcore.population import Population
    from didcore.ratios import rates_ratios
    from didcore.standardise import standardise

    out = tmp_path / "report"
    result = run_report(
        [small_inputs["extract"]],
        lookups=small_inputs["lookups"],
        population=small_inputs["population"],
        out_dir=out,
        formats=("csv",),
        quiet=True,
    )
    cube = aggregate(small_inputs["extract"], small_inputs["lookups"], progress=False)
    pop = Population.read(small_inputs["population"], cube.icb_codes)
    rates = standardise(cube, pop, overdispersion="winsorise")
    ratios = rates_ratios(cube, pop)

    for name, first in SPEC_CSVS.items():
        rows = _read_csv(out / name)
        assert list(rows[0])[: len(first)] == first, name

    def check(api: pa.Table, rows: list[dict[str, str]], keys: tuple[str, ...]) -> None:
        assert len(rows) == api.num_rows
        by_key = {tuple(r[k] for k in keys): r for r in rows}
        for rec in api.to_pylist():
            row = by_key[tuple(str(rec[k]) for k in keys)]
            for col, value in rec.items():
                if isinstance(value, float):
                    got = _num(row[col])
                    if math.isnan(value):
                        assert got is None, (col, rec)
                    else:
                        # full precision: the CSV reads back to the same float
                        assert got == value, (col, rec)
                elif isinstance(value, bool):
                    assert row[col] == ("true" if value else "false")
                elif value is None:
                    assert row[col] == ""
                else:
                    assert row[col] == str(value), (col, rec)

    check(rates.national, _read_csv(out / "national_rates.csv"), ("measure",))
    check(rates.icb, _read_csv(out / "icb_rates.csv"), ("icb_code", "measure"))
    check(ratios, _read_csv(out / "rates_ratios.csv"), ("factor", "level", "measure"))
    check(rates.summary, _read_csv(out / "summary.csv"), ("measure",))
    check(
        cube.to_arrow(),
        _read_csv(out / "cube.csv"),
        ("icb_code", "sex", "age_band", "imd_quintile", "measure"),
    )
    ex = {r["reason"]: int(r["count"]) for r in _read_csv(out / "exclusions.csv")}
    assert {k: ex[k] for k in cube.exclusions} == cube.exclusions
    # base levels of the rates ratios are present with ratio 1
    rr = _read_csv(out / "rates_ratios.csv")
    for factor, base in (("sex", "female"), ("imd_quintile", "1"), ("age", "0-<45")):
        assert {float(r["ratio"]) for r in rr if r["factor"] == factor and r["level"] == base} == {
            1.0
        }
    assert result.summary.count("\n") == 0
    assert "20,000 records read" in result.summary
    # (and the .didcore-output marker that lets the next run replace the folder)
    assert sorted(p.name for p in out.iterdir() if p.name != ".didcore-output") == sorted(
        [
            "annex_a_source_shares.csv",
            "annex_a_table_a1.csv",
            "annex_a_table_a2.csv",
            "annex_a_table_a3.csv",
            "cube.csv",
            "exclusions.csv",
            "funnel.csv",
            "icb_rates.csv",
            "national_rates.csv",
            "provenance.json",
            "rates_ratios.csv",
            "summary.csv",
        ]
    )
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["period"] == "2023/24"
    assert prov["inputs"]["extracts"][0]["rows"] == 20_000
    assert len(prov["inputs"]["extracts"][0]["sha256"]) == 64
    assert {f["path"].rsplit("/", 1)[-1] for f in prov["inputs"]["lookups"]["files"]} >= {
        "practice_icb.csv",
        "lsoa_icb.csv",
    }


def test_unknown_format_is_an_input_error(tmp_path):
    fx = make_fixture(n_measures=2, n_icbs=5)
    with pytest.raises(InputError, match="unknown output format"):
        write_report(_inputs(fx), tmp_path, formats=("csv", "pdf"), quiet=True)


def test_formats_are_selectable_and_progress_is_reported(tmp_path):
    fx = make_fixture(n_measures=2)
    seen: list[tuple[str, int, int]] = []
    result = write_report(
        _inputs(fx), tmp_path, formats=("csv", "svg"), progress=lambda *a: seen.append(a)
    )
    names = {p.relative_to(tmp_path).as_posix() for p in result.files}
    assert "annex_b.xlsx" not in names and "report.html" not in names
    assert {n for n in names if n.startswith("charts/")} == {
        f"charts/{k}_{i:02d}_{m}.svg"
        for k in ("graph", "map", "funnel")
        for i, m in ((1, "x-ray"), (2, "ultrasound"))
    }
    assert seen[-1][1] == seen[-1][2]  # the last step completes the count
    assert [s[1] for s in seen] == list(range(1, len(seen) + 1))


# ------------------------------------------------------------------------------ workbook


def test_workbook_has_annex_b_and_a_sheet_per_table(full_report):
    from openpyxl import load_workbook

    fx, result = full_report
    wb = load_workbook(result.out_dir / "annex_b.xlsx")
    assert wb.sheetnames == [
        "Contents",
        "Annex B",
        "Table 1 National rates",
        "Table 2 National rates",
        *[
            f"Ratios Table {n} {f}"
            for n, f in enumerate(("Sex", "Sex", "Deprivation", "Deprivation", "Age", "Age"), 1)
        ],
        "Ratios worked example",
        "Ratios rates and tests",
        "ICB rates (all columns)",
        "ICB spread summary",
        "Funnel limits",
        "A ICB source shares",
        "A exclusions",
        "Table A.1",
        "Table A.2",
        "Table A.3",
        "Table A.4",
        "A.4 allocation, all ICBs",
        "A.4 unallocated providers",
        "Notes",
    ]
    ws = wb["Annex B"]
    assert ws["A1"].value.startswith("Annex B - ICB Standardised Imaging Rates per 10,000, 2023/24")
    assert [ws.cell(row=5, column=c).value for c in range(1, 5)] == [
        "ICB code",
        "ICB name",
        "NHS region",
        "Population",
    ]
    measures = list(fx.cube.measures)
    # one group of 8 columns per measure, named in row 4
    assert [ws.cell(row=4, column=5 + 8 * i).value for i in range(len(measures))] == measures
    assert ws.cell(row=5, column=8).value == "Standardised rate"
    # the national row
    nat = {r["measure"]: r for r in fx.rates.national.to_pylist()}
    assert ws["B6"].value == "England"
    assert ws.cell(row=6, column=8).value == pytest.approx(nat["X-ray"]["rate_per_10000"])
    # every ICB row carries the statistics' values
    icb = {(r["icb_code"], r["measure"]): r for r in fx.rates.icb.to_pylist()}
    codes = [ws.cell(row=r, column=1).value for r in range(7, 7 + 42)]
    assert sorted(codes) == sorted(fx.cube.icb_codes)
    for r, code in enumerate(codes, start=7):
        for i, m in enumerate(measures):
            col = 5 + 8 * i
            assert ws.cell(row=r, column=col).value == icb[(code, m)]["observed"]
            assert ws.cell(row=r, column=col + 3).value == pytest.approx(
                icb[(code, m)]["standardised_rate"]
            )
    # notes and attribution below the table
    texts = [ws.cell(row=r, column=1).value for r in range(49, ws.max_row + 1)]
    assert "Notes" in texts and "Source and attribution" in texts
    assert any("Open Government Licence" in (t or "") for t in texts)
    # the other sheets hold their tables, laid out as published (tests/test_report_excel.py)
    nat_sheet = wb["Table 1 National rates"]
    assert nat_sheet.cell(row=4, column=2).value == "X-ray"
    assert nat_sheet.cell(row=5, column=1).value == "Rate per 10,000 people"
    assert wb["Table A.4"].cell(row=5, column=1).value == "Code"


# ------------------------------------------------------------------------------ charts


def test_every_chart_file_is_written_and_non_empty(full_report):
    _fx, result = full_report
    charts = sorted((result.out_dir / "charts").iterdir())
    assert len(charts) == 14 * 3 * 2
    for path in charts:
        data = path.read_bytes()
        assert len(data) > 5_000, path
        if path.suffix == ".png":
            assert data.startswith(b"\x89PNG\r\n\x1a\n")
        else:
            root = ET.fromstring(data)
            assert root.tag.endswith("svg")
    names = {p.name for p in charts}
    assert "map_14_abdomen-or-pelvis-ultrasound.svg" in names
    assert "graph_01_x-ray.png" in names and "funnel_09_medical-photography.png" in names


def test_rate_bands_are_ordered_and_labelled():
    from didcore.report.maps import rate_bands

    bands = rate_bands([3100, 3200, 3400, 3550, 3600, 3700, 3900, 4100, float("nan")])
    assert list(bands.edges) == sorted(bands.edges)
    assert len(bands.labels) == len(bands.colours) == len(bands.edges) + 1
    assert bands.labels[0].startswith("Under ") and bands.labels[-1].endswith(" and over")
    assert bands.index(0) == 0 and bands.index(1e9) == len(bands.edges)
    single = rate_bands([5.0, 5.0])
    assert len(single.labels) == 1


def test_hex_map_draws_every_icb():
    from didcore.report.charts import render
    from didcore.report.maps import hex_map

    fx = make_fixture(n_measures=1)
    values = {r["icb_code"]: r["standardised_rate"] for r in fx.rates.icb.to_pylist()}
    values["QKK"] = None  # shown hatched, as "No rate"
    fig = hex_map(values, title="Hex map 1. X-ray")
    texts = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert set(fx.cube.icb_codes) <= texts
    svg = render(fig, ("svg",))["svg"]
    assert ET.fromstring(svg).tag.endswith("svg")
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()][-1] == "No rate"


# ------------------------------------------------------------------------------ HTML


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self.imgs: list[dict[str, str | None]] = []
        self.ids: list[str] = []
        self.text: list[str] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for key in ("href", "src", "action", "srcset", "poster", "data"):
            if a.get(key):
                self.urls.append(str(a[key]))
        if tag == "img":
            self.imgs.append(a)
        if a.get("id"):
            self.ids.append(str(a["id"]))
        if tag not in ("img", "meta", "br", "link", "input"):
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_parses_and_has_no_external_urls(full_report):
    fx, result = full_report
    page = (result.out_dir / "report.html").read_text(encoding="utf-8")
    parser = _Page()
    parser.feed(page)
    parser.close()
    assert parser.stack == []  # every element closed
    external = re.compile(r"^\s*(https?:|ftp:|//|file:)", re.I)
    assert not [u for u in parser.urls if external.match(u)]
    assert "http://" not in page and "https://" not in page
    assert "@import" not in page and "url(" not in page
    # local links resolve to files of the report
    for url in parser.urls:
        if url.startswith(("#", "data:")):
            continue
        assert (result.out_dir / url).is_file(), url
    # fragment links point at ids on the page
    ids = set(parser.ids)
    for url in parser.urls:
        if url.startswith("#"):
            assert url[1:] in ids, url
    # 14 measures x (map, graph, funnel), each an embedded PNG with alt text
    assert len(parser.imgs) == 42
    for img in parser.imgs:
        assert str(img["src"]).startswith("data:image/png;base64,")
        assert len(str(img.get("alt") or "")) > 40
    text = " ".join(parser.text)
    for heading in (
        "1 Introduction",
        "2.1 Method",
        "2.2 Results",
        "3 Rates Ratios",
        "Annex A - Data quality",
        "Annex B - ICB Standardised Imaging Rates",
        "Provenance of this run",
        "Table A.4.",
    ):
        assert heading in text, heading
    for n, measure in enumerate(fx.cube.measures, start=1):
        assert f"2.2.{n} {measure}" in text
        assert f"Map {n}. Standardised {measure} rates by ICB, 2023/24" in text
    nat = fx.rates.national.to_pylist()[0]
    assert f"The national rate was {nat['rate_per_10000']:,.0f} X-rays per 10,000" in text
    assert "of ICBs were within one standard deviation of the mean" in text
    assert re.search(r"Male\s+0\.\d\d\*\*\*", text)  # rates ratio with stars
    assert 'lang="en"' in page and "<caption>" in page


# ------------------------------------------------------------------------------ reproducibility


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file's bytes, with the run's time (from provenance.json) masked."""
    stamp = json.loads((root / "provenance.json").read_text())["generated_at"]
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.name in ("provenance.json", "report.html"):
                assert data.count(stamp.encode()) >= 1
                data = data.replace(stamp.encode(), b"<generated-at>")
            out[path.relative_to(root).as_posix()] = data
    return out


@pytest.fixture(scope="module")
def demo_paths(tmp_path_factory: pytest.TempPathFactory) -> Any:
    synth = pytest.importorskip("didcore.synth")
    if not hasattr(synth, "demo_inputs"):
        pytest.skip("didcore.synth.demo_inputs is not available")
    return synth.demo_inputs(tmp_path_factory.mktemp("demo-cache"))


def test_demo_run_is_byte_for_byte_reproducible_except_the_time(demo_paths, tmp_path, monkeypatch):
    missing = pa.table(
        {
            "provider_code": ["RJZ", "RXQ", "RVV", "ZZZ"],
            "missing_records": [9_000, 4_000, 3_000, 10],
        }
    )
    kwargs = {
        "lookups": demo_paths.lookups,
        "population": demo_paths.population,
        "provider_missing": missing,
        # every table and file kind, with charts for two measures to keep the test quick
        "measures": ["X-ray", "Brain MRI"],
        "quiet": True,
    }
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    first = run_report([demo_paths.extract], out_dir=tmp_path / "a", **kwargs)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1800000000")
    second = run_report([demo_paths.extract], out_dir=tmp_path / "b", **kwargs)
    assert first.provenance["generated_at"] != second.provenance["generated_at"]
    a, b = _snapshot(tmp_path / "a"), _snapshot(tmp_path / "b")
    assert sorted(a) == sorted(b)
    assert {"annex_b.xlsx", "report.html", "charts/map_01_x-ray.svg", "cube.csv"} <= set(a)
    assert "annex_a_table_a4.csv" in a
    assert [name for name in a if a[name] != b[name]] == []
    # the time is in one field of provenance.json and one element of the page
    page = (tmp_path / "a" / "report.html").read_text()
    stamp = first.provenance["generated_at"]
    assert page.count(stamp) == 2  # the <time> element's datetime attribute and its text
    assert re.search(r'<time id="generated-at" datetime="' + re.escape(stamp), page)
    # the demo data reproduce the publication's national rates (Table 1-2)
    nat = {r["measure"]: r["rate_per_10000"] for r in first.tables["national_rates"].to_pylist()}
    assert nat["X-ray"] == pytest.approx(3551, rel=0.01)
    assert nat["CT Scan"] == pytest.approx(1207, rel=0.01)
    assert len(set(first.tables["icb_rates"]["icb_code"].to_pylist())) == 42


# ------------------------------------------------------------------------------ disclosure


def test_disclosure_rule_rounds_and_suppresses():
    rule = DisclosureRule()
    published, mask = apply_rule(rule, np.array([0, 1, 7, 8, 12, 13, 1234]))
    assert mask.tolist() == [False, True, True, False, False, False, False]
    assert published[~mask].tolist() == [0, 10, 10, 15, 1235]
    assert "1 to 7" in rule.describe()


def test_secondary_suppression_leaves_no_group_with_one_suppressed_cell():
    values = np.array([3, 50, 60, 70, 40, 9, 11, 0, 0, 2])
    groups = [np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2]), np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 2])]
    mask = secondary_suppression(values, (values > 0) & (values <= 7), groups)
    for gid in groups:
        counts = np.bincount(gid[mask], minlength=gid.max() + 1)
        assert not (counts == 1).any()
    assert mask[0] and mask[9]  # the primary cells stay suppressed
    assert not mask[7] and not mask[8]  # zeros are never used to hide anything


def test_disclosure_control_in_published_tables():
    fx = make_fixture(scale=0.0004, n_measures=9, seed=3)
    raw = build_tables(_inputs(fx))
    pub = build_tables(_inputs(fx), disclosure=DisclosureRule())
    icb = pub["icb_rates"].to_pylist()
    assert any(r["suppressed"] for r in icb), "fixture should have small counts"
    for r in icb:
        if r["suppressed"]:
            assert r["observed"] is None and r["standardised_rate"] is None
            assert r["crude_rate"] is None and r["sr_lower_95"] is None
        else:
            assert r["observed"] % 5 == 0
            assert r["crude_rate"] == pytest.approx(r["observed"] / r["population"] * 1e4)
    # a measure's national count minus its published ICB counts never isolates one ICB
    for m in fx.cube.measures:
        n_supp = sum(1 for r in icb if r["measure"] == m and r["suppressed"])
        assert n_supp != 1, m
    # national tables are not controlled
    assert pub["national_rates"].equals(raw["national_rates"])
    assert pub["rates_ratios"].equals(raw["rates_ratios"])
    cube = pub["cube"]
    counts = [c for c in cube["count"].to_pylist() if c is not None]
    assert all(c % 5 == 0 for c in counts)
    assert all(
        c is None
        for c, s in zip(cube["count"].to_pylist(), cube["suppressed"].to_pylist(), strict=True)
        if s
    )
    a1 = pub["annex_a_table_a1"].to_pylist()
    assert all(r["no_practice"] is None or r["no_practice"] % 5 == 0 for r in a1)


def test_disclosure_cube_groups_never_isolate_a_cell():
    fx = make_fixture(scale=0.0004, n_measures=3, seed=5)
    cube = build_tables(_inputs(fx), disclosure=DisclosureRule())["cube"].to_pylist()
    groups: dict[tuple[str, str], int] = {}
    for r in cube:
        if r["suppressed"]:
            key = (r["icb_code"], r["measure"])
            groups[key] = groups.get(key, 0) + 1
    assert groups and 1 not in groups.values()


def test_disclosure_outputs_show_stars(tmp_path):
    from openpyxl import load_workbook

    fx = make_fixture(scale=0.0004, n_measures=9, seed=3)
    write_report(
        _inputs(fx),
        tmp_path,
        disclosure_control=True,
        formats=("csv", "xlsx", "html"),
        measures=[],
        quiet=True,
    )
    rows = _read_csv(tmp_path / "icb_rates.csv")
    supp = [r for r in rows if r["suppressed"] == "true"]
    assert supp and all(r["observed"] == "" for r in supp)
    ws = load_workbook(tmp_path / "annex_b.xlsx")["Annex B"]
    values = [c.value for row in ws.iter_rows(min_row=7, max_row=48) for c in row]
    assert "*" in values
    assert "Disclosure control applied" in (tmp_path / "report.html").read_text()


# ------------------------------------------------------------------------------ year on year


@pytest.mark.parametrize(
    ("changes", "sentence"),
    [
        ({"a": 1.0, "b": 2.0, "c": -1.0}, "Most of these rates are higher than in 2022/23."),
        ({"a": 1.0, "b": 2.0}, "All of these rates are higher than in 2022/23."),
        ({"a": -1.0, "b": -2.0, "c": 1.0}, "Most of these rates are lower than in 2022/23."),
        ({"a": -1.0, "b": 1.0}, "About as many"),
        ({"a": None}, "No rates could be compared"),
    ],
)
def test_yoy_sentence(changes, sentence):
    assert yoy_sentence(changes, "2022/23").startswith(sentence)


def test_year_on_year_columns_and_sentence(tmp_path):
    fx = make_fixture(n_measures=4)
    prev_dir = tmp_path / "2022-23"
    write_report(_inputs(fx, period="2022/23"), prev_dir, formats=("csv",), quiet=True)
    # last year's rates: three lower than this year's, one higher
    rows = _read_csv(prev_dir / "national_rates.csv")
    factors = [0.9, 0.95, 0.97, 1.2]
    for row, f in zip(rows, factors, strict=True):
        row["rate_per_10000"] = repr(float(row["rate_per_10000"]) * f)
    with (prev_dir / "national_rates.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    out = tmp_path / "2023-24"
    result = write_report(
        _inputs(fx), out, previous=prev_dir, formats=("csv", "html"), measures=[], quiet=True
    )
    nat = result.tables["national_rates"].to_pylist()
    for r, f in zip(nat, factors, strict=True):
        assert r["previous_rate_per_10000"] == pytest.approx(r["rate_per_10000"] * f)
        assert r["change"] == pytest.approx(r["rate_per_10000"] - r["previous_rate_per_10000"])
        assert r["change_pct"] == pytest.approx(100 * (1 / f - 1))
    icb = result.tables["icb_rates"].to_pylist()
    assert all(r["sr_change"] == pytest.approx(0.0) for r in icb)
    page = (out / "report.html").read_text()
    assert "Most of these rates are higher than in 2022/23." in page
    assert "higher than in 2022/23 (" in page  # per-measure change sentence
    header = (out / "national_rates.csv").read_text().splitlines()[0]
    assert header.endswith("previous_rate_per_10000,change,change_pct")


def test_previous_folder_must_be_a_report(tmp_path):
    fx = make_fixture(n_measures=2, n_icbs=4)
    with pytest.raises(InputError, match=r"national_rates\.csv"):
        write_report(_inputs(fx), tmp_path / "out", previous=tmp_path, formats=("csv",))


# ------------------------------------------------------------------------------ the demo


@pytest.mark.slow
def test_demo_command_writes_the_whole_set(demo_paths, tmp_path):
    from didcore.cli import main

    out = tmp_path / "report"
    assert main(["demo", "--out", str(out), "--cache", str(demo_paths.root), "--quiet"]) == 0
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {
        "report.html",
        "annex_b.xlsx",
        "national_rates.csv",
        "icb_rates.csv",
        "rates_ratios.csv",
        "cube.csv",
        "exclusions.csv",
        "annex_a_table_a1.csv",
        "provenance.json",
    } <= names
    charts = [n for n in names if n.startswith("charts/")]
    assert len(charts) == 14 * 3 * 2
    assert all((out / n).stat().st_size > 5_000 for n in charts)
    assert json.loads((out / "provenance.json").read_text())["period"] == "2023/24"
