"""The page, and its sections on the data, the export and the lineage."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipeline.report.comparison import models_section, plots_section, summary
from pipeline.report.html import cell, note, page, pairs, table
from pipeline.report.inputs import ReportData
from serving.schemas import SPLITS, Profile

TOP_LEVELS = 5  # category levels listed per column in the data section


def render(data: ReportData, title: str) -> str:
    """The whole page."""
    lineage = data.contract.lineage if data.contract else None
    subtitle = "lineage unknown (no export yet)" if lineage is None else "not in a git checkout"
    if lineage and lineage.git_commit:
        dirty = " (uncommitted changes)" if lineage.git_dirty else ""
        subtitle = f"git {lineage.git_commit}{dirty}"
    return page(
        title,
        subtitle,
        [
            ("summary", "At a glance", summary(data)),
            ("models", "Models on the test split", models_section(data)),
            ("plots", "Plots (test split)", plots_section(data)),
            ("data", "Data", data_section(data.profile)),
            ("export", "Export and serving parity", export_section(data)),
            ("lineage", "Lineage and MLflow runs", lineage_section(data)),
        ],
    )


def data_section(profile: Profile | None) -> str:
    """What the ETL produced: facts, rows, rejections, labels or target, per-column statistics."""
    if profile is None:
        return note("No data profile (data/processed/profile.json): run the ETL first.")
    split = profile.split
    facts: dict[str, Any] = {
        "data": profile.data,
        "source": profile.source,
        "task": profile.task,
        "target": profile.target,
        "rows read": profile.rows_in,
        "split": f"{split.method} {split.train:g}/{split.val:g}/{split.test:g}",
        "labels": ", ".join(profile.labels) if profile.is_classification else None,
        "positive class": profile.positive,
        "target transform": None
        if profile.target_transform == "none"
        else profile.target_transform,
    }
    rows = [[s, profile.rows[s]] for s in in_order(profile.rows)]
    parts = [
        pairs({k: v for k, v in facts.items() if v is not None}, "data-facts"),
        "<h3>Rows</h3>",
        table(["split", "rows"], rows, "rows-table"),
    ]
    if profile.rejected_reasons:
        rejected = list(profile.rejected_reasons.items())
        parts.append(table(["rejected because", "rows"], rejected, "rejected-table"))
    parts += (
        ["<h3>Label distribution</h3>", labels_table(profile)]
        if profile.is_classification
        else ["<h3>Target</h3>", target_table(profile)]
    )
    parts += ["<h3>Columns</h3>", columns_table(profile)]
    return "".join(parts)


def in_order(splits: Iterable[str]) -> list[str]:
    """train, val, test first, then the rest (rejected), whatever order the file has."""
    return sorted(splits, key=lambda s: SPLITS.index(s) if s in SPLITS else len(SPLITS))


def labels_table(profile: Profile) -> str:
    splits = in_order(profile.label_distribution)
    rows: list[list[Any]] = [[label] for label in profile.labels]
    for split in splits:
        counts = profile.label_distribution[split]
        total = sum(counts.values()) or 1
        for row in rows:
            row.append(f"{counts.get(row[0], 0):,} ({counts.get(row[0], 0) / total:.1%})")
    return table(["label", *splits], rows, "label-table")


def target_table(profile: Profile) -> str:
    stats = profile.target_stats
    quantiles = list(next(iter(stats.values())).quantiles) if stats else []
    rows = []
    for split in in_order(stats):
        t = stats[split]
        rows.append([split, t.count, t.mean, t.std, t.min, *map(t.quantiles.get, quantiles), t.max])
    headers = ["split", "rows", "mean", "std", "min", *(f"q{q}" for q in quantiles), "max"]
    return table(headers, rows, "target-table")


def columns_table(profile: Profile) -> str:
    rows = []
    for name, c in profile.columns.items():
        levels = ""
        if c.n_levels is not None:
            top = list((c.level_counts or {}).items())[:TOP_LEVELS]
            levels = f"{c.n_levels} levels: " + ", ".join(f"{k} ({v:,})" for k, v in top)
        empty = None if c.empty_rate is None else f"{c.empty_rate:.1%}"
        rows.append(
            [name, c.role, f"{c.null_rate:.1%}", c.min, c.max, c.mean, c.std, cell(levels), empty]
        )
    headers = ["column", "role", "null rate", "min", "max", "mean", "std", "levels", "empty texts"]
    return table(headers, rows, "column-table")


def export_section(data: ReportData) -> str:
    """The exported models, what a caller may send, and serving parity."""
    contract = data.contract
    if contract is None:
        return note("No export yet (models/export/contract.json).")
    models = [
        [m, e.kind, e.file, cell(e.sha256[:12]), e.version, e.mlflow and e.mlflow.registered_model]
        for m, e in contract.models.items()
    ]
    headers = ["model", "kind", "file", "sha256", "version", "registered model"]
    parts = [table(headers, models, "export-table")]
    if contract.skipped:
        parts.append(table(["model", "skipped because"], contract.skipped.items(), "skipped-table"))
    schema = []
    for f in contract.input_schema:
        seen = None if f.categories is None else len(f.categories)
        schema.append(
            [f.name, f.type, f.nullable, f.min, f.max, seen, f.max_length, f.datetime_format]
        )
    headers = ["field", "type", "nullable", "min", "max", "categories seen", "max length"]
    parts += ["<h3>Input schema</h3>", table([*headers, "datetime format"], schema, "schema-table")]
    parts.append("<h3>Serving parity</h3>")
    if data.parity is None:
        return "".join(parts) + note("no parity report (models/export/parity.json)")
    checks = [
        [c.model, c.name, c.rows, c.max_abs_diff, c.tolerance, c.label_mismatches, c.passed]
        for c in data.parity.checks
    ]
    headers = ["model", "check", "rows", "max |Δ|", "tolerance", "labels differing", "passed"]
    intro = "The exported files, run by the server's own code on test records as callers send them"
    parts += [note(f"{intro} and on edge records."), table(headers, checks, "parity-table")]
    return "".join(parts)


def lineage_section(data: ReportData) -> str:
    """Git state, input hashes and each model's MLflow run."""
    parts = []
    lineage = data.contract.lineage if data.contract else None
    if lineage is None:
        parts.append(note("no lineage yet (written by the export)"))
    else:
        values: dict[str, Any] = {
            "git commit": lineage.git_commit,
            "uncommitted changes": lineage.git_dirty,
            "params.yaml md5": lineage.params,
        }
        values |= {f"{path} md5": md5 for path, md5 in lineage.data.items()}
        values |= {f"models/trained/{name} md5": md5 for name, md5 in lineage.models.items()}
        parts.append(pairs(values, "lineage"))
    runs = [
        [m.name, ref.run_id, ref.experiment_id, ref.registered_model, ref.version]
        for m in data.trained
        if m.card and m.card.entry and (ref := m.card.entry.mlflow)
    ]
    headers = ["model", "run", "experiment", "registered model", "version"]
    parts.append("<h3>MLflow runs</h3>")
    parts.append(
        table(headers, runs, "mlflow-runs") if runs else note("no model was tracked in MLflow")
    )
    return "".join(parts)
