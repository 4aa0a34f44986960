"""Page images for OCR, one page at a time: the frames of an image file, and the PDF pages that have no text layer,
with their size checked before any pixels are decoded."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

IMAGE_TYPES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".heic", ".heif"}
# A page image larger than this is refused before decoding (an image bomb): A4 at 600 dpi is 35 megapixels.
MAX_PIXELS = 60_000_000
# PDF pages without a text layer are rendered at this resolution for OCR.
RENDER_DPI = 150
# A PDF page whose text layer has fewer characters than this is rendered and OCR'd.
MIN_TEXT_CHARS = 10
_OVER_LIMIT = f"over the limit of {MAX_PIXELS / 1e6:.0f} megapixels: an image bomb, or a scan at a needless resolution"


class UnreadableImage(Exception):
    """An image or page that cannot be turned into pixels; str() is the reason shown to users."""


_heif_registered = False


def _register_heif() -> None:
    global _heif_registered
    if not _heif_registered:
        try:
            from pi_heif import register_heif_opener

            register_heif_opener()
        except ImportError:
            pass
        _heif_registered = True


def _check_pixels(width: int, height: int, what: str) -> None:
    if width <= 0 or height <= 0:
        raise UnreadableImage(f"{what} has no pixels ({width} x {height})")
    if width * height > MAX_PIXELS:
        raise UnreadableImage(
            f"{what} is {width} x {height} pixels ({width * height / 1e6:.0f} megapixels), {_OVER_LIMIT}"
        )


def image_pages(data: bytes, suffix: str) -> Iterator[tuple[int, object]]:
    """(page number, RGB PIL image) for each frame of an image file (a multi-page TIFF has several), decoded one at
    a time; raises UnreadableImage for a corrupt, empty or oversized image."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    kind = suffix.lstrip(".")
    if not data:
        raise UnreadableImage(f"empty {kind} image (0 bytes)")
    if suffix in {".heic", ".heif"}:
        _register_heif()
    try:
        # open() reads the header only: the size is checked before any pixel is decoded. PIL's own bomb check
        # (DecompressionBombError, at twice its default limit) would catch it later; ours names the reason.
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise UnreadableImage(f"not a readable {kind} image: corrupt, or not an image") from exc
    except Image.DecompressionBombError as exc:  # past twice PIL's own limit: its check comes first
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(pixels.group(1)) / 1e6:.0f} megapixels" if pixels else "too many pixels"
        raise UnreadableImage(f"the image is {size}, {_OVER_LIMIT}") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise UnreadableImage(f"not a readable {kind} image: {exc}") from exc
    with image:
        for number, frame in enumerate(ImageSequence.Iterator(image), start=1):
            _check_pixels(*frame.size, what=f"page {number}" if number > 1 else "the image")
            try:
                rgb = frame.convert("RGB")  # decodes this frame's pixels
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
                raise UnreadableImage(f"not a readable {kind} image (page {number}): {exc}") from exc
            yield number, rgb


def pdf_pages_without_text(data: bytes | Path, pages_with_text: set[int]) -> Iterator[tuple[int, object]]:
    """(page number, RGB PIL image) for each PDF page not in pages_with_text, rendered at RENDER_DPI one page at a
    time, so a 300-page scan needs the memory of one page (pdfium reads a file given by its path as it goes). A blank
    page is skipped."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    try:
        for index in range(len(pdf)):
            number = index + 1
            if number in pages_with_text:
                continue
            page = pdf[index]
            try:
                width_pt, height_pt = page.get_size()
                scale = RENDER_DPI / 72
                pixels = width_pt * scale * height_pt * scale
                if pixels > MAX_PIXELS:  # a huge page size: render it smaller rather than refuse it
                    scale *= (MAX_PIXELS / pixels) ** 0.5
                bitmap = page.render(scale=scale, grayscale=True)
                image = bitmap.to_pil().convert("RGB")
                bitmap.close()
            finally:
                page.close()
            if _is_blank(image):
                continue
            yield number, image
    finally:
        pdf.close()


def _is_blank(image) -> bool:
    """A page with (almost) nothing on it: OCR would find nothing and take a second to do so."""
    low, high = image.convert("L").getextrema()
    return high - low < 32


def pdf_page_count(data: bytes | Path) -> int:
    """The number of pages in a PDF."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    try:
        return len(pdf)
    finally:
        pdf.close()
