"""Progress of a long step (documents indexed, questions answered) for whoever listens; silent when no one does.

Flows report here; the application shell (the CLI's terminal bar) listens. So flows never import the shell.
"""

from __future__ import annotations

from typing import Protocol


class Listener(Protocol):
    def start(self, total: int, label: str, unit: str) -> None: ...
    def advance(self, n: int, note: str) -> None: ...
    def finish(self) -> None: ...
    def notice(self, text: str) -> None: ...


_listener: Listener | None = None


def listen(listener: Listener | None) -> None:
    """Send progress to this listener from now on (None: nobody)."""
    global _listener
    _listener = listener


def start(total: int, label: str, unit: str = "doc") -> None:
    if _listener is not None and total > 0:
        _listener.start(total, label, unit)


def advance(n: int, note: str = "") -> None:
    if _listener is not None:
        _listener.advance(n, note)


def notice(text: str) -> None:
    """A line for the person waiting (an estimate, a warning), logged as well for the UI."""
    import logging

    logging.getLogger("kbflow.progress").info("%s", text)
    if _listener is not None:
        _listener.notice(text)


def finish() -> None:
    if _listener is not None:
        _listener.finish()
