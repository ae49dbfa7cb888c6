"""Read tables, texts and images back out of the report's HTML (stdlib parser, no browser)."""

from __future__ import annotations

from html.parser import HTMLParser

VOID = {"img", "meta", "br", "hr", "input", "link"}


class ReportParser(HTMLParser):
    """Every table (by id) as rows of cell texts and cell attributes, the text of every element
    with an id, every <img> and <meta>, and the <body> attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.cell_attrs: dict[str, list[list[dict[str, str | None]]]] = {}
        self.texts: dict[str, list[str]] = {}
        self.images: list[dict[str, str | None]] = []
        self.meta: list[dict[str, str | None]] = []
        self.body_attrs: dict[str, str | None] = {}
        self._open: list[str | None] = []  # ids of the open elements (None: no id)
        self._table: str | None = None
        self._cell: list[str] | None = None

    @property
    def ids(self) -> set[str]:
        return set(self.texts)

    def text(self, element_id: str) -> str:
        return "".join(self.texts[element_id]).strip()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag not in VOID:
            self._open.append(a.get("id"))
            if a.get("id"):
                self.texts[str(a["id"])] = []
        if tag == "table":
            self._table = a.get("id") or f"table-{len(self.tables)}"
            self.tables[self._table] = []
            self.cell_attrs[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
            self.cell_attrs[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []
            self.cell_attrs[self._table][-1].append(a)
        elif tag == "img":
            self.images.append(a)
        elif tag == "meta":
            self.meta.append(a)
        elif tag == "body":
            self.body_attrs = a

    def handle_endtag(self, tag: str) -> None:
        if tag not in VOID and self._open:
            self._open.pop()
        if tag in ("td", "th") and self._table and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        for element_id in self._open:
            if element_id:
                self.texts[element_id].append(data)


def parse(html: str) -> ReportParser:
    """Parse a report page."""
    parser = ReportParser()
    parser.feed(html)
    return parser
