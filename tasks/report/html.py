"""report.html: Jinja2 templates (templates/*.html.j2) with autoescape: inline CSS from report.css, no scripts, every
text escaped by default."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from functools import lru_cache
from importlib.resources import files
from itertools import islice
from pathlib import Path

from jinja2 import Environment, PackageLoader, Undefined
from markupsafe import Markup

from tasks.report.compare import CHANGE_LISTS
from tasks.report.figures import BY_KEY, COMPARED, shown
from tasks.report.formats import fmt_delta, fmt_ms, fmt_num, fmt_rate
from tasks.report.metrics import _present, expected_answers, source_matches
from tasks.text import is_chinese

# Up to this many questions, report.html holds every question's section; past it, the sections go to
# details-NNN.html pages of this many each, so the main page stays a table a browser opens at once.
INLINE_DETAILS = 500


@lru_cache(maxsize=1)
def _css() -> str:
    """The page's style sheet, a package-data file beside this module."""
    return files("tasks.report").joinpath("report.css").read_text(encoding="utf-8")


def _missing(value: object) -> bool:
    """A template test: the value is None or the key is absent (what row.get() would give as None)."""
    return value is None or isinstance(value, Undefined)


def _plain(fn: Callable) -> Callable:
    """fn called from a template, an absent key passed as None."""

    @functools.wraps(fn)
    def call(*args):
        return fn(*(None if isinstance(a, Undefined) else a for a in args))

    return call


def _fmt_when(created_at: object) -> str:
    """An ISO timestamp as 'YYYY-MM-DD HH:MM UTC', or as given when it is not one."""
    try:
        moment = datetime.fromisoformat(str(created_at))
    except ValueError:
        return str(created_at or "an earlier run")
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M") + (" UTC" if moment.tzinfo is not None else "")


def _short(text: object, limit: int = 160) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@lru_cache(maxsize=1)
def _env() -> Environment:
    """The templates' environment: autoescape on, None shown as nothing, the report's formatters as globals."""
    env = Environment(
        loader=PackageLoader("tasks.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=lambda value: "" if value is None else value,
    )
    env.tests["missing"] = _missing
    env.globals.update(
        {
            name: _plain(fn)
            for name, fn in {
                "fmt_rate": fmt_rate,
                "fmt_num": fmt_num,
                "fmt_ms": fmt_ms,
                "when": _fmt_when,
                "short": _short,
                "is_chinese": is_chinese,
                "present": _present,
                "expected_answers": expected_answers,
                "source_matches": source_matches,
                "shown": shown,
            }.items()
        }
    )
    env.globals["change_lists"] = CHANGE_LISTS
    return env


def _trend_chart(history: list[dict]) -> dict | None:
    """The coordinates of the trend SVG: accuracy and recall@k (0-100%) over the set's runs, the unsupported counts."""
    if len(history) < 2:
        return None
    width, height, pad = 520, 140, 24
    xs = [pad + i * (width - 2 * pad) / (len(history) - 1) for i in range(len(history))]
    lines = []
    for key, color in (("accuracy", "#1d4ed8"), ("recall_at_k", "#059669")):
        y = [None if h.get(key) is None else height - pad - h[key] * (height - 2 * pad) for h in history]
        points = [(x, v) for x, v in zip(xs, y) if v is not None]
        if points:
            lines.append({"color": color, "points": points})
    return {
        "width": width,
        "height": height,
        "pad": pad,
        "lines": lines,
        "counts": [(x, h.get("unsupported", "n/a")) for x, h in zip(xs, history)],
        "runs": [_fmt_when(h.get("created_at")) for h in history],
    }


def _with_current(summary: dict) -> list[dict]:
    """The set's earlier runs (summary["history"]) and this one."""
    if not summary.get("history"):
        return []
    keys = ("created_at", "accuracy", "recall_at_k", "unsupported")
    return [*summary["history"], {k: summary.get(k) for k in keys}]


def _change_figures(cmp: dict | None) -> list[tuple[str, str, str, str]]:
    """(label, before, now, change) of each compared figure, as shown."""
    if not cmp:
        return []
    out = []
    for key in COMPARED:
        d, show = cmp["deltas"][key], BY_KEY[key].show
        out.append((BY_KEY[key].label, show(d["old"]), show(d["new"]), fmt_delta(key, d["delta"])))
    return out


def _report_context(rows: list[dict], summary: dict, title: str, page_of: Callable[[int], str]) -> dict:
    """What report.html.j2 shows above the question sections."""
    return {
        "css": Markup(_css()),  # the package's own style sheet, not document text
        "title": title,
        "summary": summary,
        "rows": rows,
        "generated": summary.get("generated", True),
        "page_of": page_of,
        "flagged": [(n, r) for n, r in enumerate(rows, start=1) if r.get("unsupported")],
        "change_figures": _change_figures(summary.get("comparison")),
        "trend_chart": _trend_chart(_with_current(summary)),
    }


def _write_stream(path: Path, chunks: Iterator[str]) -> None:
    """A page written chunk by chunk as the template generates it."""
    with path.open("w", encoding="utf-8") as fh:
        for chunk in chunks:
            fh.write(chunk)


def render_html(rows: list[dict], summary: dict, *, title: str) -> str:
    """The self-contained HTML report (inline CSS, no scripts, every text escaped); rows must be scored."""
    context = _report_context(rows, summary, title, lambda n: "")
    return _env().get_template("report.html.j2").render(sections=enumerate(rows, start=1), **context)


def write_html(out: Path, rows: list[dict], summary: dict, *, title: str, details: Iterable[dict]) -> None:
    """report.html, and details-NNN.html pages past INLINE_DETAILS questions; sections are written as they stream."""
    paged = len(rows) > INLINE_DETAILS

    def page_of(n: int) -> str:
        return f"details-{(n - 1) // INLINE_DETAILS + 1:03d}.html" if paged else ""

    for old in Path(out).glob("details-*.html"):
        old.unlink()
    env = _env()
    context = _report_context(rows, summary, title, page_of)
    sections = enumerate(details, start=1)
    report = env.get_template("report.html.j2").generate(sections=[] if paged else sections, **context)
    _write_stream(Path(out) / "report.html", report)
    if not paged:
        return
    page = env.get_template("details.html.j2")
    for first in range(1, len(rows) + 1, INLINE_DETAILS):
        last = min(first + INLINE_DETAILS - 1, len(rows))
        chunks = page.generate(
            css=context["css"],
            title=f"{title}: questions {first}-{last}",
            generated=context["generated"],
            sections=islice(sections, INLINE_DETAILS),
        )
        _write_stream(Path(out) / page_of(first), chunks)
