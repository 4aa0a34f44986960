"""An S3 bucket (AWS or any S3-compatible service: MinIO, Ceph, moto) as a document source.

Credentials are never part of the config: boto3 reads them from its own environment variables,
profile or instance role, so a config handed to a worker holds no secret.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field

from connectors.access import ACCESS_FILE, PUBLIC_READERS, AccessFileError, AccessRules
from connectors.base import (
    DEFAULT_EXCLUDE,
    DocumentRef,
    DocumentVanished,
    Listing,
    SourceError,
    is_candidate_path,
    register_connector,
)

CONNECTOR_TYPE = "s3"


class S3SourceConfig(BaseModel):
    """Settings of an S3 source (no credentials: boto3 finds them in its environment or profile)."""

    bucket: str = Field(min_length=1, pattern=r"^[^/]+$", description="Bucket to index.")
    prefix: str = Field(
        "", description="Key prefix, taken as a folder ('docs' means 'docs/'); empty indexes the whole bucket."
    )
    endpoint_url: str | None = Field(
        None, description="URL of an S3-compatible service (MinIO, Ceph, moto); empty means AWS."
    )
    region: str | None = Field(
        None, description="Region of the bucket; empty lets boto3 take it from AWS_DEFAULT_REGION or the profile."
    )
    include: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Glob patterns (on the path under the prefix or the file name) an object must match.",
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="Glob patterns that skip an object or a 'folder'; added to the built-in temporary-file patterns.",
    )


@lru_cache(maxsize=8)
def _client(endpoint_url: str | None, region: str | None):
    """One boto3 S3 client per endpoint and region per process (clients are thread-safe)."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=60)
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url or None, region_name=region or None, config=config
    )


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _timestamp(value) -> float:
    # Listings carry milliseconds and the Last-Modified header whole seconds: keep seconds so both agree.
    return float(int(value.timestamp()))


def _is_missing(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error.get("Code") in ("NoSuchKey", "404", "NotFound") or status == 404


def _clean_error(exc: Exception, what: str, bucket: str) -> str:
    """A message naming what failed and the error code, never the SDK's own text (it may echo request details)."""
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ReadTimeoutError,
    )

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "unknown"))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        if code == "NoSuchBucket":
            return f"cannot {what}: bucket {bucket!r} does not exist"
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
            return f"cannot {what}: S3 refused the AWS credentials ({code})"
        if code in ("AccessDenied", "403") or status == 403:
            return f"cannot {what}: access denied ({code}, HTTP {status}); check the credentials' permissions"
        return f"cannot {what}: S3 error {code} (HTTP {status})"
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return (
            f"cannot {what}: no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
        )
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        return f"cannot {what}: the S3 endpoint does not answer"
    if isinstance(exc, ReadTimeoutError):
        return f"cannot {what}: the S3 endpoint timed out"
    return f"cannot {what}: {type(exc).__name__}"


class S3Source:
    """Lists and reads the objects under a bucket prefix; 'folder' markers, hidden and temporary names are skipped."""

    def __init__(self, config: S3SourceConfig):
        self.config = config
        self.bucket = config.bucket
        prefix = config.prefix.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self.source_id = f"s3://{self.bucket}/{prefix}" if prefix else f"s3://{self.bucket}"
        self._exclude = DEFAULT_EXCLUDE + list(config.exclude)

    @property
    def client(self):
        return _client(self.config.endpoint_url or None, self.config.region or None)

    def to_config(self) -> dict[str, Any]:
        return {"type": CONNECTOR_TYPE, **self.config.model_dump()}

    def describe(self) -> str:
        if self.config.endpoint_url:
            return f"{self.source_id} at {_without_userinfo(self.config.endpoint_url)}"
        return self.source_id

    def _objects(self, access: list[str] | None = None):
        """Yield (relative path, listed object) of every candidate object under the prefix; the relative paths of
        access files go into `access`."""
        from botocore.exceptions import BotoCoreError, ClientError

        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if key.endswith("/"):
                        continue  # a "folder" marker made by consoles, not a document
                    rel = key[len(self.prefix) :]
                    if access is not None and rel.rsplit("/", 1)[-1] == ACCESS_FILE:
                        access.append(rel)
                    elif rel and is_candidate_path(rel, self.config.include, self._exclude):
                        yield rel, obj
        except (ClientError, BotoCoreError) as exc:
            raise SourceError(_clean_error(exc, f"list {self.source_id}", self.bucket)) from None

    def _hash(self, rel: str) -> tuple[str, int, float]:
        """Download an object to hash it: its sha256, and the size and mtime of the version hashed."""
        got = self.client.get_object(Bucket=self.bucket, Key=self.prefix + rel)
        h, body = hashlib.sha256(), got["Body"]
        try:
            for block in body.iter_chunks(1 << 20):
                h.update(block)
        finally:
            body.close()
        return h.hexdigest(), int(got["ContentLength"]), _timestamp(got["LastModified"])

    def list(self, known: Mapping[str, DocumentRef] | None = None) -> Listing:
        """List every object with its content's sha256, reusing a known hash when size and LastModified are
        unchanged."""
        from botocore.exceptions import BotoCoreError, ClientError

        known = known or {}
        listing = Listing()
        access: list[str] = []
        objects = list(self._objects(access))
        rules = self._access_rules(access)
        for rel, obj in objects:
            size, mtime = int(obj["Size"]), _timestamp(obj["LastModified"])
            readers = rules.readers(rel) or PUBLIC_READERS  # an object has no readers of its own that kbflow reads
            old = known.get(rel)
            if old is not None and old.size == size and old.mtime == mtime and old.sha256:
                listing.refs.append(DocumentRef(self.source_id, rel, size, mtime, old.sha256, readers))
                continue
            # ETags are MD5s or multipart digests, not sha256: download and hash.
            try:
                digest, size, mtime = self._hash(rel)
            except (ClientError, BotoCoreError, OSError) as exc:
                if _is_missing(exc):
                    continue  # deleted since the listing: it is simply not there any more
                listing.errors[rel] = _clean_error(exc, "read object", self.bucket)
                continue
            listing.refs.append(DocumentRef(self.source_id, rel, size, mtime, digest, readers))
        return listing

    def _access_rules(self, paths: list[str]) -> AccessRules:
        """The access files' rules by folder; AccessFileError (the object, the line, why) when one is broken or
        cannot be read: nothing may be indexed with readers guessed."""
        from botocore.exceptions import BotoCoreError, ClientError

        rules = AccessRules()
        for rel in paths:
            where = f"s3://{self.bucket}/{self.prefix}{rel}"
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + rel)["Body"]
                try:
                    text = body.read().decode("utf-8")
                finally:
                    body.close()
            except (ClientError, BotoCoreError, OSError, UnicodeDecodeError) as exc:
                why = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else _clean_error(exc, "read it", "")
                raise AccessFileError(f"{where}: cannot read the access file: {why}") from None
            rules.add(rel.rpartition("/")[0], text, where)
        return rules

    def read(self, ref: DocumentRef) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + ref.path)["Body"]
            try:
                return body.read()
            finally:
                body.close()
        except (ClientError, BotoCoreError, OSError) as exc:
            if _is_missing(exc):
                raise DocumentVanished("deleted while the run was going on") from None
            raise SourceError(_clean_error(exc, "read object", self.bucket)) from None


def parse_spec(rest: str, include: list[str], exclude: list[str], **options: Any) -> dict[str, Any]:
    """The config of `s3://BUCKET/PREFIX` (given here without `s3://`); options: endpoint_url, region."""
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise SourceError(f"'s3://{rest}' names no bucket: give s3://BUCKET or s3://BUCKET/PREFIX")
    config: dict[str, Any] = {
        "type": CONNECTOR_TYPE,
        "bucket": bucket,
        "prefix": prefix,
        "include": list(include),
        "exclude": list(exclude),
    }
    config.update({k: options[k] for k in ("endpoint_url", "region") if options.get(k)})
    return config


register_connector(
    CONNECTOR_TYPE, lambda config: S3Source(S3SourceConfig(**config)), scheme="s3", parse_spec=parse_spec
)
