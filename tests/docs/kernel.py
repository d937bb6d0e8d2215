"""The docs' Python blocks, run in one process (Airflow is imported once): one namespace per page, in
which the page's blocks run in order, like a notebook.

Started by ``tests/docs/snippets.py`` as ``python kernel.py REPLY_FD``. Each stdin line is a JSON request
``{"op", "page", "cwd", "env", ...}``: the process moves to the page's workspace and environment first.
Each reply is one JSON line on REPLY_FD (``{"ok": bool, "detail": str}``), so nothing a block prints
can corrupt the protocol. Operations:

* ``{"op": "exec", "code": ..., "filename": ...}``: run the code in the page's namespace;
* ``{"op": "dag", "path": ...}``: parse a DAG file as the scheduler does, then ``dag.test()`` each DAG
  in it and require every task instance to succeed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import traceback


def _exec(namespace: dict, code: str, filename: str) -> tuple[bool, str]:
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            exec(compile(code, filename, "exec"), namespace)  # noqa: S102 - running the docs is the point
    except BaseException:  # noqa: BLE001 - a SystemExit in a snippet is a finding too
        return False, out.getvalue()[-4000:] + traceback.format_exc(limit=-8)
    return True, out.getvalue()[-4000:]


def _dag_test(path: str) -> tuple[bool, str]:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2
        from airflow.models import DagBag

    bag = DagBag(dag_folder=path)
    if bag.import_errors:
        return False, f"import errors: {bag.import_errors}"
    if not bag.dags:
        return False, f"{path} defines no DAG"
    results = []
    for dag_id, dag in sorted(bag.dags.items()):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            run = dag.test()
        failed = {ti.task_id: str(ti.state) for ti in run.get_task_instances() if str(ti.state) != "success"}
        if str(run.state) != "success" or failed:
            return False, f"{dag_id}: run {run.state}, tasks not successful {failed}\n{out.getvalue()[-6000:]}"
        results.append(f"{dag_id}: {len(run.get_task_instances())} task(s) succeeded")
    return True, "\n".join(results)


def main() -> None:
    reply = os.fdopen(int(sys.argv[1]), "w", buffering=1)
    namespaces: dict[str, dict] = {}
    for line in sys.stdin:
        request = json.loads(line)
        try:
            os.chdir(request["cwd"])
            os.environ.update(request["env"])
            if request["op"] == "exec":
                namespace = namespaces.setdefault(request["page"], {"__name__": "__doc__"})
                ok, detail = _exec(namespace, request["code"], request["filename"])
            else:
                ok, detail = _dag_test(request["path"])
        except BaseException:  # noqa: BLE001 - report, keep serving the next block
            ok, detail = False, traceback.format_exc(limit=-8)
        reply.write(json.dumps({"ok": ok, "detail": detail}) + "\n")


if __name__ == "__main__":
    main()
