"""The folder watcher: keep a knowledge base in sync with a folder by re-ingesting it whenever its documents change.

When a run starts (all measured on monotonic time):
- Debounce: a run waits for a quiet period of `debounce_seconds` after the last relevant event,
  but never longer than `max_wait_seconds` (10x debounce, at least 30 s) after the first one,
  so a never-ending trickle of changes still syncs.
- Relevant events are file created / modified / moved / deleted, plus directory created / moved / deleted
  (a folder moved out of the tree arrives as one directory event and no file events), and a file's attribute
  event (chmod, chgrp: its readers may change). Opened, closed and folder-modified events are ignored, and so is
  any path that `LocalSource.is_candidate` rejects (hidden, swap, lock, .part, .crdownload ...) but an access file
  (`.kbflow-access`), or that lies inside the store folder.
- Partial files: on Linux (inotify) a file written to and not yet closed holds the run back; and before
  a run the changed files that still exist must keep their size and mtime over a short interval
  (min(0.5 s, debounce)). A file still changing postpones the run by another debounce period.
  The max wait overrides both: a file that is written for longer than that is ingested as it is, and
  again once it changes.
- Runs happen one at a time in one worker thread. Events that arrive during a run mark the watcher
  dirty, and one more run follows when it ends. The first run is a catch-up sync at start.

Where a run goes: with a deployment name (the `deployment` argument, or KBFLOW_WATCH_DEPLOYMENT) the
watcher runs that Prefect deployment (e.g. `kb-ingest/kb-refresh`) and waits for it; otherwise it calls
`ingest_flow` in this process. PREFECT_API_URL alone does not switch to the deployment: in-process
flow runs report to that server too.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from connectors.access import ACCESS_FILE
from connectors.base import SourceError
from connectors.local import LocalSource, LocalSourceConfig
from flows.errors import ConfigError, DocumentsFailed
from flows.ingest import ingest_flow
from kbflow.deployments import DeploymentRunFailed, run_ingest_deployment
from kbflow.standing import answer_standing_set
from tasks.ingest.summary import IngestSummary
from tasks.settings import load_settings

logger = logging.getLogger("kbflow.watch")

# attrib: a chmod or chgrp changes who may read a file (connectors.access); on a folder it is ignored.
_ACTED_ON = {"created", "modified", "moved", "deleted", "attrib"}
_STAT_LIMIT = 5000  # the stability check stats at most this many of the most recently changed paths


def deployment_from_env() -> str | None:
    """The deployment named by KBFLOW_WATCH_DEPLOYMENT (Settings.watch_deployment), if any."""
    return load_settings().watch_deployment or None


def max_wait_for(debounce: float) -> float:
    """Longest a change waits for a quiet period: 10x the debounce, at least 30 s."""
    return max(30.0, 10.0 * debounce)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: FolderWatcher):
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.watcher._on_event(event)


class FolderWatcher:
    """Watches a folder and re-ingests it, debounced, one run at a time."""

    def __init__(
        self,
        source_path: str,
        *,
        store_dir: str | None = None,
        collection: str | None = None,
        debounce_seconds: float | None = None,
        deployment: str | None = None,
        run_ingest: Callable[[], dict] | None = None,
        max_wait_seconds: float | None = None,
        questions: str | None = None,
        groups: str | None = None,
        on_run: Callable[[dict], None] | None = None,
    ):
        cfg = load_settings(store_dir=store_dir, collection=collection, debounce_seconds=debounce_seconds)
        try:
            self._source = LocalSource(LocalSourceConfig(root=source_path, include=cfg.include, exclude=cfg.exclude))
        except SourceError as exc:
            raise ConfigError(str(exc)) from exc
        self.root = self._source.root
        self.store_dir = Path(cfg.store_dir).resolve()
        self.collection = cfg.collection
        self.debounce = float(cfg.debounce_seconds)
        self.max_wait = float(max_wait_seconds) if max_wait_seconds is not None else max_wait_for(self.debounce)
        self.stable_seconds = min(0.5, self.debounce)
        self.deployment = deployment or deployment_from_env()
        self._on_run = on_run  # called with each run's record (kbflow watch --json prints it)
        # Explicit values go to the deployment; unset ones keep the deployment's own defaults.
        self._explicit = {"store_dir": store_dir, "collection": collection}
        self._run_ingest = run_ingest or (self._run_deployment if self.deployment else self._run_in_process)
        # A standing question set, answered after each sync that changed something (reusing unaffected answers).
        self.questions = str(Path(questions).resolve()) if questions else None
        self.groups = groups  # the standing set's askers (None: KBFLOW_GROUPS)

        self.runs: list[dict[str, Any]] = []
        self.ignored: list[str] = []  # names of files whose events were ignored (temporary, hidden, excluded)
        self._root_s = str(self.root)
        self._store_s = str(self.store_dir)
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._pending: dict[str, float] = {}  # relative path -> time of its last event
        self._writing: set[str] = set()  # files written to and not closed yet (inotify only)
        self._first_event: float | None = None
        self._last_event = 0.0
        self._last_run_end = 0.0
        self._running = False
        self._started_up = False
        self._observer: Any = None
        self._worker: threading.Thread | None = None
        self._track_open = False

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start observing, then run the catch-up sync and the change-driven runs in the worker thread."""
        if self._worker is not None:
            raise RuntimeError("the watcher was already started")
        observer = Observer()
        # Only inotify reports "closed after writing", which the open-file rule needs.
        self._track_open = type(observer).__name__ == "InotifyObserver"
        observer.schedule(_Handler(self), self._root_s, recursive=True)
        try:
            observer.start()
        except OSError as exc:
            raise ConfigError(
                f"cannot watch {self.root}: {exc.strerror or exc}. On Linux, raise fs.inotify.max_user_watches "
                "(sysctl) for very large folders."
            ) from exc
        self._observer = observer
        # The observer starts first, so changes made during the catch-up run are not missed.
        self._worker = threading.Thread(target=self._work, name="kbflow-watch", daemon=True)
        self._worker.start()
        if self.deployment:
            target = f"runs deployment {self.deployment}"
            store = self._store_s if self._explicit["store_dir"] is not None else "the deployment's store"
            coll = repr(self.collection) if self._explicit["collection"] is not None else "the deployment's collection"
        else:
            target, store, coll = "ingests in process", self._store_s, repr(self.collection)
        logger.info(
            "Watching %s for %s in %s (debounce %.1f s, max wait %.0f s; %s)",
            self.root,
            coll,
            store,
            self.debounce,
            self.max_wait,
            target,
        )

    def stop(self, timeout: float = 60) -> None:
        """Stop observing, let a run in progress finish (up to `timeout` seconds) and join the threads."""
        deadline = time.monotonic() + timeout
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(max(0.1, deadline - time.monotonic()))
        if self._worker is not None:
            self._worker.join(max(0.1, deadline - time.monotonic()))
            if self._worker.is_alive():
                logger.warning("A run was still in progress after %.0f s; leaving it behind", timeout)
        with self._cond:
            dropped = len(self._pending)
        if dropped:
            logger.info("Stopped with %d unsynced change(s); the next start's catch-up sync will pick them up", dropped)

    def wait_ignored(self, names: set[str], timeout: float) -> bool:
        """True once events of all these file names were seen and ignored."""
        with self._cond:
            return self._cond.wait_for(lambda: names <= set(self.ignored), timeout)

    def wait_idle(self, timeout: float, settle: float = 1.0) -> bool:
        """True once the catch-up ran, no change is pending, no run is in progress, and that held for `settle` s."""
        # `settle` (counted from the call at the earliest) covers events still in flight when it is called:
        # delivery takes milliseconds, and watchdog holds a move's first half back for 0.5 s to pair it.
        called = time.monotonic()
        deadline = called + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                wait: float | None = None
                if self._started_up and not self._pending and not self._running:
                    quiet_since = max(self._last_event, self._last_run_end, called)
                    if now - quiet_since >= settle:
                        return True
                    wait = quiet_since + settle - now
                remaining = deadline - now
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, wait) if wait is not None else remaining)

    # --- events (observer thread) ----------------------------------------------------------------

    def _relative(self, path: str, is_directory: bool) -> str | None:
        """The relative path of an event's path if it could change the index, else None."""
        if not path.startswith(self._root_s + os.sep):
            return None
        if path == self._store_s or path.startswith(self._store_s + os.sep):
            return None
        rel = path[len(self._root_s) + 1 :].replace(os.sep, "/")
        if is_directory:
            # Include patterns name files, so for a folder only hidden parts rule it out.
            return None if any(p.startswith(".") for p in rel.split("/")) else rel
        if rel.rsplit("/", 1)[-1] == ACCESS_FILE:  # hidden, yet it decides who may read the folder's documents
            return rel
        return rel if self._source.is_candidate(rel) else None

    def _on_event(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        src = os.fsdecode(event.src_path)
        if kind == "closed":  # closed after writing
            rel = self._relative(src, False)
            if rel is not None and self._track_open:
                with self._cond:
                    if rel in self._writing:
                        self._writing.discard(rel)
                        self._last_event = time.monotonic()
                        self._cond.notify_all()
            return
        if kind not in _ACTED_ON or (event.is_directory and kind in ("modified", "attrib")):
            return
        rels = [self._relative(src, event.is_directory)]
        if kind == "moved":
            rels.append(self._relative(os.fsdecode(event.dest_path), event.is_directory))
        rels = [r for r in rels if r is not None]
        if not rels:
            with self._cond:
                self.ignored.append(os.path.basename(src))
                self._cond.notify_all()
            return
        now = time.monotonic()
        with self._cond:
            if self._track_open and not event.is_directory:
                if kind == "modified":
                    self._writing.add(rels[0])
                elif kind in ("deleted", "moved"):
                    self._writing.discard(rels[0])
            for rel in rels:
                self._pending[rel] = now
            self._last_event = now
            if self._first_event is None:
                self._first_event = now
            self._cond.notify_all()

    # --- runs (worker thread) --------------------------------------------------------------------

    def _work(self) -> None:
        self._run("startup", [])
        with self._cond:
            self._started_up = True
            self._cond.notify_all()
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._run("changes", batch)

    def _seconds_to_due(self) -> float | None:
        """Seconds until the pending changes are due for a run (<= 0: now), None if nothing is pending."""
        if not self._pending or self._first_event is None:
            return None
        now = time.monotonic()
        deadline = self._first_event + self.max_wait
        if now >= deadline:
            return 0.0
        if self._writing.intersection(self._pending):
            return deadline - now  # a close event wakes us up earlier
        return min(self._last_event + self.debounce, deadline) - now

    def _next_batch(self) -> list[str] | None:
        """Wait until pending changes are quiet and stable (or overdue); None when stopping."""
        while True:
            with self._cond:
                while not self._stopping.is_set():
                    due = self._seconds_to_due()
                    if due is not None and due <= 0:
                        break
                    self._cond.wait(due)
                if self._stopping.is_set():
                    return None
                marker = self._last_event
                overdue = time.monotonic() >= self._first_event + self.max_wait
                recent = sorted(self._pending, key=self._pending.__getitem__, reverse=True)[:_STAT_LIMIT]
            if not overdue and not self._stable(recent):
                logger.debug("Files still changing; waiting another %.1f s", self.debounce)
                with self._cond:
                    self._last_event = max(self._last_event, time.monotonic())
                continue
            with self._cond:
                if self._stopping.is_set():
                    return None
                if not overdue and self._last_event != marker:
                    continue  # more events came in during the stability check
                batch = sorted(self._pending)
                self._pending.clear()
                self._first_event = None
                self._running = True
                return batch

    def _stats(self, rels: list[str]) -> dict[str, tuple[int, int]]:
        out = {}
        for rel in rels:
            try:
                st = os.stat(os.path.join(self._root_s, rel))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                out[rel] = (st.st_size, st.st_mtime_ns)
        return out

    def _stable(self, rels: list[str]) -> bool:
        """Whether the changed files that still exist keep their size and mtime over a short interval."""
        if self.stable_seconds <= 0:
            return True
        before = self._stats(rels)
        if self._stopping.wait(self.stable_seconds):
            return True  # stopping; the caller returns without a run
        return self._stats(rels) == before

    def _run(self, trigger: str, paths: list[str]) -> None:
        with self._cond:
            self._running = True
        what = "at startup (catch-up)" if trigger == "startup" else f"after {_describe(paths)}"
        record: dict[str, Any] = {"trigger": trigger, "changed": len(paths), "paths": paths[:50]}
        started = time.monotonic()
        try:
            summary = self._run_ingest() or {}
            record.update(summary, status="ok")
            logger.info("Synced %s: %s", what, _counts(summary))
            self._answer_if_changed(summary, record)
        except DocumentsFailed as exc:
            record.update(exc.summary, status="partial")
            failed = "; ".join(f"{f['path']}: {f['reason']}" for f in exc.summary["failed"][:10])
            logger.warning("Synced %s with failures: %s. Failed: %s", what, _counts(exc.summary), failed)
        except DeploymentRunFailed as exc:
            record.update(status="partial" if exc.partial else "error", error=str(exc))
            (logger.warning if exc.partial else logger.error)("Ingest %s: %s", what, exc)
        except Exception as exc:  # noqa: BLE001 - the watcher must outlive any single run
            record.update(status="error", error=f"{type(exc).__name__}: {exc}")
            logger.error(
                "Ingest %s failed: %s: %s. Watching on; the next change retries", what, type(exc).__name__, exc
            )
            logger.debug("Traceback of the failed run", exc_info=True)
        record["watch_duration_s"] = round(time.monotonic() - started, 3)
        if self._on_run is not None:
            self._on_run(record)
        with self._cond:
            self.runs.append(record)
            self._running = False
            self._last_run_end = time.monotonic()
            self._cond.notify_all()

    def _answer_if_changed(self, summary: dict, record: dict) -> None:
        """Re-answer the standing question set when the sync changed the knowledge base."""
        changed = sum(summary.get(k) or 0 for k in ("added", "updated", "deleted", "repaired", "readers_changed"))
        if self.questions and changed:
            record["answers"] = answer_standing_set(self.questions, self._store_s, self.collection, self.groups)

    def _run_in_process(self) -> dict:
        return ingest_flow(source_path=self._root_s, store_dir=self._store_s, collection=self.collection)

    def _run_deployment(self) -> dict:
        params = {"source_path": self._root_s}
        if self._explicit["store_dir"] is not None:
            params["store_dir"] = self._store_s  # absolute, so the worker's working folder does not matter
        if self._explicit["collection"] is not None:
            params["collection"] = self.collection
        return run_ingest_deployment(self.deployment, params)


def _describe(paths: list[str]) -> str:
    shown = ", ".join(paths[:3])
    more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
    return f"{len(paths)} change(s) ({shown}{more})"


def _counts(summary: dict) -> str:
    if "added" not in summary:
        return f"flow run {summary.get('flow_run', '?')} {summary.get('state', 'finished')}"
    run = f" (flow run {summary['flow_run']})" if "flow_run" in summary else ""
    return IngestSummary.from_dict(summary).counts() + run
