"""Report: one self-contained HTML page from the files the other stages wrote for `cfg.models`.
A missing input is said on the page; an invalid one fails the stage and keeps the previous page."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from omegaconf import DictConfig

from pipeline.common.config import validate
from pipeline.common.errors import PipelineError
from pipeline.common.io import write_text
from pipeline.report.inputs import ReportData, assess, load
from pipeline.report.sections import render


@dataclass
class ReportConfig:
    """`configs/report/`: where the page goes and how its intervals are computed."""

    output: str = "reports/report.html"
    title: str = "Model report"
    bootstrap_resamples: int = 1000  # test-set resamples for the headline metric's 95% interval

    def __post_init__(self) -> None:
        if not self.output.endswith(".html") or self.bootstrap_resamples < 100:
            raise PipelineError(
                f"report.output must end in .html and report.bootstrap_resamples be at least "
                f"100; found {self.output!r} and {self.bootstrap_resamples}",
                where="configs/report",
                fix="e.g. output: reports/report.html, bootstrap_resamples: 1000",
            )


def build_report(
    config: ReportConfig, names: list[str], seed: int, root: Path = Path(".")
) -> tuple[Path, ReportData]:
    """Read the inputs below `root`, write the page atomically to `root / config.output`."""
    data = load(root, names)
    data = replace(data, assessment=assess(data, config.bootstrap_resamples, seed))
    target = root / config.output
    write_text(target, render(data, config.title))
    return target, data


def main(cfg: DictConfig) -> str:
    """Stage entry: the page for `cfg.models`; one line saying what it shows."""
    config = validate(cfg.report, ReportConfig, "report")
    path, data = build_report(config, list(cfg.models), int(cfg.seed))
    statuses = ", ".join(f"{m.name} {m.status}" for m in data.models)
    champion = data.contract.champion if data.contract else "none (no export yet)"
    return f"{path} ({path.stat().st_size / 1024:.0f} KiB; {statuses}; champion {champion})"
