"""A LoRA adapter is checked against its base GGUF before llama.cpp sees it (small GGUF files written here)."""

from __future__ import annotations

import hashlib

import pytest

from tasks.answer.adapters import check_adapter
from tasks.answer.models import ModelError
from tests.tasks.answer.gguf_files import write_base, write_lora

pytestmark = pytest.mark.unit


@pytest.fixture
def base(tmp_path):
    return write_base(tmp_path / "tiny-base.gguf")


def test_an_adapter_made_for_the_base_model_is_accepted_with_its_name_and_sha256(tmp_path, base):
    lora = write_lora(tmp_path / "support-style.gguf", base, rank=4, targets=("attn_q", "attn_v"))
    facts = check_adapter(lora, base)
    assert facts["name"] == "support-style.gguf"
    assert facts["sha256"] == hashlib.sha256(lora.read_bytes()).hexdigest()
    assert (facts["architecture"], facts["rank"], facts["tensors"], facts["alpha"]) == ("llama", 4, 2, 4.0)


def test_a_changed_adapter_file_gets_its_new_sha256(tmp_path, base):
    lora = write_lora(tmp_path / "a.gguf", base, seed=1)
    first = check_adapter(lora, base)["sha256"]
    write_lora(lora, base, seed=2)
    assert check_adapter(lora, base)["sha256"] == hashlib.sha256(lora.read_bytes()).hexdigest() != first


def test_a_missing_adapter_names_the_file_and_the_base_model(tmp_path, base):
    with pytest.raises(ModelError, match=r"nope\.gguf does not exist \(base model tiny-base\.gguf\)"):
        check_adapter(tmp_path / "nope.gguf", base)


@pytest.mark.parametrize(
    "kind, match",
    [
        ({"general_type": "model"}, r"not an adapter GGUF \(general\.type is 'model'"),
        ({"adapter_type": "control_vector"}, r"adapter\.type is 'control_vector'"),
        ({"arch": "qwen2"}, r"architecture 'qwen2', the base model is 'llama'"),
        ({"n_in_offset": 16}, r"blk\.0\.attn_q\.weight is \[16, 8\] in the base model"),
    ],
)
def test_an_adapter_that_does_not_fit_is_refused_naming_both_files(tmp_path, base, kind, match):
    lora = write_lora(tmp_path / "wrong.gguf", base, **kind)
    with pytest.raises(ModelError, match=match) as err:
        check_adapter(lora, base)
    assert str(lora) in str(err.value) and "tiny-base.gguf" in str(err.value)


def test_the_base_model_itself_and_a_text_file_are_not_adapters(tmp_path, base):
    with pytest.raises(ModelError, match=r"tiny-base\.gguf cannot be used .*general\.type is 'model'"):
        check_adapter(base, base)
    text = tmp_path / "notes.gguf"
    text.write_text("not a model", encoding="utf-8")
    with pytest.raises(ModelError, match=r"notes\.gguf is not a readable GGUF file"):
        check_adapter(text, base)
