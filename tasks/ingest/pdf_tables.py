"""Tables on text-layer PDF pages: ruled ones read by pdfplumber from their lines, unruled ones found as short text
boxes aligned in rows and columns (or, set too tight for pdfminer to keep rows apart, in pdfplumber's words). Each
table replaces its cells' loose text among unstructured's elements, in its place on its page, as a Table element that
group_sections turns into markdown with the header in every chunk; one that goes on over a page break without its
header gets it back."""

from __future__ import annotations

import copy
import html
import io
from collections import Counter
from pathlib import Path

from tasks.ingest.table_grid import (
    Box,
    PageTable,
    aligned_tables,
    bounds,
    cell_text,
    clean_rows,
    has_column_boxes,
    has_key_column,
    is_table,
    overlaps,
    rows_of,
    word_segments,
)

# A drawn line or box side shorter than this (points) is no table edge: underscores, bullets, glyph-like strokes.
MIN_EDGE = 8


def element_box(el) -> Box | None:
    """An element's box from its coordinates metadata (None when unstructured gave none)."""
    coords = getattr(el.metadata, "coordinates", None)
    points = getattr(coords, "points", None)
    if not points:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return Box(min(xs), min(ys), max(xs), max(ys))


def pages_with_ruling(data: bytes | Path, pages: set[int]) -> set[int]:
    """The pages (of those given) whose drawn lines and boxes have edges at 3 or more distinct x and 3 or more
    distinct y positions: only they can hold a ruled table of 2 x 2 cells or more. A frame around a code listing,
    rules under headings or underscores drawn as strokes do not count. pdfium reads the paths' bounds in about a
    millisecond a page; pdfplumber reads a page in 10-100 ms."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    ruled: set[int] = set()
    pdf = pdfium.PdfDocument(data)
    try:
        for number in sorted(pages):
            if not 1 <= number <= len(pdf):
                continue
            page = pdf[number - 1]
            try:
                xs: set[int] = set()
                ys: set[int] = set()
                for path in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_PATH], max_depth=2):
                    left, bottom, right, top = path.get_bounds()
                    wide, tall = right - left >= MIN_EDGE, top - bottom >= MIN_EDGE
                    if wide:  # a horizontal rule, or a box's top and bottom
                        ys.update({round((top + bottom) / 2)} if not tall else {round(top), round(bottom)})
                    if tall:
                        xs.update({round((left + right) / 2)} if not wide else {round(left), round(right)})
                    if _distinct(xs) >= 3 and _distinct(ys) >= 3:
                        ruled.add(number)
                        break
            finally:
                page.close()
    finally:
        pdf.close()
    return ruled


def _distinct(positions: set[int]) -> int:
    """Positions more than 2 points apart (the two sides of a stroke, or two cells' shared edge, are one)."""
    count, last = 0, None
    for p in sorted(positions):
        if last is None or p - last > 2:
            count += 1
        last = p
    return count


def read_pages(
    data: bytes | Path, ruled: set[int], tight: set[int], pages: dict[int, dict[int, Box]], texts: dict[int, str]
) -> dict[int, list[PageTable]]:
    """Tables that pdfplumber reads (page number -> tables): ruled ones from their lines on the `ruled` pages, and
    on the `tight` pages unruled ones from its words, when one column is short (a table has a key column; two
    columns of prose have none). Each replaces the elements (of `pages`) inside it; an element that runs into it
    keeps its words outside it. A table whose cells the elements do not hold is left out (its text stays loose)."""
    found: dict[int, list[PageTable]] = {}
    if not ruled | tight:
        return found
    import pdfplumber

    with pdfplumber.open(data if isinstance(data, Path) else io.BytesIO(data)) as pdf:
        for number in sorted(ruled | tight):
            page = pdf.pages[number - 1]
            try:
                tables: list[PageTable] = []
                if number in ruled:
                    for table in page.find_tables({"vertical_strategy": "lines", "horizontal_strategy": "lines"}):
                        rows = clean_rows(table.extract())
                        if is_table(rows):
                            tables.append(PageTable(box=Box(*table.bbox), rows=rows))
                words = page.extract_words() if tables or number in tight else []
                if number in tight:
                    boxes, segments = word_segments(words)
                    for table in aligned_tables(boxes, segments):
                        if has_key_column(table.rows) and not any(overlaps(table.box, t.box) for t in tables):
                            tables.append(PageTable(box=table.box, rows=table.rows))
                kept = [t for t in tables if _take_elements(t, pages.get(number, {}), texts, words)]
                if kept:
                    found[number] = kept
            finally:
                page.close()
    return found


def _take_elements(table: PageTable, boxes: dict[int, Box], texts: dict[int, str], words: list[dict]) -> bool:
    """Fill the table's replaced and trimmed elements; False if they do not hold its cells' characters."""
    inside = Box(table.box.x0 - 1, table.box.top - 1, table.box.x1 + 1, table.box.bottom + 1)
    touching = [i for i, b in boxes.items() if overlaps(b, inside)]
    cells = Counter("".join("".join(c.split()) for row in table.rows for c in row))
    held = Counter("".join("".join(texts[i].split()) for i in touching))
    if not cells or sum((cells - held).values()) > 0.05 * sum(cells.values()):
        return False
    for i in touching:
        b = boxes[i]
        rest = [w for w in words if _center_in(w, b, 1.0) and not _center_in(w, table.box, 1.0)]
        if not rest:
            table.replaced.add(i)
            continue
        wb = {k: Box(w["x0"], w["top"], w["x1"], w["bottom"]) for k, w in enumerate(rest)}
        lines = [" ".join(rest[k]["text"] for k in sorted(line, key=lambda k: rest[k]["x0"])) for line in rows_of(wb)]
        table.trimmed[i] = cell_text("\n".join(lines))
        # Its place is now where its remaining words stand: above the table or below it.
        boxes[i] = bounds(list(wb.values()))
    return True


def _center_in(word: dict, box: Box, margin: float) -> bool:
    return box.holds_center_of(Box(word["x0"], word["top"], word["x1"], word["bottom"]), margin)


def table_element(table: PageTable, page: int):
    """An unstructured Table element of the rows, with the HTML that group_sections reads its cells from."""
    from unstructured.documents.elements import ElementMetadata, Table

    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table.rows
    )
    text = "\n".join(" ".join(c for c in row if c) for row in table.rows)
    return Table(text=text, metadata=ElementMetadata(page_number=page, text_as_html=f"<table>{body}</table>"))


def with_pdf_tables(data: bytes | Path, elements: list, warnings: list[str]) -> list:
    """The elements of a PDF partitioned with the fast strategy, with each table's loose cell text replaced by one
    Table element where the table stands on its page. If the tables cannot be read, the elements stay as they are
    (the cells as loose text) and warnings gets the reason."""
    try:
        return _with_tables(data, elements)
    except Exception as exc:  # noqa: BLE001 - pdfplumber's or pdfium's error on a PDF that unstructured read
        warnings.append(f"tables not read, their cells are kept as plain text: {type(exc).__name__}: {str(exc)[:200]}")
        return elements


def _with_tables(data: bytes | Path, elements: list) -> list:
    pages: dict[int, dict[int, Box]] = {}
    texts: dict[int, str] = {}
    for i, el in enumerate(elements):
        page, box = getattr(el.metadata, "page_number", None), element_box(el)
        text = (getattr(el, "text", "") or "").strip()
        if page is None or box is None or not text or getattr(el, "category", "") == "Table":
            continue
        pages.setdefault(page, {})[i] = box
        texts[i] = text
    if not pages:
        return elements
    # Only pages that draw lines can hold a ruled table, and only pages with tall boxes side by side a table too
    # tight for the elements to show its rows: only they pay for pdfplumber's reading.
    tight = {page for page, boxes in pages.items() if has_column_boxes(boxes)}
    read = read_pages(data, pages_with_ruling(data, set(pages)), tight, pages, texts)
    tables: dict[int, list[PageTable]] = {}
    for page, boxes in pages.items():
        found: list[PageTable] = read.get(page, [])
        taken = {i for t in found for i in [*t.replaced, *t.trimmed]}
        loose = {i: b for i, b in boxes.items() if i not in taken}
        found += [t for t in aligned_tables(loose, texts) if not any(overlaps(t.box, r.box) for r in found)]
        if found:
            tables[page] = found
    if not tables:
        return elements
    _continue_headers(tables, pages, elements)
    return _rebuild(elements, tables, pages)


_MARGINS = {"Header", "Footer", "PageNumber"}


def _continue_headers(tables: dict[int, list[PageTable]], pages: dict[int, dict[int, Box]], elements: list) -> None:
    """A table that goes on over a page break without repeating its header gets the header of its first part: the
    last thing on a page is a table, the first thing on the next page is a table of as many columns whose first row
    is not that header and holds a digit somewhere (a data row: a table's own header rarely has one)."""

    def text_beside(page: int, table: PageTable, above: bool) -> bool:
        taken = {i for t in tables.get(page, []) for i in t.replaced}
        for i, b in pages.get(page, {}).items():
            if i in taken or getattr(elements[i], "category", "") in _MARGINS:
                continue
            if (b.bottom <= table.box.top + 2) if above else (b.top >= table.box.bottom - 2):
                return True
        return False

    for page in sorted(tables):
        following = tables.get(page + 1)
        if not following:
            continue
        last = max(tables[page], key=lambda t: t.box.bottom)
        first = min(following, key=lambda t: t.box.top)
        if (
            len(first.rows[0]) == len(last.rows[0])
            and first.rows[0] != last.rows[0]
            and any(ch.isdigit() for cell in first.rows[0] for ch in cell)
            and not text_beside(page, last, above=False)
            and not text_beside(page + 1, first, above=True)
        ):
            first.rows = [last.rows[0], *first.rows]


def _rebuild(elements: list, tables: dict[int, list[PageTable]], pages: dict[int, dict[int, Box]]) -> list:
    """The element list with each table in place of its first replaced element, moved after the text above it and
    before the text below it (pdfminer may read a table's cells after the paragraph that follows it)."""
    replaced = {i for found in tables.values() for table in found for i in table.replaced}
    trimmed = {i: text for found in tables.values() for table in found for i, text in table.trimmed.items()}
    at: dict[int, list] = {}
    for page, found in tables.items():
        for table in found:
            boxes = pages[page].items()
            near = [(i, b) for i, b in boxes if i not in replaced and b.x0 < table.box.x1 and b.x1 > table.box.x0]
            above = [i for i, b in near if b.bottom <= table.box.top + 2]
            below = [i for i, b in near if b.top >= table.box.bottom - 2]
            low = max(above) + 1 if above else min(pages[page])
            high = min(below) if below else max(pages[page]) + 1  # never past its own page
            place = min(table.replaced) if table.replaced else high
            if place > high:
                place = high
            elif place < low <= high:
                place = low
            at.setdefault(place, []).append((table, page))
    out = []
    for i in range(len(elements) + 1):
        for table, page in sorted(at.get(i, []), key=lambda tp: tp[0].box.top):
            out.append(table_element(table, page))
        if i < len(elements) and i not in replaced:
            el = elements[i]
            if i in trimmed:
                el = copy.copy(el)
                el.text = trimmed[i]
            out.append(el)
    return out
