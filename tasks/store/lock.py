"""The store's write lock: one ingest writes to a store at a time."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks.store.base import StoreBusyError

logger = logging.getLogger("kbflow.tasks.store.lock")


@contextmanager
def store_lock(store_dir: Path, timeout: float) -> Iterator[None]:
    """Hold the store's write lock; wait up to `timeout` seconds for another writer, then refuse."""
    from filelock import FileLock, Timeout

    store_dir = Path(store_dir)
    store_dir.mkdir(parents=True, exist_ok=True)
    lock_path = store_dir / "ingest.lock"
    info_path = store_dir / "ingest.lock.info"
    lock = FileLock(str(lock_path))
    try:
        if timeout > 0:
            try:
                lock.acquire(timeout=0)
            except Timeout:
                logger.info("Another ingest holds %s; waiting up to %.0f s", lock_path, timeout)
                lock.acquire(timeout=timeout)
        else:
            lock.acquire(timeout=0)
    except Timeout:
        holder = info_path.read_text() if info_path.exists() else "unknown process"
        raise StoreBusyError(
            f"another ingest is writing to {store_dir} ({holder}); it did not finish within {timeout:.0f} s. "
            "Wait for it, or raise KBFLOW_LOCK_TIMEOUT."
        ) from None
    try:
        info_path.write_text(json.dumps({"pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
        yield
    finally:
        lock.release()
