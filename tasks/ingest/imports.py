"""First imports of the document readers' modules, one thread at a time.

An ingest run's batches read documents in threads of one process (flows/ingest.py). Two threads importing the same
modules for the first time at once can see a partially initialised one: a document failed with "cannot import name
... (most likely due to a circular import) (.../filetype/types/__init__.py)", and two threads' first pages loaded
RapidOCR twice. So unstructured's modules, pikepdf and the OCR engine are first imported, or loaded, under IMPORTS.
"""

from __future__ import annotations

import importlib
import threading

IMPORTS = threading.RLock()


def imported(module: str, name: str = ""):
    """A module, or a function of it, imported under IMPORTS (a dictionary lookup once imported)."""
    with IMPORTS:
        loaded = importlib.import_module(module)
    return getattr(loaded, name) if name else loaded
