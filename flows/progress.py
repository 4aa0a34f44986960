"""One progress bar for a person at the terminal (documents, chunks, chunks/s, time left); silent elsewhere."""

from __future__ import annotations

import sys
import time

_enabled = False
_bar = None
_chunks = 0
_started = 0.0


def enable_terminal_progress() -> None:
    """Draw the bar from now on, if stderr is a terminal (the CLI calls this; flows run by workers never do)."""
    global _enabled
    _enabled = sys.stderr.isatty()


def start(total_docs: int, label: str) -> None:
    global _bar, _chunks, _started
    if not _enabled or total_docs <= 0:
        return
    from tqdm import tqdm

    _bar, _chunks, _started = tqdm(total=total_docs, desc=label, unit="doc", file=sys.stderr, dynamic_ncols=True), 0, time.monotonic()


def advance(docs: int, chunks: int = 0) -> None:
    global _chunks
    if _bar is None:
        return
    _chunks += chunks
    rate = _chunks / max(1e-6, time.monotonic() - _started)
    _bar.set_postfix_str(f"{_chunks} chunks, {rate:.1f} chunks/s", refresh=False)
    _bar.update(docs)


def finish() -> None:
    global _bar
    if _bar is not None:
        _bar.close()
        _bar = None
