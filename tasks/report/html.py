"""report.html: self-contained (inline CSS from report.css, no scripts, every text escaped)."""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from tasks.report.compare import CHANGE_LISTS
from tasks.report.figures import BY_KEY, COMPARED, shown
from tasks.report.formats import fmt_delta, fmt_ms, fmt_num, fmt_rate
from tasks.report.metrics import _present, expected_answers, source_matches
from tasks.text import is_chinese


@lru_cache(maxsize=1)
def _css() -> str:
    """The page's style sheet, a package-data file beside this module."""
    return files("tasks.report").joinpath("report.css").read_text(encoding="utf-8")


def _e(value: object) -> str:
    """HTML-escaped text of any value."""
    return html.escape("" if value is None else str(value), quote=True)


def _fmt_yes_no(value: bool | None) -> str:
    """yes / no, n/a when absent."""
    return "n/a" if value is None else ("yes" if value else "no")


def _fmt_page(page: object) -> str:
    """', p. N' for a real page number, nothing otherwise."""
    return f", p. {_e(page)}" if page is not None and page != -1 else ""


def _status_badge(row: dict) -> str:
    """The refused / error badge of a row, or nothing."""
    if row.get("error"):
        return '<span class="badge error">error</span>'
    if row.get("refused"):
        return '<span class="badge refused">refused</span>'
    return ""


def _flag_badge(row: dict) -> str:
    """The 'unsupported' badge of a flagged answer, with its reason, or nothing."""
    if not row.get("unsupported"):
        return ""
    return f'<span class="badge flag">unsupported: {_e(row.get("flag_reason"))}</span>'


def _summary_html(summary: dict) -> str:
    """The figure cards at the top of the page, accuracy first."""
    cards = shown(summary)
    body = "".join(
        f'<div class="card{" lead" if n == 0 else ""}"><b>{_e(v)}</b><span>{_e(k)}</span></div>'
        for n, (k, v) in enumerate(cards)
    )
    return f'<div class="cards">{body}</div>'


def _check_first_html(rows: list[dict], summary: dict, page_of=lambda n: "") -> str:
    """The 'check these first' list of flagged answers, linking to their sections."""
    if not summary.get("generated", True):
        return ""
    flagged = [(n, r) for n, r in enumerate(rows, start=1) if r.get("unsupported")]
    if not flagged:
        return '<section class="box check" id="check"><h2>Check these first</h2><p>No answer is flagged.</p></section>'
    items = "".join(
        f'<li><a href="{page_of(n)}#q-{n}">{_e(r.get("id"))}</a> {_e(r.get("question"))} '
        f'<span class="badge flag">{_e(r.get("flag_reason"))}</span></li>'
        for n, r in flagged
    )
    return (
        f'<section class="box check" id="check"><h2>Check these first ({len(flagged)})</h2>'
        "<p>These answers cite nothing, or say things their cited passages do not "
        f"contain.</p><ol>{items}</ol></section>"
    )


def _fmt_when(created_at: object) -> str:
    """An ISO timestamp as 'YYYY-MM-DD HH:MM UTC', or as given when it is not one."""
    try:
        moment = datetime.fromisoformat(str(created_at))
    except ValueError:
        return str(created_at or "an earlier run")
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M") + (" UTC" if moment.tzinfo is not None else "")


def _changes_html(cmp: dict) -> str:
    """The 'Changes since <date>' section: figure deltas, then each kind of per-question change."""
    old, new = cmp["old"], cmp["new"]
    parts = [f'<section class="box changes" id="changes"><h2>Changes since {_e(_fmt_when(old.get("created_at")))}</h2>']
    parts.append(
        f'<p class="meta">compared with {_e(old.get("dir"))} · model {_e(old.get("model"))}'
        + (f" → {_e(new.get('model'))}" if old.get("model") != new.get("model") else "")
        + "</p>"
    )
    lines = []
    for key in COMPARED:
        d, show = cmp["deltas"][key], BY_KEY[key].show
        lines.append(
            f"<tr><td>{_e(BY_KEY[key].label)}</td><td>{show(d['old'])}</td><td>{show(d['new'])}</td>"
            f"<td>{fmt_delta(key, d['delta'])}</td></tr>"
        )
    parts.append(f"<table><tr><th>figure</th><th>before</th><th>now</th><th>change</th></tr>{''.join(lines)}</table>")
    for key, label in CHANGE_LISTS:
        items = cmp[key]
        if not items:
            continue
        lis = []
        for item in items:
            text = f"<b>{_e(item['id'])}</b> {_e(item.get('question'))}"
            if "flag_reason" in item and item["flag_reason"]:
                text += f' <span class="badge flag">{_e(item["flag_reason"])}</span>'
            if "old" in item:
                text += f'<div class="old">before: {_e(item["old"])}</div><div class="new">now: {_e(item["new"])}</div>'
            if item.get("why"):
                text += f'<div class="why">{_e(item["why"])}</div>'
            lis.append(f"<li>{text}</li>")
        parts.append(f"<h3>{_e(label)} ({len(items)})</h3><ul>{''.join(lis)}</ul>")
    if not any(cmp[key] for key, _ in CHANGE_LISTS):
        parts.append("<p>No question changed.</p>")
    parts.append("</section>")
    return "\n".join(parts)


def _index_html(rows: list[dict], generated: bool = True, page_of=lambda n: "") -> str:
    """A table of all questions, the answer first, linking to their sections (on this page or a details page)."""
    judged = any(r.get("correct") is not None for r in rows)
    sourced = any(r.get("hit") is not None for r in rows)
    scored = any(r.get("f1") is not None for r in rows)
    head = (
        "<tr><th>id</th><th>question</th>"
        + ("<th>answer</th><th>made</th>" if generated else "")
        + "<th>status</th>"
        + ("<th>correct</th>" if judged else "")
        + ("<th>hit</th>" if sourced else "")
        + ("<th>F1</th>" if scored else "")
        + ("<th>support</th>" if generated else "")
        + "</tr>"
    )
    lines = []
    for n, row in enumerate(rows, start=1):
        status = (_status_badge(row) or "answered") + _flag_badge(row)
        cells = ""
        if judged:
            cells += f"<td>{_fmt_yes_no(row.get('correct'))}</td>"
        if sourced:
            cells += f"<td>{_fmt_yes_no(row.get('hit'))}</td>"
        if scored:
            cells += f"<td>{fmt_rate(row.get('f1'))}</td>"
        if generated:
            cells += f"<td>{fmt_rate(row.get('support'))}</td>"
        answer = ""
        if generated:
            made = row.get("answer_source") or ""
            if made == "reused":
                made = f'reused <span class="meta">{_e(row.get("first_run"))}</span>'
            answer = f"<td>{_e(_short(row.get('error') or row.get('answer')))}</td><td>{made}</td>"
        lines.append(
            f'<tr><td><a href="{page_of(n)}#q-{n}">{_e(row.get("id"))}</a></td><td>{_e(row.get("question"))}</td>'
            f"{answer}<td>{status}</td>{cells}</tr>"
        )
    return f"<table>{head}{''.join(lines)}</table>"


def _short(text: object, limit: int = 160) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _question_html(n: int, row: dict, generated: bool = True) -> str:
    """One question's section: answer, expectations and scores, grounding, citations, retrieved passages."""
    lang = "zh" if is_chinese(f"{row.get('question') or ''} {row.get('answer') or ''}") else "en"
    flagged = " flagged" if row.get("unsupported") else ""
    parts = [
        f'<section class="q{flagged}" id="q-{n}" lang="{lang}">',
        f'<h2><span class="qid">{_e(row.get("id"))}</span>{_e(row.get("question"))}{_status_badge(row)}'
        f"{_flag_badge(row)}</h2>",
    ]
    if row.get("error"):
        parts.append(f'<div class="answer">Error: {_e(row.get("error"))}</div>')
    else:
        parts.append(f'<div class="answer">{_e(row.get("answer"))}</div>')
    facts = []
    if _present(row.get("expected_answer")):
        facts.append(("expected answer", " | ".join(_e(a) for a in expected_answers(row["expected_answer"]))))
        facts.append(("correct", _fmt_yes_no(row.get("correct"))))
        em = "n/a" if row.get("exact_match") is None else ("yes" if row.get("exact_match") == 1.0 else "no")
        facts.append(("exact match / F1", f"{em} / {fmt_rate(row.get('f1'))}"))
    if _present(row.get("expected_source")):
        hit = row.get("hit")
        badge = '<span class="badge hit">hit</span>' if hit else '<span class="badge miss">miss</span>'
        facts.append(("expected source", f"{_e(row['expected_source'])} {badge}"))
        facts.append(("reciprocal rank", fmt_num(row.get("reciprocal_rank"))))
    support = fmt_rate(row.get("support"))
    if row.get("flag_reason"):
        support += f" ({_e(row['flag_reason'])})"
    elif generated and (row.get("refused") or row.get("error")):
        support += " (not checked)"
    facts.append(("support in cited passages", support))
    facts.append(
        (
            "latency",
            f"{fmt_ms(row.get('latency_ms'))} (retrieval {fmt_ms(row.get('retrieval_ms'))}, "
            f"generation {fmt_ms(row.get('generation_ms'))})",
        )
    )
    facts.append(("tokens", f"{_e(row.get('prompt_tokens'))} prompt, {_e(row.get('completion_tokens'))} completion"))
    if row.get("answer_source") == "reused":
        facts.append(("answer", f"reused from the answer cache (first made in run {_e(row.get('first_run'))})"))
    elif row.get("answer_source") == "generated":
        facts.append(("answer", "generated in this run"))
    parts.append("<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>")

    citations = row.get("citations") or []
    if citations:
        items = "".join(f"<li>{_e(c.get('source'))}{_fmt_page(c.get('page'))}</li>" for c in citations)
        parts.append(f"<h3>Citations</h3><ul>{items}</ul>")
    else:
        parts.append("<h3>Citations</h3><p>none</p>")

    retrieved = row.get("retrieved") or []
    parts.append(f"<h3>Retrieved passages ({len(retrieved)})</h3>")
    expected_source = row.get("expected_source")
    for rank, passage in enumerate(retrieved, start=1):
        source = str(passage.get("source") or "")
        match = _present(expected_source) and source_matches(str(expected_source), source)
        score = passage.get("score")
        score_text = fmt_num(float(score)) if score is not None else "n/a"
        parts.append(
            f"<details{' class=match' if match else ''}><summary>#{rank} {_e(source)}"
            f"{_fmt_page(passage.get('page'))} · score {score_text}{' · expected source' if match else ''}"
            f'</summary><div class="passage">{_e(passage.get("text"))}</div></details>'
        )
    parts.append("</section>")
    return "\n".join(parts)


# Up to this many questions, report.html holds every question's section; past it, the sections go to
# details-NNN.html pages of this many each, so the main page stays a table a browser opens at once.
INLINE_DETAILS = 500


def _trend_svg(history: list[dict]) -> str:
    """The set's accuracy and recall@k over its runs in this store (0-100%), and the unsupported count, as SVG."""
    if len(history) < 2:
        return ""
    width, height, pad = 520, 140, 24
    xs = [pad + i * (width - 2 * pad) / (len(history) - 1) for i in range(len(history))]

    def line(key: str, color: str) -> str:
        points = [(x, h.get(key)) for x, h in zip(xs, history) if h.get(key) is not None]
        if not points:
            return ""
        coords = " ".join(f"{x:.1f},{height - pad - v * (height - 2 * pad):.1f}" for x, v in points)
        dots = "".join(
            f'<circle cx="{x:.1f}" cy="{height - pad - v * (height - 2 * pad):.1f}" r="3" fill="{color}"/>'
            for x, v in points
        )
        return f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{coords}"/>{dots}'

    counts = "".join(
        f'<text x="{x:.1f}" y="{height - 6}" font-size="10" '
        f'text-anchor="middle">{_e(h.get("unsupported", "n/a"))}</text>'
        for x, h in zip(xs, history)
    )
    legend = (
        '<text x="4" y="12" font-size="11"><tspan fill="#1d4ed8">accuracy</tspan> · '
        '<tspan fill="#059669">recall@k</tspan> · unsupported answers below each run</text>'
    )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="accuracy, recall@k and unsupported answers over {len(history)} runs">{legend}'
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#ccc"/>'
        f"{line('accuracy', '#1d4ed8')}{line('recall_at_k', '#059669')}{counts}</svg>"
    )
    runs = " · ".join(_e(_fmt_when(h.get("created_at"))) for h in history)
    heading = "<h2>Trend of this question set</h2>"
    return f'<section class="box trend" id="trend">{heading}{svg}<p class="meta">{runs}</p></section>'


def _with_current(summary: dict) -> list[dict]:
    """The set's earlier runs (summary["history"]) and this one."""
    if not summary.get("history"):
        return []
    keys = ("created_at", "accuracy", "recall_at_k", "unsupported")
    return [*summary["history"], {k: summary.get(k) for k in keys}]


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_css()}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def render_html(rows: list[dict], summary: dict, *, title: str) -> str:
    """The self-contained HTML report (inline CSS, no scripts, every text escaped); rows must be scored."""
    generated = summary.get("generated", True)
    body = "\n".join(_question_html(n, row, generated) for n, row in enumerate(rows, start=1))
    return _page(title, _head_html(rows, summary, title) + "\n" + body)


def _head_html(rows: list[dict], summary: dict, title: str, page_of=lambda n: "") -> str:
    """The top of report.html: meta line, changes and trend, check-first list, figure cards, the question table."""
    generated = summary.get("generated", True)
    meta = (
        f"model {_e(summary['model'])} · embeddings {_e(summary['embedding_model'])} · mode {_e(summary['mode'])}"
        f" · top_k {_e(summary['top_k'])} · {_e(summary['created_at'])}"
        + ("" if generated else " · retrieval only: no answers generated")
        + (f" · for {_e(summary['audience'])}" if summary.get("audience") else "")
    )
    notes = "".join(f'<p class="meta">{_e(w)}</p>' for w in summary.get("warnings") or [])
    changes = _changes_html(summary["comparison"]) if summary.get("comparison") else ""
    return (
        f"<h1>{_e(title)}</h1>\n<p "
        f'class="meta">{meta}</p>\n{notes}{changes}\n{_trend_svg(_with_current(summary))}\n'
        f"{_check_first_html(rows, summary, page_of)}\n{_summary_html(summary)}\n"
        f"{_index_html(rows, generated, page_of)}"
    )


def write_html(out: Path, rows: list[dict], summary: dict, *, title: str, details: Iterable[dict]) -> None:
    """report.html, and details-NNN.html pages past INLINE_DETAILS questions; sections are written as they stream."""
    generated = summary.get("generated", True)
    paged = len(rows) > INLINE_DETAILS

    def page_of(n: int) -> str:
        return f"details-{(n - 1) // INLINE_DETAILS + 1:03d}.html" if paged else ""

    for old in Path(out).glob("details-*.html"):
        old.unlink()
    head = _head_html(rows, summary, title, page_of)
    if not paged:
        body = "\n".join(_question_html(n, row, generated) for n, row in enumerate(details, start=1))
        (Path(out) / "report.html").write_text(_page(title, head + "\n" + body), encoding="utf-8")
        return
    (Path(out) / "report.html").write_text(_page(title, head), encoding="utf-8")
    fh = None
    try:
        for n, row in enumerate(details, start=1):
            if (n - 1) % INLINE_DETAILS == 0:
                if fh is not None:
                    fh.write("</main></body></html>\n")
                    fh.close()
                fh = (Path(out) / page_of(n)).open("w", encoding="utf-8")
                last = min(n + INLINE_DETAILS - 1, len(rows))
                fh.write(
                    _page(
                        f"{title}: questions {n}-{last}", '<p><a href="report.html">back to the report</a></p>'
                    ).split("</main>")[0]
                )
            fh.write(_question_html(n, row, generated) + "\n")
    finally:
        if fh is not None:
            fh.write("</main></body></html>\n")
            fh.close()
