"""A change of embedding model: the knowledge base is embedded again into a new Chroma collection beside the one
that serves.

- The new collection gets exactly the chunks the serving one holds and the ledger lists (same ids, texts and
  metadata, read back from Chroma: nothing is partitioned or split again), each with the new model's vector. So the
  ledger's documents and chunk ids, and the keyword index made from them, are true of both collections.
- The old collection keeps serving meanwhile: questions read the ledger's record of the serving collection and
  embed with that collection's own model.
- When the new one holds every chunk, one ledger transaction switches (Ledger.switch_embedding) and retires the old
  one; the next refresh drops it, so a question that opened it just before the switch still finds it.
- A run stopped half-way leaves the old collection serving and the new one partial; the next refresh with the same
  model embeds only the chunks the new one still lacks.
"""

from __future__ import annotations

import logging
import time

from prefect import task
from prefect.cache_policies import NONE

from tasks import progress
from tasks.embed.embedder import EmbedderConfig, get_embedder
from tasks.ingest.ledger import Ledger
from tasks.store.base import EmbeddingMismatchError, StoreConfig
from tasks.store.chroma import ChromaStore, collection_for_model, pinned

logger = logging.getLogger("kbflow.tasks.store.reembed")

BATCH_CHUNKS = 256  # chunks embedded and written per task run: a stopped run loses at most this much work
PAGE = 2000  # chunks read at a time when the two collections are compared


@task(name="reembed-batch", retries=1, retry_delay_seconds=[2], cache_policy=NONE)
def reembed_batch(
    serving: StoreConfig, target: StoreConfig, embedder: EmbedderConfig, embedding: dict, ids: list[str]
) -> int:
    """Copy these chunks from the serving collection into the new one, each with the new model's vector."""
    from tasks.store.write import ensure_room

    rows = ChromaStore.open_existing(serving).get(ids)
    kept = [rows[i] for i in ids if i in rows]
    if not kept:
        return 0
    vectors = get_embedder(embedder).embed([r.text for r in kept])
    ensure_room(target, kept, len(vectors[0]))
    ChromaStore.open_for_writing(target, **embedding).put(kept, vectors)
    return len(kept)


def _differing(serving: ChromaStore, target: ChromaStore, ids: list[str]) -> list[str]:
    """Of chunks both collections hold, those whose metadata differ (their readers changed since the new collection
    was last written): they are copied again."""
    out = []
    for start in range(0, len(ids), PAGE):
        part = ids[start : start + PAGE]
        old, new = serving.get(part), target.get(part)
        out += [i for i in part if i in old and (i not in new or new[i].metadata != old[i].metadata)]
    return out


def open_target(store: StoreConfig, embedding: dict) -> ChromaStore:
    """The new model's collection, made if new; one left with another dimension (a model folder replaced) is made
    again."""
    target = pinned(store, collection_for_model(store, embedding["embedding_model"]))
    try:
        return ChromaStore.open_for_writing(target, **embedding)
    except EmbeddingMismatchError:
        ChromaStore.drop(target, [target.chroma_collection])
        return ChromaStore.open_for_writing(target, **embedding)


def reembed_store(store: StoreConfig, serving: ChromaStore, embedder: EmbedderConfig, embedding: dict) -> ChromaStore:
    """Embed the knowledge base again with `embedder` into its own collection while `serving` serves, then switch
    to it in one ledger write. Returns the new collection, which serves from then on."""
    started = time.monotonic()
    target = open_target(store, embedding)
    with Ledger.of_store(store.store_dir, store.collection) as ledger:
        ledger.start_building({"collection": target.name, "embedding_model": embedding["embedding_model"]})
        wanted = ledger.all_chunk_ids() & serving.all_ids()
    have = target.all_ids()
    target.delete(sorted(have - wanted))
    todo = sorted(wanted - have) + _differing(serving, target, sorted(have & wanted))
    logger.info(
        "Re-embedding %d chunks with %s into %s (%d already there); %s serves meanwhile",
        len(todo),
        embedding["embedding_model"],
        target.name,
        len(wanted) - len(todo),
        serving.embedding_model,
    )
    progress.notice(
        f"embedding model changed: {serving.embedding_model} -> {embedding['embedding_model']}; embedding "
        f"{len(todo)} of {len(wanted)} chunks again into a new collection while the old one serves"
    )
    progress.start(len(todo), "re-embedding", unit="chunk")
    done = 0
    source, into = pinned(store, serving.name), pinned(store, target.name)
    for start in range(0, len(todo), BATCH_CHUNKS):
        batch = todo[start : start + BATCH_CHUNKS]
        try:
            done += reembed_batch(source, into, embedder, embedding, batch)
        except BaseException:
            logger.warning(
                "Re-embedding stopped after %d of %d chunks: %s still serves; the next refresh goes on from there",
                done,
                len(todo),
                serving.embedding_model,
            )
            raise
        progress.advance(len(batch), f"{done} chunks, {done / max(1e-6, time.monotonic() - started):.1f} chunks/s")
    progress.finish()
    missing = wanted - target.all_ids()
    if missing:  # a chunk the serving collection lost meanwhile cannot be: the store lock is held
        raise RuntimeError(f"{len(missing)} chunks are missing from {target.name} after re-embedding; run again")
    with Ledger.of_store(store.store_dir, store.collection) as ledger:
        ledger.switch_embedding(target.embedding_record(), retired=serving.name)
    logger.info(
        "%s now serves (%s, %d chunks, %.1f s); %s is dropped by the next refresh",
        target.name,
        embedding["embedding_model"],
        len(wanted),
        time.monotonic() - started,
        serving.name,
    )
    return target


def drop_retired(store: StoreConfig, keep: set[str]) -> list[str]:
    """Drop the knowledge base's collections that neither serve nor are being built (retired by a model change, or
    a build given up when the setting went back); the names dropped."""
    stale = sorted(ChromaStore.collections_of(store) - keep)
    if stale:
        ChromaStore.drop(store, stale)
    with Ledger.of_store(store.store_dir, store.collection) as ledger:
        if ledger.retired():
            ledger.set_retired([])
    return stale
