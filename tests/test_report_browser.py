"""report.html as a browser lays it out: headless Chromium renders a small report, and a script
added to a copy of the page checks that every image loads, nothing runs past the right edge of
the page, and the Contents lists the sections in their order.

Chromium (the Debian package ``chromium``; ``scripts/test.sh`` installs it when run as root) is
driven with ``--headless --dump-dom``: the script runs on the page's ``load`` event, writes its
findings as JSON into a ``<pre>`` element, and the DOM Chromium prints is parsed here, so no
DevTools client or Python package is needed. The tests are skipped, saying so, where no
Chromium is installed.

Widths: a 1280-pixel screen, and an A4 page (210 mm at 96 px per inch, less the template's 1 cm
``@page`` margins: 718 px) with the template's ``@media print`` rules applied to the screen (the
copy rewrites ``@media print`` as ``@media all``; ``--dump-dom`` lays out for the screen only).
Every ``<details>`` is opened first, as a reader would, so the tables inside are laid out too.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from _report_fixtures import make_fixture, provider_missing_table, write_small_inputs
from didcore.quality import annex_a
from didcore.report.pipeline import write_report
from didcore.report.provenance import build_provenance
from didcore.report.reference import icb_info
from didcore.report.tables import ReportInputs

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium not installed: `apt-get install chromium` (Debian; "
    "scripts/test.sh installs it when run as root) to check the HTML report in a browser",
)

#: (name, window width in CSS pixels, apply the print rules)
WIDTHS = (("screen-1280", 1280, False), ("a4-print", 718, True))

#: Measures drawn (the tables have all 14; two measures' figures keep the page quick to build).
DRAWN = ("X-ray", "Medical Photography")

CHECKS_JS = r"""
window.addEventListener("load", function () {
  var out = {images: [], embeds: [], overflow: [], contents: [], sections: []};
  document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  var width = window.innerWidth;
  out.width = width;
  out.scrollWidth = document.documentElement.scrollWidth;
  document.querySelectorAll("img").forEach(function (img) {
    var fig = img.closest("figure");
    out.images.push({id: fig ? fig.id : "", complete: img.complete,
                     naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight});
  });
  document.querySelectorAll("object, svg, embed, iframe").forEach(function (el) {
    var r = el.getBoundingClientRect();
    out.embeds.push({tag: el.tagName, width: r.width, height: r.height});
  });
  document.querySelectorAll("body *").forEach(function (el) {
    if (el.closest(".visually-hidden, script, #didcore-checks")) return;
    var r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > width + 0.5) {
      out.overflow.push({tag: el.tagName, id: el.id, cls: String(el.className),
                         right: Math.round(r.right),
                         text: (el.textContent || "").trim().replace(/\s+/g, " ").slice(0, 80)});
    }
  });
  function norm(s) { return (s || "").replace(/\s+/g, " ").trim(); }
  function order(el) {
    return Array.prototype.indexOf.call(document.querySelectorAll("*"), el);
  }
  document.querySelectorAll("nav a[href^='#']").forEach(function (a) {
    var target = document.getElementById(a.getAttribute("href").slice(1));
    var heading = target && (/^H[1-6]$/.test(target.tagName) ? target
                             : target.querySelector("h1, h2, h3, h4, h5, h6"));
    out.contents.push({href: a.getAttribute("href"), text: norm(a.textContent),
                       top: a.getBoundingClientRect().top,
                       found: !!target, heading: heading ? norm(heading.textContent) : null,
                       order: target ? order(target) : -1,
                       target_top: target ? target.getBoundingClientRect().top : -1});
  });
  document.querySelectorAll("main section[id], main h2[id], main h3[id]").forEach(function (el) {
    out.sections.push("#" + el.id);
  });
  var pre = document.createElement("pre");
  pre.id = "didcore-checks";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
"""


def _render(page: Path, width: int, profile: Path) -> dict[str, Any]:
    """Load ``page`` in headless Chromium ``width`` pixels wide; the checks' findings."""
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",  # as root in a container there is no sandbox to use
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--window-size={width},1000",
        "--virtual-time-budget=10000",
        "--dump-dom",
        page.as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    found = re.search(r'<pre id="didcore-checks">(.*?)</pre>', done.stdout, re.S)
    if found is None:
        pytest.fail(
            f"Chromium printed no findings (exit {done.returncode}); its last messages:\n"
            + "\n".join(done.stderr.splitlines()[-15:])
        )
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report of 14 measures (figures for two), with input files at a long path, so the
    provenance table has long paths and SHA-256 hashes to fit on the page."""
    root = tmp_path_factory.mktemp("browser")
    deep = root / "imaging_extracts_received_from_every_provider_for_the_financial_year_2023_24"
    files = write_small_inputs(deep, rows=2_000)
    fx = make_fixture()
    info = icb_info(fx.cube.icb_codes)
    annex = annex_a(
        fx.cube,
        provider_missing=provider_missing_table(),
        icb_names={c: i.name for c, i in info.items()},
    )
    inputs = ReportInputs(
        cube=fx.cube, rates=fx.rates, ratios=fx.ratios, annex=annex, icbs=info, period="2023/24"
    )
    prov = build_provenance(
        sources=[files["extract"]],
        lookups=files["lookups"],
        population=files["population"],
        provider_missing=None,
        previous=None,
        cube=fx.cube,
        options={"overdispersion": "none"},
        period="2023/24",
        title="Diagnostic Imaging Dataset: Standardised ICB rates 2023/24",
    )
    out = root / "report"
    write_report(
        inputs,
        out,
        formats=("png", "html"),
        provenance=prov,
        measures=DRAWN,
        quiet=True,
        n_jobs=1,  # six figures: not worth starting worker processes
    )
    return out / "report.html"


@pytest.fixture(scope="module")
def rendered(report: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The checks' findings at each width (:data:`WIDTHS`), Chromium run once for each."""
    work = tmp_path_factory.mktemp("chromium")
    text = report.read_text(encoding="utf-8")
    assert "</body>" in text
    out = {}
    for name, width, printing in WIDTHS:
        page_text = text.replace("@media print", "@media all") if printing else text
        if printing:
            assert page_text != text, "the template has no @media print rules to apply"
        # beside the original, so its relative links resolve the same way
        page = report.with_name(f"browser-{name}.html")
        page.write_text(
            page_text.replace("</body>", f"<script>{CHECKS_JS}</script></body>"), encoding="utf-8"
        )
        out[name] = _render(page, width, work / f"profile-{name}")
        page.unlink()
    return out


@pytest.mark.parametrize("name", [w[0] for w in WIDTHS])
def test_every_image_loads(rendered, name):
    found = rendered[name]
    assert len(found["images"]) == 3 * len(DRAWN)
    broken = [i for i in found["images"] if not (i["complete"] and i["naturalWidth"] > 0)]
    assert broken == [], f"images that did not load: {broken}"
    assert all(e["width"] > 0 and e["height"] > 0 for e in found["embeds"]), found["embeds"]


@pytest.mark.parametrize("name", [w[0] for w in WIDTHS])
def test_nothing_overflows_the_page_width(rendered, name):
    found = rendered[name]
    assert found["width"] == dict((w[0], w[1]) for w in WIDTHS)[name]
    assert found["scrollWidth"] <= found["width"], "the page scrolls sideways"
    # the outermost element past the edge names the culprit (a table, a long hash)
    culprits = [e for e in found["overflow"] if e["tag"] in {"TABLE", "IMG", "P", "PRE", "UL"}]
    assert found["overflow"] == [], (
        f"{len(found['overflow'])} elements end past the right edge ({found['width']} px), "
        f"e.g. {(culprits or found['overflow'])[:5]}"
    )


def test_provenance_hashes_and_paths_fit_in_print(rendered, report):
    """The provenance table's long paths and SHA-256 hashes wrap within an A4 page."""
    text = report.read_text(encoding="utf-8")
    assert re.search(r"<td class=\"wrap\">[0-9a-f]{64}</td>", text), "no hash in the table"
    assert "imaging_extracts_received_from_every_provider" in text
    assert not [e for e in rendered["a4-print"]["overflow"] if "sha256" in e["text"].lower()]


@pytest.mark.parametrize("name", [w[0] for w in WIDTHS])
def test_contents_follow_the_sections(rendered, name):
    contents = rendered[name]["contents"]
    assert contents, "no Contents links"
    missing = [c["href"] for c in contents if not c["found"]]
    assert missing == [], f"Contents links to nothing: {missing}"
    # every numbered section and heading with an id in main is listed, in document order
    assert [c["href"] for c in contents] == rendered[name]["sections"]
    orders = [c["order"] for c in contents]
    assert orders == sorted(orders)
    # read top to bottom: the Contents is one column, and the sections follow on the page
    tops = [c["top"] for c in contents]
    assert tops == sorted(tops) and len(set(tops)) == len(tops), "Contents not in one column"
    targets = [c["target_top"] for c in contents]
    assert targets == sorted(targets)
    # each entry reads as its heading, number included
    differ = [(c["text"], c["heading"]) for c in contents if c["text"] != c["heading"]]
    assert differ == [], f"Contents entries unlike their headings: {differ}"
