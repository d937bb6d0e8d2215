"""The ``dativo`` command line, for users' own CI and for looking at what a contract becomes.

* ``dativo contract lint <paths...>``: exit 0 when every contract lints clean (warnings allowed), 1 when
  any has an error. Each problem is one ``file:line: path: message`` line.
* ``dativo contract compile <file> --engine soda|great_expectations [--dataset NAME]``: print the Soda 4
  contract (YAML) or GX expectation suite (JSON) the contract's rules compile to.
* ``dativo contract check <file> --warehouse DIR --table NS.NAME [--branch B | --snapshot-id N]
  [--report FILE]``: run the contract on a table of an embedded (SQLite) catalog; exit 1 when an
  error-severity check fails.

Bad usage exits 2; no traceback reaches the user.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dativo", description="dativo-airflow-provider tools")
    commands = parser.add_subparsers(dest="command", required=True)
    contract = commands.add_parser("contract", help="data contracts (ODCS v3)")
    actions = contract.add_subparsers(dest="action", required=True)
    lint = actions.add_parser("lint", help="validate contract files; exit 1 if any has an error")
    lint.add_argument("paths", nargs="+", help="contract files or directories (*.yaml, *.yml)")
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
    return parser


def _lint(paths: list[str]) -> int:
    from dativo_provider.contracts import lint  # noqa: PLC0415 (keeps `dativo --help` fast)

    issues = lint(paths)
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

    import yaml

    from dativo_provider.contracts import load_contract
    from dativo_provider.quality.plan import checks_for, dataset_of

    contract = load_contract(path)
    chosen = dataset_of(contract, dataset)
    rules = checks_for(contract, chosen)
    if engine == "soda":
        from dativo_provider.quality.soda import compile_soda_contract

        document = compile_soda_contract(rules, chosen, chosen.physical_name or chosen.name)
        print(yaml.safe_dump(document, sort_keys=False), end="")
    else:
        from dativo_provider.quality.gx import compile_gx_suite

        print(json.dumps(compile_gx_suite(rules, chosen).to_json_dict(), indent=2, default=str))
    return 0


def _check(args: argparse.Namespace) -> int:
    from dativo_provider.iceberg.catalog import embedded_catalog
    from dativo_provider.quality.runner import IcebergTarget, run_contract

    target = IcebergTarget(embedded_catalog(args.warehouse), args.table, snapshot_id=args.snapshot_id,
                           branch=args.branch)
    report = run_contract(args.path, target, dataset=args.dataset)
    print(report.summary())
    if args.report:
        report.write_json(args.report)
    return 1 if report.failures(severity="error") else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dativo`` console script."""
    from dativo_provider.exceptions import TerminalError

    args = _parser().parse_args(argv)
    try:
        if args.action == "compile":
            return _compile(args.path, args.engine, args.dataset)
        if args.action == "check":
            return _check(args)
        return _lint(args.paths)
    except TerminalError as exc:  # a bad contract, table or option: the message says which
        print(f"dativo: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # never a raw traceback: say what broke and how to report it
        print(f"dativo: internal error ({type(exc).__name__}: {exc}); please report it", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
