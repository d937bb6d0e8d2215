"""Airflow's provider registry entry, found through the ``apache_airflow_provider`` entry point.

Airflow >= 3.2 reads the connection form from the ``conn-fields`` and ``ui-field-behaviour`` keys
below without importing the hook; Airflow 2.x asks the hook's ``get_connection_form_widgets`` and
``get_ui_field_behaviour`` classmethods, which build their widgets from the same table.
The ``postgres``, ``mysql`` and ``aws`` connection types are the official providers'; not redefined here.
The source connection types, their hooks and integrations come from the source registry
(:mod:`dativo_provider.sources.registry`); their form tables are below, keyed by connection type.
"""

from __future__ import annotations

from typing import Any

from dativo_provider import __version__
from dativo_provider.sources.registry import (
    DATIVO_GOOGLE,
    DATIVO_HUBSPOT,
    DATIVO_STRIPE,
    ConnectionType,
    own_connection_types,
)

INTEGRATION = "Apache Iceberg (Dativo)"
REPO_URL = "https://github.com/dativo-io/dativo-airflow-provider"
#: The docs folder; pyproject.toml's Documentation Project-URL names the same page.
DOCS_URL = f"{REPO_URL}/tree/main/docs"


def _doc_page(name: str) -> str:
    return f"{REPO_URL}/blob/main/docs/{name}"


_OPTIONAL_STRING: dict[str, Any] = {"type": ["string", "null"]}

#: Extra fields of the ``dativo_iceberg`` connection: name -> label, JSON schema, help text.
ICEBERG_CONN_FIELDS: dict[str, dict[str, Any]] = {
    "catalog_type": {
        "label": "Catalog type",
        "schema": {"type": ["string", "null"], "enum": ["sql", "rest", "glue"], "default": "sql"},
        "description": "sql (SQLite or Postgres), rest, or glue.",
    },
    "warehouse": {
        "label": "Warehouse",
        "schema": _OPTIONAL_STRING,
        "description": "file:///path or s3://bucket/prefix (for REST: the warehouse name).",
    },
    "catalog_name": {
        "label": "Catalog name",
        "schema": _OPTIONAL_STRING,
        "description": "Name of the catalog inside a SQL catalog database (default: dativo).",
    },
    "credential": {
        "label": "OAuth credential",
        "schema": {"type": ["string", "null"], "format": "password"},
        "description": "REST: client_id:client_secret for the OAuth client-credentials flow.",
    },
    "oauth2-server-uri": {
        "label": "OAuth2 server URI",
        "schema": _OPTIONAL_STRING,
        "description": "REST: token endpoint, if not the catalog's own /v1/oauth/tokens.",
    },
    "scope": {"label": "OAuth scope", "schema": _OPTIONAL_STRING, "description": "REST: OAuth scope."},
    "region": {"label": "AWS region", "schema": _OPTIONAL_STRING, "description": "Glue and S3 region."},
    "aws_conn_id": {
        "label": "AWS connection id",
        "schema": _OPTIONAL_STRING,
        "description": "An aws connection whose credentials reach Glue and the S3 warehouse.",
    },
    "s3_endpoint": {
        "label": "S3 endpoint",
        "schema": _OPTIONAL_STRING,
        "description": "S3 endpoint override for MinIO or tests, e.g. http://127.0.0.1:9000.",
    },
}

ICEBERG_UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": [],
    "relabeling": {
        "host": "Catalog URI or host",
        "schema": "Database (SQL catalog)",
        "login": "User (SQL catalog)",
        "password": "Password or token",
    },
    "placeholders": {
        "host": "sqlite:////data/catalog.db | postgresql+psycopg://... | https://rest-catalog | db-host",
        "password": "SQL password or REST bearer token",
        "extra": '{"catalog_type": "sql", "warehouse": "s3://bucket/warehouse"}',
    },
}


STRIPE_INTEGRATION = str(DATIVO_STRIPE.integration)
HUBSPOT_INTEGRATION = str(DATIVO_HUBSPOT.integration)
_SECRET_STRING: dict[str, Any] = {"type": ["string", "null"], "format": "password"}

#: Extra fields of the ``dativo_stripe`` connection (the secret key is the password field).
STRIPE_CONN_FIELDS: dict[str, dict[str, Any]] = {
    "account": {
        "label": "Connected account",
        "schema": _OPTIONAL_STRING,
        "description": "acct_...: read this connected account's data (Stripe-Account header).",
    },
    "api_version": {
        "label": "API version",
        "schema": _OPTIONAL_STRING,
        "description": "Stripe-Version sent on every call (default 2025-02-24.acacia).",
    },
    "base_url": {
        "label": "Base URL",
        "schema": _OPTIONAL_STRING,
        "description": "Only for a proxy or a test double (default https://api.stripe.com).",
    },
}

STRIPE_UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["host", "schema", "login", "port"],
    "relabeling": {"password": "Secret key"},
    "placeholders": {"password": "sk_live_... or a restricted key rk_live_... with read access"},
}

#: Extra fields of the ``dativo_hubspot`` connection (a private-app token is the password field).
HUBSPOT_CONN_FIELDS: dict[str, dict[str, Any]] = {
    "client_id": {
        "label": "OAuth client id",
        "schema": _OPTIONAL_STRING,
        "description": "OAuth apps only: the app's client id.",
    },
    "client_secret": {
        "label": "OAuth client secret",
        "schema": _SECRET_STRING,
        "description": "OAuth apps only: the app's client secret.",
    },
    "refresh_token": {
        "label": "OAuth refresh token",
        "schema": _SECRET_STRING,
        "description": "OAuth apps only: access tokens are obtained and refreshed from it.",
    },
    "api_version": {
        "label": "API version",
        "schema": _OPTIONAL_STRING,
        "description": "HubSpot's date-based API version in every path, e.g. 2026-03 (the default).",
    },
    "base_url": {
        "label": "Base URL",
        "schema": _OPTIONAL_STRING,
        "description": "Only for a proxy or a test double (default https://api.hubapi.com).",
    },
}

HUBSPOT_UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["host", "schema", "login", "port"],
    "relabeling": {"password": "Private app access token"},
    "placeholders": {"password": "pat-... (leave empty when using OAuth)"},
}

PRIVACY_INTEGRATION = "Data-subject requests (Dativo)"
PRIVACY_KEY_HOOK_NAME = "DSR key (Dativo)"

#: Extra fields of the ``dativo_dsr_key`` connection (the key itself is the password field).
DSR_KEY_CONN_FIELDS: dict[str, dict[str, Any]] = {
    "algorithm": {
        "label": "Signing algorithm",
        "schema": {"type": ["string", "null"], "enum": ["ed25519", "hmac-sha256"]},
        "description": "Signing keys: ed25519 (default; PEM in the password) or hmac-sha256. Empty for a hash key.",
    },
    "key_id": {
        "label": "Key id",
        "schema": _OPTIONAL_STRING,
        "description": "Names the signing key in certificates (default: the connection id).",
    },
}

DSR_KEY_UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["host", "schema", "login", "port"],
    "relabeling": {"password": "Key"},
    "placeholders": {"password": "Ed25519 private key (PKCS#8 PEM), or a secret of at least 16 bytes"},
}

GOOGLE_INTEGRATION = str(DATIVO_GOOGLE.integration)

#: Extra fields of the ``dativo_google`` connection (the key JSON or an access token is the password).
#: The official ``google_cloud_platform`` connection works too; see docs/sources-google.md.
GOOGLE_CONN_FIELDS: dict[str, dict[str, Any]] = {
    "scope": {
        "label": "Scopes (comma separated)",
        "schema": _OPTIONAL_STRING,
        "description": "Default: drive.readonly and spreadsheets.readonly.",
    },
    "subject": {
        "label": "Delegated user",
        "schema": _OPTIONAL_STRING,
        "description": "Workspace domain-wide delegation: the user whose files are read.",
    },
    "quota_project_id": {
        "label": "Quota project",
        "schema": _OPTIONAL_STRING,
        "description": "Project billed for API quota (x-goog-user-project header).",
    },
    "drive_url": {
        "label": "Drive base URL",
        "schema": _OPTIONAL_STRING,
        "description": "Only for a proxy or a test double (default https://www.googleapis.com).",
    },
    "sheets_url": {
        "label": "Sheets base URL",
        "schema": _OPTIONAL_STRING,
        "description": "Only for a proxy or a test double (default https://sheets.googleapis.com).",
    },
}

GOOGLE_UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["host", "schema", "login", "port"],
    "relabeling": {"password": "Service-account key JSON (or access token)"},
    "placeholders": {"password": '{"type": "service_account", "client_email": ..., "private_key": ...}'},
}

OPENMETADATA_INTEGRATION = "OpenMetadata (Dativo)"
OPENMETADATA_CONN_TYPE = "dativo_openmetadata"

#: Extra fields of the ``dativo_openmetadata`` connection (the bot's JWT is the password field).
OPENMETADATA_CONN_FIELDS: dict[str, dict[str, Any]] = {
    "max_workers": {
        "label": "Concurrent requests",
        "schema": {"type": ["integer", "null"], "minimum": 1, "default": 8},
        "description": "At most this many requests in flight at once (default 8).",
    },
    "max_retries": {
        "label": "Retries",
        "schema": {"type": ["integer", "null"], "minimum": 0, "default": 5},
        "description": "Retries of a 429 or 5xx answer, with backoff and Retry-After (default 5).",
    },
    "timeout_seconds": {
        "label": "Timeout (seconds)",
        "schema": {"type": ["number", "null"], "default": 30},
        "description": "Per request (default 30).",
    },
    "verify_ssl": {
        "label": "Verify TLS certificate",
        "schema": {"type": ["boolean", "null"], "default": True},
        "description": "Turn off only for a server with a self-signed certificate.",
    },
}

OPENMETADATA_UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "login"],
    "relabeling": {"host": "Server URL", "password": "JWT token"},
    "placeholders": {"host": "https://openmetadata.example.org", "password": "the ingestion bot's JWT"},
}

#: connection type -> (``conn-fields``, ``ui-field-behaviour``) of each type the source registry defines.
SOURCE_CONNECTION_FORMS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    DATIVO_STRIPE.name: (STRIPE_CONN_FIELDS, STRIPE_UI_FIELD_BEHAVIOUR),
    DATIVO_HUBSPOT.name: (HUBSPOT_CONN_FIELDS, HUBSPOT_UI_FIELD_BEHAVIOUR),
    DATIVO_GOOGLE.name: (GOOGLE_CONN_FIELDS, GOOGLE_UI_FIELD_BEHAVIOUR),
}


def _source_connection_type(kind: ConnectionType) -> dict[str, Any]:
    fields, behaviour = SOURCE_CONNECTION_FORMS[kind.name]
    return {
        "connection-type": kind.name,
        "hook-class-name": kind.hook,
        "hook-name": kind.integration,
        "conn-fields": fields,
        "ui-field-behaviour": behaviour,
    }


def _source_integration(kind: ConnectionType) -> dict[str, Any]:
    return {
        "integration-name": kind.integration,
        "external-doc-url": _doc_page(str(kind.doc_page)),
        "tags": ["service"],
    }


def _source_hooks(kind: ConnectionType) -> dict[str, Any]:
    return {"integration-name": kind.integration, "python-modules": [str(kind.hook).rpartition(".")[0]]}


#: How Airflow normalises ``iceberg://`` asset URIs, builds them and names them in OpenLineage.
ICEBERG_ASSET_URIS: dict[str, Any] = {
    "schemes": ["iceberg"],
    "handler": "dativo_provider.assets.sanitize_uri",
    "factory": "dativo_provider.assets.create_asset",
    "to_openlineage_converter": "dativo_provider.assets.convert_asset_to_openlineage",
}


def get_provider_info() -> dict[str, Any]:
    """Describe this provider to Airflow's ProvidersManager."""
    return {
        "package-name": "dativo-airflow-provider",
        "name": "Dativo",
        "description": "Stream database, file and SaaS data into Apache Iceberg, exactly once.",
        "versions": [__version__],
        # Airflow 3.3 overwrites it with the package's Documentation Project-URL (the same page).
        "documentation-url": DOCS_URL,
        # Airflow 3 reads asset-uris, Airflow 2.x dataset-uris; the scheme is documented in dativo_provider.assets.
        "asset-uris": [ICEBERG_ASSET_URIS],
        "dataset-uris": [ICEBERG_ASSET_URIS],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": _doc_page("ingestion.md"),
                "tags": ["software"],
            },
            *(_source_integration(kind) for kind in own_connection_types()),
            {
                "integration-name": PRIVACY_INTEGRATION,
                "external-doc-url": _doc_page("privacy.md"),
                "tags": ["software"],
            },
            {
                "integration-name": OPENMETADATA_INTEGRATION,
                "external-doc-url": _doc_page("lineage.md"),
                "tags": ["software"],
            },
        ],
        "hooks": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["dativo_provider.hooks.iceberg", "dativo_provider.hooks.sources"],
            },
            *(_source_hooks(kind) for kind in own_connection_types()),
            {"integration-name": PRIVACY_INTEGRATION, "python-modules": ["dativo_provider.hooks.privacy"]},
            {"integration-name": OPENMETADATA_INTEGRATION, "python-modules": ["dativo_provider.hooks.openmetadata"]},
        ],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "dativo_provider.operators.ingest",
                    "dativo_provider.operators.split_ingest",
                    "dativo_provider.operators.contracts",
                    "dativo_provider.operators.maintenance",
                    "dativo_provider.operators.ml",
                    "dativo_provider.operators.sagemaker",
                    "dativo_provider.operators.mlflow",
                    "dativo_provider.operators.export",
                ],
            },
            {"integration-name": PRIVACY_INTEGRATION,
             "python-modules": ["dativo_provider.operators.privacy", "dativo_provider.operators.handoff"]},
            {
                "integration-name": OPENMETADATA_INTEGRATION,
                "python-modules": ["dativo_provider.operators.openmetadata"],
            },
        ],
        "sensors": [
            {"integration-name": INTEGRATION, "python-modules": ["dativo_provider.sensors.contracts"]}
        ],
        # The page in the Airflow UI (docs/ui.md); also the airflow.plugins entry point, which Airflow
        # reads even when it discovers providers lazily (its default).
        "plugins": [{"name": "dativo_catalog", "plugin-class": "dativo_provider.plugins.catalog_page.DativoCatalogPlugin"}],
        "connection-types": [
            {
                "connection-type": "dativo_iceberg",
                "hook-class-name": "dativo_provider.hooks.iceberg.IcebergHook",
                "hook-name": INTEGRATION,
                "conn-fields": ICEBERG_CONN_FIELDS,
                "ui-field-behaviour": ICEBERG_UI_FIELD_BEHAVIOUR,
            },
            *(_source_connection_type(kind) for kind in own_connection_types()),
            {
                "connection-type": "dativo_dsr_key",
                "hook-class-name": "dativo_provider.hooks.privacy.DsrKeyHook",
                "hook-name": PRIVACY_KEY_HOOK_NAME,
                "conn-fields": DSR_KEY_CONN_FIELDS,
                "ui-field-behaviour": DSR_KEY_UI_FIELD_BEHAVIOUR,
            },
            {
                "connection-type": OPENMETADATA_CONN_TYPE,
                "hook-class-name": "dativo_provider.hooks.openmetadata.OpenMetadataHook",
                "hook-name": OPENMETADATA_INTEGRATION,
                "conn-fields": OPENMETADATA_CONN_FIELDS,
                "ui-field-behaviour": OPENMETADATA_UI_FIELD_BEHAVIOUR,
            },
        ],
    }
