"""One step each: partition, split, embed, store, retrieve, generate, report."""

from flows.settings import apply_offline_env as _offline

# Before any library is imported: no telemetry, no model hub, no downloads.
_offline()
