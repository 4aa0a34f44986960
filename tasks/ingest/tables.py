"""Tables as markdown whose header row goes with every piece: a chunk of a table is never unlabelled numbers."""

from __future__ import annotations

from html.parser import HTMLParser


class _TableParser(HTMLParser):
    """The cell texts of an HTML table, row by row (unstructured's metadata.text_as_html)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in {"td", "th"}:
            if not self.rows:
                self.rows.append([])
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag):
        if tag in {"td", "th"} and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def html_table_rows(html: str) -> list[list[str]]:
    """The non-empty rows of an HTML table, each a list of cell texts."""
    parser = _TableParser()
    parser.feed(html)
    parser.close()
    return [row for row in parser.rows if any(cell for cell in row)]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def markdown_table(rows: list[list[str]]) -> tuple[str, list[str]]:
    """(header, body lines) of a markdown table: the first row is the header; short rows are padded."""
    width = max(len(row) for row in rows)
    padded = [row + [""] * (width - len(row)) for row in rows]
    header = "| " + " | ".join(_cell(c) for c in padded[0]) + " |\n|" + "---|" * width
    body = ["| " + " | ".join(_cell(c) for c in row) + " |" for row in padded[1:]]
    return header, body


def split_table(header: str, body: list[str], chunk_size: int) -> list[str]:
    """Pieces of a table, each its header followed by as many whole rows as fit in chunk_size characters (a row
    longer than that is a piece of its own, with the header)."""
    pieces: list[str] = []
    current: list[str] = []
    size = len(header)
    for row in body:
        if current and size + 1 + len(row) > chunk_size:
            pieces.append("\n".join([header, *current]))
            current, size = [], len(header)
        current.append(row)
        size += 1 + len(row)
    if current or not pieces:
        pieces.append("\n".join([header, *current]))
    return pieces
