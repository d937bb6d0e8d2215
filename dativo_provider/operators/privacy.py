"""Data-subject request operators: discover, export, erase, restrict, and terminate a tenant.

Each operator turns Airflow's inputs (connections, params, context) into one call of the privacy
engine (:mod:`dativo_provider.privacy.dsr`, :mod:`dativo_provider.privacy.termination`) and returns its
identifier-free result. Every operator reads the request from the run's params (``request_id``, ``kind``, ``subject_kind``,
``subject_ids``, ``emails``, ``received_at``, ``deadline``; see ``example_dags/example_dsr.py``), or
from ``request`` when given, and checks its deadline first: a request overdue or within three days of
its deadline fails the task loudly (no retries) so it is escalated, never silently late.

Identifiers stay out of XCom, logs and rendered template fields: operators return the engine's
identifier-free summaries, and ``request`` is not a templated field. Keys come only from Airflow
Connections (:mod:`dativo_provider.hooks.privacy`): the certificate signing key
(``dativo_dsr_signing``) and the hash key of the audit trail and restriction registry
(``dativo_dsr_hash_key``). Every step is appended to the audit trail: an Iceberg table
(``audit_table``, default ``dativo.dsr_audit`` in the same catalog) or a directory / ``s3://`` prefix
(``audit_path``).

Contracts are files or directories of ``*.odcs.yaml``; a relative path is looked up next to the DAG
file first, then in the worker's working directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dativo_provider.compat import BaseOperator, Context
from dativo_provider.exceptions import ConfigError
from dativo_provider.hooks.iceberg import IcebergHook
from dativo_provider.hooks.privacy import HASH_KEY_CONN_ID, SIGNING_CONN_ID, DsrKeyHook
from dativo_provider.operators.common import airflow_errors, renamed_parameter, resolve_contract_path
from dativo_provider.operators.lineage import OpenLineageFacets

if TYPE_CHECKING:
    from dativo_provider.iceberg.catalog import CatalogConfig
    from dativo_provider.privacy.audit import AuditTrail
    from dativo_provider.privacy.request import SubjectRequest

REQUEST_FIELDS = ("request_id", "kind", "subject_kind", "subject_ids", "emails", "received_at", "deadline")
DEFAULT_AUDIT_TABLE = "dativo.dsr_audit"
#: The restriction registry's default table (as ``privacy.restriction.DEFAULT_TABLE``, not imported at parse time).
DEFAULT_RESTRICTIONS_TABLE = "dativo.restrictions"


def subject_request(spec: Mapping[str, Any], received_default: datetime | None = None) -> SubjectRequest:
    """A :class:`SubjectRequest` from run params (or any mapping with :data:`REQUEST_FIELDS`).

    :param received_default: ``received_at`` when the params give none (the run's queue time).
    :raises ConfigError: a field is missing or malformed; the message names the field, never a value.
    """
    from dativo_provider.privacy.request import SubjectRequest

    missing = [name for name in ("request_id", "kind", "subject_kind") if not str(spec.get(name) or "").strip()]
    if missing:
        raise ConfigError(f"the request params lack {', '.join(missing)} (missing or blank)")
    received = _timestamp(spec.get("received_at"), "received_at") or received_default or datetime.now(timezone.utc)
    return SubjectRequest(
        request_id=str(spec["request_id"]), kind=spec["kind"], subject_kind=str(spec["subject_kind"]),
        subject_ids=tuple(_strings(spec.get("subject_ids"), "subject_ids")),
        emails=tuple(_strings(spec.get("emails"), "emails")),
        received_at=received, deadline=_timestamp(spec.get("deadline"), "deadline"),
    )


def _strings(value: Any, name: str) -> list[str]:
    """A list param as strings. None and ``""`` mean none given; a string is one item, or a JSON list
    (a rendered template). A blank or non-text item is refused, naming the param and the item's
    position, never its value.
    """
    if value is None or value == "":
        return []
    if isinstance(value, str):
        if value.lstrip().startswith("["):
            try:
                value = json.loads(value)
            except ValueError:
                raise ConfigError(f"request param {name!r} starts with '[' but is not a JSON list") from None
        else:
            value = [value]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"request param {name!r} must be a list of strings, not {type(value).__name__}")
    for position, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise ConfigError(f"request param {name!r}: item {position} is a {type(item).__name__}, "
                              "expected a string")
        if not str(item).strip():
            raise ConfigError(f"request param {name!r}: item {position} is blank; remove it or give the value")
    return [str(item) for item in value]


def _timestamp(value: Any, name: str) -> datetime | None:
    if value in (None, "", "None"):
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"request param {name!r} is not an ISO 8601 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _queued_at(context: Context) -> datetime | None:
    run = context.get("dag_run") if hasattr(context, "get") else None
    for name in ("queued_at", "run_after", "start_date", "logical_date"):
        value = getattr(run, name, None)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return None


def contract_locations(paths: Sequence[str] | str, dag_file: str | None) -> list[str]:
    """Contract files and directories, relative ones resolved next to the DAG file, then the cwd."""
    located = []
    for path in [paths] if isinstance(paths, str) else list(paths):
        candidate = Path(path).expanduser()
        folders = [Path(dag_file).parent] if dag_file and Path(dag_file).is_absolute() else []
        places = [candidate] if candidate.is_absolute() else [*(f / candidate for f in folders),
                                                               Path.cwd() / candidate]
        directory = next((p for p in places if p.is_dir()), None)
        located.append(str(directory) if directory else resolve_contract_path(path, dag_file))
    return located


class DsrBaseOperator(OpenLineageFacets, BaseOperator):
    """What every data-subject request operator shares: the request, catalog, contracts and trail.

    :param contracts: contract files or directories describing the tables to search.
    :param request: the request fields; default: the run's params.
    :param iceberg_conn_id: the catalog (the embedded one without ``iceberg_default``).
    :param hash_key_conn_id: the connection whose password is the audit trail's key.
    :param audit_table: the Iceberg table of the audit trail (in the same catalog).
    :param audit_path: a directory or ``s3://`` prefix for the audit trail instead of a table.
    :param audit_anchor_path: a directory or ``s3://`` prefix, apart from the trail's store, where each
        request's latest anchor is kept after every event: removing a request's last events (a failed
        or abandoned request's too) is then detected by ``dativo audit verify --anchors``.
    :param aws_conn_id: an ``aws`` connection for ``s3://`` audit paths and export destinations.
    :param deadline_margin: how close to its deadline a request may still run.
    :param other_iceberg_conn_ids: more catalogs to search, by name: ``{"archive": "iceberg_archive"}``;
        their matches are named ``archive:<table>``.
    """

    template_fields: Sequence[str] = ("contracts", "audit_table", "audit_path", "audit_anchor_path")
    ui_color = "#f3d9e8"

    def __init__(self, *, contracts: Sequence[str] | str = (), request: Mapping[str, Any] | None = None,
                 iceberg_conn_id: str = IcebergHook.default_conn_name,
                 hash_key_conn_id: str = HASH_KEY_CONN_ID, audit_table: str | None = DEFAULT_AUDIT_TABLE,
                 audit_path: str | None = None, audit_anchor_path: str | None = None,
                 aws_conn_id: str | None = None, deadline_margin: timedelta | None = None,
                 other_iceberg_conn_ids: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.other_iceberg_conn_ids = dict(other_iceberg_conn_ids or {})
        self.contracts = contracts
        self.request = request
        self.iceberg_conn_id = iceberg_conn_id
        self.hash_key_conn_id = hash_key_conn_id
        self.audit_table = audit_table
        self.audit_path = audit_path
        self.audit_anchor_path = audit_anchor_path
        self.aws_conn_id = aws_conn_id
        self.deadline_margin = deadline_margin

    def subject_request(self, context: Context) -> SubjectRequest:
        """The request from ``request`` or the params, its deadline checked (fails loudly when close)."""
        from dativo_provider.privacy.dsr import check_deadline

        spec = self.request if self.request is not None else context.get("params") or {}
        request = subject_request(spec, _queued_at(context))
        margin = {} if self.deadline_margin is None else {"margin": self.deadline_margin}
        check_deadline(request, **margin)
        if request.deadline is not None:
            left = request.deadline - datetime.now(timezone.utc)
            self.log.info("request %s (%s): %s left before its deadline", request.request_id, request.kind, left)
        return request

    def catalog(self) -> CatalogConfig:
        return IcebergHook(self.iceberg_conn_id).get_catalog_config()

    def other_catalogs(self) -> dict[str, CatalogConfig]:
        return {name: IcebergHook(conn_id).get_catalog_config()
                for name, conn_id in self.other_iceberg_conn_ids.items()}

    def contract_files(self) -> list[str]:
        if not self.contracts:
            raise ConfigError(f"{type(self).__name__}: give contracts (files or directories)")
        return contract_locations(self.contracts, self.dag.fileloc if self.has_dag() else None)

    def hash_key(self) -> bytes:
        return DsrKeyHook(self.hash_key_conn_id).hash_key()

    def object_store(self) -> Any:
        if not self.aws_conn_id:
            return None
        from dativo_provider.hooks.sources import object_store_config

        return object_store_config(_connection(self.aws_conn_id))

    def audit_trail(self, catalog: CatalogConfig) -> AuditTrail:
        """The audit trail: ``audit_path`` if given, else the ``audit_table`` in the catalog."""
        from dativo_provider.privacy.audit import AuditTrail, IcebergAuditStore, ObjectAuditStore

        if self.audit_path:
            store: Any = ObjectAuditStore(self.audit_path, self.object_store())
        elif self.audit_table:
            store = IcebergAuditStore(catalog.load(), self.audit_table)
        else:
            raise ConfigError(f"{type(self).__name__}: give audit_table or audit_path; every step is recorded")
        anchors = None
        if self.audit_anchor_path:
            from dativo_provider.privacy.anchors import AnchorStore

            anchors = AnchorStore(self.audit_anchor_path, self.object_store())
        return AuditTrail(store, self.hash_key(), anchors=anchors)


def _connection(conn_id: str) -> Any:
    from dativo_provider.compat import BaseHook

    return BaseHook.get_connection(conn_id)


class DsrDiscoverOperator(DsrBaseOperator):
    """Find every table (and quarantine table) that holds the subject's rows; push the report.

    :param scan_values: also scan unclassified string columns for e-mail/phone-like values, flagging
        tables whose contracts miss personal data (counts only).

    Returns ``Discovery.to_dict()``: tables, match columns (value counts only), rows per table,
    unidentifiable and missing tables. No identifier values.
    """

    def __init__(self, *, scan_values: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scan_values = scan_values

    def execute(self, context: Context) -> dict[str, Any]:
        from dativo_provider.privacy.dsr import discover_request

        with airflow_errors():
            request = self.subject_request(context)
            catalog = self.catalog()
            found = discover_request(catalog, self.contract_files(), request, trail=self.audit_trail(catalog),
                                     scan_values=self.scan_values, other_catalogs=self.other_catalogs())
        report = self.run_summary = found.to_dict()
        _warn_unidentifiable(self, report)
        return report


def _warn_unidentifiable(task: BaseOperator, report: Mapping[str, Any]) -> None:
    for key, what in (("unidentifiable", "personal data but no identifier the request can reach"),
                      ("missing", "a contract but no table in the catalog")):
        if report.get(key):
            task.log.warning("tables with %s: %s", what, ", ".join(report[key]))
    for flag in report.get("flagged") or []:
        task.log.warning("value scan: personal-looking data outside the contract: %s", flag)


class DsrExportOperator(DsrBaseOperator):
    """Export all the subject's rows (GDPR Art. 15/20) with a manifest, never world-readable.

    :param destination: a local directory or ``s3://bucket/prefix`` (templated, e.g.
        ``/exports/{{ params.request_id }}``); S3 credentials from ``aws_conn_id``.
    :param format: ``json`` (default), ``csv`` or ``parquet``.

    Returns ``ExportManifest.to_dict()`` (tables, row counts, SHA-256 per file, snapshot ids read).
    """

    template_fields: Sequence[str] = (*DsrBaseOperator.template_fields, "destination", "format")

    def __init__(self, *, destination: str, format: str = "json", **kwargs: Any) -> None:  # noqa: A002
        super().__init__(**kwargs)
        self.destination = destination
        self.format = format

    def execute(self, context: Context) -> dict[str, Any]:
        from dativo_provider.privacy.dsr import export_request

        with airflow_errors():
            request = self.subject_request(context)
            catalog = self.catalog()
            outcome = export_request(catalog, self.contract_files(), request, self.destination,
                                     trail=self.audit_trail(catalog), fmt=self.format,
                                     other_catalogs=self.other_catalogs(), object_store=self.object_store())
        _warn_unidentifiable(self, outcome.discovery.to_dict())
        self.run_summary = outcome.manifest.to_dict()
        return self.run_summary


class DsrEraseOperator(DsrBaseOperator):
    """Erase the subject physically (GDPR Art. 17), verify it, and write the signed certificate.

    Runs :func:`dativo_provider.privacy.dsr.erase_request`: discover → delete per table → delete the
    subject's entities from the serving copies the tables recorded (Feast online stores, SageMaker
    feature groups; connections resolved by :func:`serving_options`) → purge (refs, expiry, unreachable
    files, old metadata) → verify by decoding every file and counting the serving copies → certificate.
    A failed verification fails the task (no retries); every step is in the audit trail.

    :param certificate_path: where the certificate JSON goes (templated; mode 0600; folders created
        with 0700).
    :param signing_conn_id: the connection holding the Ed25519 key or HMAC secret.
    :param refs_policy: ``fail`` (default: report refs pinning pre-erasure data and change nothing),
        ``remove`` or ``repoint`` (templated, e.g. from a Variable).
    :param safety_window_minutes: unreferenced files younger than this are left alone (a concurrent
        writer's); templated.

    Returns ``ErasureOutcome.summary()`` plus ``certificate_path`` and ``certificate_sha256``.
    """

    template_fields: Sequence[str] = (*DsrBaseOperator.template_fields, "certificate_path", "refs_policy",
                                      "safety_window_minutes")

    def __init__(self, *, certificate_path: str, signing_conn_id: str = SIGNING_CONN_ID,
                 refs_policy: str = "fail", safety_window_minutes: float | str = 30, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.certificate_path = certificate_path
        self.signing_conn_id = signing_conn_id
        self.refs_policy = refs_policy
        self.safety_window_minutes = safety_window_minutes

    def execute(self, context: Context) -> dict[str, Any]:
        with airflow_errors():
            self.run_summary = erase_for(self, self.subject_request(context))
        return self.run_summary


def erase_for(task: DsrEraseOperator | TenantTerminateOperator, request: SubjectRequest) -> dict[str, Any]:
    """:func:`~dativo_provider.privacy.dsr.erase_request` with ``task``'s connections and settings."""
    from dativo_provider.privacy.dsr import erase_request

    catalog = task.catalog()
    return erase_request(
        catalog, task.contract_files(), request, str(task.certificate_path),
        signing_key=DsrKeyHook(task.signing_conn_id).signing_key(), hash_key=task.hash_key(),
        trail=task.audit_trail(catalog), refs_policy=task.refs_policy,
        safety_window=timedelta(minutes=_minutes(task.safety_window_minutes)),
        other_catalogs=task.other_catalogs(), object_store=task.object_store(),
        serving_resolver=serving_options,
    )


def serving_options(target: Mapping[str, Any]) -> dict[str, Any]:
    """What the erasure needs to reach one serving target, from the connection ids the ledger recorded:
    a ``sagemaker-featurestore-runtime`` client built by the amazon provider's ``AwsBaseHook`` from
    ``aws_conn_id`` (in the target's region), or the password of a Feast store's Redis/Postgres
    connection (``store.conn_id``). A Feast SQLite store, or a store recorded without a connection,
    needs nothing.

    :raises ConfigError: the connection is not defined (naming the target, never a secret).
    """
    from dativo_provider.compat import AirflowNotFoundException

    kind = target.get("kind")
    store = target.get("store") if isinstance(target.get("store"), Mapping) else {}
    conn_id = target.get("aws_conn_id") if kind == "sagemaker" else store.get("conn_id")
    try:
        if kind == "sagemaker":
            from dativo_provider.operators.sagemaker import featurestore_client

            return {"client": featurestore_client(conn_id, target.get("region"))}
        if kind == "feast" and conn_id:
            password = _connection(conn_id).password
            return {"password": password} if password else {}
    except AirflowNotFoundException:
        raise ConfigError(f"serving target {kind} {target.get('name')!r}: its connection {conn_id!r} is not "
                          "defined in Airflow; define it (the erasure must reach every copy) and run "
                          "again") from None
    return {}


def _minutes(value: float | str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"safety_window_minutes is {value!r}; expected a number of minutes") from None


class DsrRestrictOperator(DsrBaseOperator):
    """Restrict the subject's processing (GDPR Art. 18), or lift the restriction.

    :param action: ``restrict`` or ``lift`` (templated).
    :param restrictions_table: the restriction registry table (created on first use); the same
        parameter as on ``IcebergIngestOperator`` and ``ContractCheckOperator``.
    :param registry_table: deprecated name of ``restrictions_table`` (removed in the next release).
    :param lift_request_id: the id of the request that lifts (templated; default: the request's id).

    The registry stores identifiers as keyed hashes (the ``hash_key_conn_id`` key). Returns
    ``{"request_id", "action", "rows"}``.
    """

    template_fields: Sequence[str] = (*DsrBaseOperator.template_fields, "action", "restrictions_table",
                                      "lift_request_id")

    def __init__(self, *, action: str = "restrict", restrictions_table: str | None = None,
                 lift_request_id: str | None = None, registry_table: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.action = action
        self.restrictions_table = renamed_parameter(type(self).__name__, "registry_table", registry_table,
                                           "restrictions_table", restrictions_table) or DEFAULT_RESTRICTIONS_TABLE
        self.lift_request_id = lift_request_id

    def execute(self, context: Context) -> dict[str, Any]:
        from dativo_provider.privacy.dsr import restrict_request

        with airflow_errors():
            request = self.subject_request(context)
            catalog = self.catalog()
            outcome = restrict_request(catalog, request, trail=self.audit_trail(catalog), hash_key=self.hash_key(),
                                       action=self.action, restrictions_table=self.restrictions_table,
                                       lift_request_id=self.lift_request_id)
        self.run_summary = outcome.to_dict()
        return self.run_summary


class TenantTerminateOperator(DsrBaseOperator):
    """Terminate a tenant's access (SOC2 CC6.3): its connections, variables and DAGs; optionally its data.

    Naming convention (documented in ``docs/privacy.md``): a tenant ``acme`` owns the connections and
    variables whose id/key starts with ``tenant_acme_`` (``prefix``), and the DAGs tagged
    ``tenant:acme`` (``dag_tag``). The operator deletes those connections and variables and pauses
    those DAGs, then, with ``erase=True``, erases the subject of the run's request (an ``erasure``
    request built from params, e.g. ``subject_kind: account``) and writes its certificate. Every step
    is an audit event (``terminated``), ending with ``completed``, or ``failed``. A dry run is recorded
    as one (``would_terminate`` per step, ending with ``dry_run_completed``), never as a termination.
    Ids, keys and tags are matched case-exactly: ``Tenant_acme_x`` is not ``acme``'s.

    Airflow 2.11: through the metadata database (the ORM), or the REST API when
    ``airflow_api_conn_id`` is given. Airflow 3: a task cannot reach the metadata database, so
    ``airflow_api_conn_id`` (Airflow's own REST API, a user allowed to delete connections and
    variables and edit DAGs) is required. Connections and variables defined outside the metadata
    database (environment variables, secrets backends) cannot be removed by Airflow: those seen in
    the worker's environment are reported in ``left_outside_airflow``, in the result and in the
    audit events.

    :param account: the tenant (templated); letters, digits, ``-`` and ``_``.
    :param prefix: the id/key prefix; default ``tenant_<account>_``.
    :param dag_tag: the DAG tag; default ``tenant:<account>``.
    :param erase: also erase the tenant's data (needs ``contracts``, ``certificate_path``).
    :param dry_run: report what would be removed and paused (``would_remove``, ``would_pause``), change
        nothing.
    """

    template_fields: Sequence[str] = (*DsrBaseOperator.template_fields, "account", "prefix", "dag_tag",
                                      "certificate_path", "refs_policy", "safety_window_minutes")

    def __init__(self, *, account: str, prefix: str | None = None, dag_tag: str | None = None,
                 airflow_api_conn_id: str | None = None, erase: bool = False, certificate_path: str | None = None,
                 signing_conn_id: str = SIGNING_CONN_ID, refs_policy: str = "fail",
                 safety_window_minutes: float | str = 30, dry_run: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.account = account
        self.prefix = prefix
        self.dag_tag = dag_tag
        self.airflow_api_conn_id = airflow_api_conn_id
        self.erase = erase
        self.certificate_path = certificate_path
        self.signing_conn_id = signing_conn_id
        self.refs_policy = refs_policy
        self.safety_window_minutes = safety_window_minutes
        self.dry_run = dry_run

    def execute(self, context: Context) -> dict[str, Any]:
        from dativo_provider.hooks.privacy import tenant_backend, validate_account
        from dativo_provider.privacy.termination import TERMINATION_STEPS, Tenant, terminate_tenant

        with airflow_errors():
            account = validate_account(self.account)
            request = self._request(context)
            prefix = self.prefix or f"tenant_{account}_"
            tenant = Tenant(account, prefix, self.dag_tag or f"tenant:{account}", _outside_airflow(prefix))
            result = terminate_tenant(
                tenant, lambda: tenant_backend(self.airflow_api_conn_id), trail=self.audit_trail(self.catalog()),
                request_id=request.request_id if request else _termination_id(context, account),
                dry_run=self.dry_run, erase=(lambda: erase_for(self, request)) if request else None,
            )
        self.log.info("tenant %s%s: %s", account, " (dry run)" if self.dry_run else "",
                      json.dumps({k: result[k] for k in (*TERMINATION_STEPS, "left_outside_airflow")}))
        self.run_summary = result
        return result

    def _request(self, context: Context) -> SubjectRequest | None:
        """The erasure request of the run, when the tenant's data is to be erased too."""
        if not self.erase:
            return None
        if not self.certificate_path:
            raise ConfigError("TenantTerminateOperator(erase=True) needs certificate_path")
        request = self.subject_request(context)
        if request.kind != "erasure":
            raise ConfigError(f"TenantTerminateOperator erases with an erasure request; {request.request_id} is "
                              f"{request.kind!r}")
        return request


def _termination_id(context: Context, account: str) -> str:
    params = context.get("params") or {}
    return str(params.get("request_id") or f"terminate-{account}-{context.get('run_id', 'manual')}")


def _outside_airflow(prefix: str) -> dict[str, list[str]]:
    """Connections and variables of the tenant defined by environment variables: Airflow cannot remove them."""
    upper = prefix.upper()
    names = {"connections": "AIRFLOW_CONN_", "variables": "AIRFLOW_VAR_"}
    return {kind: sorted(v[len(start):].lower() for v in os.environ if v.startswith(start + upper))
            for kind, start in names.items()}
