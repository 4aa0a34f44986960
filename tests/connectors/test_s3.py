"""The S3 connector against a real S3-compatible server (moto) on 127.0.0.1, and the source spec the CLI takes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from connectors.base import SourceError, source_config_from_spec
from tests.conftest import DATA, KBFLOW, free_port, stop_process, store_state

server_test = [pytest.mark.slow, pytest.mark.integration]
BUCKET = "kb-docs"
PREFIX = "team/docs"
# Real small documents of several formats; one in a "folder", one with a non-ASCII name.
DOCS = {
    "notes.txt": "notes.txt",
    "guide.md": "guide.md",
    "hr/policy.docx": "policy.docx",
    "manual.pdf": "manual.pdf",
    "中文说明.txt": "中文说明.txt",
}


# --- the spec the CLI takes (no server) ---------------------------------------------------------------


@pytest.mark.unit
def test_source_config_from_spec():
    assert source_config_from_spec(
        "s3://bucket/team/docs", ["*.pdf"], ["old"], endpoint_url="http://127.0.0.1:9000"
    ) == {
        "type": "s3",
        "bucket": "bucket",
        "prefix": "team/docs",
        "include": ["*.pdf"],
        "exclude": ["old"],
        "endpoint_url": "http://127.0.0.1:9000",
    }
    # No endpoint (AWS) and a whole bucket: empty options are left out, so the connector's defaults apply.
    assert source_config_from_spec("s3://bucket", ["*"], [], endpoint_url="") == {
        "type": "s3",
        "bucket": "bucket",
        "prefix": "",
        "include": ["*"],
        "exclude": [],
    }
    assert source_config_from_spec("S3://bucket/", ["*"], [])["type"] == "s3"
    assert source_config_from_spec("docs/folder", ["*"], ["tmp"], endpoint_url="http://x") == {
        "type": "local",
        "root": "docs/folder",
        "include": ["*"],
        "exclude": ["tmp"],
    }
    assert source_config_from_spec(r"C:\docs", ["*"], [])["type"] == "local"
    with pytest.raises(SourceError, match="names no bucket"):
        source_config_from_spec("s3://", ["*"], [])
    with pytest.raises(SourceError, match="unsupported source gs://"):
        source_config_from_spec("gs://bucket/docs", ["*"], [])


@pytest.mark.unit
def test_config_holds_no_credentials_and_errors_hold_no_sdk_text():
    from botocore.exceptions import ClientError

    from connectors.base import source_from_config
    from connectors.s3 import _clean_error

    source = source_from_config(
        {"type": "s3", "bucket": "b", "prefix": "/docs/", "endpoint_url": "http://u:pw@127.0.0.1:9"}
    )
    assert source.source_id == "s3://b/docs" and source.prefix == "docs/"
    assert set(source.to_config()) == {"type", "bucket", "prefix", "endpoint_url", "region", "include", "exclude"}
    assert source_from_config(source.to_config()).source_id == source.source_id
    assert source.describe() == "s3://b/docs at http://127.0.0.1:9"  # userinfo in an endpoint URL is never shown

    leaky = ClientError(
        {
            "Error": {"Code": "AccessDenied", "Message": "key AKIASECRET123 denied"},
            "ResponseMetadata": {"HTTPStatusCode": 403},
        },
        "GetObject",
    )
    msg = _clean_error(leaky, "read object", "b")
    assert "AKIASECRET123" not in msg and "AccessDenied" in msg and "403" in msg


# --- against a real S3-compatible server -------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's S3-compatible server on 127.0.0.1, for this module."""
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.time() + 60
    while True:
        try:
            with opener.open(url + "/", timeout=2):
                break
        except urllib.error.HTTPError:
            break  # it answers
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                stop_process(proc)
                pytest.fail("moto_server did not start")
            time.sleep(0.2)
    yield url
    stop_process(proc)


AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture
def aws_env(monkeypatch, tmp_path) -> dict:
    """Fake credentials, and no developer's ~/.aws files."""
    env = {
        **AWS_ENV,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def bucket(request, s3_endpoint, aws_env):
    """A new bucket (named after the test) holding the documents under PREFIX, plus objects that are no documents."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint)
    name = f"{BUCKET}-{request.node.name.replace('_', '-')}"[:63].rstrip("-")
    client.create_bucket(Bucket=name)
    for key, filename in DOCS.items():
        client.put_object(Bucket=name, Key=f"{PREFIX}/{key}", Body=(DATA / "docs" / filename).read_bytes())
    for key in (
        f"{PREFIX}/",
        f"{PREFIX}/hr/",
        f"{PREFIX}/.DS_Store",
        f"{PREFIX}/~$policy.docx",
        f"{PREFIX}/draft.md.swp",
        f"{PREFIX}/.git/config",
        "other/outside.txt",
        f"{PREFIX}-old/sibling.txt",
    ):
        client.put_object(Bucket=name, Key=key, Body=b"" if key.endswith("/") else b"not a document of this prefix")
    return client, name


def bucket_docs(client, name: str, prefix: str = PREFIX) -> dict[str, str]:
    """path under the prefix -> sha256 of every document object (what the store must hold)."""
    out = {}
    for rel in DOCS | {"faq.md": ""}:
        try:
            body = client.get_object(Bucket=name, Key=f"{prefix}/{rel}")["Body"].read()
        except client.exceptions.NoSuchKey:
            continue
        out[rel] = hashlib.sha256(body).hexdigest()
    return out


def assert_store_matches_bucket(store: Path, client, name: str) -> dict:
    """Every document object has exactly its current version's chunks, and nothing else is stored."""
    state = store_state(store)
    assert state["ids"] == state["ledger_ids"], "Chroma and the ledger disagree"
    expected = bucket_docs(client, name)
    assert set(state["by_source"]) == set(expected)
    for path, chunks in state["by_source"].items():
        assert {c["doc_sha256"] for c in chunks} == {expected[path]}, f"{path} holds chunks of an old version"
        assert {c["source_id"] for c in chunks} == {f"s3://{name}/{PREFIX}"}
        assert [c["chunk_index"] for c in chunks] == list(range(len(chunks)))
    return state


@pytest.mark.slow
@pytest.mark.integration
def test_ingest_follows_an_s3_prefix_exactly(bucket, s3_endpoint, store_dir, monkeypatch):
    from connectors.s3 import S3Source
    from flows.ingest import ingest_flow

    client, name = bucket
    source = {"type": "s3", "bucket": name, "prefix": PREFIX, "endpoint_url": s3_endpoint}
    downloads = []
    real_hash = S3Source._hash
    monkeypatch.setattr(S3Source, "_hash", lambda self, rel: downloads.append(rel) or real_hash(self, rel))

    first = ingest_flow(source=source, store_dir=str(store_dir))
    assert first["failed"] == [] and first["added"] == len(DOCS) and first["chunks_written"] >= len(DOCS)
    assert first["source"] == f"s3://{name}/{PREFIX} at {s3_endpoint}"
    state = assert_store_matches_bucket(store_dir, client, name)
    assert any("45 euros" in c["text"] for c in state["by_source"]["hr/policy.docx"])
    assert {c["page"] for c in state["by_source"]["manual.pdf"]} == {1, 2}
    assert "blue widget" in state["by_source"]["notes.txt"][0]["text"]

    # The bucket changes: one object rewritten, one deleted, one added.
    client.put_object(
        Bucket=name, Key=f"{PREFIX}/notes.txt", Body=b"Meeting notes. The silver widget ships in August, not March.\n"
    )
    client.delete_object(Bucket=name, Key=f"{PREFIX}/guide.md")
    client.put_object(Bucket=name, Key=f"{PREFIX}/faq.md", Body=b"# FAQ\n\nThe lighthouse opens at dawn.\n")
    downloads.clear()
    second = ingest_flow(source=source, store_dir=str(store_dir))
    assert (second["added"], second["updated"], second["deleted"], second["unchanged"]) == (1, 1, 1, len(DOCS) - 2)
    assert second["failed"] == [] and second["chunks_deleted"] == len(state["by_source"]["guide.md"]) + len(
        state["by_source"]["notes.txt"]
    )
    after = assert_store_matches_bucket(store_dir, client, name)
    assert "guide.md" not in after["by_source"]
    assert not {c["id"] for c in state["by_source"]["guide.md"]} & after["ids"], (
        "the deleted object's chunks are still stored"
    )
    assert ["silver widget" in c["text"] for c in after["by_source"]["notes.txt"]] == [True]
    assert "lighthouse" in after["by_source"]["faq.md"][0]["text"]
    for path in ("hr/policy.docx", "manual.pdf", "中文说明.txt"):  # untouched objects kept their chunks
        assert [c["id"] for c in after["by_source"][path]] == [c["id"] for c in state["by_source"][path]]
    # Only the new and the rewritten objects were downloaded to hash; the others kept their known hash.
    assert sorted(downloads) == ["faq.md", "notes.txt"]

    downloads.clear()
    third = ingest_flow(source=source, store_dir=str(store_dir))
    assert third["unchanged"] == len(DOCS) and third["chunks_written"] == 0
    assert third["added"] == third["updated"] == third["deleted"] == third["chunks_deleted"] == 0
    assert downloads == []
    assert store_state(store_dir)["ids"] == after["ids"]


@pytest.mark.slow
@pytest.mark.integration
def test_a_missing_bucket_is_a_clear_error(s3_endpoint, aws_env, store_dir):
    from flows.ingest import ingest_flow

    with pytest.raises(SourceError) as info:
        ingest_flow(
            source={"type": "s3", "bucket": "no-such-bucket", "endpoint_url": s3_endpoint}, store_dir=str(store_dir)
        )
    assert str(info.value) == "cannot list s3://no-such-bucket: bucket 'no-such-bucket' does not exist"


@pytest.mark.slow
@pytest.mark.integration
def test_cli_ingests_an_s3_url(bucket, s3_endpoint, aws_env, store_dir, cli_env):
    client, name = bucket
    env = {**cli_env, **aws_env, "KBFLOW_S3_ENDPOINT_URL": s3_endpoint}
    proc = subprocess.run(
        [KBFLOW, "ingest", f"s3://{name}/{PREFIX}", "--store", str(store_dir), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["added"] == len(DOCS) and summary["failed"] == [] and summary["deleted"] == 0
    assert_store_matches_bucket(store_dir, client, name)


@pytest.mark.slow
@pytest.mark.integration
def test_access_files_in_a_bucket_give_the_readers_and_a_broken_one_is_named(bucket, s3_endpoint):
    from connectors.access import AccessFileError
    from connectors.s3 import S3Source, S3SourceConfig

    client, name = bucket
    client.put_object(Bucket=name, Key=f"{PREFIX}/.kbflow-access", Body=b"# the share\n*.pdf: legal, staff\n")
    client.put_object(Bucket=name, Key=f"{PREFIX}/hr/.kbflow-access", Body=b"*: hr\n")
    source = S3Source(S3SourceConfig(bucket=name, prefix=PREFIX, endpoint_url=s3_endpoint))
    readers = {r.path: r.readers for r in source.list().refs}
    assert readers == {
        "notes.txt": ("*",),  # no line matches: an object has no readers of its own, so it is public
        "guide.md": ("*",),
        "hr/policy.docx": ("hr",),
        "manual.pdf": ("legal", "staff"),
        "中文说明.txt": ("*",),
    }
    client.put_object(Bucket=name, Key=f"{PREFIX}/hr/.kbflow-access", Body=b"*: hr\npolicy.docx hr\n")
    with pytest.raises(AccessFileError, match=rf"^s3://{name}/{PREFIX}/hr/\.kbflow-access, line 2: no ':'"):
        source.list()
