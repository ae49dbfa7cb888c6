"""The report renders in a real browser: headless Chromium, offline, from a file:// URL."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.report.core import ReportConfig, build_report
from tests.export.projects import MODELS
from tests.report.conftest import NAMES, Factory
from tests.report.htmltables import parse

# Debian: apt-get install -y chromium. Without it this test is skipped, never faked.
CHROMIUM = next(
    (
        found
        for name in ("chromium", "chromium-browser", "google-chrome")
        if (found := shutil.which(name))
    ),
    None,
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
]


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(project: Factory, tmp_path: Path) -> None:
    root = project("binary")
    report, _ = build_report(ReportConfig(bootstrap_resamples=200), NAMES, 0, root)
    url = report.resolve().as_uri()
    # --virtual-time-budget lets the load event (and the page's image check) run before the dump.
    proc = chromium("--virtual-time-budget=10000", "--dump-dom", url, profile=tmp_path / "p1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = parse(proc.stdout)
    # Every embedded image decoded to a real bitmap (naturalWidth > 0) inside the browser.
    images = str(2 * len(MODELS))
    assert dom.body_attrs.get("data-images-total") == images
    assert dom.body_attrs.get("data-images-rendered") == images
    truth = dom.tables["truth"]
    assert [r[0].removesuffix("champion") for r in truth[1:]] == ["base rate", *NAMES]
    assert dict(dom.tables["gate"])["candidate (best of this run)"] in MODELS

    shot = tmp_path / "report.png"
    proc = chromium("--window-size=1280,1600", f"--screenshot={shot}", url, profile=tmp_path / "p2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1280, 1600)
        # The page painted content: many distinct colours (text, tables, badges), not a blank page.
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 50
