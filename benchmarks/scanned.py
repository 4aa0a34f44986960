"""A held-out folder of scanned files, ingested by kbflow: failures, pages OCR'd, pages per second and retrieval-only
recall@5 of each question's expected source.

    .venv/bin/python benchmarks/scanned.py               # the folder (benchmarks/scanned_corpus.py), 2 cores
    .venv/bin/python benchmarks/scanned.py --pages-300   # peak memory of ingesting a 300-page image-only PDF

The folder is built deterministically from the text in benchmarks/scanned_corpus.py (Tidewell Marine Instruments,
Chinese and English): image-only PDFs (A4 pages scanned at 150 dpi, JPEG inside, one of four pages), PNGs and JPEGs
(quality 75, tilted up to a degree, with speckle). Each phase runs in its own process, for its peak RSS. Writes
benchmarks/results/scanned.json (or scanned-300.json). The CJK font comes from the paperang-p2-fonts-cjk wheel (a
dev dependency).
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPO, cjk_font_path, peak_rss_mb, save  # noqa: E402 - run as a script: the repository goes on sys.path first
from benchmarks.retrieval import score  # noqa: E402
from benchmarks.scanned_corpus import DOCUMENTS, QUESTIONS  # noqa: E402

A4_150DPI = (1240, 1754)
MARGIN = 110
FONT_PX = 26  # about 12.5 pt at 150 dpi
LINE_PX = 40
# A PDF's creation date is part of its bytes: fixed, so the folder's files hash the same on every run.
FIXED_DATE = datetime.datetime(2026, 5, 1, tzinfo=datetime.UTC)


def font(size: int):
    from PIL import ImageFont

    return ImageFont.truetype(str(cjk_font_path()), size)


def wrap(text: str, face, width: int) -> list[str]:
    """A paragraph's lines at most width pixels long: English broken at spaces, Chinese between any characters."""
    lines: list[str] = []
    line = ""
    for token in _tokens(" ".join(text.split())):
        candidate = line + token
        if line and face.getlength(candidate.rstrip()) > width:
            lines.append(line.rstrip())
            line = token.lstrip()
        else:
            line = candidate
    if line.strip():
        lines.append(line.rstrip())
    return lines


def _tokens(text: str) -> list[str]:
    """Words with their trailing space, and each CJK character on its own."""
    tokens: list[str] = []
    word = ""
    for ch in text:
        if ord(ch) > 0x2E80:
            if word:
                tokens.append(word)
                word = ""
            tokens.append(ch)
        elif ch == " ":
            tokens.append(word + " ")
            word = ""
        else:
            word += ch
    if word:
        tokens.append(word)
    return tokens


def render_page(text: str, seed: int, *, size: tuple[int, int] | None = None, tilt: float = 0.4, paper: int = 255):
    """A page as a scanner gives it: title and paragraphs in black, tilted by up to `tilt` degrees, with speckle; a
    page of `size` pixels (A4 at 150 dpi by default) or, without it, as tall as its text."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    width = (size or A4_150DPI)[0]
    body, title_face = font(FONT_PX), font(FONT_PX + 8)
    paragraphs = [p for p in text.strip().split("\n\n")]
    title, first = paragraphs[0].split("\n", 1) if "\n" in paragraphs[0] else (paragraphs[0], "")
    blocks = [(title_face, wrap(title, title_face, width - 2 * MARGIN))]
    for para in ([first] if first else []) + paragraphs[1:]:
        blocks.append((body, wrap(para, body, width - 2 * MARGIN)))
    height = size[1] if size else MARGIN + sum(len(ls) * LINE_PX + LINE_PX // 2 for _, ls in blocks) + MARGIN
    page = Image.new("L", (width, height), paper)
    draw = ImageDraw.Draw(page)
    y = MARGIN
    for face, lines in blocks:
        for line in lines:
            draw.text((MARGIN, y), line, font=face, fill=rng.randrange(0, 40))
            y += LINE_PX + (8 if face is title_face else 0)
        y += LINE_PX // 2
    for _ in range(width * height // 1500):
        draw.point((rng.randrange(width), rng.randrange(height)), fill=rng.randrange(0, 160))
    angle = rng.uniform(-tilt, tilt)
    return page.rotate(angle, resample=Image.BICUBIC, fillcolor=paper, expand=False)


def jpeg_bytes(image, quality: int = 75) -> bytes:
    buf = io.BytesIO()
    image.convert("L").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def image_pdf(pages: list[bytes]) -> bytes:
    """An image-only PDF of A4 pages, each a scanned JPEG (no text layer), as a scanner writes it."""
    from fpdf import FPDF

    pdf = FPDF(unit="mm", format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_creation_date(FIXED_DATE)
    for data in pages:
        pdf.add_page()
        pdf.image(io.BytesIO(data), x=0, y=0, w=210, h=297)
    return bytes(pdf.output())


def write_folder(folder: Path) -> dict:
    """The held-out scanned folder: one file per document of scanned_corpus.DOCUMENTS; its counts by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    counts = {"files": 0, "pages": 0, "pdf": 0, "png": 0, "jpg": 0}
    for index, (name, pages) in enumerate(DOCUMENTS.items()):
        seed = index * 100
        kind = name.rsplit(".", 1)[1]
        if kind == "pdf":
            data = image_pdf(
                [jpeg_bytes(render_page(p, seed + i, size=A4_150DPI, tilt=0.5)) for i, p in enumerate(pages)]
            )
        elif kind == "png":
            buf = io.BytesIO()
            render_page(pages[0], seed, tilt=0.3).save(buf, format="PNG")
            data = buf.getvalue()
        else:  # a scan or phone photo saved as JPEG: greyish paper, a larger tilt
            data = jpeg_bytes(render_page(pages[0], seed, tilt=1.0, paper=236))
        (folder / name).write_bytes(data)
        counts["files"] += 1
        counts["pages"] += len(pages)
        counts[kind] += 1
    return counts


def write_long_pdf(path: Path, pages: int) -> int:
    """An image-only PDF of `pages` distinct A4 scans (the folder's pages in turn, each numbered); its size."""
    texts = [p for doc in DOCUMENTS.values() for p in doc]
    scans = [
        jpeg_bytes(render_page(f"Page {n + 1}\n\n{texts[n % len(texts)]}", n, size=A4_150DPI, tilt=0.5))
        for n in range(pages)
    ]
    path.write_bytes(image_pdf(scans))
    return path.stat().st_size


def time_ocr() -> dict:
    """Count the pages kbflow's OCR reads in this process, and the seconds it takes (the ingest's lanes are threads
    of this process)."""
    import tasks.ingest.ocr as ocr

    stats = {"pages": 0, "seconds": 0.0}
    lock = threading.Lock()
    real = ocr.ocr_page

    def timed(image, threads: int = 0):
        started = time.perf_counter()
        page = real(image, threads)
        with lock:
            stats["pages"] += 1
            stats["seconds"] += time.perf_counter() - started
        return page

    ocr.ocr_page = timed
    return stats


def phase_folder(folder: str, store: str) -> dict:
    """Ingest the folder in this process, then score retrieval-only recall@5 of each question's expected source."""
    from flows.errors import DocumentsFailed
    from flows.ingest import ingest_flow
    from tasks.answer.options import RetrievalOptions
    from tasks.answer.retrieve import retrieve_context
    from tasks.ingest.ocr import get_engine
    from tasks.settings import load_settings

    stats = time_ocr()
    started = time.perf_counter()
    try:
        summary = ingest_flow(source_path=folder, store_dir=store)
    except DocumentsFailed as exc:
        summary = exc.summary
    wall = time.perf_counter() - started
    cfg = load_settings(store_dir=store)
    rows, by_kind = [], {}
    for question, source, kind in QUESTIONS:
        out = retrieve_context.fn(question, cfg.store_config(), cfg.embedder_config(), RetrievalOptions(top_k=5))
        ranked = list(dict.fromkeys(p["source"] for p in out["passages"]))
        r1, r5, _ = score(ranked, source)
        rows.append({"question": question, "source": source, "kind": kind, "hit@5": r5, "rank1": r1, "top": ranked})
        by_kind.setdefault(kind, []).append(r5)
    recall = {k: {"questions": len(v), "recall@5": round(sum(v) / len(v), 3)} for k, v in sorted(by_kind.items())}
    engine = get_engine()
    return {
        "files_failed": len(summary["failed"]),
        "failed": summary["failed"],
        "warnings": summary.get("warnings", []),
        "documents_indexed": summary["added"] + summary["updated"],
        "chunks": summary["chunks_written"],
        "pages_ocr": stats["pages"],
        "ocr_seconds": round(stats["seconds"], 1),
        "ocr_pages_per_second": round(stats["pages"] / stats["seconds"], 2) if stats["seconds"] else None,
        "ingest_seconds": round(wall, 1),
        "ingest_pages_per_second": round(stats["pages"] / wall, 2),
        "ocr_runtime": "openvino" if type(engine.text_det.infer).__name__ == "_OpenVinoSession" else "onnxruntime",
        "recall@5": round(sum(r["hit@5"] for r in rows) / len(rows), 3),
        "recall@1": round(sum(r["rank1"] for r in rows) / len(rows), 3),
        "recall@5_by_language": recall,
        "peak_rss_mb": round(peak_rss_mb()),
        "misses": [r for r in rows if not r["hit@5"]],
    }


def phase_long(folder: str, store: str, ocr_every: int, from_bytes: bool) -> dict:
    """Ingest a folder holding the long PDF in this process, OCR'ing one page in `ocr_every` (the others get a
    fixed text, after being rendered as usual): the whole file is read, rendered and indexed, in a fraction of the
    OCR time. from_bytes reads the file whole first, as kbflow did before."""
    import tasks.ingest.index as index
    import tasks.ingest.ocr as ocr
    from flows.ingest import ingest_flow

    real = ocr.ocr_page
    seen = {"rendered": 0, "ocr": 0, "ocr_seconds": 0.0}

    def some(image, threads: int = 0):
        seen["rendered"] += 1
        if seen["rendered"] % ocr_every:
            return ocr.OcrPage(
                text=f"Rendered page {seen['rendered']} of the long scan, not OCR'd.", confidence=1.0, lines=1
            )
        started = time.perf_counter()
        page = real(image, threads)
        seen["ocr"] += 1
        seen["ocr_seconds"] += time.perf_counter() - started
        return page

    ocr.ocr_page = some
    if from_bytes:
        index.read_document = lambda source, ref: source.read(ref)
    started = time.perf_counter()
    summary = ingest_flow(source_path=folder, store_dir=store)
    return {
        "read": "whole file into memory (before)" if from_bytes else "from its path, a page at a time",
        "pages_rendered": seen["rendered"],
        "pages_ocr": seen["ocr"],
        "ocr_seconds_per_page": round(seen["ocr_seconds"] / seen["ocr"], 2) if seen["ocr"] else None,
        "ingest_seconds": round(time.perf_counter() - started, 1),
        "files_failed": len(summary["failed"]),
        "chunks": summary["chunks_written"],
        "peak_rss_mb": round(peak_rss_mb()),
    }


def run_phase(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages-300", action="store_true", help="measure a 300-page image-only PDF's ingest memory")
    ap.add_argument("--pages", type=int, default=300, help="with --pages-300: the long PDF's pages")
    ap.add_argument("--ocr-every", type=int, default=10, help="with --pages-300: OCR one page in this many")
    ap.add_argument("--keep", type=Path, help="write the folder here (and keep it) instead of a temporary one")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kbflow-scanned-"))
    load = round(os.getloadavg()[0], 2)
    try:
        if args.pages_300:
            runs, sizes = [], {}
            # The long file read from its path and from its bytes, and a third of it from its path: memory that
            # grows with the file shows as a difference between the first and the last.
            for pages, mode in ((args.pages, "path"), (args.pages, "bytes"), (max(args.pages // 3, 1), "path")):
                folder = work / f"long-{pages}"
                if not folder.exists():
                    folder.mkdir()
                    sizes[pages] = round(write_long_pdf(folder / "scanned_archive.pdf", pages) / 2**20, 1)
                store = work / f"store-{pages}-{mode}"
                runs.append(
                    {"pages": pages, "file_mb": sizes[pages]}
                    | run_phase("--phase-long", str(folder), str(store), str(args.ocr_every), mode)
                )
            result = {"ocr_every": args.ocr_every, "load_average_before": load, "runs": runs}
            name = "scanned-300"
        else:
            folder = args.keep or work / "scanned"
            counts = write_folder(folder)
            result = {
                "folder": counts,
                "questions": len(QUESTIONS),
                "load_average_before": load,
                **run_phase("--phase", str(folder), str(work / "store")),
            }
            name = "scanned"
        result["command"] = "benchmarks/scanned.py" + (f" --pages-300 --pages {args.pages}" if args.pages_300 else "")
        print(json.dumps(result, ensure_ascii=False, indent=2))
        print(f"saved to {save(name, result)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in {"--phase", "--phase-long"}:
        import logging

        logging.disable(logging.INFO)
        if sys.argv[1] == "--phase":
            print(json.dumps(phase_folder(sys.argv[2], sys.argv[3]), ensure_ascii=False))
        else:
            print(json.dumps(phase_long(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "bytes")))
    else:
        main()
