"""Render the report as one HTML page: inline CSS, images as data URIs, no network access.

A Content-Security-Policy forbids any request from the page, so a report that renders at all
renders offline. The small inline script only records, on <body>, how many images decoded; the
headless-browser test reads it back.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pipeline.report.inputs import ModelResult, ReportData

LOWER_IS_BETTER = frozenset({"log_loss", "brier"})
SPLITS = ("val", "test")
MAX_LIST_ITEMS = 12  # longer lists (category levels, ...) are cut with a count

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:1200px;padding:0 24px 48px;color:#1f2328}
h1{margin:24px 0 4px}h2{margin-top:36px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0 16px}th,td{border:1px solid #d0d7de;
padding:4px 10px;text-align:right}th{background:#f6f8fa;text-align:left}
td:first-child,td.text{text-align:left}td.best{font-weight:700;background:#dafbe1}
tr.champion td:first-child{font-weight:700}.badge{background:#0969da;color:#fff;
border-radius:10px;padding:1px 8px;font-size:12px;margin-left:6px}.muted{color:#656d76}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(270px,1fr));gap:12px}
figure{margin:0;border:1px solid #d0d7de;padding:6px}figure img{width:100%;height:auto}
figcaption{font-size:12px;color:#656d76;text-align:center}
"""
SCRIPT = """
window.addEventListener("load", function () {
  var images = document.images, rendered = 0;
  for (var i = 0; i < images.length; i++) {
    if (images[i].complete && images[i].naturalWidth > 0) { rendered++; }
  }
  document.body.setAttribute("data-images-total", String(images.length));
  document.body.setAttribute("data-images-rendered", String(rendered));
});
"""


def esc(value: Any) -> str:
    """HTML-escaped text of any value."""
    return html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
    """A cell's text: floats to 4 significant decimals, large ints with separators."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1e4 or 0 < abs(value) < 1e-3 else f"{value:.4f}"
    return str(value)


def fmt_metric(value: float | None) -> str:
    # The evaluation writes -1 for a metric it could not compute (JSON has no NaN); every
    # reported metric is non-negative otherwise.
    return "n/a" if value is None or value < 0 else f"{value:.4f}"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], table_id: str = "") -> str:
    """A table from already-escaped cell HTML (a cell may carry its own <td ...>)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row) + "</tr>"
        for row in rows
    )
    ident = f' id="{esc(table_id)}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested JSON as (dotted key, text) pairs; long lists are shortened with a count."""
    if isinstance(value, Mapping):
        pairs: list[tuple[str, str]] = []
        for key, item in value.items():
            pairs += flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return pairs
    if isinstance(value, list):
        if all(not isinstance(v, Mapping | list) for v in value):
            shown = ", ".join(fmt(v) for v in value[:MAX_LIST_ITEMS])
            more = len(value) - MAX_LIST_ITEMS
            return [(prefix, shown + (f", … (+{more})" if more > 0 else ""))]
        return flatten({str(i): v for i, v in enumerate(value)}, prefix)
    return [(prefix, fmt(value))]


def key_values(payload: Mapping[str, Any] | None, table_id: str = "") -> str:
    """A two-column table of a (flattened) JSON object, or a note that it is absent."""
    if not payload:
        return '<p class="muted">not available</p>'
    rows = [
        (f'<td class="text">{esc(k)}</td>', f'<td class="text">{esc(v)}</td>')
        for k, v in flatten(payload)
    ]
    return table(["key", "value"], rows, table_id)


def records_table(records: Sequence[Mapping[str, Any]], table_id: str = "") -> str:
    """A list of flat JSON objects as a table, one column per key (in first-seen order)."""
    columns = list(dict.fromkeys(k for record in records for k in record))
    rows = [[esc(fmt(record.get(c, ""))) for c in columns] for record in records]
    return table(columns, rows, table_id)


def json_section(payload: Mapping[str, Any] | None, table_id: str) -> str:
    """A JSON object as tables: objects of objects and lists of objects as tables, the rest as
    key/value rows. Long lists are folded away in a <details> element."""
    if not payload:
        return '<p class="muted">not available</p>'
    scalars: dict[str, Any] = {}
    tables: list[str] = []
    folded: list[str] = []
    for key, value in payload.items():
        if (
            isinstance(value, Mapping)
            and value
            and all(isinstance(v, Mapping) for v in value.values())
        ):
            records = [{"": name, **dict(v)} for name, v in value.items()]
            tables.append(f"<h4>{esc(key)}</h4>" + records_table(records, f"{table_id}-{key}"))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            inner = records_table(value, f"{table_id}-{key}")
            folded.append(f"<details><summary>{esc(key)} ({len(value)})</summary>{inner}</details>")
        else:
            scalars[key] = value
    head = key_values(scalars, table_id) if scalars else ""
    return "".join(tables) + head + "".join(folded)


def image(png: bytes, caption: str) -> str:
    """A figure with the PNG embedded as a data URI."""
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def _best(models: Sequence[ModelResult], split: str, metric: str) -> float | None:
    values = [m.metrics.get(split, {}).get(metric) for m in models if m.status == "trained"]
    valid = [v for v in values if v is not None and v >= 0]
    if not valid:
        return None
    return min(valid) if metric in LOWER_IS_BETTER else max(valid)


def model_table(data: ReportData, metrics: Sequence[str]) -> str:
    """Rows per model and split; skipped or missing models keep one explained row."""
    headers = ["model", "split", *metrics]
    rows: list[list[str]] = []
    for model in data.models:
        name = esc(model.name)
        if model.name == data.champion:
            name += '<span class="badge">champion</span>'
        attrs = f'data-model="{esc(model.name)}" data-status="{model.status}"'
        if model.status != "trained":
            label = "skipped" if model.status == "skipped" else "not run"
            note = f'<td class="text muted" colspan="{len(metrics) + 1}">{label}: '
            rows.append([f"<td {attrs}>{name}</td>", note + f"{esc(model.reason)}</td>"])
            continue
        for split in SPLITS:
            cells = [f"<td {attrs}>{name}</td>", split]
            for metric in metrics:
                value = model.metrics.get(split, {}).get(metric)
                best = value is not None and value == _best(data.models, split, metric)
                cls = ' class="best"' if best else ""
                cells.append(f"<td{cls}>{fmt_metric(value)}</td>")
            rows.append(cells)
    return table(headers, rows, "model-table")


def plots_section(data: ReportData) -> str:
    """One grid of evaluation plots per trained model."""
    parts = []
    for model in data.models:
        if model.status != "trained":
            continue
        figures = "".join(image(png, f"{model.name} · {kind}") for kind, png in model.plots)
        body = figures or '<p class="muted">no plots written</p>'
        parts.append(
            f'<h3 id="plots-{esc(model.name)}">{esc(model.name)}</h3><div class="grid">{body}</div>'
        )
    return "".join(parts) or '<p class="muted">no trained models</p>'


def importance_section(data: ReportData) -> str:
    """Feature importance plots of the models that have them (LightGBM)."""
    figures = [
        image(m.importance, f"{m.name} · feature importance")
        for m in data.models
        if m.importance is not None
    ]
    if not figures:
        return '<p class="muted">no model wrote a feature importance plot</p>'
    return f'<div class="grid">{"".join(figures)}</div>'
