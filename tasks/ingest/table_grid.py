"""Tables from where text stands on a page: short boxes side by side in rows, read into columns, and the cell
texts cleaned. Pure geometry on boxes in PDF points (top-left origin); tasks/ingest/pdf_tables.py feeds it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# A text box longer than this is prose, not a table cell (a cell wrapped onto a few lines is still shorter).
MAX_CELL_CHARS = 120
# An unruled table has a header and at least two rows, of at least two columns.
MIN_UNRULED_ROWS = 3
# Rows further apart than this many row heights are not one table.
MAX_ROW_GAP = 2.5
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]")


@dataclass
class Box:
    """A rectangle on a page in PDF points, from the top-left corner (pdfplumber's and unstructured's system)."""

    x0: float
    top: float
    x1: float
    bottom: float

    @property
    def height(self) -> float:
        return self.bottom - self.top

    def holds_center_of(self, other: Box, margin: float = 2.0) -> bool:
        cx, cy = (other.x0 + other.x1) / 2, (other.top + other.bottom) / 2
        return self.x0 - margin <= cx <= self.x1 + margin and self.top - margin <= cy <= self.bottom + margin


@dataclass
class PageTable:
    """A table found on a page: its rows of cell texts (the first is the header) and the elements it replaces."""

    box: Box
    rows: list[list[str]]
    replaced: set[int] = field(default_factory=set)  # indexes into the document's element list
    # Elements that run into the table (pdfminer joined a paragraph's line and a row): index -> their text outside it.
    trimmed: dict[int, str] = field(default_factory=dict)


def cell_text(text: str | None) -> str:
    """A cell's lines joined: with a space, but none between two CJK characters (a wrapped Chinese word)."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    out = ""
    for line in lines:
        if out and not (_CJK.match(out[-1]) and _CJK.match(line[0])):
            out += " "
        out += line
    return out


def clean_rows(rows: list[list[str | None]]) -> list[list[str]]:
    """Rows of cell texts with empty rows and empty columns dropped."""
    cells = [[cell_text(c) for c in row] for row in rows]
    cells = [row for row in cells if any(row)]
    if not cells:
        return []
    width = max(len(row) for row in cells)
    cells = [row + [""] * (width - len(row)) for row in cells]
    keep = [j for j in range(width) if any(row[j] for row in cells)]
    return [[row[j] for j in keep] for row in cells]


def is_table(rows: list[list[str]], min_rows: int = 2) -> bool:
    """A header and data rows of at least two columns, mostly filled: not a frame around a page of prose."""
    if len(rows) < min_rows or len(rows[0]) < 2:
        return False
    filled = sum(1 for row in rows for c in row if c)
    return filled >= 0.5 * len(rows) * len(rows[0]) and sum(1 for c in rows[0] if c) >= 2


def rows_of(boxes: dict[int, Box]) -> list[list[int]]:
    """Boxes grouped into rows, top to bottom: a box joins the row it overlaps by half its height (or the row's)."""
    rows: list[list[int]] = []
    for i in sorted(boxes, key=lambda i: (boxes[i].top, boxes[i].x0)):
        b = boxes[i]
        if rows:
            last = rows[-1]
            top = min(boxes[j].top for j in last)
            bottom = max(boxes[j].bottom for j in last)
            if min(bottom, b.bottom) - max(top, b.top) >= 0.5 * min(bottom - top, b.height):
                last.append(i)
                continue
        rows.append([i])
    return rows


def has_column_boxes(boxes: dict[int, Box]) -> bool:
    """Two or more boxes of three lines or more side by side: the columns of a table set too tight for pdfminer to
    keep its rows apart (or columns of prose, which the word-level reading then rejects)."""
    if not boxes:
        return False
    line = min(b.height for b in boxes.values())
    for row in rows_of(boxes):
        tall = sorted((boxes[i].x0, boxes[i].x1) for i in row if boxes[i].height >= 2.5 * line)
        if len(tall) >= 2 and any(a[1] <= b[0] + 1 for a, b in zip(tall, tall[1:])):
            return True
    return False


def word_segments(words: list[dict]) -> tuple[dict[int, Box], dict[int, str]]:
    """pdfplumber's words as pieces of lines: a line is cut where the gap between two words is wider than its
    height (a column gap, not a space)."""
    boxes: dict[int, Box] = {}
    texts: dict[int, str] = {}
    lines = rows_of({k: Box(w["x0"], w["top"], w["x1"], w["bottom"]) for k, w in enumerate(words)})
    for line in lines:
        piece: list[dict] = []
        for w in sorted((words[k] for k in line), key=lambda w: w["x0"]):
            if piece and w["x0"] - piece[-1]["x1"] > max(w["bottom"] - w["top"], 4.0):
                _add_segment(piece, boxes, texts)
                piece = []
            piece.append(w)
        _add_segment(piece, boxes, texts)
    return boxes, texts


def _add_segment(piece: list[dict], boxes: dict[int, Box], texts: dict[int, str]) -> None:
    k = len(boxes)
    boxes[k] = Box(piece[0]["x0"], min(w["top"] for w in piece), piece[-1]["x1"], max(w["bottom"] for w in piece))
    texts[k] = " ".join(w["text"] for w in piece)


def aligned_tables(boxes: dict[int, Box], texts: dict[int, str]) -> list[PageTable]:
    """Unruled tables among one page's text boxes (element index -> box): runs of at least MIN_UNRULED_ROWS
    consecutive rows that each hold two or more short boxes side by side, read into columns by where they stand."""
    rows = rows_of(boxes)

    def is_cell_row(row: list[int]) -> bool:
        if len(row) < 2 or any(len(texts[i]) > MAX_CELL_CHARS for i in row):
            return False
        spans = sorted((boxes[i].x0, boxes[i].x1) for i in row)
        return all(a[1] <= b[0] + 1 for a, b in zip(spans, spans[1:]))  # side by side, not stacked

    tables: list[PageTable] = []
    run: list[list[int]] = []
    for row in [*rows, []]:
        if run and row and is_cell_row(row):
            height = max(boxes[i].height for i in run[-1])
            gap = min(boxes[i].top for i in row) - max(boxes[i].bottom for i in run[-1])
            if gap <= MAX_ROW_GAP * height:
                run.append(row)
                continue
        if len(run) >= MIN_UNRULED_ROWS:
            table = _grid(run, boxes, texts)
            if table is not None:
                tables.append(table)
        run = [row] if row and is_cell_row(row) else []
    return tables


def _grid(run: list[list[int]], boxes: dict[int, Box], texts: dict[int, str]) -> PageTable | None:
    """Rows of boxes as a table: columns are the x-ranges where boxes of the run overlap."""
    spans = sorted((boxes[i].x0, boxes[i].x1) for row in run for i in row)
    columns: list[list[float]] = []
    for x0, x1 in spans:
        if columns and x0 <= columns[-1][1]:
            columns[-1][1] = max(columns[-1][1], x1)
        else:
            columns.append([x0, x1])
    if len(columns) < 2:
        return None
    cells: list[list[str]] = []
    for row in run:
        line = [""] * len(columns)
        for i in sorted(row, key=lambda i: boxes[i].x0):
            j = next(k for k, (x0, x1) in enumerate(columns) if x0 <= boxes[i].x0 <= x1)
            line[j] = f"{line[j]} {texts[i]}".strip()
        cells.append(line)
    rows = clean_rows(cells)
    if not is_table(rows, MIN_UNRULED_ROWS):
        return None
    members = [boxes[i] for row in run for i in row]
    return PageTable(box=bounds(members), rows=rows, replaced={i for row in run for i in row})


def bounds(boxes: list[Box]) -> Box:
    """The smallest box around the given ones."""
    x0, top = min(b.x0 for b in boxes), min(b.top for b in boxes)
    return Box(x0, top, max(b.x1 for b in boxes), max(b.bottom for b in boxes))


def has_key_column(rows: list[list[str]]) -> bool:
    """Whether one column's cells are short (median 20 characters or less): a table has a key column, two columns of
    prose have none."""
    body = rows[1:]
    return any(sorted(len(row[j]) for row in body)[len(body) // 2] <= 20 for j in range(len(rows[0])))


def overlaps(a: Box, b: Box) -> bool:
    """Whether two boxes share some area."""
    return min(a.x1, b.x1) > max(a.x0, b.x0) and min(a.bottom, b.bottom) > max(a.top, b.top)


