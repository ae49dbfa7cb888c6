"""HTML building blocks of the report: inline styles, data-URI images and a Content-Security-Policy
that forbids every request, so a page that renders at all renders offline."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from typing import Any

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:1200px;padding:0 24px 48px;color:#1f2328}
h1{margin:24px 0 4px}h2{margin-top:36px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0 16px}th,td{border:1px solid #d0d7de;
padding:4px 10px;text-align:right}th{background:#f6f8fa;text-align:left}
td.text{text-align:left}td.base{background:#f6f8fa;font-style:italic}
td.worse{color:#cf222e}.badge{background:#0969da;color:#fff;border-radius:10px;padding:1px 8px;
font-size:12px;margin-left:6px}.muted{color:#656d76}.gate{border-left:4px solid #0969da;
padding:4px 12px;background:#f6f8fa}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:12px}
figure{margin:0;border:1px solid #d0d7de;padding:6px}figure img{width:100%;height:auto}
figcaption{font-size:12px;color:#656d76;text-align:center}
"""
# Records on <body> how many images decoded, for the headless-browser test.
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
    """A cell's text: 4 decimals (or 4 significant digits when large or tiny), n/a for None."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) < 1e-12:  # rounding noise, e.g. the base rate's calibration error
            value = 0.0
        return f"{value:.4g}" if abs(value) >= 1e4 or 0 < abs(value) < 1e-3 else f"{value:.4f}"
    return str(value)


def cell(value: Any, cls: str = "") -> str:
    """One <td>, its value escaped; text cells are left-aligned."""
    classes = " ".join(c for c in (cls, "" if isinstance(value, int | float) else "text") if c)
    return f'<td class="{classes}">{esc(fmt(value))}</td>'


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], table_id: str) -> str:
    """A table of `cell` strings or plain values (escaped here)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(c if isinstance(c, str) and c.startswith("<td") else cell(c) for c in row)
        body.append(f"<tr>{cells}</tr>")
    thead = f"<thead><tr>{head}</tr></thead>" if headers else ""
    return f'<table id="{esc(table_id)}">{thead}<tbody>{"".join(body)}</tbody></table>'


def pairs(values: dict[str, Any], table_id: str) -> str:
    """A two-column key/value table."""
    return table([], [[cell(k), cell(fmt(v))] for k, v in values.items()], table_id)


def image(png: bytes, caption: str) -> str:
    """A figure with the PNG embedded as a data URI."""
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def note(text: str) -> str:
    return f'<p class="muted">{esc(text)}</p>'


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole document: (id, heading, body HTML) per section."""
    body = "".join(
        f'<section id="{sid}"><h2>{esc(h)}</h2>{content}</section>' for sid, h, content in sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style><script>{SCRIPT}</script></head>"
        f'<body><h1>{esc(title)}</h1><p class="muted">{esc(subtitle)}</p>{body}</body></html>\n'
    )
