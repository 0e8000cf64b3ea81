"""The HTML report in a real headless Chromium: sections, numbers that agree, nothing overlapping.

Screenshots are kept in ``test-artifacts/`` (not committed) for a person to look at.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudbalance.demo.run import DemoResult

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Chromium from the system packages (apt-get install chromium)"
)

Box = dict[str, float]


def _overlap(a: Box, b: Box, tolerance: float = 1.0) -> bool:
    return (
        a["x"] + a["width"] - tolerance > b["x"]
        and b["x"] + b["width"] - tolerance > a["x"]
        and a["y"] + a["height"] - tolerance > b["y"]
        and b["y"] + b["height"] - tolerance > a["y"]
    )


@pytest.fixture(scope="module")
def page(demo: DemoResult) -> Iterator[tuple[Any, list[str]]]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            opened = browser.new_page(viewport={"width": 1366, "height": 900})
            requests: list[str] = []
            opened.on("request", lambda r: requests.append(r.url))
            opened.goto(demo.run.reports["html"].as_uri())
            yield opened, requests
        finally:
            browser.close()


def test_the_report_renders_its_charts_in_chromium(
    page: tuple[Any, list[str]], artifacts: Path
) -> None:
    view, requests = page
    figures = view.locator("figure svg")
    assert figures.count() >= 8
    for i in range(figures.count()):
        box = figures.nth(i).bounding_box()
        assert box is not None
        assert box["width"] > 300
        assert box["height"] > 100
    # every chart drew lines (history, forecast), not an empty frame
    assert view.locator("figure svg path").count() > 50
    assert view.get_by_text("Expected saving", exact=True).is_visible()
    view.screenshot(path=str(artifacts / "report.png"), full_page=True)
    view.emulate_media(media="print")
    view.screenshot(path=str(artifacts / "report-print.png"), full_page=True)
    view.emulate_media(media="screen")
    assert all(url.startswith("file://") for url in requests), requests
    assert (artifacts / "report.png").stat().st_size > 20_000


def test_the_new_sections_are_there_with_their_numbers(
    page: tuple[Any, list[str]], demo: DemoResult
) -> None:
    view, _ = page
    for anchor in (
        "spend",
        "budgets",
        "savings",
        "unattributed",
        "locations",
        "commitments",
        "anomalies",
        "spikes",
    ):
        section = view.locator(f"section#{anchor}")
        assert section.count() == 1, anchor
        assert section.is_visible(), anchor
    as_of = view.locator("#data-as-of").inner_text()
    assert "Data as of 2026-11-01 00:00 UTC" in as_of  # the data's end, not the run's date
    assert "data as of 2026-11-01" in view.title()
    # the cost no workload owns: 6,000 USD in the demo (support less credits)
    assert "6,000.00 USD" in view.locator("[data-kpi='unattributed']").inner_text()
    assert view.locator("section#locations tbody tr").count() >= 4
    assert view.locator("section#savings tbody tr").count() == 1  # the demo's applied plan
    assert view.locator("section#budgets tbody tr").count() == 2


def test_the_spike_tile_agrees_with_the_run_table_and_the_spike_table(
    page: tuple[Any, list[str]], demo: DemoResult
) -> None:
    from cloudbalance.series import Forecasts
    from cloudbalance.store import Store

    view, _ = page
    tile = int(view.locator("[data-kpi='spikes'] b").inner_text())
    run_row = view.locator("section#run tr", has_text="forecast").inner_text()
    from_run = int(re.search(r"(\d+) predicted spike", run_row).group(1))  # type: ignore[union-attr]
    rows = view.locator("section#spikes tbody tr").count()
    assert tile == from_run == rows
    with Store(demo.store) as store:
        price_spikes = len(Forecasts.from_store(store).spikes_of("price"))
    # spot price spikes count as spikes too, in the tile and the table alike
    assert view.locator("section#spikes tbody tr", has_text="(price)").count() == price_spikes


def test_nothing_overlaps(page: tuple[Any, list[str]], artifacts: Path) -> None:
    view, _ = page
    # page blocks: tiles, sections' headings, tables and figures never sit on each other
    blocks = view.locator(".kpi, h1, h2, table, figure, .note, p.empty")
    boxes = [blocks.nth(i).bounding_box() for i in range(blocks.count())]
    visible = [b for b in boxes if b is not None and b["width"] > 0 and b["height"] > 0]
    for i, a in enumerate(visible):
        for b in visible[i + 1 :]:
            assert not _overlap(a, b), (a, b)
    # in each chart, the legend sits outside the plotting area (it covers no data)
    figures = view.locator("figure")
    checked = 0
    for i in range(figures.count()):
        figure = figures.nth(i)
        legend = figure.locator("g[id^='legend']").first
        axes = figure.locator("g[id^='axes'] > g[id^='patch']").first
        if legend.count() == 0 or axes.count() == 0:
            continue
        legend_box, axes_box = legend.bounding_box(), axes.bounding_box()
        assert legend_box is not None
        assert axes_box is not None
        assert not _overlap(legend_box, axes_box), (i, legend_box, axes_box)
        checked += 1
    assert checked >= 8
    view.locator("section#budgets").screenshot(path=str(artifacts / "report-budgets.png"))
