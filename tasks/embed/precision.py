"""The precision OpenVINO embeds fastest in on this machine: measured once per CPU, then cached.

OpenVINO computes in bf16 by default on a CPU that has avx512_bf16. On the AMD EPYC VMs kbflow was first measured
on that was 1.7x faster than f32 (FACTS.md). On the Intel Xeon VM of the same size this was written on, it was the
other way round: f32 embedded 81 English and 39 Chinese chunks/s, bf16 46 and 22. f32 is also exact (the same
vectors as torch; bf16's are within cosine 0.9999). So the first load times both on a fixed mixed probe and keeps
bf16 only when it is at least 20% faster; `make install` does it once, and the answer is cached in the venv
(share/kbflow/embed-precision.json), keyed by CPU model, core count, OpenVINO version and the export's weights.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from tasks.machine import cpu_count, cpu_model, read_measured, write_measured

logger = logging.getLogger("kbflow.tasks.embed.precision")

# A fixed probe: the same texts on every machine, long and short, Chinese and English, as chunks are.
PROBE = [
    "差旅政策规定每日餐补，火车票报销二等座，所有费用须在三十天内附发票提交。" * 6,
    "The travel policy pays a daily meal allowance and covers trains in second class. " * 4,
    "Expenses are filed within thirty days with the receipts attached.",
    "质保期为两年，电池另计十二个月；维修中心在上海和深圳。" * 3,
] * 8
BF16_MARGIN = 1.2


def cache_file() -> Path:
    return Path(sys.prefix) / "share" / "kbflow" / "embed-precision.json"


def machine_key(export_dir: Path) -> str:
    from tasks.embed.exported import MANIFEST_FILE, _import_openvino

    openvino = _import_openvino()

    try:
        weights = json.loads((export_dir / MANIFEST_FILE).read_text(encoding="utf-8")).get("weights_sha256", "")
    except (OSError, ValueError):
        weights = ""
    return f"{cpu_model()} | {cpu_count()} cpus | openvino {openvino.__version__} | {weights[:16]}"


def _rate(embedder) -> float:
    embedder.encode(PROBE[:4])  # the first call pays for allocations
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        embedder.encode(PROBE)
        best = min(best, time.perf_counter() - started)
    return len(PROBE) / best


def fastest_precision(export_dir: str | Path, threads: int) -> str:
    """ "f32" or OpenVINO's "default" (bf16 where the CPU has it), whichever embeds faster here; measured once."""
    from tasks.embed.exported import OnnxEmbedder

    export_dir = Path(export_dir)
    key = machine_key(export_dir)
    entries = read_measured(cache_file())
    if key in entries:
        return entries[key]["precision"]
    default = OnnxEmbedder(export_dir, "openvino", threads=threads)
    if default.inference_precision == "f32":  # no bf16 on this CPU: nothing to choose
        pick, rates = "f32", {}
    else:
        exact = OnnxEmbedder(export_dir, "openvino", threads=threads, precision="f32")
        rates = {"f32": _rate(exact), default.inference_precision: _rate(default)}
        pick = "default" if rates[default.inference_precision] >= BF16_MARGIN * rates["f32"] else "f32"
    entries[key] = {"precision": pick, "probe_texts_per_s": {k: round(v, 1) for k, v in rates.items()}}
    write_measured(cache_file(), entries)
    logger.info("Measured embedding speed by precision: %s texts/s; embedding in %s", rates, pick)
    return pick


if __name__ == "__main__":
    # `make install` runs this with the export folder it made; no settings are read here (tasks sit below them).
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    export = Path(sys.prefix) / "share" / "kbflow" / "all-MiniLM-L6-v2-onnx"
    parser.add_argument("export_dir", type=Path, nargs="?", default=export)
    parser.add_argument("--threads", type=int, default=cpu_count())
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from tasks.offline import apply_offline_env

    apply_offline_env()
    print(fastest_precision(args.export_dir, args.threads))
