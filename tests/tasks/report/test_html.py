"""report.html from its Jinja2 templates: hostile text shown as text on every page, valid HTML5, in the wheel."""

from __future__ import annotations

import html
import re
import tomllib
from fnmatch import fnmatch
from importlib.resources import files
from pathlib import Path

import html5lib
import pytest

import tasks.report.html as report_html
from tasks.report.write import write_report

pytestmark = pytest.mark.unit

SCRIPT = "<script>alert(document.cookie)</script>"
ESCAPED = html.escape(SCRIPT)  # &lt;script&gt;...: shown by a browser as the tag's text


def hostile_rows(count: int) -> list[dict]:
    """Questions whose document (passage text, file name, citation) and answer each carry a <script> tag."""
    rows = []
    for n in range(1, count + 1):
        passage = {
            "source": f"docs/{SCRIPT}.md",
            "page": 1,
            "chunk_id": f"c{n}",
            "score": 0.9,
            "text": f"Refunds take 14 days. {SCRIPT}",
        }
        rows.append(
            {
                "id": f"q{n}",
                "question": f"How long do refunds take? {SCRIPT}",
                "answer": f"Refunds take 14 days {SCRIPT} [1].",
                "refused": False,
                "citations": [passage],
                "retrieved": [passage],
                "latency_ms": 10.0,
                "prompt_tokens": 100,
                "completion_tokens": 10,
                "error": None,
                "expected_answer": "14 days",
                "expected_source": passage["source"],
            }
        )
    return rows


def parse(page: str):
    """The page through a strict HTML5 parser: it raises on any parse error."""
    return html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(page)


def shown_text(page: str) -> str:
    """The page's text as a browser shows it (tags gone, entities decoded)."""
    return "".join(parse(page).itertext())


def assert_shown_as_text(page: str, where: str) -> None:
    assert "<script" not in page.lower(), where
    assert parse(page).find(".//script") is None, where
    assert SCRIPT in shown_text(page), where  # the reader sees the tag as text


def test_script_in_a_document_and_an_answer_is_text_in_report_html(tmp_path):
    write_report(hostile_rows(2), tmp_path, top_k=1, model="m", embedding_model="e", mode="hybrid", title=SCRIPT)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert_shown_as_text(page, "report.html")
    assert f"<title>{ESCAPED}</title>" in page
    index = page[page.index("<table>") : page.index("</table>")]
    assert f"<td>How long do refunds take? {ESCAPED}</td><td>Refunds take 14 days {ESCAPED} [1].</td>" in index
    assert f'<div class="answer">Refunds take 14 days {ESCAPED} [1].</div>' in page  # the section, same page
    assert f'<div class="passage">Refunds take 14 days. {ESCAPED}</div>' in page
    assert f"<li>docs/{ESCAPED}.md, p. 1</li>" in page  # the citation
    assert "<details class=match><summary>#1 docs/" in page  # expected source matched through the escaped name


def test_script_is_text_on_the_details_pages_too(tmp_path, monkeypatch):
    monkeypatch.setattr(report_html, "INLINE_DETAILS", 2)
    write_report(hostile_rows(5), tmp_path, top_k=1, model="m", embedding_model="e", mode="hybrid", title=SCRIPT)
    pages = sorted(p.name for p in tmp_path.glob("*.html"))
    assert pages == ["details-001.html", "details-002.html", "details-003.html", "report.html"]
    index = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert_shown_as_text(index, "report.html")
    assert 'href="details-002.html#q-3"' in index and '<section class="q"' not in index
    for name, ids in (("details-001.html", [1, 2]), ("details-002.html", [3, 4]), ("details-003.html", [5])):
        page = (tmp_path / name).read_text(encoding="utf-8")
        assert_shown_as_text(page, name)
        assert re.findall(r'<section class="q" id="q-(\d+)"', page) == [str(n) for n in ids], name
        assert page.count(f'<div class="answer">Refunds take 14 days {ESCAPED} [1].</div>') == len(ids), name
        assert page.count(f'<div class="passage">Refunds take 14 days. {ESCAPED}</div>') == len(ids), name
        assert f"<title>{ESCAPED}: questions {ids[0]}-{ids[-1]}</title>" in page
        assert '<a href="report.html">back to the report</a>' in page


def test_templates_escape_by_default_and_mark_nothing_safe():
    env = report_html._env()
    assert env.autoescape is True
    assert str(env.from_string("{{ x }}").render(x=SCRIPT)) == html.escape(SCRIPT).replace("&#x27;", "&#39;")
    templates = sorted(files("tasks.report").joinpath("templates").iterdir(), key=lambda p: p.name)
    assert [t.name for t in templates] == ["details.html.j2", "macros.html.j2", "page.html.j2", "report.html.j2"]
    for template in templates:
        text = template.read_text(encoding="utf-8")
        assert "|safe" not in text.replace(" ", "") and "autoescape false" not in text, template.name
        assert "<script" not in text, template.name


def test_templates_are_package_data_of_the_wheel():
    root = Path(report_html.__file__).resolve().parents[2]
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["tasks.report"]
    shipped = sorted(
        p.relative_to(root / "tasks" / "report").as_posix() for p in (root / "tasks" / "report").rglob("*.*")
    )
    needed = [p for p in shipped if p.endswith((".j2", ".css"))]
    assert needed and all(any(fnmatch(p, pat) for pat in patterns) for p in needed), (needed, patterns)
