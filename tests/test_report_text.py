"""The publication's sentences on their edge cases (issue 16): a spread whose mean minus one
SD is below zero, ties at the top and at 0, empty Annex A tables, Table A.4 not produced,
a previous report of the same year, and --period / --title for inputs with no dates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from _report_fixtures import make_fixture, provider_missing_table, write_small_inputs
from didcore.errors import InputError
from didcore.quality import annex_a
from didcore.report import text as txt
from didcore.report.pipeline import run_report, write_report
from didcore.report.reference import icb_info
from didcore.report.tables import ReportInputs
from didcore.report.yoy import PreviousReport, check_previous_period

NATIONAL = {"rate_per_10000": 9.0}


def _rows(rates: list[float]) -> list[dict[str, Any]]:
    return [
        {
            "icb_code": f"QA{i:03d}",
            "icb_name": f"NHS Area {i} Integrated Care Board",
            "region": "",
            "standardised_rate": r,
        }
        for i, r in enumerate(rates)
    ]


def _text(rates: list[float], summary: dict[str, Any] | None = None) -> str:
    paragraphs = txt.measure_paragraphs("Medical Photography", 9, _rows(rates), NATIONAL, summary)
    return " ".join(paragraphs)


# ------------------------------------------------------------------------------ spread


@pytest.mark.parametrize(
    ("lower", "upper", "said"),
    [
        (-10.4, 28.2, "up to 28 tests per 10,000 population"),
        (-0.2, 3.0, "up to 3.0 tests per 10,000 population"),
        (0.0, 28.0, "between 0 and 28 tests per 10,000 population"),
        (3.2, 28.0, "between 3.2 and 28 tests per 10,000 population"),
        (None, 28.0, "up to 28 tests per 10,000 population"),
        (3.0, None, "not known (too few ICBs with a rate)"),
    ],
)
def test_spread_range(lower: float | None, upper: float | None, said: str) -> None:
    assert txt.spread_range(lower, upper) == said


def test_negative_lower_bound_is_never_printed() -> None:
    summary = {"share_within_1sd": 0.83, "lower_1sd": -10.0, "upper_1sd": 28.0}
    text = _text([0.0, 5.0, 30.0], summary)
    assert "-10" not in text
    assert "83% of ICBs were within one standard deviation of the mean, that is up to 28" in text


# ------------------------------------------------------------------------------ ties


def test_many_icbs_at_zero_are_counted_not_one_named() -> None:
    text = _text([0.0] * 17 + [4.0, 12.0, 31.0])
    assert "the lowest in" not in text
    assert "17 ICBs had no medical photography tests recorded (a rate of 0)." in text
    assert "The highest standardised rate was in NHS Area 19 ICB (31 per 10,000, 3.4 times" in text


def test_a_few_icbs_at_zero_are_named() -> None:
    text = _text([0.0, 0.0, 7.0])
    assert "2 ICBs had no medical photography tests recorded (a rate of 0): " in text
    assert "NHS Area 0 ICB and NHS Area 1 ICB." in text


def test_one_icb_at_zero() -> None:
    text = _text([0.0, 7.0, 9.0])
    assert "NHS Area 0 ICB had no medical photography tests recorded (a rate of 0)." in text


def test_no_tie_keeps_the_publication_wording() -> None:
    text = _text([2.0, 7.0, 18.0])
    assert (
        "The highest standardised rate was in NHS Area 2 ICB (18 per 10,000, 2.0 times the "
        "national rate) and the lowest in NHS Area 0 ICB (2.0)." in text
    )


def test_ties_at_the_top_and_a_nonzero_bottom_are_shared() -> None:
    # 18.2 and 17.9 both print as 18; 2.04 and 1.96 both print as 2.0
    text = _text([2.04, 1.96, 7.0, 18.2, 17.9])
    assert (
        "The highest standardised rate, 18 per 10,000 (2.0 times the national rate), was "
        "shared by NHS Area 3 ICB and NHS Area 4 ICB" in text
    )
    assert "the lowest, 2.0 per 10,000, was shared by NHS Area 1 ICB and NHS Area 0 ICB." in text


def test_every_icb_with_the_same_rate() -> None:
    text = _text([9.0, 9.0, 9.0])
    assert "All 3 ICBs with a rate had the same standardised rate, 9 per 10,000." in text
    assert "highest" not in text


def test_a_tie_of_many_is_counted() -> None:
    text = _text([1.0, 30.0, 30.0, 30.0, 30.0])
    assert "was shared by 4 ICBs and the lowest in NHS Area 0 ICB (1.0)." in text


# ------------------------------------------------------------------------------ Annex A leads


@pytest.mark.parametrize(
    ("lead", "table"),
    [
        (txt.annex_a1_lead, "A.1"),
        (txt.annex_a2_lead, "A.2"),
        (txt.annex_a3_lead, "A.3"),
        (txt.annex_a4_lead, "A.4"),
    ],
)
def test_an_empty_annex_table_is_said_to_list_none(lead: Any, table: str) -> None:
    empty = lead(0, 0.05, 5000)
    assert f"so Table {table} lists none." in empty
    assert "are listed" not in empty
    assert "more than 5% and 5,000" in empty
    full = lead(2, 0.05, 5000)
    assert f"listed in Table {table}" in full
    assert "lists none" not in full


def _inputs(fx: Any, *, missing: bool, thresholds: Any = None) -> ReportInputs:
    info = icb_info(fx.cube.icb_codes)
    kwargs = {"thresholds": thresholds} if thresholds is not None else {}
    annex = annex_a(
        fx.cube,
        provider_missing=provider_missing_table() if missing else None,
        icb_names={c: i.name for c, i in info.items()},
        **kwargs,
    )
    return ReportInputs(
        cube=fx.cube, rates=fx.rates, ratios=fx.ratios, annex=annex, icbs=info, period="2023/24"
    )


@pytest.fixture(scope="module")
def fx() -> Any:
    return make_fixture(n_measures=2, n_icbs=8)


def test_table_a4_not_produced_is_said_and_how_to_produce_it(fx: Any, tmp_path: Path) -> None:
    out = tmp_path / "no_a4"
    write_report(_inputs(fx, missing=False), out, formats=("html", "xlsx"), measures=[], quiet=True)
    page = (out / "report.html").read_text()
    assert "Table A.4 (ICBs with reduced rates" in page
    assert "was not produced" in page and "--provider-missing FILE" in page
    assert not (out / "annex_a_table_a4.csv").exists()
    # and in the workbook's notes
    from openpyxl import load_workbook

    wb = load_workbook(out / "annex_b.xlsx", read_only=True)
    cells = [c for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for c in row]
    assert any(isinstance(c, str) and "Table A.4 (ICBs with reduced rates" in c for c in cells)


def test_table_a4_given_has_no_not_produced_note(fx: Any, tmp_path: Path) -> None:
    out = tmp_path / "a4"
    write_report(_inputs(fx, missing=True), out, formats=("html",), measures=[], quiet=True)
    page = (out / "report.html").read_text()
    assert "was not produced" not in page
    assert "Table A.4." in page


def test_empty_table_a2_is_said_in_the_page(fx: Any, tmp_path: Path) -> None:
    from didcore.quality import QualityThresholds

    # thresholds no provider can reach: Tables A.1-A.3 are empty
    strict = QualityThresholds(
        no_practice_count=10**9, provider_missing_count=10**9, icb_missing_count=10**9
    )
    out = tmp_path / "empty"
    inputs = _inputs(fx, missing=True, thresholds=strict)
    assert inputs.annex.table_a2.num_rows == 0
    write_report(inputs, out, formats=("html",), measures=[], quiet=True)
    page = (out / "report.html").read_text()
    assert "so Table A.2 lists none." in page
    assert "are listed in Table A.2" not in page


# ------------------------------------------------------------------------------ same-year previous


@pytest.mark.parametrize("label", ["2023/24", "2023-24", " 2023 / 24 "])
def test_previous_of_the_same_year_is_refused(label: str) -> None:
    prev = PreviousReport(period=label, national={"X-ray": 1.0})
    with pytest.raises(InputError, match=r"^--previous old: that report is for .*earlier year"):
        check_previous_period(prev, "2023/24", "old")


@pytest.mark.parametrize(
    ("earlier", "published"),
    [("2022/23", "2023/24"), ("April 2022 to March 2023", "April 2023 to March 2024"), ("x", None)],
)
def test_previous_of_another_period_is_accepted(earlier: str, published: str | None) -> None:
    check_previous_period(PreviousReport(period=earlier, national={}), published, "old")


def test_text_periods_compare_without_case_or_spacing() -> None:
    prev = PreviousReport(period="April 2023  to March 2024", national={})
    with pytest.raises(InputError):
        check_previous_period(prev, "april 2023 to march 2024", "old")


def test_write_report_refuses_its_own_year_as_previous(fx: Any, tmp_path: Path) -> None:
    first = tmp_path / "2023-24"
    write_report(_inputs(fx, missing=False), first, formats=("csv",), measures=[], quiet=True)
    with pytest.raises(InputError) as info:
        write_report(
            _inputs(fx, missing=False),
            tmp_path / "again",
            previous=first,
            formats=("csv",),
            quiet=True,
        )
    assert "\n" not in str(info.value)
    assert "2023/24, the period being published" in str(info.value)


# ------------------------------------------------------------------------------ --period, --title


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_small_inputs(tmp_path_factory.mktemp("small_text"), rows=6_000)


def test_period_and_title_reach_the_report_and_same_year_is_refused(
    small: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "r"
    common = {
        "lookups": small["lookups"],
        "population": small["population"],
        "formats": ("csv",),
        "quiet": True,
    }
    run_report(
        [small["extract"]],
        out_dir=out,
        period="April 2023 to March 2024",
        title="Imaging rates, April 2023 to March 2024",
        **common,
    )
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["period"] == "April 2023 to March 2024"
    assert prov["title"] == "Imaging rates, April 2023 to March 2024"
    year = prov["years"]["published"]
    # the same year again, worded as a financial year this time: refused before any output
    again = tmp_path / "again"
    with pytest.raises(InputError, match="the period being published"):
        run_report([small["extract"]], out_dir=again, previous=out, period=year, **common)
    assert not again.exists()


def test_cli_passes_period_and_title(monkeypatch: pytest.MonkeyPatch) -> None:
    import didcore.report.pipeline as pipeline
    from didcore.cli import main

    seen: list[dict[str, object]] = []

    def fake_run_report(*args: object, **kwargs: object) -> object:
        seen.append(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr(pipeline, "run_report", fake_run_report)
    argv = ["report", "x.csv", "--population", "p", "--out", "o", "--year", "2023/24", "-q"]
    with pytest.raises(SystemExit):
        main([*argv, "--period", " 2023/24 ", "--title", "DID rates 2023/24"])
    with pytest.raises(SystemExit):
        main(argv)
    assert (seen[0]["period"], seen[0]["title"]) == ("2023/24", "DID rates 2023/24")
    assert (seen[1]["period"], seen[1]["title"]) == (None, None)


def test_cli_refuses_a_blank_period(capsys: pytest.CaptureFixture[str]) -> None:
    from didcore.cli import main

    argv = ["report", "x.csv", "--population", "p", "--out", "o", "--period", "  "]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--period" in err


# ------------------------------------------------------------------------------ clusters


def _regional(high_in: str, n_high: int) -> list[dict[str, Any]]:
    """20 ICBs in four regions of 5; ``n_high`` of ``high_in``'s are the top rates, and the
    rest of that region low enough that its average is near the national rate."""
    rows = []
    regions = ["London", "South West", "Midlands", "North West"]
    for i in range(20):
        region = regions[i // 5]
        rate = 10.0 + (i % 5) * 0.1
        if region == high_in:
            rate = 14.0 + i * 0.1 if i % 5 < n_high else 2.0
        rows.append(
            {
                "icb_code": f"QB{i:03d}",
                "icb_name": f"NHS B{i}",
                "region": region,
                "standardised_rate": rate,
            }
        )
    return rows


def test_a_cluster_the_region_average_misses_is_said() -> None:
    rows = _regional("Midlands", 3)
    mean = sum(r["standardised_rate"] for r in rows if r["region"] == "Midlands") / 5
    assert 0.95 < mean / 10.0 < 1.05  # the regional sentence names no region
    assert txt.cluster_sentence(rows, []) == (
        "3 of the 4 ICBs with the highest rates (the highest fifth) were in the Midlands region."
    )
    text = " ".join(txt.measure_paragraphs("MRI", 4, rows, {"rate_per_10000": 10.0}, None))
    assert "little consistent regional variation" in text
    assert "3 of the 4 ICBs with the highest rates" in text


def test_a_region_already_named_or_a_scatter_is_not_a_cluster() -> None:
    rows = _regional("Midlands", 3)
    assert txt.cluster_sentence(rows, ["Midlands"]) == ""
    # two of the top four in one region: no cluster
    assert "highest" not in txt.cluster_sentence(_regional("Midlands", 2), [])
    # too few ICBs to speak of fifths
    assert txt.cluster_sentence(rows[:9], []) == ""
