"""The ``dativo`` command line: ``dativo contract lint <paths...>``, for users' own CI.

Exit status 0 when every contract lints clean (warnings allowed), 1 when any has an error, 2 on bad
usage. Each problem is one ``file:line: path: message`` line; no traceback reaches the user.
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dativo`` console script."""
    args = _parser().parse_args(argv)
    try:
        return _lint(args.paths)
    except Exception as exc:  # never a raw traceback: say what broke and how to report it
        print(f"dativo: internal error ({type(exc).__name__}: {exc}); please report it", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
