"""The one registry of source types: what ``build_source``, the hooks and ``get_provider_info`` read.

Adding a source is one :class:`SourceType` entry in :data:`SOURCE_TYPES`. A source whose credentials
need a connection type of their own also names it as a :class:`ConnectionType` with a ``hook``: that
entry becomes a connection type in ``get_provider_info`` (its form table lives there, keyed by name).

Plain data and strings only: this module imports neither Airflow nor any connector, so the
scheduler, the hooks and the engine can all read it for free.
"""

from __future__ import annotations

from dataclasses import dataclass

from dativo_provider.exceptions import ConfigError


@dataclass(frozen=True)
class ConnectionType:
    """An Airflow connection type a source reads its credentials from.

    :param name: the connection type (``conn_type``).
    :param config_builder: ``"module:function"`` turning such a Connection into the engine's config
        (in the Airflow layer; imported only when a connection of this type is used).
    :param hook: ``"module.Class"`` when this provider defines the type (registered with Airflow, with a
        form); None for another provider's type, whose fields are read without that provider.
    :param integration: the integration the type belongs to in ``get_provider_info``.
    :param doc_page: the page of ``docs/`` that documents the integration.
    :param legacy_name: the type's name before it was prefixed with ``dativo_``; connections still
        carrying it are read for one more release, with a warning naming the migration.
    """

    name: str
    config_builder: str
    hook: str | None = None
    integration: str | None = None
    doc_page: str | None = None
    legacy_name: str | None = None


@dataclass(frozen=True)
class SourceType:
    """A kind of source: a spec's ``type``.

    :param name: the spec's ``type``.
    :param module: the engine module whose ``from_spec(spec, connection)`` builds the source.
    :param connections: the connection types a spec's ``conn_id`` may name (none: takes no connection).
    """

    name: str
    module: str
    connections: tuple[ConnectionType, ...] = ()

    @property
    def conn_types(self) -> tuple[str, ...]:
        return tuple(connection.name for connection in self.connections)


_HOOKS = "dativo_provider.hooks"

POSTGRES = ConnectionType("postgres", f"{_HOOKS}.sources:database_config")
MYSQL = ConnectionType("mysql", f"{_HOOKS}.sources:database_config")
AWS = ConnectionType("aws", f"{_HOOKS}.sources:object_store_config")
GOOGLE_CLOUD = ConnectionType("google_cloud_platform", f"{_HOOKS}.google:google_config")
DATIVO_GOOGLE = ConnectionType(
    "dativo_google", f"{_HOOKS}.google:google_config", hook=f"{_HOOKS}.google.GoogleHook",
    integration="Google Drive and Sheets (Dativo)", doc_page="sources-google.md",
)
DATIVO_STRIPE = ConnectionType(
    "dativo_stripe", f"{_HOOKS}.stripe:stripe_config", hook=f"{_HOOKS}.stripe.StripeHook",
    integration="Stripe (Dativo)", doc_page="sources-stripe.md", legacy_name="stripe",
)
DATIVO_HUBSPOT = ConnectionType(
    "dativo_hubspot", f"{_HOOKS}.hubspot:hubspot_config", hook=f"{_HOOKS}.hubspot.HubSpotHook",
    integration="HubSpot (Dativo)", doc_page="sources-hubspot.md", legacy_name="hubspot",
)

_GOOGLE = (GOOGLE_CLOUD, DATIVO_GOOGLE)
_SOURCES = "dativo_provider.sources"

#: spec ``type`` -> its entry. Files read local paths without a connection and S3 through ``aws``;
#: markdown_kv takes ``aws`` for an S3 path and a Google connection for a ``gdrive://`` path.
SOURCE_TYPES: dict[str, SourceType] = {
    entry.name: entry
    for entry in (
        SourceType("postgres", f"{_SOURCES}.postgres", (POSTGRES,)),
        SourceType("mysql", f"{_SOURCES}.mysql", (MYSQL,)),
        SourceType("files", f"{_SOURCES}.files", (AWS,)),
        SourceType("markdown_kv", f"{_SOURCES}.markdown_kv", (AWS, *_GOOGLE)),
        SourceType("stripe", f"{_SOURCES}.stripe", (DATIVO_STRIPE,)),
        SourceType("hubspot", f"{_SOURCES}.hubspot", (DATIVO_HUBSPOT,)),
        SourceType("google_drive", f"{_SOURCES}.google_drive", _GOOGLE),
        SourceType("google_sheets", f"{_SOURCES}.google_sheets", _GOOGLE),
    )
}


def source_type(kind: object) -> SourceType:
    """The registry entry for a spec's ``type``.

    :raises ConfigError: naming the unknown type and listing the valid ones.
    """
    entry = SOURCE_TYPES.get(kind) if isinstance(kind, str) else None
    if entry is None:
        raise ConfigError(f"source 'type' is {kind!r}; expected one of {sorted(SOURCE_TYPES)}")
    return entry


def connection_types() -> dict[str, ConnectionType]:
    """Every connection type some source reads, by name (each once)."""
    return {c.name: c for entry in SOURCE_TYPES.values() for c in entry.connections}


def own_connection_types() -> list[ConnectionType]:
    """The connection types this provider defines (registered with Airflow), in registry order."""
    return [c for c in connection_types().values() if c.hook]


def legacy_names() -> dict[str, ConnectionType]:
    """Old connection-type name -> the type that replaced it."""
    return {c.legacy_name: c for c in connection_types().values() if c.legacy_name}
