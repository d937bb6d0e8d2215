"""A real Airflow 3 deployment with the CeleryExecutor, on this machine, for one test module.

What :func:`celery_deployment` starts, each a subprocess in its own session (process group):

- a fresh Postgres database (uniquely named, dropped at the end) that holds Airflow's metadata, Celery's
  results (``db+postgresql://``) and the tests' Iceberg SQL catalog, so every process reaches the same
  catalog; the warehouse is a local directory, shared because all workers are on this machine;
- ``airflow db migrate``, then the scheduler, the DAG processor, the API server (workers run tasks
  through its execution API, ``[core] execution_api_server_url``) and two ``airflow celery worker``
  processes (concurrency 1 each), each recording its own hostname on the task instances it runs
  (:mod:`tests.celery.worker_identity`);
- the Redis broker at ``redis://127.0.0.1:6379/<BROKER_DB>`` with a queue named for this deployment, so
  no other worker on the machine takes its tasks; its keys are deleted at the end.

Everything is stopped (each process tree killed) when the context exits, failure or not.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psutil
import psycopg

from tests.celery.worker_identity import WORKER_NAME_VARIABLE

AIRFLOW = str(Path(sys.executable).parent / "airflow")
REPO = Path(__file__).resolve().parents[2]
DAGS = Path(__file__).resolve().parent / "dags"
#: Redis database for the broker: not 0, which other tests (Feast's online store) use.
BROKER_DB = 11
WORKERS = ("worker-a", "worker-b")
#: Seconds without a heartbeat before the scheduler fails a running task instance (default 300).
HEARTBEAT_TIMEOUT = 20


@dataclass(frozen=True)
class Services:
    """Where the machine's Postgres and Redis are (the deployment's database is created on this server)."""

    pg_host: str
    pg_port: int
    pg_user: str
    pg_database: str
    pg_password: str | None = field(default=None, repr=False)
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379

    def pg_url(self, database: str, driver: str | None = "psycopg") -> str:
        """A SQLAlchemy URL (``driver`` None: the plain ``postgresql://`` scheme Celery's backend takes)."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        password = f":{quote(self.pg_password, safe='')}" if self.pg_password else ""
        login = quote(self.pg_user, safe="") + password
        return f"{scheme}://{login}@{self.pg_host}:{self.pg_port}/{database}"

    def connect(self, database: str | None = None) -> psycopg.Connection[Any]:
        return psycopg.connect(host=self.pg_host, port=self.pg_port, user=self.pg_user,
                               password=self.pg_password, dbname=database or self.pg_database,
                               autocommit=True)


#: The columns of a :class:`TaskTry`, in task_instance and task_instance_history.
TRY_COLUMNS = "task_id, map_index, try_number, state, coalesce(hostname, ''), start_date, end_date, duration"


@dataclass(frozen=True)
class TaskTry:
    """One try of one task instance, as the metadata database records it."""

    task_id: str
    map_index: int
    try_number: int
    state: str | None
    hostname: str
    start_date: Any
    end_date: Any
    duration: float | None


@dataclass
class CeleryDeployment:
    services: Services
    home: Path
    database: str
    queue: str
    env: dict[str, str]
    api: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: Processes a test killed on purpose.
    killed: set[str] = field(default_factory=set)

    # -- processes ---------------------------------------------------------------------------------------
    def log(self, name: str) -> Path:
        return self.home / f"{name}.log"

    def start(self, name: str, *args: str, env: Mapping[str, str] | None = None) -> None:
        with self.log(name).open("ab") as out:
            self.processes[name] = subprocess.Popen(
                [AIRFLOW, *args], env={**self.env, **(env or {})}, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)

    def start_worker(self, name: str) -> None:
        """A Celery worker on the deployment's queue running one task at a time, named ``name``."""
        self.start(name, "celery", "worker", "--queues", self.queue, "--concurrency", "1",
                   "--celery-hostname", f"{name}@%h", "--pid", str(self.home / f"{name}.pid"),
                   # Both workers would otherwise serve logs on the same port.
                   "--skip-serve-logs", "--without-gossip", "--without-mingle",
                   env={WORKER_NAME_VARIABLE: name})

    def kill(self, name: str) -> None:
        """SIGKILL the process and every process under it (the task runner has its own process group)."""
        self.killed.add(name)
        for process in process_tree(self.processes[name].pid):
            signal_quietly(process, signal.SIGKILL)
        self.processes[name].wait(timeout=30)

    def stop_all(self) -> None:
        """SIGTERM every process tree, then SIGKILL whatever is left after 5 s (children a dead parent
        left behind included: the trees are read before anything is signalled)."""
        trees = [p for process in self.processes.values() for p in process_tree(process.pid)]
        for process in trees:
            signal_quietly(process, signal.SIGTERM)
        _, alive = psutil.wait_procs(trees, timeout=5)
        for process in alive:
            signal_quietly(process, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=15)
        for process in self.processes.values():
            process.poll()  # reaped, so no zombie is left to the test process

    def check_alive(self) -> None:
        """Raise at once when a process died on its own, rather than waiting out a timeout."""
        for name, process in self.processes.items():
            if name not in self.killed and process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}\n{self.log_tails()}")

    def log_tails(self, lines: int = 40, task_logs: int = 3) -> str:
        """The end of every process's log, then of the task logs written last (where a task's error is)."""
        parts = []
        for name, process in self.processes.items():
            parts.append(f"----- {name} (pid {process.pid}, exit {process.poll()}) -----\n"
                         + _tail(self.log(name), lines))
        recent = sorted((self.home / "logs").glob("dag_id=*/**/*.log"), key=lambda p: p.stat().st_mtime)
        for log in recent[-task_logs:]:
            where = log.relative_to(self.home / "logs")
            parts.append(f"----- task log {where} -----\n" + _tail(log, lines // 2))
        return "\n".join(parts)

    def wait_for_worker_ready(self, name: str, timeout: float = 180) -> None:
        poll(lambda: f"{name}@" in (text := self.log(name).read_text(errors="replace")) and " ready." in text,
             timeout, f"celery worker {name} to be ready", self)

    # -- the REST API (all users are admins: no token) ------------------------------------------------
    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        poll(lambda: httpx.get(f"{self.api}/api/v2/dags/{dag_id}", timeout=10).status_code == 200, timeout,
             f"DAG {dag_id} to be parsed", self)

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        answer = httpx.post(f"{self.api}/api/v2/dags/{dag_id}/dagRuns",
                            json={"logical_date": None, "conf": dict(conf or {})}, timeout=60)
        answer.raise_for_status()
        return str(answer.json()["dag_run_id"])

    # -- the metadata database -------------------------------------------------------------------------
    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with self.services.connect(self.database) as conn:
            return conn.execute(sql, params).fetchall()

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = self.query("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", dag_id, run_id)
        return rows[0][0] if rows else None

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        poll(lambda: self.run_state(dag_id, run_id) in ("success", "failed"), timeout,
             f"run {run_id} of {dag_id} to finish", self)
        return str(self.run_state(dag_id, run_id))

    def task_tries(self, dag_id: str, run_id: str) -> list[TaskTry]:
        """Every try of every task instance of the run: earlier tries are in task_instance_history."""
        rows = self.query(
            f"SELECT {TRY_COLUMNS} FROM task_instance WHERE dag_id = %s AND run_id = %s UNION ALL "
            f"SELECT {TRY_COLUMNS} FROM task_instance_history WHERE dag_id = %s AND run_id = %s "
            "ORDER BY 1, 2, 3", dag_id, run_id, dag_id, run_id)
        return [TaskTry(*row) for row in rows]


def _tail(log: Path, lines: int, width: int = 600) -> str:
    """The last lines of a log, each cut to ``width`` characters (task logs are long JSON lines)."""
    text = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []
    return "\n".join(line[:width] for line in text)


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and all its descendants (empty when it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def signal_quietly(process: psutil.Process, sig: int) -> None:
    try:
        process.send_signal(sig)
    except psutil.NoSuchProcess:
        pass


def poll(check: Callable[[], bool], timeout: float, what: str, deployment: CeleryDeployment | None = None,
         interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if deployment is not None:
            deployment.check_alive()
        try:
            if check():
                return
        except (httpx.HTTPError, OSError, psycopg.Error, LookupError, TypeError, ValueError):
            pass  # not up yet
        time.sleep(interval)
    tails = f"\n{deployment.log_tails()}" if deployment else ""
    raise TimeoutError(f"gave up waiting {timeout:.0f} s for {what}{tails}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def deployment_env(services: Services, home: Path, database: str, queue: str, port: int,
                   connections: Mapping[str, Mapping[str, Any]], extra: Mapping[str, str]) -> dict[str, str]:
    """Every process's environment: the configuration above, connections as ``AIRFLOW_CONN_*``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "DATIVO", "PYTHONDONTWRITEBYTECODE"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        # Compiled once by `db migrate`, then read by every later process (seconds per start on 2 cores).
        "PYTHONPYCACHEPREFIX": str(home / "pycache"),
        # The hostname callable lives in the tests package.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.celery.worker_identity.hostname",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
        # Tokens the scheduler signs for the workers are checked by the API server: one secret for all.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": services.pg_url(database, "psycopg2"),
        "AIRFLOW__CELERY__BROKER_URL": f"redis://{services.redis_host}:{services.redis_port}/{BROKER_DB}",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{services.pg_url(database, None)}",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
        "AIRFLOW__OPENLINEAGE__DISABLED": "True",
        # Said explicitly: the provider warns at every start when it is left to its default.
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "3600",
    })
    env.update({f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn) for conn_id, conn in connections.items()})
    env.update(extra)
    return env


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


@contextmanager
def celery_deployment(services: Services, home: Path, connections: Mapping[str, Mapping[str, Any]],
                      extra_env: Mapping[str, str], dag_ids: tuple[str, ...]) -> Iterator[CeleryDeployment]:
    """Start the deployment, wait until the workers are ready and the DAGs parsed, yield it, stop it.

    ``connections`` may name the deployment's own database as ``{database}`` in a ``host``: it is filled in.
    """
    suffix = uuid.uuid4().hex[:10]
    database, queue, port = f"dativo_celery_{suffix}", f"dativo_celery_{suffix}", free_port()
    home.mkdir(parents=True, exist_ok=True)
    filled = {conn_id: {**conn, "host": str(conn.get("host", "")).format(database=database)}
              for conn_id, conn in connections.items()}
    env = deployment_env(services, home, database, queue, port, filled, extra_env)
    deployment = CeleryDeployment(services, home, database, queue, env, f"http://127.0.0.1:{port}")
    with ExitStack() as cleanup:
        _create_database(services, database)
        cleanup.callback(_drop_database, services, database)
        cleanup.callback(_delete_broker_keys, services, queue)
        cleanup.callback(deployment.stop_all)
        started = time.monotonic()
        _migrate(deployment)
        migrated = time.monotonic()
        _start_all(deployment, port, dag_ids)
        print(f"Celery deployment {database}: metadata DB migrated in {migrated - started:.0f} s, "
              f"processes up and DAGs parsed {time.monotonic() - migrated:.0f} s later")
        yield deployment


def _create_database(services: Services, database: str) -> None:
    with services.connect() as conn:
        conn.execute(f'CREATE DATABASE "{database}"')


def _drop_database(services: Services, database: str) -> None:
    with services.connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _delete_broker_keys(services: Services, queue: str) -> None:
    import redis

    client = redis.Redis(host=services.redis_host, port=services.redis_port, db=BROKER_DB)
    keys = list(client.scan_iter(f"*{queue}*"))
    if keys:
        client.delete(*keys)
    # Messages a killed worker took and never acknowledged wait in the database-wide "unacked" hash
    # (message, exchange, routing key); only this deployment's are removed.
    for tag, value in client.hscan_iter("unacked"):
        if json.loads(value)[-1] == queue:
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)


def _migrate(deployment: CeleryDeployment) -> None:
    result = subprocess.run([AIRFLOW, "db", "migrate"], env=deployment.env, capture_output=True, text=True,
                            timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed ({result.returncode}):\n{result.stdout[-3000:]}"
                           f"\n{result.stderr[-3000:]}")


def _start_all(deployment: CeleryDeployment, port: int, dag_ids: tuple[str, ...]) -> None:
    deployment.start("api-server", "api-server", "-H", "127.0.0.1", "-p", str(port), "--workers", "1")
    deployment.start("scheduler", "scheduler", "--skip-serve-logs")
    deployment.start("dag-processor", "dag-processor")
    for name in WORKERS:
        deployment.start_worker(name)
    poll(lambda: httpx.get(f"{deployment.api}/api/v2/monitor/health", timeout=5).json()["scheduler"]["status"]
         == "healthy", 240, "the API server and the scheduler", deployment)
    for name in WORKERS:
        deployment.wait_for_worker_ready(name)
    for dag_id in dag_ids:
        deployment.wait_for_dag(dag_id)
