"""The ONNX export of all-MiniLM-L6-v2 gives sentence-transformers' vectors and rankings on each installed runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tasks.embed.exported import (
    MANIFEST_FILE,
    OnnxEmbedder,
    bundled_model_dir,
    export_is_current,
    export_onnx,
)

pytestmark = pytest.mark.slow

# The CMRC 2018 trial set is evaluation data kept beside the repository, never in it: the shared
# folder next to this checkout, or the machines' shared data folder.
CMRC_PLACES = [Path(__file__).resolve().parents[3] / "shared" / "data", Path("/work/shared/data")]
CMRC = next(
    (p / "cmrc2018_trial.json" for p in CMRC_PLACES if (p / "cmrc2018_trial.json").is_file()),
    CMRC_PLACES[0] / "cmrc2018_trial.json",
)

ENGLISH = [
    "The robot vacuum empties its dust bin into the dock after every cleaning run.",
    "Refunds are paid to the original card within ten working days of the return.",
    "Our Berlin office opened in October 2019 and handles support for Germany and Austria.",
    "Press and hold the power button for five seconds to reset the lock to factory settings.",
    "Employees may carry over at most five days of unused annual leave into the next year.",
    "Travel by train is preferred for trips under four hours; flights need a manager's approval.",
    "The warranty covers manufacturing defects for two years but not batteries or brushes.",
    "If the LiDAR sensor is blocked, the vacuum stops and the app shows error code E7.",
    "Passwords must be at least twelve characters long and must not be reused across services.",
    "A quarterly report summarises revenue, open support tickets and the product roadmap.",
    "Rain fell steadily over the harbour while the ferries waited for the fog to lift.",
    "She translated the letter from German into English before the meeting on Monday.",
]
CHINESE = [
    "扫地机器人每次清扫结束后会自动回到基站倒垃圾。",
    "退款将在收到退货后十个工作日内退回原支付卡。",
    "员工每年最多可以将五天未休年假结转到下一年。",
    "长按电源键五秒钟即可将门锁恢复出厂设置。",
    "出差四小时以内优先乘坐火车，乘坐飞机需要经理批准。",
    "保修期为两年，覆盖制造缺陷，但不包括电池和刷子。",
    "如果激光雷达传感器被遮挡，机器会停止工作，应用显示错误代码E7。",
    "密码长度至少十二位，并且不得在不同服务之间重复使用。",
    "深圳总部负责硬件研发、工业设计和供应商管理。",
    "季度报告汇总了营业收入、未解决的客服工单和产品路线图。",
    "北京是中华人民共和国的首都，也是全国的政治和文化中心。",
    "雨一直下着，渡轮在港口等待大雾散去。",
]
# The chosen default (OpenVINO at its default precision) and the fallback (ONNX Runtime, f32).
CONFIGS = [("openvino", "default"), ("onnxruntime", "f32")]


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory) -> Path:
    return export_onnx(bundled_model_dir(), tmp_path_factory.mktemp("onnx-minilm"))


@pytest.fixture(scope="session")
def torch_model():
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(2)
    return SentenceTransformer(str(bundled_model_dir()), device="cpu")


def _torch_encode(model, texts: list[str]) -> np.ndarray:
    return model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)


@pytest.fixture(scope="session")
def cmrc() -> tuple[list[str], list[str]]:
    """The 256 CMRC trial paragraphs and the first 150 questions."""
    if not CMRC.is_file():
        pytest.skip(f"the CMRC trial data is not on this machine (looked in {', '.join(map(str, CMRC_PLACES))})")
    data = json.loads(CMRC.read_text(encoding="utf-8"))["data"]
    paragraphs = [item["paragraphs"][0]["context"] for item in data]
    questions = [qa["question"] for item in data for qa in item["paragraphs"][0]["qas"]][:150]
    return paragraphs, questions


@pytest.fixture(scope="session")
def torch_cmrc_top5(torch_model, cmrc) -> np.ndarray:
    paragraphs, questions = cmrc
    return _top5(_torch_encode(torch_model, questions), _torch_encode(torch_model, paragraphs))


def _top5(queries: np.ndarray, passages: np.ndarray) -> np.ndarray:
    return np.argsort(-(queries @ passages.T), axis=1, kind="stable")[:, :5]


def _embedder(export_dir: Path, runtime: str, precision: str) -> OnnxEmbedder:
    # Both runtimes come with the install (openvino from the Makefile, onnxruntime with chromadb): no skip.
    return OnnxEmbedder(export_dir, runtime, threads=2, precision=precision)


def test_export_writes_a_manifest_and_is_skipped_when_current(export_dir):
    manifest = json.loads((export_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert manifest["dimension"] == 384 and manifest["max_seq_length"] == 256 and len(manifest["weights_sha256"]) == 64
    before = (export_dir / "model.onnx").stat().st_mtime_ns
    assert export_onnx(bundled_model_dir(), export_dir) == export_dir
    assert (export_dir / "model.onnx").stat().st_mtime_ns == before


def test_a_stale_manifest_is_detected(export_dir, tmp_path):
    stale = tmp_path / "stale"
    stale.mkdir()
    for name in ("model.onnx", MANIFEST_FILE):
        (stale / name).symlink_to(export_dir / name)
    assert export_is_current(bundled_model_dir(), stale)
    manifest = json.loads((export_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    (stale / MANIFEST_FILE).unlink()
    (stale / MANIFEST_FILE).write_text(json.dumps({**manifest, "weights_sha256": "0" * 64}), encoding="utf-8")
    assert not export_is_current(bundled_model_dir(), stale)


@pytest.mark.parametrize("runtime,precision", CONFIGS)
def test_vectors_match_torch_on_english_and_chinese(export_dir, torch_model, runtime, precision):
    embedder = _embedder(export_dir, runtime, precision)
    texts = ENGLISH + CHINESE
    got = embedder.encode(texts, batch_size=8)
    want = _torch_encode(torch_model, texts)
    assert got.shape == (len(texts), embedder.dimension) == (24, 384) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosine = (got * want).sum(axis=1)
    assert cosine.min() >= 0.999, dict(zip(texts, cosine.round(5)))
    # Input order is kept although batches are sorted by length.
    assert (embedder.encode([texts[5]]) @ got[5]) >= 0.9999


@pytest.mark.parametrize("runtime,precision", CONFIGS)
def test_cmrc_top5_agrees_with_torch(export_dir, cmrc, torch_cmrc_top5, runtime, precision):
    embedder = _embedder(export_dir, runtime, precision)
    paragraphs, questions = cmrc
    top5 = _top5(embedder.encode(questions), embedder.encode(paragraphs))
    overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(top5, torch_cmrc_top5)])
    assert overlap >= 0.99


def test_tokenizer_counts_unknown_chinese_characters(export_dir):
    embedder = _embedder(export_dir, "openvino", "f32")
    ids = embedder.tokenizer(CHINESE[10], add_special_tokens=False)["input_ids"]
    assert embedder.tokenizer.unk_token_id in ids
    assert embedder.encode([]).shape == (0, 384)


def test_the_embedding_precision_is_measured_once_per_machine_and_cached(export_dir, tmp_path, monkeypatch):
    from tasks.embed import precision

    cache = tmp_path / "embed-precision.json"
    monkeypatch.setattr(precision, "cache_file", lambda: cache)
    pick = precision.fastest_precision(export_dir, threads=2)
    assert pick in ("f32", "default")
    (entry,) = json.loads(cache.read_text()).values()
    assert entry["precision"] == pick
    rates = entry["probe_texts_per_s"]
    if rates:  # a bf16 CPU: both were timed, and bf16 kept only when clearly faster
        bf16 = next(v for k, v in rates.items() if k != "f32")
        assert (pick == "default") == (bf16 >= precision.BF16_MARGIN * rates["f32"])

    def measure_again(_embedder):
        raise AssertionError("measured again")

    monkeypatch.setattr(precision, "_rate", measure_again)
    assert precision.fastest_precision(export_dir, threads=2) == pick
