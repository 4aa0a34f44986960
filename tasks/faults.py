"""What the fault checks share: the chain of an exception's causes, and the free space under a folder."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path


def exception_chain(exc: BaseException | None) -> Iterator[BaseException]:
    """The exception, then its causes and contexts, each once."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def free_bytes(path: str | Path) -> int:
    """Bytes free on the disk that holds `path`, or that will hold it once its missing folders are made."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free
