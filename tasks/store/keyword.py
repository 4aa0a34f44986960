"""The keyword index: BM25 over the chunks' stored tokens, kept on disk beside the store and updated with it.

Chinese retrieval leans on keywords (all-MiniLM-L6-v2 reads English), so every process that answers needs
this index. It used to be rebuilt from the ledger by each of them, in RAM, as Python sets: 17.7 s to the first
question at 17,000 chunks. Now it is a set of numpy arrays in `STORE/keyword/COLLECTION/KEY/`, loaded
memory-mapped (milliseconds at any size):

- `ids.npy`    the chunk ids, sorted (a chunk's row is found by binary search);
- `vocab.npy`  the terms, sorted (a term's column likewise);
- `indptr.npy`, `rows.npy`, `tf.npy`: the term-frequency matrix by column (each term's postings);
- `lengths.npy`: each chunk's token count;
- `readers.npy`: each chunk's reader set, a row of `readers.json` (the distinct reader sets, `connectors.access`):
  the mask a question's groups give is one `np.isin` over it, applied to the scores before the top n is cut.

Raw term frequencies are stored, not BM25 weights, so the IDF and length normalisation are computed at query
time from the live statistics, and an update does not touch the postings of unchanged chunks: the ingest flow
applies the chunk ids that came and went since the saved version (`refresh`), a vectorised merge of arrays.

KEY is the ledger's epoch and generation (`Ledger.index_key`): it changes with every write and with a ledger
made anew, so a saved index is used only for the ledger state it was made from. A reader that finds no index
for the current key brings the newest saved one up to date itself, exactly (the difference of chunk ids), and
saves it for the next process when it can.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from tasks.faults import free_bytes
from tasks.ingest.ledger import Ledger
from tasks.store.base import StoreConfig

K1, B = 1.5, 0.75  # bm25s's and Lucene's defaults
STEP = 200_000  # chunks whose tokens are read from the ledger at a time
FILES = ("ids", "vocab", "indptr", "rows", "tf", "lengths", "readers")
NOT_RECORDED = -1  # a chunk whose document's readers are not recorded yet: visible to no group
log = logging.getLogger(__name__)


def _as_bytes(strings) -> np.ndarray:
    encoded = [s.encode("utf-8") for s in strings]
    width = max((len(s) for s in encoded), default=1) or 1
    return np.array(encoded, dtype=f"S{width}")


def _find(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Position of each key in sorted_keys, -1 where absent."""
    if not len(sorted_keys) or not len(keys):
        return np.full(len(keys), -1, dtype=np.int64)
    at = np.searchsorted(sorted_keys, keys)
    at_c = np.minimum(at, len(sorted_keys) - 1)
    return np.where(sorted_keys[at_c] == keys, at_c, -1)


class KeywordIndex:
    """BM25 (Lucene's formula) over term frequencies by column; every array may be memory-mapped."""

    def __init__(self, ids, vocab, indptr, rows, tf, lengths, readers=None, reader_sets=()):
        self.ids, self.vocab, self.indptr, self.rows, self.tf, self.lengths = ids, vocab, indptr, rows, tf, lengths
        self.n = len(ids)
        self.avgdl = float(lengths.mean()) if self.n else 0.0
        self.readers = np.full(self.n, NOT_RECORDED, dtype=np.int32) if readers is None else readers
        self.reader_sets: list[tuple[str, ...]] = [tuple(s) for s in reader_sets]
        self._masks: dict[tuple[str, ...], np.ndarray] = {}

    # ------------------------------------------------------------ building

    @classmethod
    def empty(cls) -> KeywordIndex:
        return cls(
            _as_bytes([]),
            _as_bytes([]),
            np.zeros(1, dtype=np.int64),
            np.zeros(0, dtype=np.int32),
            np.zeros(0, dtype=np.float32),
            np.zeros(0, dtype=np.int32),
        )

    @classmethod
    def build(cls, ids: list[str], terms: list[list[str]]) -> KeywordIndex:
        """An index of these chunks (ids with their token lists)."""
        return cls.empty().updated(set(), ids, terms)

    def updated(self, removed: set[str], added_ids: list[str], added_terms: list[list[str]]) -> KeywordIndex:
        """A new index without the removed chunks and with the added ones (the arrays of this one are not changed)."""
        import scipy.sparse as sp

        base = sp.csc_matrix(
            (np.asarray(self.tf), np.asarray(self.rows), np.asarray(self.indptr)), shape=(self.n, len(self.vocab))
        ).tocsr()
        keep = np.ones(self.n, dtype=bool)
        if removed and self.n:
            gone = _find(self.ids, _as_bytes(sorted(removed)))
            keep[gone[gone >= 0]] = False
        base, kept_ids, kept_len = base[keep], np.asarray(self.ids)[keep], np.asarray(self.lengths)[keep]

        flat = [t for toks in added_terms for t in toks]
        new_terms = np.unique(_as_bytes(flat)) if flat else _as_bytes([])
        old_vocab = np.asarray(self.vocab)
        vocab = np.unique(np.concatenate([old_vocab.astype(np.bytes_), new_terms.astype(np.bytes_)]))
        if len(old_vocab):  # the old columns, renumbered into the merged vocabulary
            base = sp.csr_matrix(
                (base.data, np.searchsorted(vocab, old_vocab)[base.indices], base.indptr),
                shape=(len(kept_ids), len(vocab)),
            )
        else:
            base = sp.csr_matrix((len(kept_ids), len(vocab)), dtype=np.float32)
        lens = np.array([len(t) for t in added_terms], dtype=np.int32)
        cols = np.searchsorted(vocab, _as_bytes(flat)) if flat else np.zeros(0, dtype=np.int64)
        new = sp.csr_matrix(
            (np.ones(len(flat), dtype=np.float32), (np.repeat(np.arange(len(added_ids)), lens), cols)),
            shape=(len(added_ids), len(vocab)),
        )  # duplicate (row, term) pairs sum: the term frequency
        matrix = sp.vstack([base, new], format="csr")
        ids = np.concatenate([kept_ids.astype(np.bytes_), _as_bytes(added_ids).astype(np.bytes_)])
        lengths = np.concatenate([kept_len, lens]).astype(np.int32)
        order = np.argsort(ids, kind="stable")
        matrix = matrix[order].tocsc()
        used = np.flatnonzero(np.diff(matrix.indptr))  # terms no chunk holds any more are dropped
        matrix = matrix[:, used]
        matrix.sort_indices()
        return KeywordIndex(
            ids[order],
            vocab[used],
            matrix.indptr.astype(np.int64),
            matrix.indices.astype(np.int32),
            matrix.data.astype(np.float32),
            lengths[order],
        )  # readers not recorded: with_readers() sets them

    def with_readers(self, chunk_ids: list[str], readers: list[tuple[str, ...] | None]) -> KeywordIndex:
        """This index with each chunk's readers (chunks not given, or given None, are visible to no group)."""
        sets: dict[tuple[str, ...], int] = {}
        codes = np.array(
            [NOT_RECORDED if r is None else sets.setdefault(tuple(r), len(sets)) for r in readers], dtype=np.int32
        )
        column = np.full(self.n, NOT_RECORDED, dtype=np.int32)
        if self.n and chunk_ids:
            at = _find(self.ids, _as_bytes(chunk_ids))
            column[at[at >= 0]] = codes[at >= 0]
        return KeywordIndex(self.ids, self.vocab, self.indptr, self.rows, self.tf, self.lengths, column, list(sets))

    # ------------------------------------------------------------ who may read

    def mask(self, groups: tuple[str, ...] | None) -> np.ndarray | None:
        """Which chunks a question asked for these groups may see (public ones, and those of a group it names);
        None for every chunk (an administrator's question). Kept per group set: one np.isin at 100,000 chunks."""
        if groups is None:
            return None
        groups = tuple(sorted(groups))
        if groups not in self._masks:
            from connectors.access import may_read

            allowed = [i for i, s in enumerate(self.reader_sets) if may_read(s, groups)]
            self._masks[groups] = np.isin(np.asarray(self.readers), np.array(allowed, dtype=np.int32))
        return self._masks[groups]

    def visible(self, chunk_ids: list[str], mask: np.ndarray | None) -> list[bool]:
        """Whether each chunk is seen under this mask (a chunk the index does not hold is not)."""
        if mask is None:
            return [True] * len(chunk_ids)
        if not self.n or not chunk_ids:
            return [False] * len(chunk_ids)
        at = _find(self.ids, _as_bytes(chunk_ids))
        return [bool(a >= 0 and mask[a]) for a in at.tolist()]

    # ------------------------------------------------------------ reading

    def chunk_ids(self) -> set[str]:
        return {i.decode("utf-8") for i in np.asarray(self.ids).tolist()}

    def _columns(self, tokens: list[str]) -> np.ndarray:
        return _find(self.vocab, _as_bytes(tokens)) if tokens else np.zeros(0, dtype=np.int64)

    def _idf(self, df: np.ndarray) -> np.ndarray:
        return np.log(1.0 + (self.n - df + 0.5) / (df + 0.5))

    def search(
        self, query_tokens: list[str], n: int, allowed: set[str] | None = None, mask: np.ndarray | None = None
    ) -> list[tuple[str, float]]:
        """Top n chunks as (chunk_id, bm25 score), best first (ties by chunk id); only chunks with a query token,
        among `allowed` and the chunks `mask` (the readers') lets through."""
        if not self.n or not query_tokens:
            return []
        cols = self._columns(query_tokens)
        cols = cols[cols >= 0]  # a repeated query token counts again, as in bm25s
        if not len(cols):
            return []
        starts, ends = np.asarray(self.indptr)[cols], np.asarray(self.indptr)[cols + 1]
        idf = self._idf((ends - starts).astype(np.float64))
        rows = np.concatenate([self.rows[s:e] for s, e in zip(starts, ends)])
        tf = np.concatenate([self.tf[s:e] for s, e in zip(starts, ends)]).astype(np.float64)
        weight = np.repeat(idf, ends - starts)
        norm = K1 * (1 - B + B * np.asarray(self.lengths)[rows] / (self.avgdl or 1.0))
        scores = np.bincount(rows, weights=weight * tf / (tf + norm), minlength=self.n)
        if allowed is not None:
            under = np.zeros(self.n, dtype=bool)
            at = _find(self.ids, _as_bytes(sorted(allowed)))
            under[at[at >= 0]] = True
            scores = np.where(under, scores, 0.0)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        hits = np.flatnonzero(scores > 0)
        if len(hits) > n:
            hits = hits[np.argpartition(-scores[hits], n - 1)[:n]]
            floor = scores[hits].min()  # ties at the cut: keep the lowest chunk ids, as a full sort would
            hits = np.flatnonzero(scores >= floor)
        top = sorted(hits.tolist(), key=lambda i: (-scores[i], i))[:n]
        return [(self.ids[i].decode("utf-8"), float(scores[i])) for i in top]

    def idf_of(self, token: str) -> float:
        return float(self._column_idf(self._columns([token]))[0])

    def _column_idf(self, cols: np.ndarray) -> np.ndarray:
        """Each column's IDF (-1, an unknown token, gets the highest: document frequency 0)."""
        indptr = np.asarray(self.indptr)
        df = np.where(cols >= 0, indptr[cols + 1] - indptr[np.maximum(cols, 0)], 0) if len(cols) else cols
        return self._idf(df.astype(np.float64))

    def coverage(self, query_tokens: list[str], chunk_id: str) -> float:
        """IDF-weighted share of the query's tokens that the chunk contains (0-1; 0 for an unknown chunk)."""
        return self.coverages(query_tokens, [chunk_id])[chunk_id]

    def coverages(self, query_tokens: list[str], chunk_ids: list[str]) -> dict[str, float]:
        """coverage() of several chunks, the query's columns and IDFs looked up once."""
        cols = self._columns(sorted(set(query_tokens)))
        idf = self._column_idf(cols)
        total = float(idf.sum())
        rows = _find(self.ids, _as_bytes(chunk_ids)) if self.n and chunk_ids else np.full(len(chunk_ids), -1)
        out = {}
        for chunk_id, row in zip(chunk_ids, rows):
            held = 0.0
            if row >= 0 and total:
                for weight, col in zip(idf, cols):
                    if col >= 0:
                        postings = self.rows[self.indptr[col] : self.indptr[col + 1]]
                        at = np.searchsorted(postings, row)
                        if at < len(postings) and postings[at] == row:
                            held += weight
            out[chunk_id] = held / total if total and row >= 0 else 0.0
        return out

    # ------------------------------------------------------------ on disk

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True)
        for name in FILES:
            np.save(folder / f"{name}.npy", np.asarray(getattr(self, name)), allow_pickle=False)
        (folder / "readers.json").write_text(json.dumps([list(s) for s in self.reader_sets]), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> KeywordIndex:
        """A saved index, memory-mapped; one saved before readers were kept fails (OSError) and is made again."""
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in FILES}
        sets = json.loads((folder / "readers.json").read_text(encoding="utf-8"))
        return cls(**arrays, reader_sets=sets)


def index_home(store_dir: Path, collection: str) -> Path:
    return Path(store_dir) / "keyword" / collection


def _saved(home: Path) -> list[Path]:
    """Saved versions, newest first (tmp folders of a save in progress are not versions)."""
    if not home.is_dir():
        return []
    found = [p for p in home.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _save(index: KeywordIndex, home: Path, key: str, min_free_mb: int) -> bool:
    """Save as version `key` (atomically: a folder renamed into place) and drop the older versions. Not when it
    would leave less than min_free_mb free: the store's disk is Chroma's too (see tasks.store.write.ensure_room)."""
    size = sum(np.asarray(getattr(index, name)).nbytes for name in FILES)
    if free_bytes(home) < min_free_mb * 2**20 + 2 * size:
        return False
    home.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=home))
    try:
        index.save(tmp / "v")
        (tmp / "v" / "meta.json").write_text(json.dumps({"key": key, "chunks": index.n, "saved": time.time()}))
        os.rename(tmp / "v", home / key)
    except OSError:  # a full disk, or another process saved this version first: the index still serves
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in _saved(home):
        if old.name != key:
            shutil.rmtree(old, ignore_errors=True)  # a reader that mapped it keeps its pages
    return True


def _load(folder: Path) -> KeywordIndex | None:
    try:
        return KeywordIndex.load(folder)
    except (OSError, ValueError) as e:
        log.warning("keyword index at %s unreadable (%s): it is made again from the ledger", folder, e)
        shutil.rmtree(folder, ignore_errors=True)
        return None


def is_current(store: StoreConfig) -> bool:
    """Whether a saved index matches the ledger's state (a no-change refresh asks this, and does nothing more)."""
    with Ledger.of_store(store.store_dir, store.collection) as ledger:
        key = ledger.index_key()
    return (index_home(store.store_dir, store.collection) / key).is_dir()


def refresh(store: StoreConfig, save: bool = True) -> tuple[KeywordIndex, str]:
    """The keyword index of the ledger's current state: the saved one when current, else the newest saved one
    brought up to date by the chunk ids that came and went (or made from the ledger), saved when `save`.

    Returns the index and what was done ("current", "updated +A -R", "built N").
    """
    home = index_home(store.store_dir, store.collection)
    with Ledger.of_store(store.store_dir, store.collection) as ledger:
        with ledger.snapshot():
            key = ledger.index_key()
            if (home / key).is_dir() and (index := _load(home / key)) is not None:
                return index, "current"
            base = next((i for p in _saved(home) if (i := _load(p)) is not None), None) or KeywordIndex.empty()
            now = ledger.all_chunk_ids()
            held = base.chunk_ids()
            removed, added = held - now, sorted(now - held)
            index = base.updated(removed, [], [])
            for start in range(0, len(added), STEP):  # in steps: a million chunks' token lists would take gigabytes
                part = added[start : start + STEP]
                terms = ledger.terms_of(part)
                index = index.updated(set(), part, [terms[i] for i in part])
            # Readers are read whole each time: a permission change alters no chunk id, only this column.
            index = index.with_readers(*ledger.chunk_readers())
    done = f"updated +{len(added)} -{len(removed)}" if base.n else f"built {index.n}"
    if save and not _save(index, home, key, store.min_free_mb):
        log.warning("keyword index not saved under %s: the next process makes it again", home)
    return index, done
