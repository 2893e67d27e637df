"""PgBouncer in transaction mode on a loopback port, in front of the test Postgres.

The binary is Debian's `pgbouncer` package, installed on first use when we run as root
(the only time apt is used); otherwise the run fails saying what to install. It refuses
to run as root, so it is started as the `postgres` user with its own ini and userlist in
a directory that user can read, logging to a file of ours.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from broker.reach import POSTGRES
from tests.processes import free_port

PACKAGE = "pgbouncer"
# What a broker process behind the pooler is told (broker/settings.py).
POOLED_ENV = {"BROKER_DATABASE_POOLER": "transaction"}
START_TIMEOUT_SECONDS = 20.0
# Fewer server connections than the broker processes hold client connections: the
# pooler, not Postgres, is what every statement waits on, as in production.
SERVER_POOL_SIZE = 10


def pgbouncer_binary() -> str:
    """The pgbouncer executable, installed with apt-get when missing and we are root."""
    found = _which()
    if found is not None:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError(f"pgbouncer is not installed: apt-get install {PACKAGE}")
    install = f"apt-get update -qq && apt-get install -y -qq {PACKAGE}"
    result = subprocess.run(
        ["sh", "-c", install], capture_output=True, text=True, timeout=600, check=False
    )
    found = _which()
    if result.returncode != 0 or found is None:
        detail = (result.stdout + result.stderr).strip()[-2000:]
        raise RuntimeError(f"could not install the `{PACKAGE}` package ({install}):\n{detail}")
    return found


def _which() -> str | None:
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/sbin")


@dataclass(frozen=True)
class PgBouncer:
    uri: str  # the pooled database's URI
    pid: int


@contextmanager
def pgbouncer(
    database_uri: str,
    idle_transaction_seconds: float = 30.0,
    server_pool_size: int = SERVER_POOL_SIZE,
) -> Iterator[PgBouncer]:
    """A transaction-mode PgBouncer in front of `database_uri`.

    `idle_transaction_seconds` stands in for the `idle_in_transaction_session_timeout`
    the broker cannot set through a pooler (broker/storage/engine.py): give the lease.
    """
    target = urlparse(database_uri)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="broker-pgbouncer-") as directory:
        root = Path(directory)
        root.chmod(0o755)  # readable by the user pgbouncer switches to
        user = target.username or "postgres"
        (root / "users.txt").write_text(f'"{user}" ""\n')
        server = f"host={target.hostname or '127.0.0.1'} port={target.port or 5432}"
        idle = max(1, round(idle_transaction_seconds))
        ini = _ini(server, port, idle, server_pool_size, root / "users.txt")
        (root / "pgbouncer.ini").write_text(ini)
        log = (root / "pgbouncer.log").open("wb")
        process = subprocess.Popen(
            [pgbouncer_binary(), *_as_postgres(), str(root / "pgbouncer.ini")],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        pooled = urlunparse(target._replace(netloc=f"{user}@127.0.0.1:{port}"))
        try:
            _wait_ready(process, pooled, root / "pgbouncer.log")
            yield PgBouncer(pooled, process.pid)
        finally:
            process.terminate()
            process.wait(10)
            log.close()


def _as_postgres() -> list[str]:
    return ["-u", "postgres"] if os.geteuid() == 0 else []


def _ini(server: str, port: int, idle_transaction_seconds: int, pool: int, users: Path) -> str:
    return f"""\
[databases]
* = {server}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {users}
pool_mode = transaction
default_pool_size = {pool}
max_client_conn = 1000
idle_transaction_timeout = {idle_transaction_seconds}
"""


def _wait_ready(process: subprocess.Popen[bytes], uri: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited {process.returncode}:\n{log.read_text()}")
        try:
            POSTGRES.probe(uri)
            return
        except Exception as error:
            if time.monotonic() > deadline:
                raise RuntimeError(f"pgbouncer not ready ({error}):\n{log.read_text()}") from error
            time.sleep(0.1)
