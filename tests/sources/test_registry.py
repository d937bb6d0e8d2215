"""One registry of source types: build_source, the hooks and the provider info all read it."""

from __future__ import annotations

import importlib

import pytest

from dativo_provider.exceptions import ConfigError
from dativo_provider.sources import build_source
from dativo_provider.sources.registry import SOURCE_TYPES, connection_types, legacy_names, source_type

VALID = "['files', 'google_drive', 'google_sheets', 'hubspot', 'markdown_kv', 'mysql', 'postgres', 'stripe']"


@pytest.mark.parametrize("kind", ["salesforce", None, 3])
def test_an_unknown_source_type_lists_the_valid_ones(kind):
    with pytest.raises(ConfigError) as failure:
        build_source({"type": kind, "path": "/x"})
    assert str(failure.value) == f"source 'type' is {kind!r}; expected one of {VALID}"


def test_every_entry_names_a_connector_and_config_builders_that_exist():
    for entry in SOURCE_TYPES.values():
        assert callable(importlib.import_module(entry.module).from_spec), entry.name
    for kind in connection_types().values():
        module, _, function = kind.config_builder.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), kind.name


def test_renamed_types_point_at_their_new_names():
    assert {old: kind.name for old, kind in legacy_names().items()} == {
        "stripe": "dativo_stripe", "hubspot": "dativo_hubspot"}
    assert source_type("stripe").conn_types == ("dativo_stripe",)
    assert source_type("markdown_kv").conn_types == ("aws", "google_cloud_platform", "dativo_google")
