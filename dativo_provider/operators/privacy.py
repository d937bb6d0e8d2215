"""Data-subject request operators: discover, export, erase, restrict, and terminate a tenant.

Every operator reads the request from the run's params (``request_id``, ``kind``, ``subject_kind``,
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

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from dativo_provider.compat import BaseOperator, Context
from dativo_provider.exceptions import ConfigError
from dativo_provider.hooks.iceberg import IcebergHook
from dativo_provider.hooks.privacy import HASH_KEY_CONN_ID, SIGNING_CONN_ID, DsrKeyHook
from dativo_provider.operators.common import airflow_errors, resolve_contract_path

if TYPE_CHECKING:
    from dativo_provider.iceberg.catalog import CatalogConfig
    from dativo_provider.privacy.audit import AuditTrail
    from dativo_provider.privacy.request import SubjectRequest

REQUEST_FIELDS = ("request_id", "kind", "subject_kind", "subject_ids", "emails", "received_at", "deadline")
DEFAULT_AUDIT_TABLE = "dativo.dsr_audit"
REFS_POLICIES = ("fail", "remove", "repoint")
TERMINATION_STEPS = ("connections", "variables", "dags")


def subject_request(spec: Mapping[str, Any], received_default: datetime | None = None) -> SubjectRequest:
    """A :class:`SubjectRequest` from run params (or any mapping with :data:`REQUEST_FIELDS`).

    :param received_default: ``received_at`` when the params give none (the run's queue time).
    :raises ConfigError: a field is missing or malformed; the message names the field, never a value.
    """
    from dativo_provider.privacy.request import SubjectRequest

    missing = [name for name in ("request_id", "kind", "subject_kind") if not spec.get(name)]
    if missing:
        raise ConfigError(f"the request params lack {', '.join(missing)}")
    received = _timestamp(spec.get("received_at"), "received_at") or received_default or datetime.now(timezone.utc)
    return SubjectRequest(
        request_id=str(spec["request_id"]), kind=spec["kind"], subject_kind=str(spec["subject_kind"]),
        subject_ids=tuple(_strings(spec.get("subject_ids"), "subject_ids")),
        emails=tuple(_strings(spec.get("emails"), "emails")),
        received_at=received, deadline=_timestamp(spec.get("deadline"), "deadline"),
    )


def _strings(value: Any, name: str) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        value = json.loads(value) if value.lstrip().startswith("[") else [value]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"request param {name!r} must be a list of strings")
    return [str(v) for v in value if str(v).strip()]


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


class DsrBaseOperator(BaseOperator):
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
        from dativo_provider.privacy.discovery import discover

        with airflow_errors():
            request = self.subject_request(context)
            catalog = self.catalog()
            trail = self.audit_trail(catalog)
            trail.append_request(request, "received", {"kind": request.kind})
            found = discover(catalog, self.contract_files(), request, scan_values=self.scan_values,
                             other_catalogs=self.other_catalogs())
            report = found.to_dict()
            trail.append_request(request, "discovered", report)
        _warn_unidentifiable(self, report)
        self.log.info("request %s: %d rows in %d tables", request.request_id, found.total_rows, len(found.tables))
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
    FORMATS: ClassVar[tuple[str, ...]] = ("json", "csv", "parquet")

    def __init__(self, *, destination: str, format: str = "json", **kwargs: Any) -> None:  # noqa: A002
        super().__init__(**kwargs)
        self.destination = destination
        self.format = format

    def execute(self, context: Context) -> dict[str, Any]:
        from dativo_provider.privacy.discovery import discover
        from dativo_provider.privacy.export import export_subject

        if self.format not in self.FORMATS:
            raise ConfigError(f"DsrExportOperator: format is {self.format!r}; expected one of {self.FORMATS}")
        with airflow_errors():
            request = self.subject_request(context)
            catalog = self.catalog()
            trail = self.audit_trail(catalog)
            trail.append_request(request, "received", {"kind": request.kind})
            others = self.other_catalogs()
            found = discover(catalog, self.contract_files(), request, other_catalogs=others)
            trail.append_request(request, "discovered", found.to_dict())
            manifest = export_subject(catalog, found, self.destination, fmt=self.format, other_catalogs=others,
                                      object_store=self.object_store()).to_dict()
            trail.append_request(request, "exported", _export_event(manifest))
        _warn_unidentifiable(self, found.to_dict())
        self.log.info("request %s: exported %d rows from %d tables to %s", request.request_id,
                      found.total_rows, len(found.tables), self.destination)
        return manifest


def _export_event(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Numbers, table names and where the export is (an erasure of the same subject removes it);
    file hashes stay in the manifest."""
    return {"format": manifest.get("format"), "total_rows": manifest.get("total_rows"),
            "location": manifest.get("location"),
            "tables": {t["table"]: t["rows"] for t in manifest.get("tables") or []}}


class DsrEraseOperator(DsrBaseOperator):
    """Erase the subject physically (GDPR Art. 17), verify it, and write the signed certificate.

    Runs :func:`dativo_provider.privacy.dsr.erase_subject`: discover → delete per table → purge (refs,
    expiry, unreachable files, old metadata) → verify by decoding every file → certificate. A failed
    verification fails the task (no retries); every step is in the audit trail.

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
            request = self.subject_request(context)
            if request.kind != "erasure":
                raise ConfigError(f"DsrEraseOperator takes an erasure request; {request.request_id} is "
                                  f"{request.kind!r}")
            return erase_and_certify(self, request)


def erase_and_certify(task: DsrEraseOperator | TenantTerminateOperator, request: SubjectRequest) -> dict[str, Any]:
    """Run the erasure for ``task`` and write its certificate; the identifier-free summary."""
    from dativo_provider.privacy.certificate import write_certificate
    from dativo_provider.privacy.dsr import erase_subject

    if task.refs_policy not in REFS_POLICIES:
        raise ConfigError(f"refs_policy is {task.refs_policy!r}; expected one of {REFS_POLICIES}")
    catalog = task.catalog()
    outcome = erase_subject(
        catalog, task.contract_files(), request, signing_key=DsrKeyHook(task.signing_conn_id).signing_key(),
        hash_key=task.hash_key(), trail=task.audit_trail(catalog), refs_policy=task.refs_policy,  # type: ignore[arg-type]
        safety_window=timedelta(minutes=float(task.safety_window_minutes)),
        other_catalogs=task.other_catalogs(),
    )
    path = Path(task.certificate_path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_certificate(path, outcome.certificate)
    summary = {**outcome.summary(), "certificate_path": str(path),
               "certificate_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    task.log.info("request %s: erased and verified; certificate %s", request.request_id, path)
    return summary


class DsrRestrictOperator(DsrBaseOperator):
    """Restrict the subject's processing (GDPR Art. 18), or lift the restriction.

    :param action: ``restrict`` or ``lift`` (templated).
    :param registry_table: the restriction registry table (created on first use).
    :param lift_request_id: the id of the request that lifts (templated; default: the request's id).

    The registry stores identifiers as keyed hashes (the ``hash_key_conn_id`` key). Returns
    ``{"request_id", "action", "rows"}``.
    """

    template_fields: Sequence[str] = (*DsrBaseOperator.template_fields, "action", "registry_table",
                                      "lift_request_id")
    ACTIONS: ClassVar[tuple[str, ...]] = ("restrict", "lift")

    def __init__(self, *, action: str = "restrict", registry_table: str = "dativo.restrictions",
                 lift_request_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.action = action
        self.registry_table = registry_table
        self.lift_request_id = lift_request_id

    def execute(self, context: Context) -> dict[str, Any]:
        from dativo_provider.privacy.restriction import RestrictionRegistry

        if self.action not in self.ACTIONS:
            raise ConfigError(f"DsrRestrictOperator: action is {self.action!r}; expected one of {self.ACTIONS}")
        with airflow_errors():
            request = self.subject_request(context)
            catalog = self.catalog()
            trail = self.audit_trail(catalog)
            trail.append_request(request, "received", {"kind": request.kind})
            registry = RestrictionRegistry(catalog, self.hash_key(), table=self.registry_table)
            if self.action == "restrict":
                rows = registry.restrict(request)
            else:
                rows = registry.lift(request, lift_request_id=self.lift_request_id or request.request_id)
            event = "restricted" if self.action == "restrict" else "lifted"
            trail.append_request(request, event, {"registry": self.registry_table, "rows": rows})
            trail.append_request(request, "completed", {"action": self.action, "rows": rows})
        self.log.info("request %s: %s, %d registry rows", request.request_id, event, rows)
        return {"request_id": request.request_id, "action": self.action, "rows": rows}


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
        from dativo_provider.hooks.privacy import validate_account

        with airflow_errors():
            account = validate_account(self.account)
            request = self._request(context, account)
            trail = self.audit_trail(self.catalog())
            request_id = request.request_id if request else _termination_id(context, account)
            prefix, tag = self.prefix or f"tenant_{account}_", self.dag_tag or f"tenant:{account}"
            result: dict[str, Any] = {"request_id": request_id, "account": account, "prefix": prefix,
                                      "dag_tag": tag, "dry_run": self.dry_run}
            trail.append(request_id, "received", {"kind": "termination", "account": account,
                                                  "dry_run": self.dry_run})
            try:
                self._terminate(trail, result)
                if self.erase and request is not None and not self.dry_run:
                    result["erasure"] = erase_and_certify(self, request)
            except BaseException as exc:
                trail.append(request_id, "failed", {"step": "termination", "error": type(exc).__name__,
                                                    "dry_run": self.dry_run,
                                                    "left_outside_airflow": result.get("left_outside_airflow", {})})
                raise
            trail.append(request_id, "dry_run_completed" if self.dry_run else "completed",
                         {"kind": "termination", "account": account, "erased": "erasure" in result,
                          "dry_run": self.dry_run, "left_outside_airflow": result["left_outside_airflow"]})
        self.log.info("tenant %s%s: %s", account, " (dry run)" if self.dry_run else "",
                      json.dumps({k: result[k] for k in (*TERMINATION_STEPS, "left_outside_airflow")}))
        return result

    def _terminate(self, trail: AuditTrail, result: dict[str, Any]) -> None:
        """Each step through the backend, one audit event per step; fills ``result`` in place.

        What the environment defines for the tenant is looked up first, so the evidence names it even
        when a later step fails.
        """
        from dativo_provider.hooks.privacy import tenant_backend

        outside = result["left_outside_airflow"] = _outside_airflow(result["prefix"])
        backend = tenant_backend(self.airflow_api_conn_id)
        result["backend"] = backend.name
        event = "would_terminate" if self.dry_run else "terminated"
        for step in TERMINATION_STEPS:
            result[step] = backend.run(step, result["prefix"], result["dag_tag"], self.dry_run)
            details = {"step": step, "backend": backend.name, "dry_run": self.dry_run, **result[step]}
            if step in outside:
                details["left_outside_airflow"] = outside[step]
            trail.append(result["request_id"], event, details)

    def _request(self, context: Context, account: str) -> SubjectRequest | None:
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
