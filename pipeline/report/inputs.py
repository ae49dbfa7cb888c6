"""Gather what the report shows from the files the other stages wrote (docs/architecture.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.common.errors import PipelineError

# Plot files in display order; any other PNG in plots/<model>/ follows, sorted by name.
PLOT_ORDER = ("roc", "pr", "confusion", "calibration")
IMPORTANCE_PLOT = "feature_importance"


@dataclass(frozen=True)
class ReportPaths:
    """Where the inputs live, relative to the project root (the stage's fixed paths)."""

    metrics_dir: Path = Path("metrics")
    plots_dir: Path = Path("plots")
    profile: Path = Path("data/processed/profile.json")
    export_dir: Path = Path("models/export")

    def under(self, root: Path) -> ReportPaths:
        """The same paths below another project root."""
        return ReportPaths(
            root / self.metrics_dir,
            root / self.plots_dir,
            root / self.profile,
            root / self.export_dir,
        )


@dataclass(frozen=True)
class ModelResult:
    """One model stage's outcome: trained (with metrics and plots), skipped or not run."""

    name: str
    status: str  # "trained" | "skipped" | "missing"
    reason: str = ""
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # split → metric → value
    plots: list[tuple[str, bytes]] = field(default_factory=list)  # (plot name, PNG bytes)
    importance: bytes | None = None  # feature_importance.png, when the model has one


@dataclass(frozen=True)
class ReportData:
    """Everything the page shows; missing optional inputs are None."""

    models: list[ModelResult]
    profile: dict[str, Any] | None
    etl_metrics: dict[str, Any] | None
    contract: dict[str, Any] | None
    parity: dict[str, Any] | None
    export_metrics: dict[str, Any] | None

    @property
    def champion(self) -> str | None:
        """The model the export stage chose (contract `champion`)."""
        return self.contract.get("champion") if self.contract else None


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from `path`, None when the file does not exist; a clear error when broken."""
    if not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PipelineError(
            f"not valid JSON ({exc})",
            where=str(path),
            fix="re-run the stage that writes it (dvc repro --force <stage>)",
        ) from None
    if not isinstance(payload, dict):
        raise PipelineError(
            f"expected a JSON object, found {type(payload).__name__}",
            where=str(path),
            fix="re-run the stage that writes it",
        )
    return payload


def _split_metrics(payload: dict[str, Any]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for split, values in payload.items():
        if isinstance(values, dict):
            out[split] = {k: float(v) for k, v in values.items() if isinstance(v, int | float)}
    return out


def _plots(plot_dir: Path) -> tuple[list[tuple[str, bytes]], bytes | None]:
    if not plot_dir.is_dir():
        return [], None
    files = {p.stem: p for p in plot_dir.glob("*.png")}
    order = [k for k in PLOT_ORDER if k in files]
    order += sorted(k for k in files if k not in PLOT_ORDER and k != IMPORTANCE_PLOT)
    importance = files.get(IMPORTANCE_PLOT)
    return (
        [(name, files[name].read_bytes()) for name in order],
        importance.read_bytes() if importance else None,
    )


def load_model(name: str, paths: ReportPaths) -> ModelResult:
    """Read metrics/<name>.json and plots/<name>/*.png for one model stage."""
    payload = read_json(paths.metrics_dir / f"{name}.json")
    if payload is None:
        return ModelResult(name, "missing", reason=f"no {paths.metrics_dir / name}.json")
    if payload.get("skipped"):
        reason = str(payload.get("reason") or "its stage skipped it (no text column in the data)")
        return ModelResult(name, "skipped", reason=reason)
    plots, importance = _plots(paths.plots_dir / name)
    return ModelResult(
        name, "trained", metrics=_split_metrics(payload), plots=plots, importance=importance
    )


def load_report_data(models: list[str], paths: ReportPaths) -> ReportData:
    """Read every input the report shows."""
    export = paths.export_dir
    contract = read_json(export / "contract.json")
    results = [load_model(name, paths) for name in models]
    # The export stage records why a model was skipped; prefer its words to the generic note.
    reasons = (contract or {}).get("skipped") or {}
    results = [
        replace(r, reason=str(reasons[r.name]))
        if r.status == "skipped" and isinstance(reasons.get(r.name), str)
        else r
        for r in results
    ]
    return ReportData(
        models=results,
        profile=read_json(paths.profile),
        etl_metrics=read_json(paths.metrics_dir / "etl.json"),
        contract=contract,
        parity=read_json(export / "parity.json"),
        export_metrics=read_json(paths.metrics_dir / "export.json"),
    )
