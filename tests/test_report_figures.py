"""Figures and page layout: one title per figure, titles never cut, SVG text kept, Contents order.

The charts are drawn directly (fast) for the title and SVG checks; the page checks write a report
from the hand-built fixture for the two measures with the longest names (the ones whose funnel
plot titles, 13 and 14, used to be cut off).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from _report_fixtures import make_fixture
from didcore.quality import annex_a
from didcore.report import charts, maps
from didcore.report.pipeline import write_report
from didcore.report.reference import icb_info
from didcore.report.tables import ReportInputs

LONG = (
    "Funnel plot 14. Abdomen or Pelvis Ultrasound: standardised rate against expected tests, "
    "financial year 2023/24"
)


def _points(n: int = 12) -> list[charts.IcbPoint]:
    out = []
    for i in range(n):
        rate = 80.0 + 7.0 * i
        out.append(
            charts.IcbPoint(
                code=f"Q{i:02d}",
                label=f"ICB number {i}",
                region="London" if i % 2 else "Midlands",
                observed=rate * 10,
                expected=800.0 + 50 * i,
                rate=rate,
                lower=rate - 5,
                upper=rate + 5,
                funnel="high" if i == n - 1 else "within",
            )
        )
    return out


def _figures(title: str) -> dict[str, Any]:
    pts = _points()
    return {
        "bar": charts.bar_chart(pts, national_rate=100.0, title=title, measure="X-ray"),
        "funnel": charts.funnel_plot(pts, national_rate=100.0, title=title, measure="X-ray"),
        "map": maps.choropleth({p.code: p.rate for p in pts}, title=title),
        "hex": maps.hex_map({p.code: p.rate for p in pts}, title=title),
    }


@pytest.mark.parametrize("title", [LONG, LONG + " " + LONG, "Graph 1. X-ray"])
def test_titles_are_wrapped_within_the_figure(title):
    for kind, fig in _figures(title).items():
        fig.canvas.draw()  # runs constrained layout, as saving does
        renderer = fig.canvas.get_renderer()
        box = fig.bbox
        heading = fig._suptitle
        assert heading is not None, kind
        ext = heading.get_window_extent(renderer)
        assert ext.x0 >= box.x0 and ext.x1 <= box.x1, (kind, ext, box)
        assert ext.y0 >= box.y0 and ext.y1 <= box.y1, (kind, ext, box)
        # wrapped, not shortened: every word is still there
        assert heading.get_text().split() == title.split(), kind
        # nothing else of the figure is drawn over the title
        for ax in fig.axes:
            if ax.get_visible() and ax.axison:
                assert ax.get_window_extent(renderer).y1 <= ext.y0 + 1, kind


def test_long_titles_take_more_than_one_line_and_short_ones_one():
    fig = charts.funnel_plot(_points(), national_rate=100.0, title=LONG, measure="X-ray")
    assert "\n" in fig._suptitle.get_text()
    fig = charts.bar_chart(_points(), national_rate=100.0, title="Graph 1. X-ray", measure="X")
    assert fig._suptitle.get_text() == "Graph 1. X-ray"


def test_svg_keeps_text_as_text():
    fig = charts.funnel_plot(_points(), national_rate=100.0, title=LONG, measure="X-ray")
    svg = charts.render(fig, ("svg",))["svg"].decode("utf-8")
    texts = re.findall(r"<text\b[^>]*>(.*?)</text>", svg, flags=re.S)
    joined = " ".join(texts)
    assert "Funnel plot 14." in joined
    for line in fig._suptitle.get_text().split("\n"):
        assert line in texts or line.replace("&", "&amp;") in texts
    assert "Standardised rate per 10,000" in joined  # the axis label too
    # reproducible from run to run, as before
    assert charts.render(fig, ("svg",))["svg"].decode("utf-8") == svg


# ------------------------------------------------------------------------------ the page


class _Page(HTMLParser):
    """Collects the Contents links, the headings of the linked sections, and the figures."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict[str, str | None]]] = []
        self.toc: list[tuple[str, str]] = []  # (id, text) in Contents order
        self.heading_of: dict[str, str] = {}
        self.id_order: list[str] = []
        self.figcaptions: list[tuple[str, str]] = []  # (class, text)
        self._pending: list[str] = []  # ids waiting for their first heading
        self._capture: list[str] | None = None
        self._capture_tag = ""
        self._capture_kind = ""
        self._capture_attrs: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        in_nav = any(t == "nav" for t, _ in self.stack)
        if a.get("id"):
            self.id_order.append(str(a["id"]))
            if not in_nav and tag != "figure":
                self._pending.append(str(a["id"]))
        if in_nav and tag == "a":
            self._start("a", "toc", a)
        elif tag in ("h2", "h3", "h4") and self._pending and not in_nav:
            self._start(tag, "heading", a)
        elif tag == "figcaption":
            self._start(tag, "figcaption", a)
        if tag not in ("img", "meta", "br", "link", "input"):
            self.stack.append((tag, a))

    def _start(self, tag: str, kind: str, attrs: dict[str, str | None]) -> None:
        self._capture, self._capture_tag, self._capture_kind = [], tag, kind
        self._capture_attrs = attrs

    def handle_endtag(self, tag: str) -> None:
        if self._capture is not None and tag == self._capture_tag:
            text = " ".join("".join(self._capture).split())
            if self._capture_kind == "toc":
                self.toc.append((str(self._capture_attrs["href"])[1:], text))
            elif self._capture_kind == "heading":
                for key in self._pending:
                    self.heading_of[key] = text
                self._pending = []
            else:
                self.figcaptions.append((str(self._capture_attrs.get("class") or ""), text))
            self._capture = None
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._capture is not None:
            self._capture.append(data)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    fx = make_fixture()
    info = icb_info(fx.cube.icb_codes)
    annex = annex_a(fx.cube, icb_names={c: i.name for c, i in info.items()})
    inputs = ReportInputs(
        cube=fx.cube, rates=fx.rates, ratios=fx.ratios, annex=annex, icbs=info, period="2023/24"
    )
    out = tmp_path_factory.mktemp("figures")
    write_report(
        inputs,
        out,
        formats=("svg", "html"),
        measures=["Kidney or Bladder Ultrasound", "Abdomen or Pelvis Ultrasound"],
        quiet=True,
    )
    return (out / "report.html").read_text(encoding="utf-8"), out


def _parse(text: str) -> _Page:
    parser = _Page()
    parser.feed(text)
    parser.close()
    return parser


def test_contents_order_and_numbers_match_the_sections(page):
    text, _out = page
    parsed = _parse(text)
    assert len(parsed.toc) >= 20  # 4 sections, their subsections, 14 measures, provenance
    toc_ids = [i for i, _ in parsed.toc]
    # the Contents lists the sections in the order they appear on the page
    assert toc_ids == [i for i in parsed.id_order if i in set(toc_ids)]
    # and each entry reads exactly as its section's heading (same number, same title)
    for key, entry in parsed.toc:
        assert parsed.heading_of[key] == entry, key
    numbers = [entry.split(" ", 1)[0] for _, entry in parsed.toc]
    assert numbers[:4] == ["1", "2", "2.1", "2.2"]
    assert "2.2.14" in numbers and "4.2" in numbers
    assert "columns:" not in text.split("<nav", 1)[0].split("nav ol", 1)[1].split("}", 1)[0]


def test_each_figure_title_is_shown_once(page):
    text, out = page
    parsed = _parse(text)
    assert len(parsed.figcaptions) == 6  # map, graph and funnel plot for two measures
    for cls, caption in parsed.figcaptions:
        # the title is drawn in the image; the caption is there for screen readers only
        assert "visually-hidden" in cls.split(), caption
    assert ".visually-hidden" in text
    funnel_14 = next(c for _, c in parsed.figcaptions if c.startswith("Funnel plot 14."))
    svg = (out / "charts" / "funnel_14_abdomen-or-pelvis-ultrasound.svg").read_text()
    assert "Funnel plot 14." in svg and funnel_14.split()[-1] in svg


def test_row_headers_left_aligned_hashes_wrap_and_annex_a_says_icb(page):
    text, _out = page
    assert re.search(r"tbody th \{[^}]*text-align: left;[^}]*font-weight: normal", text)
    assert re.search(r"td\.wrap \{[^}]*break-all", text)
    annex = text.split('id="annex-a"', 1)[1].split('id="annex-b"', 1)[0]
    assert "Integrated Care Board" not in annex
