"""The connector registry: types and URL schemes are registered once, beside each connector's factory."""

from __future__ import annotations

import pytest

from connectors.base import SourceError, register_connector, source_config_from_spec, source_from_config

pytestmark = pytest.mark.unit


def test_a_second_registration_of_a_type_or_a_scheme_is_refused():
    source_from_config({"type": "s3", "bucket": "b"})  # imports connectors.s3, which registers s3 and s3://
    with pytest.raises(ValueError, match="'s3' is registered already"):
        register_connector("s3", lambda config: None)
    with pytest.raises(ValueError, match="s3:// is registered already"):
        register_connector("another", lambda config: None, scheme="s3")


def test_a_spec_goes_to_the_connector_that_registered_its_scheme():
    assert source_config_from_spec("s3://bucket/some/prefix", ["*.md"], [], region="eu-west-1") == {
        "type": "s3",
        "bucket": "bucket",
        "prefix": "some/prefix",
        "include": ["*.md"],
        "exclude": [],
        "region": "eu-west-1",
    }
    assert source_config_from_spec("docs/folder", [], ["*.tmp"])["type"] == "local"
    with pytest.raises(SourceError, match=r"unsupported source ftp://.*s3://"):
        source_config_from_spec("ftp://host/path", [], [])
