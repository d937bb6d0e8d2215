# Shared by dev/test and dev/demo (sourced, not run). Expects to be sourced from the repo root.

# venv_for VERSION: the virtualenv and constraints file of an Airflow version (3.3 or 2.11).
venv_for() {
  case "$1" in
    3.3) VENV=.venv ;;
    2.11) VENV=.venv-af2 ;;
    *) echo "AIRFLOW_VERSION must be 3.3 or 2.11, not '$1'" >&2; return 2 ;;
  esac
  CONSTRAINTS="constraints/airflow-$1.txt"
}

# ensure_venv VENV CONSTRAINTS [EXTRAS] [GROUP]: create VENV with pip + uv if missing, then install the
# package (editable, with EXTRAS) and the pyproject.toml dependency GROUP (PEP 735, e.g. test), pinned
# by CONSTRAINTS. A no-op in about a second when up to date.
ensure_venv() {
  local venv="$1" constraints="$2" extras="${3:-}" group="${4:-}" target="."
  local args=()
  [ -n "$extras" ] && target=".[$extras]"
  [ -n "$group" ] && args=(--group "$group")
  if [ ! -x "$venv/bin/python" ]; then
    echo "== creating $venv (Python: $(command -v python3.11 || command -v python3))"
    "$(command -v python3.11 || command -v python3)" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip uv
  elif [ ! -x "$venv/bin/uv" ]; then
    "$venv/bin/python" -m pip install --quiet uv
  fi
  echo "== installing $target${group:+ and group $group} into $venv from $constraints"
  "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" -c "$constraints" -e "$target" "${args[@]}"
}

# port_open PORT: is something listening on 127.0.0.1:PORT?
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_for_port NAME PORT: up to 30 s for a server that was just started.
wait_for_port() {
  for _ in $(seq 60); do
    port_open "$2" && return 0
    sleep 0.5
  done
  echo "$1 did not start listening on 127.0.0.1:$2" >&2
  return 1
}

# start_services: PostgreSQL (:5432), MariaDB (:3306) and Redis (:6379, the Celery tests' broker), started if
# installed and not running.
start_services() {
  if ! port_open 5432 && [ -d /etc/postgresql ]; then
    echo "== starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
    wait_for_port PostgreSQL 5432
  fi
  if ! port_open 3306 && [ -x /usr/sbin/mariadbd ]; then
    echo "== starting MariaDB"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    wait_for_port MariaDB 3306
  fi
  if ! port_open 6379 && command -v redis-server >/dev/null 2>&1; then
    echo "== starting Redis"
    redis-server --bind 127.0.0.1 --port 6379 --save "" --appendonly no --daemonize yes >/dev/null
    wait_for_port Redis 6379
  fi
}
