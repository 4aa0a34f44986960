"""The answer cache: every generated answer, kept as soon as it is made, keyed by everything that decided it.

One SQLite file in the store folder (STORE/answers.sqlite), in WAL mode, one row per answer, each row its
own transaction: a killed run leaves whole rows or none, and the next run with the same command finds
them whatever report folder it writes to. The key covers the question, the answer style, the ids and
text hashes of the passages given to the model (in order), the prompt template, the model file's and the
LoRA adapter's sha256, the generation settings and the backend. So an answer is reused exactly when the
model would be asked the same thing again, and regenerated when its evidence changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("kbflow.tasks.answer.cache")

CACHE_FILE = "answers.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    question TEXT NOT NULL,
    setup TEXT NOT NULL,
    evidence TEXT NOT NULL,
    answer TEXT NOT NULL,
    run_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    deterministic INTEGER NOT NULL,
    generation_ms REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS answers_question ON answers (question, setup);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS file_hashes (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL
);
"""
# What an answer row keeps of the model's output (the rest of a report row is made by the run).
KEPT = (
    "answer",
    "citations",
    "prompt_tokens",
    "completion_tokens",
    "generation_ms",
    "second_look",
    "year_look",
    "name_look",
    "hesitation",
    "name_hesitation",
)


class CacheError(Exception):
    """The answer cache cannot be used; the message says what to do."""


def cache_path(store_dir: str | Path) -> Path:
    return Path(store_dir) / CACHE_FILE


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def evidence_of(passages: list[dict]) -> list[list[str]]:
    """The passages given to the model, in order: [chunk id, hash of its text, source]."""
    return [
        [str(p.get("chunk_id") or ""), text_hash(p.get("text") or ""), str(p.get("source") or "")] for p in passages
    ]


def answer_key(question: str, setup: str, evidence: list[list[str]]) -> str:
    """The cache key: the question, the generation setup and the evidence (ids and text hashes, in order)."""
    body = json.dumps([question.strip(), setup, [e[:2] for e in evidence]], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def setup_fingerprint(facts: dict) -> str:
    """A short hash of what decides an answer besides its question and evidence (model, prompt, settings)."""
    body = json.dumps(facts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:24]


@dataclass
class Cached:
    """An answer found in the cache: the model's output, and the run that first made it."""

    output: dict
    run_id: str
    created_at: str
    deterministic: bool


class AnswerCache:
    """The store's answer cache. Safe to share between processes: WAL, a busy timeout, one transaction per row."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.warning: str | None = None
        self._db = self._open()

    @classmethod
    def of_store(cls, store_dir: str | Path) -> AnswerCache:
        return cls(cache_path(store_dir))

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        return db

    def _open(self) -> sqlite3.Connection:
        """Open the cache; a damaged file is set aside (never deleted) and a new one started, with a warning."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = self._connect()
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("quick_check failed")
            return db
        except sqlite3.DatabaseError as exc:
            if "locked" in str(exc):
                raise CacheError(f"the answer cache {self.path} is locked by another process: {exc}") from None
            aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
            for suffix in ("", "-wal", "-shm"):
                part = Path(str(self.path) + suffix)
                if part.exists():
                    os.replace(part, Path(str(aside) + suffix))
            self.warning = (
                f"the answer cache {self.path} was damaged ({exc}); it was set aside as {aside.name} and a new one "
                "started: this run generates every answer again"
            )
            logger.warning("%s", self.warning)
            return self._connect()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> AnswerCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- answers ---------------------------------------------------------------------------------------

    def get(self, key: str) -> Cached | None:
        row = self._db.execute(
            "SELECT answer, run_id, created_at, deterministic FROM answers WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        return Cached(json.loads(row[0]), row[1], row[2], bool(row[3]))

    def put(
        self,
        key: str,
        question: str,
        setup: str,
        evidence: list[list[str]],
        output: dict,
        run_id: str,
        deterministic: bool,
    ) -> None:
        """Keep one generated answer at once, in its own transaction (a killed run loses nothing kept)."""
        kept = {k: output.get(k) for k in KEPT}
        self._db.execute(
            "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                question.strip(),
                setup,
                json.dumps(evidence, ensure_ascii=False),
                json.dumps(kept, ensure_ascii=False),
                run_id,
                time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                int(deterministic),
                float(output.get("generation_ms") or 0),
            ),
        )

    def known_questions(self, questions: list[str], setup: str) -> int:
        """How many of these questions have an answer cached for this setup (reused if their evidence is unchanged)."""
        wanted = {q.strip() for q in questions}
        found = {q for (q,) in self._db.execute("SELECT DISTINCT question FROM answers WHERE setup = ?", (setup,))}
        return len(wanted & found)

    def seconds_per_answer(self, setup: str) -> float | None:
        """The measured generation time per answer of this setup (median of the last 200), None when unmeasured."""
        times = sorted(
            ms
            for (ms,) in self._db.execute(
                "SELECT generation_ms FROM answers WHERE setup = ? ORDER BY rowid DESC LIMIT 200", (setup,)
            )
        )
        return times[len(times) // 2] / 1000 if times else None

    def prune(self, live_chunk_ids: set[str]) -> int:
        """Drop the answers whose evidence no current run can produce (a passage no longer in the store)."""
        stale = [
            key
            for key, evidence in self._db.execute("SELECT key, evidence FROM answers")
            if any(e[0] not in live_chunk_ids for e in json.loads(evidence))
        ]
        for start in range(0, len(stale), 500):
            part = stale[start : start + 500]
            self._db.execute(f"DELETE FROM answers WHERE key IN ({','.join('?' * len(part))})", part)
        return len(stale)

    def stats(self) -> dict:
        """Rows, setups and bytes on disk (the file and its WAL)."""
        rows, setups = self._db.execute("SELECT COUNT(*), COUNT(DISTINCT setup) FROM answers").fetchone()
        size = sum(Path(str(self.path) + s).stat().st_size for s in ("", "-wal") if Path(str(self.path) + s).exists())
        return {"path": str(self.path), "answers": rows, "setups": setups, "bytes": size}

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --- file hashes -----------------------------------------------------------------------------------

    def file_sha256(self, path: str | Path) -> str:
        """sha256 of a file (a GGUF, an adapter), remembered by path, size and mtime: hashed once, not every run."""
        path = Path(path).resolve()
        st = path.stat()
        row = self._db.execute(
            "SELECT sha256 FROM file_hashes WHERE path = ? AND size = ? AND mtime_ns = ?",
            (str(path), st.st_size, st.st_mtime_ns),
        ).fetchone()
        if row:
            return row[0]
        from connectors.base import sha256_file

        digest = sha256_file(path)
        self._db.execute(
            "INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?)", (str(path), st.st_size, st.st_mtime_ns, digest)
        )
        return digest


def prune_store_cache(
    store_dir: str | Path, collection: str, cache: AnswerCache | None = None, only_if_changed: bool = False
) -> int | None:
    """Prune the store's answer cache against the chunks the store holds now; None when there is no cache.

    only_if_changed: skip it when the knowledge base has not changed since the last prune (the end of each run).
    """
    from tasks.ingest.ledger import Ledger

    if cache is None and not cache_path(store_dir).exists():
        return None
    own = cache is None
    cache = cache or AnswerCache.of_store(store_dir)
    try:
        with Ledger.of_store(Path(store_dir), collection) as ledger:
            generation = f"{collection}:{ledger.generation()}"
            if only_if_changed and cache.get_meta("pruned_at") == generation:
                return 0
            live = ledger.all_chunk_ids()
        pruned = cache.prune(live)
        cache.set_meta("pruned_at", generation)
        return pruned
    finally:
        if own:
            cache.close()
