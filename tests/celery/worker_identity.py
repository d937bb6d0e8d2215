"""The hostname a Celery worker of the test deployment records on its task instances.

Both workers run on this machine, so ``socket.getfqdn()`` would give them the same name and the tests
could not tell which worker ran a part. Each worker's environment names it (``DATIVO_CELERY_WORKER``);
``[core] hostname_callable`` points here, and the Task SDK's supervisor reports this name when it starts
a task instance. Processes without the variable (scheduler, API server) keep the machine's name.
"""

from __future__ import annotations

import os
import socket

WORKER_NAME_VARIABLE = "DATIVO_CELERY_WORKER"


def hostname() -> str:
    return os.environ.get(WORKER_NAME_VARIABLE) or socket.getfqdn()
