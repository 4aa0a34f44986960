"""The one text decoder: documents and question files of unknown encoding, Chinese exports included."""

from __future__ import annotations

_FALLBACK_DECODINGS = ("gb18030", "big5")


class TextDecodeError(ValueError):
    """The bytes are not text in any encoding kbflow reads; str() is the reason shown to users."""


def decode_text(data: bytes) -> str:
    """Decode text of unknown encoding: UTF-8 (with or without BOM), GB18030 if it reads as Chinese, a detector, then
    GB18030 and Big5."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    # Short Chinese text fools detectors (GB18030 bytes also read as Korean): prefer GB18030 when it
    # decodes cleanly into mostly Chinese characters.
    try:
        text = data.decode("gb18030")
        wide = [ch for ch in text if ord(ch) > 127]
        if (
            wide
            and sum(1 for ch in wide if "\u3000" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef") / len(wide) >= 0.8
        ):
            return text
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is not None and best.encoding:
        # A Chinese guess of any flavour is read as GB18030, its superset.
        enc = (
            "gb18030" if best.encoding.lower().replace("-", "") in {"gb2312", "gbk", "gb18030", "hz"} else best.encoding
        )
        try:
            return data.decode(enc)
        except (UnicodeDecodeError, LookupError):
            pass
    for encoding in _FALLBACK_DECODINGS:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            pass
    raise TextDecodeError("cannot decode text: not UTF-8, GB18030 or Big5")
