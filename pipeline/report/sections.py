"""The report's data, export and lineage sections, and the page that holds every section."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pipeline.report.html import (
    CSP,
    SCRIPT,
    STYLE,
    esc,
    fmt,
    importance_section,
    json_section,
    key_values,
    model_table,
    plots_section,
    table,
)
from pipeline.report.inputs import ReportData

# Per-column statistic names the ETL may use, tried in order.
NULL_RATE_KEYS = ("null_rate", "null_fraction", "null_frac", "missing_rate")
NULL_COUNT_KEYS = ("null_count", "nulls", "missing")
TYPE_KEYS = ("type", "dtype", "kind")
DETAIL_ORDER = ("min", "max", "mean", "std", "n_levels", "empty_rate")
SPLIT_ORDER = ("train", "val", "test")
ROLE_LISTS = ("numeric", "categorical", "datetime", "derived")


def _split_order(keys: Iterable[str]) -> list[str]:
    """train, val, test first, anything else (rejected, ...) after, as the JSON has it."""
    keys = list(keys)
    return [k for k in SPLIT_ORDER if k in keys] + [k for k in keys if k not in SPLIT_ORDER]


def _role(profile: Mapping[str, Any], column: str) -> str:
    if column == profile.get("text"):
        return "text"
    if column == profile.get("id"):
        return "id"
    if column == profile.get("target"):
        return "target"
    return next((r for r in ROLE_LISTS if column in (profile.get(r) or [])), "")


def _null_rate(stats: Mapping[str, Any], total_rows: int) -> float | None:
    for key in NULL_RATE_KEYS:
        if isinstance(stats.get(key), int | float):
            return float(stats[key])
    for key in NULL_COUNT_KEYS:
        if isinstance(stats.get(key), int | float) and total_rows:
            return float(stats[key]) / total_rows
    return None


def _details(stats: Mapping[str, Any]) -> str:
    skip = {*NULL_RATE_KEYS, *NULL_COUNT_KEYS, *TYPE_KEYS}
    parts = []
    ordered = [k for k in DETAIL_ORDER if k in stats] + [k for k in stats if k not in DETAIL_ORDER]
    for key in ordered:
        value = stats[key]
        if key in skip:
            continue
        if isinstance(value, list | Mapping):
            if "n_levels" not in stats:  # else the level list is summarised by n_levels
                parts.append(f"{key}: {len(value)} values")
        else:
            parts.append(f"{key}: {fmt(value)}")
    return "; ".join(parts)


def columns_table(profile: Mapping[str, Any]) -> str:
    """Column, role, type, null rate and other statistics from the profile."""
    columns = profile.get("columns") or {}
    rows_by_split = profile.get("rows") or {}
    total = sum(v for k, v in rows_by_split.items() if k != "rejected" and isinstance(v, int))
    rows = []
    for column, stats in columns.items():
        stats = stats if isinstance(stats, Mapping) else {"value": stats}
        rate = _null_rate(stats, total)
        kind = next((str(stats[k]) for k in TYPE_KEYS if k in stats), "")
        rows.append(
            [
                f'<td class="text">{esc(column)}</td>',
                f'<td class="text">{esc(_role(profile, column))}</td>',
                f'<td class="text">{esc(kind)}</td>',
                "–" if rate is None else f"{rate:.1%}",
                f'<td class="text">{esc(_details(stats))}</td>',
            ]
        )
    if not rows:
        return '<p class="muted">the profile lists no column statistics</p>'
    return table(["column", "role", "type", "null rate", "details"], rows, "column-table")


def label_table(profile: Mapping[str, Any]) -> str:
    """Label counts (and shares) per split."""
    dist: Mapping[str, Mapping[str, int]] = profile.get("label_distribution") or {}
    if not dist:
        return '<p class="muted">no label distribution in the profile</p>'
    splits = _split_order(dist)
    labels = list(dict.fromkeys(str(lbl) for counts in dist.values() for lbl in counts))
    totals = {s: sum(dist[s].values()) or 1 for s in splits}
    rows = [
        [f'<td class="text">{esc(label)}</td>']
        + [f"{dist[s].get(label, 0):,} ({dist[s].get(label, 0) / totals[s]:.1%})" for s in splits]
        for label in labels
    ]
    return table(["label", *splits], rows, "label-table")


def data_section(data: ReportData) -> str:
    """Rows per split, label distribution, per-column statistics and the ETL's metrics."""
    profile = data.profile
    if not profile:
        return '<p class="muted">no data profile (data/processed/profile.json)</p>'
    rows = profile.get("rows") or {}
    facts = {
        "task": profile.get("task"),
        "target": profile.get("target"),
        "labels": profile.get("labels"),
        "text column": profile.get("text") or "none",
    }
    return (
        key_values({k: v for k, v in facts.items() if v is not None}, "data-facts")
        + "<h3>Rows</h3>"
        + table(
            ["split", "rows"], [[esc(k), fmt(rows[k])] for k in _split_order(rows)], "rows-table"
        )
        + "<h3>Label distribution</h3>"
        + label_table(profile)
        + "<h3>Columns</h3>"
        + columns_table(profile)
        + "<h3>ETL metrics</h3>"
        + key_values(data.etl_metrics, "etl-metrics")
    )


def export_section(data: ReportData) -> str:
    """The exported models (files, hashes, registry versions), parity and export metrics."""
    contract = data.contract
    if not contract:
        return '<p class="muted">no export yet (models/export/contract.json)</p>'
    rows = []
    for name, entry in (contract.get("models") or {}).items():
        # The registered ONNX version when registration ran, else the training run's model.
        mlflow = entry.get("onnx_registry") or entry.get("mlflow") or {}
        rows.append(
            [
                f'<td class="text" data-model="{esc(name)}">{esc(name)}</td>',
                f'<td class="text">{esc(entry.get("kind", ""))}</td>',
                f'<td class="text">{esc(entry.get("file", ""))}</td>',
                f'<td class="text"><code>{esc(str(entry.get("sha256", ""))[:12])}</code></td>',
                f'<td class="text">{esc(mlflow.get("registered_model", ""))}</td>',
                esc(mlflow.get("version", "")),
            ]
        )
    models = table(["model", "kind", "file", "sha256", "registered", "version"], rows, "export")
    return (
        models
        + "<h3>Parity (ONNX Runtime against the native model)</h3>"
        + json_section(data.parity, "parity")
        + "<h3>Export metrics</h3>"
        + json_section(data.export_metrics, "export-metrics")
    )


def lineage_section(data: ReportData) -> str:
    """Git commit, data and params hashes, and each model's MLflow run."""
    contract = data.contract or {}
    runs = {
        name: entry.get("mlflow")
        for name, entry in (contract.get("models") or {}).items()
        if entry.get("mlflow")
    }
    return (
        key_values(contract.get("lineage"), "lineage")
        + "<h3>MLflow runs</h3>"
        + key_values(runs, "mlflow-runs")
    )


def summary(data: ReportData) -> str:
    """The headline: champion and what was compared."""
    champion = data.champion
    trained = [m.name for m in data.models if m.status == "trained"]
    skipped = [m.name for m in data.models if m.status != "trained"]
    metric = (data.contract or {}).get("champion_metric")
    chosen = f" (best {esc(metric)})" if metric else ""
    line = (
        f"Champion: <strong>{esc(champion)}</strong>{chosen}. " if champion else "No champion yet. "
    )
    line += f"Compared: {esc(', '.join(trained) or 'none')}."
    if skipped:
        line += f' <span class="muted">Not trained: {esc(", ".join(skipped))}.</span>'
    return f'<p id="summary">{line}</p>'


def render(data: ReportData, title: str, metrics: Sequence[str]) -> str:
    """The whole page."""
    commit = (data.contract or {}).get("lineage", {}).get("git_commit")
    subtitle = f"git {esc(commit)}" if commit else "lineage unknown (no export yet)"
    sections = [
        ("models", "Models", summary(data) + model_table(data, metrics)),
        ("plots", "Evaluation plots (test split)", plots_section(data)),
        ("importance", "Feature importance", importance_section(data)),
        ("data", "Data", data_section(data)),
        ("export", "Export", export_section(data)),
        ("lineage", "Lineage", lineage_section(data)),
    ]
    body = "".join(
        f'<section id="{sid}"><h2>{esc(heading)}</h2>{content}</section>'
        for sid, heading, content in sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style><script>{SCRIPT}</script></head>"
        f'<body><h1>{esc(title)}</h1><p class="muted">{subtitle}</p>{body}</body></html>\n'
    )
