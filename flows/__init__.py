"""Prefect flows that compose the tasks."""

from tasks.offline import apply_offline_env as _offline

# Before any library is imported: no telemetry, no model hub, no downloads.
_offline()
