"""The workbook (annex_b.xlsx) as the publication lays out its tables (issue 16, item 2).

Every sheet has its title and human headers, number formats, notes and frozen header rows; the
rates-ratio tables are wide with stars matching the p-values; Annex A counts are rounded as
published; the version, contact and footnote lines come from the publication file, whose
defaults ship with didcore and which ``--publication-config`` overrides.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from _report_fixtures import make_fixture, report_inputs, write_small_inputs
from didcore.errors import InputError
from didcore.report.excel import COUNT_DASH, rate_format, stars_format
from didcore.report.pipeline import write_report
from didcore.report.publication import load_publication_config
from didcore.report.tables import ReportInputs

openpyxl = pytest.importorskip("openpyxl")

# sheets that are not a single table under a title and a header row
NOT_TABLES = {"Contents", "Annex B", "Notes"}


def _inputs(fx: Any, *, missing: bool) -> ReportInputs:
    return report_inputs(fx, missing=missing)


@pytest.fixture(scope="module")
def fx() -> Any:
    return make_fixture(n_icbs=20)


@pytest.fixture(scope="module")
def book(fx: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """The workbook with Table A.4 (a provider-missing table given), and its result."""
    out = tmp_path_factory.mktemp("wb")
    result = write_report(_inputs(fx, missing=True), out, formats=("csv", "xlsx"), quiet=True)
    return openpyxl.load_workbook(out / "annex_b.xlsx"), result


@pytest.fixture(scope="module")
def book_no_a4(fx: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("wb_no_a4")
    write_report(_inputs(fx, missing=False), out, formats=("xlsx",), quiet=True)
    return openpyxl.load_workbook(out / "annex_b.xlsx")


def _header_row(ws: Any) -> int:
    """The header row: the last frozen row."""
    return ws[ws.freeze_panes].row - 1


def _texts(ws: Any) -> list[str]:
    return [c for row in ws.iter_rows(values_only=True) for c in row if isinstance(c, str)]


def _table_rows(ws: Any) -> list[list[Any]]:
    """The cells under the header row, down to the first empty row."""
    out = []
    for row in ws.iter_rows(min_row=_header_row(ws) + 1):
        if all(c.value is None for c in row):
            break
        out.append(list(row))
    return out


def _expected_stars(p: float | None) -> str:
    if p is None:
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


# ------------------------------------------------------------------------------ layout


def test_contents_lists_every_sheet_with_its_title_and_links(book: Any) -> None:
    wb, _ = book
    assert wb.sheetnames[:2] == ["Contents", "Annex B"]
    ws = wb["Contents"]
    listed = {}
    for row in ws.iter_rows(min_row=6):
        if row[0].value is None:
            break
        listed[row[0].value] = row[1].value
        assert row[0].hyperlink is not None and row[0].hyperlink.location == f"'{row[0].value}'!A1"
    assert list(listed) == wb.sheetnames[1:]
    for name in wb.sheetnames[1:]:
        if name not in NOT_TABLES:
            assert wb[name]["A1"].value == listed[name], name
    assert listed["Ratios Table 1 Sex"] == "Table 1. Sex rates ratios by modality, 2023/24"
    assert listed["Table 2 National rates"] == (
        "Table 2. National Imaging Rates per 10,000 by Early Diagnosis of Cancer, 2023/24"
    )
    assert listed["Table A.3"].startswith("Table A.3. ICBs with more than 1% and 5,000 imaging")


def test_every_table_sheet_has_title_human_headers_notes_and_frozen_header(book: Any) -> None:
    wb, result = book
    csv_columns = {c for t in result.tables.values() for c in t.column_names}
    for ws in wb.worksheets:
        if ws.title in NOT_TABLES:
            continue
        title = ws["A1"].value
        assert isinstance(title, str) and title.endswith(", 2023/24"), ws.title
        assert re.match(r"(Table \d\.|Table A\.\d\.|Section 3\.1\.|Annex A\.|[A-Z])", title)
        assert ws["A2"].value.endswith("Version 1"), ws.title  # title and version line
        assert ws.freeze_panes is not None, ws.title
        head = _header_row(ws)
        headers = [c.value for c in ws[head] if c.value is not None]
        assert headers, ws.title
        for h in headers:
            assert "_" not in h and h not in csv_columns, (ws.title, h)
        # the table's notes are under it
        assert "Notes" in _texts(ws), ws.title
        # widths set for every used column
        for k in range(1, ws.max_column + 1):
            letter = openpyxl.utils.get_column_letter(k)
            if any(ws.cell(row=r, column=k).value is not None for r in range(head, head + 3)):
                assert ws.column_dimensions[letter].width >= 6, (ws.title, letter)
    # Annex B keeps its layout, with its header rows frozen
    assert wb["Annex B"].freeze_panes == "E7"
    assert wb["Contents"].freeze_panes == "A6"


def test_every_number_has_a_number_format(book: Any) -> None:
    wb, _ = book
    for ws in wb.worksheets:
        if ws.title in {"Contents", "Notes"}:
            continue
        start = 6 if ws.title == "Annex B" else _header_row(ws) + 1
        for row in ws.iter_rows(min_row=start):
            for c in row:
                if isinstance(c.value, int | float) and not isinstance(c.value, bool):
                    assert c.number_format != "General", (ws.title, c.coordinate, c.value)


def test_national_rates_wide_with_published_decimals(book: Any, fx: Any) -> None:
    wb, _ = book
    ws = wb["Table 1 National rates"]
    head = _header_row(ws)
    measures = [c.value for c in ws[head]][1:]
    assert measures[:3] == ["X-ray", "Ultrasound", "CT Scan"]
    nat = {r["measure"]: r for r in fx.rates.national.to_pylist()}
    rows = {r[0].value: r for r in _table_rows(ws)}
    for k, m in enumerate(measures, start=1):
        rate = rows["Rate per 10,000 people"][k]
        assert rate.value == pytest.approx(nat[m]["rate_per_10000"])
        assert rate.number_format == rate_format(nat[m]["rate_per_10000"])
        tests = rows["Tests in the rates"][k]
        assert tests.value == nat[m]["observed"] and tests.number_format == "#,##0"
    notes = _texts(ws)
    assert any("exclude activity with missing age, sex, deprivation or ICB (" in t for t in notes)
    # the EDOC footnote is under Table 2 only
    assert not any("Brain MRI may be used" in t for t in notes)
    assert any("Brain MRI may be used" in t for t in _texts(wb["Table 2 National rates"]))


def test_rate_format_follows_the_publication() -> None:
    assert rate_format(3551.2) == "#,##0"
    assert rate_format(8.0) == "#,##0"
    assert rate_format(0) == "#,##0"
    assert rate_format(4.2) == "0.0"
    assert rate_format(0.3) == "0.00"
    assert rate_format(None) == "#,##0"
    assert stars_format("***") == '0.00"***"' and stars_format("") == "0.00"


def test_rates_ratio_tables_are_wide_with_stars_matching_p_values(book: Any, fx: Any) -> None:
    wb, _ = book
    by = {(r["factor"], str(r["level"]), r["measure"]): r for r in fx.ratios.to_pylist()}
    labels = {
        "Female": ("sex", "female"),
        "Male": ("sex", "male"),
        **{
            f"{q} {w}": ("imd_quintile", str(q))
            for q, w in enumerate(
                (
                    "Most deprived",
                    "More deprived",
                    "Mid quintile",
                    "Less deprived",
                    "Least deprived",
                ),
                start=1,
            )
        },
        "0 - <45": ("age", "0-<45"),
        "45 - <55": ("age", "45-<55"),
        "55 - <65": ("age", "55-<65"),
        "65 - <75": ("age", "65-<75"),
        "75+": ("age", "75+"),
    }
    sheets = [n for n in wb.sheetnames if n.startswith("Ratios Table")]
    assert len(sheets) == 6
    checked = starred = 0
    for name in sheets:
        ws = wb[name]
        measures = [c.value for c in ws[_header_row(ws)]][1:]
        rows = _table_rows(ws)
        assert rows[0][1].value == 1 and rows[0][1].number_format == "0.00"  # the base level
        for row in rows:
            factor, level = labels[row[0].value]
            for m, cell in zip(measures, row[1:], strict=True):
                r = by[(factor, level, m)]
                stars = _expected_stars(r["p_value"])
                assert cell.value == pytest.approx(r["ratio"]), (name, level, m)
                assert cell.number_format == stars_format(stars), (name, level, m)
                checked += 1
                starred += bool(stars)
        notes = " ".join(_texts(ws))
        assert "* p < 0.05, ** p < 0.01, *** p < 0.001" in notes
        assert "base level will always be set to 1" in notes
    assert checked == len(fx.ratios) and 0 < starred < checked
    assert "five-year age bands were used" in " ".join(_texts(wb["Ratios Table 5 Age"]))
    assert "five-year age bands were used" not in " ".join(_texts(wb["Ratios Table 1 Sex"]))
    # no long-form sheet is one of the publication's tables: the long form is the detail sheet
    detail = wb["Ratios rates and tests"]
    assert [c.value for c in detail[_header_row(detail)]][:3] == ["Factor", "Level", "Measure"]


def test_worked_example_uses_the_runs_rates(book: Any, fx: Any) -> None:
    wb, _ = book
    ws = wb["Ratios worked example"]
    assert ws["A1"].value == ("Section 3.1. Rates ratios: a worked example (male X-rays), 2023/24")
    rows = {r[0].value: r for r in _table_rows(ws)}
    sex = {
        r["level"]: r
        for r in fx.ratios.to_pylist()
        if r["factor"] == "sex" and r["measure"] == "X-ray"
    }
    assert rows["Female"][1].value == pytest.approx(sex["female"]["standardised_rate"])
    assert rows["Female"][2].value == 1
    assert rows["Male"][1].value == pytest.approx(sex["male"]["standardised_rate"])
    assert rows["Male"][2].value == pytest.approx(sex["male"]["ratio"])
    ratio = sex["male"]["ratio"]
    pct = round(abs(1 - ratio) * 100)
    word = "lower" if ratio < 1 else "higher"
    text = " ".join(_texts(ws))
    assert f"the rate of X-rays was {pct}% {word} in males than females" in text
    assert f"= {ratio:.2f}" in text


# ------------------------------------------------------------------------------ Annex A


def test_annex_a_counts_rounded_as_published(book: Any) -> None:
    wb, result = book
    for sheet, csv_name, units in (
        (
            "Table A.1",
            "annex_a_table_a1",
            (("no_practice", 3, 100), ("no_practice_no_lsoa", 5, 100)),
        ),
        ("Table A.3", "annex_a_table_a3", (("rows", 3, 1000), ("missing_any", 4, 100))),
        ("Table A.4", "annex_a_table_a4", (("rows", 3, 1000), ("missing_records", 4, 1000))),
    ):
        exact = result.tables[csv_name].to_pylist()
        rows = _table_rows(wb[sheet])
        assert len(rows) == len(exact) > 0, sheet
        for r, row in zip(exact, rows, strict=True):
            assert row[0].value == r.get("provider_code", r.get("icb_code"))
            for key, col, unit in units:
                cell = row[col - 1]
                assert cell.value == unit * int(r[key] / unit + 0.5), (sheet, key)
                assert cell.number_format == COUNT_DASH
        note = " ".join(_texts(wb[sheet]))
        assert "rounded" in note and "to the nearest" in note and f"{csv_name}.csv" in note
    # percentages are fractions with a % format, from the unrounded counts
    a1 = result.tables["annex_a_table_a1"].to_pylist()[0]
    cell = _table_rows(wb["Table A.1"])[0][3]
    assert cell.value == pytest.approx(a1["no_practice_pct"] / 100) and cell.number_format == "0%"
    # names as the rest of the publication writes them
    a3 = wb["Table A.3"]
    assert a3.cell(row=_header_row(a3) - 1, column=1).value == "ICB code and name"
    assert all(r[1].value.endswith(" ICB") for r in _table_rows(a3))


def test_no_integrated_care_board_anywhere(book: Any, book_no_a4: Any) -> None:
    for wb in (book[0], book_no_a4):
        for ws in wb.worksheets:
            assert not any("Integrated Care Board" in t for t in _texts(ws)), ws.title
    assert book[0]["Annex B"]["A4"].value == "ICB"


def test_a4_note_only_when_table_a4_is_there(book: Any, book_no_a4: Any) -> None:
    assert "Table A.4" not in book_no_a4.sheetnames
    notes = " ".join(_texts(book_no_a4["Annex B"]))
    assert "(sheets Table A.1 to A.3; Table A.4 was not produced)" in notes
    assert "Table A.1 to A.4" not in notes
    assert "--provider-missing FILE" in notes  # and how to produce it
    contents = [r[0] for r in book_no_a4["Contents"].iter_rows(values_only=True)]
    assert "Table A.4" not in contents
    wb, _ = book
    assert "Table A.4" in wb.sheetnames
    notes = " ".join(_texts(wb["Annex B"]))
    assert "(sheets Table A.1 to A.4)" in notes and "was not produced" not in notes


# ------------------------------------------------------------------ the publication file


def test_defaults_ship_and_are_in_the_workbook(book: Any) -> None:
    pub = load_publication_config()
    assert pub.version == "Version 1" and pub.source is None
    assert pub.rounding["a1"] == 100 and pub.rounding["a3_missing"] == 100
    wb, _ = book
    contents = " ".join(_texts(wb["Contents"]))
    assert "Version 1" in contents and "Contact us" in contents
    assert "england.did@nhs.net" in contents and "Open Government Licence" in contents


def test_publication_file_overrides_version_contact_footnotes_and_rounding(
    fx: Any, tmp_path: Path
) -> None:
    conf = tmp_path / "pub.toml"
    conf.write_text(
        'version = "Version 2, 6 December 2026"\n'
        "[contact]\n"
        'feedback = ["Write to analysts@example.org"]\n'
        "additional = []\n"
        "[footnotes]\n"
        'national_rates = ["Our own note on {period}."]\n'
        "[rounding]\n"
        "a1 = 1\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    result = write_report(
        _inputs(fx, missing=False),
        out,
        formats=("xlsx", "html"),
        measures=[],
        quiet=True,
        publication=conf,
    )
    wb = openpyxl.load_workbook(out / "annex_b.xlsx")
    contents = " ".join(_texts(wb["Contents"]))
    assert "Version 2, 6 December 2026" in contents and "Version 1" not in contents
    assert "Write to analysts@example.org" in contents
    assert "england.did@nhs.net" not in contents.split("Additional")[0]
    assert "Additional information" not in contents  # emptied by the file
    assert "Websites" in contents  # a key not in the file keeps its default
    nat = _texts(wb["Table 2 National rates"])
    assert "1. Our own note on 2023/24." in nat
    assert any("Brain MRI may be used" in t for t in nat)  # edoc footnote: the default
    assert wb["Table 1 National rates"]["A2"].value.endswith("Version 2, 6 December 2026")
    # a1 = 1: Table A.1 counts exact
    exact = result.tables["annex_a_table_a1"]["no_practice"].to_pylist()
    assert [r[2].value for r in _table_rows(wb["Table A.1"])] == exact
    assert "Counts are exact" in " ".join(_texts(wb["Table A.1"]))
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Version 2, 6 December 2026" in page and "Write to analysts@example.org" in page
    assert result.provenance["options"]["publication_config"] == str(conf)


def test_html_shows_the_default_version_and_contact(fx: Any, tmp_path: Path) -> None:
    write_report(_inputs(fx, missing=False), tmp_path, formats=("html",), measures=[], quiet=True)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert '<p class="note" id="version-line">Version 1</p>' in page
    assert "Contact us" in page and "england.did@nhs.net" in page
    assert "http://" not in page and "https://" not in page


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour = 1\n", "unknown key 'colour'"),
        ("[rounding]\na1 = 0\n", "rounding.a1 = 0"),
        ('[footnotes]\nedoc = ["In {year}"]\n', "unknown placeholder {year}"),
        ('[footnotes]\nedoc = "one line"\n', "footnotes.edoc must be a list"),
        ("version = [\n", "not valid TOML"),
    ],
)
def test_bad_publication_file_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=re.escape(message)) as err:
        load_publication_config(conf)
    assert str(conf) in str(err.value) and "\n" not in str(err.value)


def test_cli_publication_config_refused_before_counting(tmp_path: Path, capsys: Any) -> None:
    from didcore.cli import main

    inputs = write_small_inputs(tmp_path / "in", rows=500)
    conf = tmp_path / "bad.toml"
    conf.write_text("colour = 1\n", encoding="utf-8")
    argv = [
        "report",
        str(inputs["extract"]),
        "--lookups",
        str(inputs["lookups"]),
        "--population",
        str(inputs["population"]),
        "--out",
        str(tmp_path / "out"),
        "--publication-config",
        str(conf),
        "--quiet",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown key 'colour'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_cli_publication_config_reaches_the_workbook(tmp_path: Path) -> None:
    from didcore.cli import main

    inputs = write_small_inputs(tmp_path / "in", rows=2000)
    conf = tmp_path / "pub.toml"
    conf.write_text('version = "Version 7"\n', encoding="utf-8")
    out = tmp_path / "out"
    argv = [
        "report",
        str(inputs["extract"]),
        "--lookups",
        str(inputs["lookups"]),
        "--population",
        str(inputs["population"]),
        "--out",
        str(out),
        "--formats",
        "xlsx",
        "--publication-config",
        str(conf),
        "--quiet",
    ]
    assert main(argv) == 0
    wb = openpyxl.load_workbook(out / "annex_b.xlsx")
    assert wb["Contents"]["A2"].value == "Version 7"


def test_publication_toml_ships_as_package_data() -> None:
    """The defaults are read through importlib.resources from didcore/data, which the
    maturin include rule puts in the wheel and the sdist."""
    import tomllib
    from importlib import resources

    text = (resources.files("didcore") / "data" / "publication.toml").read_text("utf-8")
    assert tomllib.loads(text)["version"] == "Version 1"
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    assert 'path = "python/didcore/data/**/*"' in pyproject.read_text(encoding="utf-8")


def test_rate_cells_keep_full_precision(book: Any) -> None:
    """Formats round what is shown, never the value (Annex A counts aside)."""
    wb, result = book
    ws = wb["ICB rates (all columns)"]
    headers = [c.value for c in ws[_header_row(ws)]]
    col = headers.index("Standardised rate per 10,000")
    first = _table_rows(ws)[0][col]
    table: pa.Table = result.tables["icb_rates"]
    assert first.value == pytest.approx(table["standardised_rate"][0].as_py(), rel=1e-15)


def test_rounding_scales_for_a_fraction_of_a_national_year() -> None:
    """The demo (about 1/47 of a year) rounds Annex A as the publication does, scaled, so its
    few hundred tests do not round to 0."""
    pub = load_publication_config()
    assert pub.scaled(1).rounding == pub.rounding
    small = pub.scaled(1 / 47).rounding
    assert small["a1"] == 2 and small["a2_total"] == 20 and small["a3_missing"] == 2
    assert pub.scaled(0.5).rounding["a4_total"] == 500
    assert pub.scaled(1e-6).rounding["a4_total"] == 1
    assert pub.scaled(0.5).version == pub.version


def test_workbook_bytes_are_reproducible(fx: Any, tmp_path: Path) -> None:
    """Same inputs, same bytes: links, merged headers and formats carry no run-dependent id."""
    data = []
    for k in range(2):
        out = tmp_path / str(k)
        write_report(_inputs(fx, missing=True), out, formats=("xlsx",), quiet=True)
        data.append((out / "annex_b.xlsx").read_bytes())
    assert data[0] == data[1]
