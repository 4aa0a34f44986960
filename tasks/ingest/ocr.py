"""OCR of one page image with RapidOCR (PP-OCRv4, Chinese and English, models inside the wheel, run by OpenVINO):
lines joined into paragraphs in reading order, with the page's mean confidence."""

from __future__ import annotations

import importlib.util
import re
import statistics
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tasks.ingest.imports import IMPORTS

# A page whose mean line confidence is under this is named in the ingest summary as a warning.
LOW_CONFIDENCE = 0.8
# Recognized lines scoring under this are dropped (RapidOCR's own default is 0.5): noise and speckle.
MIN_LINE_SCORE = 0.5
# Detection runs on the page scaled to at most this many pixels a side (an A4 page at 150 dpi is 1240 x 1754);
# recognition reads the lines cropped from the full page. 960 instead of 1280: 1.0 s instead of 1.6 s an A4 page,
# the same characters matched (benchmarks/ocr.py).
DET_SIDE = 960
# "openvino" (installed by the Makefile, as for the embedding model) or "onnxruntime" (rapidocr's own).
RUNTIME = "openvino"
DET_MODEL = "ch_PP-OCRv4_det_infer.onnx"
REC_MODEL = "ch_PP-OCRv4_rec_infer.onnx"

_CJK = "\u2e80-\u2fff\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_CJK_CHAR = re.compile(f"[{_CJK}]")
# Spaces the recognizer puts between two CJK characters (or CJK punctuation) are not in the source.
_SPACE_IN_CJK = re.compile(f"(?<=[{_CJK}])[ \t]+(?=[{_CJK}])")


@dataclass(frozen=True)
class OcrLine:
    """One recognized line: its text, bounding box (x0, y0, x1, y1) in pixels and confidence (0-1)."""

    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    score: float

    @property
    def height(self) -> float:
        return self.y1 - self.y0


@dataclass(frozen=True)
class OcrPage:
    """A page's text (paragraphs separated by a blank line), mean line confidence and line count."""

    text: str
    confidence: float
    lines: int

    @property
    def low_confidence(self) -> bool:
        return self.lines > 0 and self.confidence < LOW_CONFIDENCE


def _join_pair(left: str, right: str) -> str:
    """Join two pieces of one paragraph: no space between Chinese characters, a space between words, and an English
    word hyphenated at a line end is rejoined."""
    if not left:
        return right
    if not right:
        return left
    if _CJK_CHAR.match(left[-1]) or _CJK_CHAR.match(right[0]):
        return left + right
    if left.endswith("-") and len(left) > 1 and left[-2].isalpha() and right[0].islower():
        return left[:-1] + right
    return left + " " + right


def _rows(lines: list[OcrLine]) -> list[list[OcrLine]]:
    """Group lines into visual rows (boxes whose vertical centres fall within half a line of each other), top to
    bottom, each row left to right."""
    rows: list[list[OcrLine]] = []
    for line in sorted(lines, key=lambda ln: (ln.y0 + ln.y1) / 2):
        centre = (line.y0 + line.y1) / 2
        if rows:
            last = rows[-1]
            last_centre = statistics.fmean((ln.y0 + ln.y1) / 2 for ln in last)
            last_height = statistics.fmean(ln.height for ln in last)
            if abs(centre - last_centre) < 0.5 * max(min(line.height, last_height), 1.0):
                last.append(line)
                continue
        rows.append([line])
    return [sorted(row, key=lambda ln: ln.x0) for row in rows]


def join_lines(lines: list[OcrLine]) -> str:
    """Lines into paragraphs in reading order: rows top to bottom, pieces of a row left to right; a vertical gap of
    more than about 0.8 line heights, or a row that starts indented, begins a new paragraph."""
    lines = [ln for ln in lines if ln.text.strip()]
    if not lines:
        return ""
    rows = _rows(lines)
    typical = statistics.median(ln.height for ln in lines)
    left_margin = min(ln.x0 for ln in lines)
    paragraphs: list[str] = []
    current = ""
    prev_bottom = None
    for row in rows:
        text = ""
        for piece in row:
            text = _join_pair(text, _SPACE_IN_CJK.sub("", piece.text.strip()))
        top = min(ln.y0 for ln in row)
        indented = row[0].x0 - left_margin > 1.5 * typical
        if current and prev_bottom is not None and (top - prev_bottom > 0.8 * typical or indented):
            paragraphs.append(current)
            current = ""
        current = _join_pair(current, text)
        prev_bottom = max(ln.y1 for ln in row)
    if current:
        paragraphs.append(current)
    return "\n\n".join(paragraphs)


# OpenVINO keeps compiled code for every input shape it meets, and a recognition batch comes in any width (its
# widest line's) and 1 to 6 lines: a long scan's memory grew with every page, about 18 MB a page. Each batch is padded
# to a full batch and to a multiple of this width, so the shapes are few and the memory stops growing. The padding is
# blank and read as nothing.
REC_WIDTH_STEP = 128


class _OpenVinoSession:
    """One of RapidOCR's ONNX models compiled by OpenVINO, called as RapidOCR calls its onnxruntime session (a list
    of outputs); an infer request per thread, as two ingest lanes may OCR at once. batch > 0 pads each input to that
    many images and its width to a multiple of REC_WIDTH_STEP (the recognizer)."""

    def __init__(self, model_path: str, threads: int, batch: int = 0):
        from tasks.embed.exported import _import_openvino

        config = {"PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False}  # other jobs share the cores
        if threads > 0:
            config["INFERENCE_NUM_THREADS"] = threads
        self._compiled = _import_openvino().Core().compile_model(model_path, "CPU", config)
        self._local = threading.local()
        self._batch = batch

    def __call__(self, array):
        import numpy as np

        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        n, width = array.shape[0], array.shape[-1]
        if self._batch:
            padded = np.zeros(
                (max(n, self._batch), *array.shape[1:-1], -(-width // REC_WIDTH_STEP) * REC_WIDTH_STEP), array.dtype
            )
            padded[:n, ..., :width] = array
            array = padded
        result = request.infer({0: array})
        return [np.array(result[self._compiled.output(0)][:n], copy=True)]  # the request reuses its output buffer


def get_engine(threads: int = 0, runtime: str = RUNTIME, det_side: int = DET_SIDE):
    """RapidOCR, loaded once per process (about 1 s), by one thread. threads=0 lets the runtime use every core.

    The direction classifier is off (scans are upright). Detection works on the page at its own size, capped at
    det_side pixels a side (RapidOCR maps the boxes back and crops the lines from the full page), rather than scaling
    small images up to 736 pixels (0.2 s instead of 3 s for a one-line image); boxes are widened a little more than
    the default (unclip 2.0), which kept spaces and digits on small images. runtime "openvino" runs the wheel's
    detection and recognition models with OpenVINO instead of onnxruntime: 3-4x faster on these 2-core machines at
    the same characters matched (benchmarks/ocr.py)."""
    with IMPORTS:  # two ingest threads' first pages loaded it twice, importing rapidocr at once
        return _load_engine(threads, runtime, det_side)


@lru_cache(maxsize=2)
def _load_engine(threads: int, runtime: str, det_side: int):
    import logging

    from rapidocr_onnxruntime import RapidOCR

    logging.getLogger("RapidOCR").setLevel(logging.WARNING)
    n = threads if threads > 0 else -1
    engine = RapidOCR(
        use_cls=False,
        text_score=MIN_LINE_SCORE,
        intra_op_num_threads=n,
        inter_op_num_threads=1 if n > 0 else -1,
        det_limit_type="max",
        det_limit_side_len=det_side,
        det_unclip_ratio=2.0,
    )
    if runtime == "openvino" and importlib.util.find_spec("openvino") is not None:  # else onnxruntime, slower
        # Private attributes of rapidocr-onnxruntime==1.4.4 (pinned; tests/tasks/ingest/test_ocr.py reads real
        # pages through them): the detector's `infer` and the recognizer's `session`, each called with the batch.
        models = Path(importlib.util.find_spec("rapidocr_onnxruntime").submodule_search_locations[0]) / "models"
        engine.text_det.infer = _OpenVinoSession(str(models / DET_MODEL), threads)
        engine.text_rec.session = _OpenVinoSession(str(models / REC_MODEL), threads, engine.text_rec.rec_batch_num)
    return engine


def recognize_lines(image, threads: int = 0) -> list[OcrLine]:
    """The lines RapidOCR recognizes on an image (a PIL image or an RGB numpy array)."""
    import numpy as np

    array = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
    result, _ = get_engine(threads)(array)
    lines = []
    for box, text, score in result or []:
        xs = [p[0] for p in box]
        ys = [p[1] for p in box]
        lines.append(OcrLine(str(text), min(xs), min(ys), max(xs), max(ys), float(score)))
    return lines


def ocr_page(image, threads: int = 0) -> OcrPage:
    """OCR one page image into paragraphs, with the mean confidence of its lines (1.0 for a page with no text)."""
    lines = recognize_lines(image, threads)
    confidence = statistics.fmean(ln.score for ln in lines) if lines else 1.0
    return OcrPage(text=join_lines(lines), confidence=confidence, lines=len(lines))
