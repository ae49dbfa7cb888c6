"""The report renders in a real browser: headless Chromium, offline, from a file:// URL."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.report.core import ReportConfig, build_report

from .htmltables import parse

# Debian: apt-get install -y chromium. Without it this one test is skipped, never faked.
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
        timeout=90,
        check=False,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(report_project: Path, tmp_path: Path) -> None:
    report = build_report(ReportConfig(), report_project).path
    url = report.resolve().as_uri()
    # --virtual-time-budget lets the load event (and the page's image check) run before the dump.
    proc = chromium("--virtual-time-budget=10000", "--dump-dom", url, profile=tmp_path / "p1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = parse(proc.stdout)
    # Every embedded image decoded to a real bitmap (naturalWidth > 0) inside the browser.
    assert dom.body_attrs.get("data-images-total") == "9"
    assert dom.body_attrs.get("data-images-rendered") == "9"
    rows = dom.tables["model-table"]
    models = [r[0].replace("champion", "") for r in rows[1:]]
    assert models == ["baseline", "baseline", "lightgbm", "lightgbm", "text_model"]
    assert rows[3][1:3] == ["val", "0.8600"]

    shot = tmp_path / "report.png"
    proc = chromium("--window-size=1280,1600", f"--screenshot={shot}", url, profile=tmp_path / "p2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1280, 1600)
        # The page painted content: many distinct colours (text, tables, plots), not a blank page.
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 50
