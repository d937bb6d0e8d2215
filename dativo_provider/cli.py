"""The ``dativo`` command line, for users' own CI and for looking at what a contract becomes.

* ``dativo --version``: the installed dativo-airflow-provider version.
* ``dativo contract lint <paths...>``: exit 0 when every contract lints clean (warnings allowed), 1 when
  any has an error. Each problem is one ``file:line: path: message`` line.
* ``dativo contract compile <file> --engine soda|great_expectations [--dataset NAME]``: print the Soda 4
  contract (YAML) or GX expectation suite (JSON) the contract's rules compile to.
* ``dativo contract check <file> --warehouse DIR --table NS.NAME [--branch B | --snapshot-id N]
  [--report FILE]``: run the contract on a table of an embedded (SQLite) catalog; exit 0 when nothing
  failed or every failed check only warns (printed as ``WARNING``), 1 when a check fails that would
  block or quarantine a run (:func:`dativo_provider.quality.verdict.judge_in_place`, which
  ``ContractCheckOperator`` asks too), 2 when there is no verdict: bad usage, or a contract, table,
  branch or snapshot that is wrong (the message says which).
* ``dativo certificate verify <file> (--public-key PEMFILE | --hmac-key-env VAR) [--key-id ID]``:
  exit 0 when the data-subject request certificate's signature matches its content, 1 (with the
  reason) when it does not.
* ``dativo audit verify (--table NS.NAME --warehouse DIR | --path DIR) --key-env VAR [--anchor HASH]
  [--certificate FILE ...] [--anchors DIR]``: exit 0 when the audit trail's hash chain is intact, its
  sealed heads are reached and every anchor (a certificate's, or those of an anchor store) still
  finds its event; 1 naming the first bad position.
* ``dativo training-set reproduce MANIFEST [--warehouse DIR] [--report FILE]``: rebuild a training set
  from the snapshots its manifest pinned; exit 0 when the rows are identical (same content hash) or
  differ only by erasures (the rows removed and the erasure requests are printed), 1 when they differ
  otherwise or a pin was removed or written to.

Bad usage (including a missing or unusable key) exits 2; no traceback reaches the user. Secrets are
read from environment variables, never from the command line, so they stay out of shell history.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    from dativo_provider import __version__

    parser = argparse.ArgumentParser(prog="dativo", description="dativo-airflow-provider tools")
    parser.add_argument("--version", action="version", version=f"dativo-airflow-provider {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    contract = commands.add_parser("contract", help="data contracts (ODCS v3)")
    actions = contract.add_subparsers(dest="action", required=True)
    lint = actions.add_parser("lint", help="validate contract files; exit 1 if any has an error")
    lint.add_argument("paths", nargs="+", help="contract files or directories (*.yaml, *.yml)")
    lint.add_argument("--external", action="append", default=[], metavar="DATASET",
                      help="a dataset defined outside the linted contracts; relationships to it are not "
                           "errors (repeatable)")
    compile_ = actions.add_parser("compile", help="print the Soda contract or GX suite a contract compiles to")
    compile_.add_argument("path", help="one contract file")
    compile_.add_argument("--engine", required=True, choices=("soda", "great_expectations"))
    compile_.add_argument("--dataset", help="the contract dataset (when it describes several)")
    check = actions.add_parser("check", help="run a contract on a table of an embedded catalog")
    check.add_argument("path", help="one contract file")
    check.add_argument("--warehouse", required=True, help="the embedded catalog's directory")
    check.add_argument("--table", required=True, help="namespace.table")
    check.add_argument("--dataset", help="the contract dataset (when it describes several)")
    at = check.add_mutually_exclusive_group()
    at.add_argument("--branch", help="check the head of this branch instead of main")
    at.add_argument("--snapshot-id", type=int, help="check this snapshot")
    check.add_argument("--report", help="also write the JSON report to this file")
    _add_privacy_commands(commands)
    _add_training_set_commands(commands)
    return parser


def _add_training_set_commands(commands: argparse._SubParsersAction) -> None:
    training = commands.add_parser("training-set", help="ML training sets built by TrainingSetOperator")
    actions = training.add_subparsers(dest="action", required=True)
    reproduce = actions.add_parser("reproduce",
                                   help="rebuild from the pinned snapshots; exit 1 if not the same set")
    reproduce.add_argument("manifest", help="the training set's manifest (JSON)")
    reproduce.add_argument("--warehouse", help="read an embedded catalog at this directory instead of the "
                                               "manifest's catalog")
    reproduce.add_argument("--report", help="also write the comparison as JSON to this file")


def _training_set_reproduce(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from dativo_provider.ml.training_reproduce import reproduce_training_set

    catalog = None
    if args.warehouse:
        from dativo_provider.iceberg.catalog import embedded_catalog

        catalog = embedded_catalog(args.warehouse)
    result = reproduce_training_set(args.manifest, catalog)
    print(f"{result.name} (run {result.run_id}): {result.status.upper()}: {result.message}")
    if args.report:
        Path(args.report).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return 0 if result.reproduced else 1


def _add_privacy_commands(commands: argparse._SubParsersAction) -> None:
    certificate = commands.add_parser("certificate", help="signed data-subject request certificates")
    actions = certificate.add_subparsers(dest="action", required=True)
    verify = actions.add_parser("verify", help="check a certificate's signature; exit 1 if it was edited")
    verify.add_argument("path", help="the certificate (JSON)")
    key = verify.add_mutually_exclusive_group(required=True)
    key.add_argument("--public-key", metavar="PEMFILE", help="the issuer's Ed25519 public key (PEM)")
    key.add_argument("--hmac-key-env", metavar="VAR", help="environment variable holding the HMAC secret")
    verify.add_argument("--key-id", help="refuse certificates signed under another key id")
    audit = commands.add_parser("audit", help="the hash-chained data-subject request audit trail")
    actions = audit.add_subparsers(dest="action", required=True)
    verify = actions.add_parser("verify", help="check the audit trail; exit 1 naming the first bad event")
    verify.add_argument("--table", help="namespace.table of an Iceberg audit trail (needs --warehouse)")
    verify.add_argument("--warehouse", help="the embedded catalog's directory")
    verify.add_argument("--path", help="a directory (or s3://bucket/prefix) of one JSON file per event")
    verify.add_argument("--key-env", required=True, metavar="VAR",
                        help="environment variable holding the audit trail key")
    verify.add_argument("--anchor", help="a head hash recorded elsewhere; some event must still have it")
    verify.add_argument("--certificate", action="append", default=[], metavar="FILE",
                        help="a certificate whose audit_trail anchor must still find its event (repeatable)")
    verify.add_argument("--anchors", metavar="DIR",
                        help="an anchor store (directory or s3://bucket/prefix): every request's anchor")


def _lint(paths: list[str], external: list[str]) -> int:
    from dativo_provider.contracts import lint  # noqa: PLC0415 (keeps `dativo --help` fast)

    issues = lint(paths, external)
    for issue in issues:
        print(issue)
    errors = sum(issue.severity == "error" for issue in issues)
    warnings = len(issues) - errors
    files = len({issue.file for issue in issues if issue.severity == "error"})
    summary = f"{errors} error(s) in {files} file(s)" if errors else "all contracts lint clean"
    print(f"{summary}, {warnings} warning(s)", file=sys.stderr)
    return 1 if errors else 0


def _compile(path: str, engine: str, dataset: str | None) -> int:
    import json

    from dativo_provider.contracts import load_contract
    from dativo_provider.quality.plan import checks_for, dataset_of

    contract = load_contract(path)
    chosen = dataset_of(contract, dataset)
    rules = checks_for(contract, chosen)
    if engine == "soda":
        from dativo_provider.quality.soda import compile_soda_contract, dump_yaml

        document = compile_soda_contract(rules, chosen, chosen.physical_name or chosen.name)
        print(dump_yaml(document), end="")  # Decimal bounds keep every digit
    else:
        from dativo_provider.quality.gx import compile_gx_suite

        print(json.dumps(compile_gx_suite(rules, chosen).to_json_dict(), indent=2, default=str))
    return 0


def _check(args: argparse.Namespace) -> int:
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    from dativo_provider.contracts import load_contract
    from dativo_provider.exceptions import TerminalError
    from dativo_provider.iceberg.catalog import embedded_catalog
    from dativo_provider.quality.runner import IcebergTarget, run_contract
    from dativo_provider.quality.verdict import judge_in_place

    try:
        target = IcebergTarget(embedded_catalog(args.warehouse), args.table, snapshot_id=args.snapshot_id,
                               branch=args.branch)
        contract = load_contract(args.path)
        report = run_contract(contract, target, dataset=args.dataset)
    except TerminalError as exc:  # a bad contract, table or option: no verdict, so not a failure's exit 1
        raise _UsageError(str(exc)) from None
    except (NoSuchTableError, NoSuchNamespaceError):
        raise _UsageError(f"--table {args.table}: no such table in the catalog at {args.warehouse}") from None
    verdict = judge_in_place(contract, report)  # the rule ContractCheckOperator applies too
    print(report.summary(warned=verdict.warned))
    if args.report:
        report.write_json(args.report, verdict.report_dict(report))
    if verdict.warned:
        print("only warned: " + ", ".join(c.name for c in verdict.warned), file=sys.stderr)
    if verdict.blocks:
        print("blocking: " + ", ".join(c.name for c in verdict.blocking), file=sys.stderr)
    return 1 if verdict.blocks else 0


class _UsageError(Exception):
    """Bad usage found after parsing (a missing key, a combination argparse cannot express): exit 2."""


def _secret_from_env(variable: str) -> str:
    import os

    value = os.environ.get(variable)
    if not value:
        raise _UsageError(f"environment variable {variable} is not set or empty")
    return value


def _certificate_verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dativo_provider.exceptions import ConfigError
    from dativo_provider.privacy.certificate import VerifyingKey, verify_certificate

    try:
        if args.public_key:
            key = VerifyingKey.ed25519(Path(args.public_key).read_bytes(), args.key_id)
        else:
            key = VerifyingKey.hmac(_secret_from_env(args.hmac_key_env), args.key_id)
        data = Path(args.path).read_bytes()
    except (OSError, ConfigError) as exc:
        raise _UsageError(str(exc)) from None
    check = verify_certificate(data, key)
    print(f"{args.path}: {'VALID' if check.valid else 'INVALID'}: {check.reason}",
          file=sys.stdout if check.valid else sys.stderr)
    if check.valid:
        _print_anchor(args.path, data)
    return 0 if check.valid else 1


def _print_anchor(path: str, data: bytes) -> None:
    from dativo_provider.privacy.certificate import audit_anchor

    anchor = audit_anchor(data)
    if anchor is not None:  # the signature says nothing about the trail: point at the command that does
        event = f" ({anchor.event!r})" if anchor.event else ""
        print(f"{path}: anchors the audit trail at event {anchor.seq}{event}; check the trail with: "
              f"dativo audit verify ... --certificate {path}")


def _audit_verify(args: argparse.Namespace) -> int:
    import os

    from dativo_provider import objectstore
    from dativo_provider.exceptions import ConfigError
    from dativo_provider.privacy.audit import IcebergAuditStore, ObjectAuditStore, audit_key, verify

    if bool(args.table) == bool(args.path) or bool(args.table) != bool(args.warehouse):
        raise _UsageError("give either --table NS.NAME with --warehouse DIR, or --path DIR")
    if args.path and not objectstore.is_s3(args.path) and not os.path.isdir(args.path):
        raise _UsageError(f"--path {args.path}: no such directory")
    try:
        key = audit_key(_secret_from_env(args.key_env))
    except ConfigError as exc:
        raise _UsageError(str(exc)) from None
    if args.table:
        from dativo_provider.iceberg.catalog import embedded_catalog

        store = IcebergAuditStore(embedded_catalog(args.warehouse).load(), args.table)
        where = args.table
    else:
        store, where = ObjectAuditStore(args.path), args.path
    check = verify(store, key, anchor=args.anchor, anchors=_anchors(args))
    if check.valid:
        print(f"{where}: VALID: {check.reason}; head {check.head_hash}")
        if check.warning:
            print(f"{where}: WARNING: {check.warning}", file=sys.stderr)
        return 0
    print(f"{where}: INVALID at position {check.position}: {check.reason}", file=sys.stderr)
    return 1


def _anchors(args: argparse.Namespace) -> list:
    """The anchors of ``--certificate`` files and the ``--anchors`` store."""
    from pathlib import Path

    from dativo_provider import objectstore
    from dativo_provider.privacy.anchors import AnchorStore
    from dativo_provider.privacy.certificate import audit_anchor

    anchors = []
    for path in args.certificate:
        try:
            anchor = audit_anchor(Path(path).read_bytes())
        except OSError as exc:
            raise _UsageError(f"--certificate {path}: {exc.strerror or exc}") from None
        if anchor is None:
            raise _UsageError(f"--certificate {path}: it holds no audit_trail anchor")
        anchors.append(anchor)
    if args.anchors:
        if not objectstore.is_s3(args.anchors) and not Path(args.anchors).is_dir():
            raise _UsageError(f"--anchors {args.anchors}: no such directory")
        anchors.extend(AnchorStore(args.anchors).read())
    return anchors


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dativo`` console script."""
    from dativo_provider.exceptions import TerminalError

    args = _parser().parse_args(argv)
    try:
        if args.command == "certificate":
            return _certificate_verify(args)
        if args.command == "audit":
            return _audit_verify(args)
        if args.command == "training-set":
            return _training_set_reproduce(args)
        if args.action == "compile":
            return _compile(args.path, args.engine, args.dataset)
        if args.action == "check":
            return _check(args)
        return _lint(args.paths, args.external)
    except _UsageError as exc:
        print(f"dativo: {exc}", file=sys.stderr)
        return 2
    except TerminalError as exc:  # a bad contract, table or option: the message says which
        print(f"dativo: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # never a raw traceback: say what broke and how to report it
        print(f"dativo: internal error ({type(exc).__name__}: {exc}); please report it", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
