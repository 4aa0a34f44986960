"""The English reader: the bundled MiniLM reads an English question's English passages a second time."""

from __future__ import annotations

import pytest

from tasks.answer.retrieve import ENGLISH_READER, english_reading
from tasks.embed.embedder import get_embedder, resolve_backend
from tasks.settings import Settings

pytestmark = pytest.mark.slow


def test_the_english_reader_reads_english_passages_of_an_english_question():
    config = Settings().embedder_config()  # the store's multilingual embedder, as `kbflow ask` configures it
    passages = [
        {"text": "The game was played on February 7, 2021, at Raymond James Stadium in Tampa, Florida."},
        {"text": "On Location is the only place for Super Bowl LVIII ticket packages."},
        {"text": "第五十五届超级碗于2021年2月7日在佛罗里达州坦帕举行。"},
    ]
    english_reading("Where was the 2021 Super Bowl played?", passages, config)
    assert passages[0]["reading"] > passages[1]["reading"] > 0
    assert "reading" not in passages[2]  # it reads English only
    # The install's export runs it, not torch.
    reader = config.model_copy(update={"model": ENGLISH_READER, "backend": "auto"})
    assert resolve_backend(reader) in ("openvino", "onnxruntime")
    assert get_embedder(reader).dimension == 384
    # A Chinese question is not read by it.
    english = [{"text": passages[0]["text"]}]
    english_reading("2021年超级碗在哪里举行？", english, config)
    assert "reading" not in english[0]
