"""Build reports/report.html from the metrics, plots, profile and contract the stages wrote."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from pipeline.common.config import validate
from pipeline.common.errors import PipelineError
from pipeline.common.io import write_text
from pipeline.report.inputs import ReportData, ReportPaths, load_report_data
from pipeline.report.sections import render


@dataclass
class ReportConfig:
    """The `report` config group (configs/report/default.yaml)."""

    output: str = "reports/report.html"
    models: list[str] = field(default_factory=lambda: ["baseline", "lightgbm", "text_model"])
    metrics: list[str] = field(
        default_factory=lambda: ["accuracy", "macro_f1", "log_loss", "roc_auc", "pr_auc", "brier"]
    )
    title: str = "Model report"

    def __post_init__(self) -> None:
        if not self.models:
            raise PipelineError(
                "report.models is empty",
                where="configs/report",
                fix="list the model stages to compare, e.g. [baseline, lightgbm, text_model]",
            )
        if not self.output.endswith(".html"):
            raise PipelineError(
                f"report.output must be an .html file, got {self.output!r}",
                where="configs/report",
                fix="set output: reports/report.html",
            )


@dataclass(frozen=True)
class ReportResult:
    """What was written and what it shows."""

    path: Path
    data: ReportData
    bytes_written: int


def build_report(
    config: ReportConfig, root: Path = Path("."), paths: ReportPaths | None = None
) -> ReportResult:
    """Read every input below `root` and write the page atomically to `root / config.output`."""
    data = load_report_data(config.models, (paths or ReportPaths()).under(root))
    page = render(data, config.title, config.metrics)
    target = root / config.output
    write_text(target, page)
    return ReportResult(target, data, len(page.encode("utf-8")))


def report_entry(cfg: DictConfig) -> str:
    """Stage entry: validate the `report` group, build the page, summarise in one line."""
    config = validate(cfg.report, ReportConfig, "report")
    result = build_report(config)
    statuses = ", ".join(f"{m.name} {m.status}" for m in result.data.models)
    champion = result.data.champion or "none"
    return f"{result.path} ({result.bytes_written / 1024:.0f} KiB; {statuses}; champion {champion})"
