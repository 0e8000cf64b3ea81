"""The HTML report in a real headless Chromium: the charts render, and a screenshot is kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cloudbalance.demo.run import DemoResult

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Chromium from the system packages (apt-get install chromium)"
)


def test_the_report_renders_its_charts_in_chromium(demo: DemoResult, artifacts: Path) -> None:
    from playwright.sync_api import sync_playwright

    page_file = demo.run.reports["html"]
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
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.as_uri())
            figures = page.locator("figure svg")
            assert figures.count() >= 8
            for i in range(figures.count()):
                box = figures.nth(i).bounding_box()
                assert box is not None
                assert box["width"] > 300
                assert box["height"] > 100
            # every chart drew lines (history, forecast), not an empty frame
            assert page.locator("figure svg path").count() > 50
            assert page.get_by_text("Expected saving").is_visible()
            page.screenshot(path=str(artifacts / "report.png"), full_page=True)
            page.emulate_media(media="print")
            page.screenshot(path=str(artifacts / "report-print.png"), full_page=True)
        finally:
            browser.close()
    assert all(url.startswith("file://") for url in requests), requests
    assert (artifacts / "report.png").stat().st_size > 20_000
