"""OCR speed and accuracy on rendered A4 pages at 150 dpi (Chinese prose with an English line, slight tilt and
speckle), with kbflow's RapidOCR settings (OpenVINO runtime, detection on the page scaled to 960 pixels a side)
and, for comparison, detection at 1280 pixels, the same two on onnxruntime, and RapidOCR's defaults.

    .venv/bin/python benchmarks/ocr.py --pages 4

Prints pages per second and the share of the source characters the OCR text matches; writes
benchmarks/results/ocr.json. The CJK font comes from the paperang-p2-fonts-cjk wheel (a dev dependency).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import CMRC, RESULTS, cjk_font_path  # noqa: E402 - run as a script: the repository goes on sys.path first

A4_150DPI = (1240, 1754)
ENGLISH = "Travel policy 2024: the hotel limit is 500 yuan per night; invoices go to finance within 30 days."


def paragraphs(n: int, seed: int = 0) -> list[str]:
    """n Chinese paragraphs from the CMRC trial set beside the repository, or a fixed text without it."""
    if CMRC.exists():
        data = json.loads(CMRC.read_text(encoding="utf-8"))["data"]
        texts = [p["context"] for d in data for p in d["paragraphs"]]
        random.Random(seed).shuffle(texts)
        return texts[:n]
    base = "差旅报销政策规定，员工出差住宿标准为每晚五百元，发票须在三十天内提交财务部审核。"
    return [base * 8 for _ in range(n)]


def render_page(text: str, seed: int):
    """An A4 page at 150 dpi: the text wrapped at 40 characters a line (about 11 pt), tilted half a degree, with
    speckle; returns (image, the text as laid out)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(cjk_font_path()), 24)
    lines = [ENGLISH[:60], ENGLISH[60:]] + [text[i : i + 40] for i in range(0, min(len(text), 40 * 30), 40)]
    page = Image.new("L", A4_150DPI, 255)
    draw = ImageDraw.Draw(page)
    for i, line in enumerate(lines):
        draw.text((120, 150 + i * 42), line, font=font, fill=0)
    rng = random.Random(seed)
    for _ in range(1500):
        draw.point((rng.randrange(A4_150DPI[0]), rng.randrange(A4_150DPI[1])), fill=rng.randrange(0, 120))
    page = page.rotate(0.5, resample=Image.BICUBIC, fillcolor=255, expand=False)
    return page.convert("RGB"), "".join(lines)


def matched(expected: str, got: str) -> float:
    a, b = "".join(expected.split()), "".join(got.split())
    return sum(m.size for m in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()) / len(a)


def engine_reader(engine):
    """OCR one image with a RapidOCR engine into an OcrPage, lines joined as kbflow joins them."""
    import numpy as np

    from tasks.ingest.ocr import OcrLine, OcrPage, join_lines

    def read(image):
        result, _ = engine(np.asarray(image))
        lines = [
            OcrLine(t, min(p[0] for p in b), min(p[1] for p in b), max(p[0] for p in b), max(p[1] for p in b), s)
            for b, t, s in result or []
        ]
        return OcrPage(join_lines(lines), statistics.fmean(ln.score for ln in lines) if lines else 1.0, len(lines))

    return read


# variant -> get_engine's (runtime, det_side); "kbflow" is the ingest's own ocr_page.
VARIANTS = {
    "kbflow-onnxruntime": ("onnxruntime", 960),
    "kbflow-det1280": ("openvino", 1280),
    "kbflow-onnxruntime-det1280": ("onnxruntime", 1280),
}


def run(variant: str, pages: list) -> dict:
    from tasks.ingest.ocr import DET_SIDE, RUNTIME, get_engine, ocr_page

    if variant == "kbflow":
        read = ocr_page
        get_engine()
        runtime, det_side = RUNTIME, DET_SIDE
    elif variant in VARIANTS:
        runtime, det_side = VARIANTS[variant]
        read = engine_reader(get_engine(0, runtime, det_side))
    else:
        from rapidocr_onnxruntime import RapidOCR

        read = engine_reader(RapidOCR())
        runtime, det_side = "onnxruntime", 736

    read(pages[0][0])  # warm-up: onnxruntime's first run allocates
    seconds, scores, confidence = [], [], []
    for image, text in pages:
        started = time.perf_counter()
        got = read(image)
        seconds.append(time.perf_counter() - started)
        scores.append(matched(text, got.text))
        confidence.append(got.confidence)
    return {
        "variant": variant,
        "runtime": runtime,
        "det_side": det_side,
        "pages": len(pages),
        "seconds_per_page": round(statistics.fmean(seconds), 2),
        "pages_per_second": round(len(pages) / sum(seconds), 2),
        "characters_matched": round(statistics.fmean(scores), 3),
        "min_characters_matched": round(min(scores), 3),
        "mean_confidence": round(statistics.fmean(confidence), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=4)
    parser.add_argument("--variants", default=",".join(["kbflow", *VARIANTS, "rapidocr-defaults"]))
    args = parser.parse_args()
    pages = [render_page(text, seed) for seed, text in enumerate(paragraphs(args.pages))]
    load = os.getloadavg()[0]
    results = [run(v, pages) for v in args.variants.split(",")]
    for r in results:
        r["load_average_before"] = round(load, 2)  # other jobs on the 2 cores (a nice-19 one counts too)
    for r in results:
        print(json.dumps(r))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ocr.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
