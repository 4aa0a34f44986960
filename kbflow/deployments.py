"""Run a kbflow deployment through the Prefect API and wait for it, reading its summary back."""

from __future__ import annotations

import logging

from flows.errors import DocumentsFailed
from tasks.ingest.summary import IngestSummary

logger = logging.getLogger("kbflow.deployments")

DEFAULT_DEPLOYMENT = "kb-ingest/kb-refresh"
DEPLOYMENT_ENV = "KBFLOW_WATCH_DEPLOYMENT"


class DeploymentRunFailed(Exception):
    """A deployment run ended in a state other than Completed; `partial` when only some documents failed."""

    def __init__(self, message: str, partial: bool = False):
        super().__init__(message)
        self.partial = partial


def run_ingest_deployment(deployment: str, params: dict) -> dict:
    """Run an ingest deployment and wait: its summary, or DocumentsFailed / DeploymentRunFailed."""
    from prefect.deployments import run_deployment

    flow_run = run_deployment(deployment, parameters=params, timeout=None, poll_interval=2)
    state = flow_run.state
    try:
        summary = summary_from_artifact(flow_run.id)
    except Exception as exc:  # noqa: BLE001 - the counts are nice to have; the state says how it went
        logger.debug("Could not read the summary of flow run %s: %s", flow_run.name, exc)
        summary = None
    if summary is not None:
        summary.update(flow_run=flow_run.name, state=state.name if state is not None else "unknown")
        if summary["failed"]:
            raise DocumentsFailed(summary)
    if state is None or not state.is_completed():
        name = state.name if state is not None else "unknown"
        message = (state.message or "") if state is not None else ""
        raise DeploymentRunFailed(
            f"flow run {flow_run.name!r} of {deployment} ended {name}: {message}".rstrip(": "),
            partial=DocumentsFailed.__name__ in message,
        )
    return summary or {"flow_run": flow_run.name, "state": state.name}


def summary_from_artifact(flow_run_id) -> dict | None:
    """The summary of an ingest flow run, read back from its summary table artifact (None if it has none)."""
    import json

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    for artifact in artifacts:
        if (artifact.key or "").startswith("ingest-summary"):
            rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
            return IngestSummary.from_table(rows).to_dict()
    return None
