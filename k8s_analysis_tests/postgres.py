"""A throwaway PostgreSQL server for tests, started from the machine's own binaries.

The server lives in a fresh folder under the system temporary directory, listens on
127.0.0.1 only (plus a Unix socket in that folder), accepts TCP logins by password only, and is
stopped by its postmaster's pid when the context exits. PostgreSQL refuses to run as root, so
under root the server binaries run as the ``postgres`` system user through ``runuser``.

Without PostgreSQL binaries the caller is skipped, unless K8S_ANALYSIS_REQUIRE_POSTGRES=1, which
turns the skip into a failure (CI sets it and installs Debian's ``postgresql`` package).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest

REQUIRE_ENV_VAR = "K8S_ANALYSIS_REQUIRE_POSTGRES"
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
SYSTEM_USER = "postgres"
SUPERUSER = "postgres"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30


@dataclass(frozen=True)
class PostgresServer:
    """Connection settings of a running test server. The user owns the database."""

    host: str
    port: int
    username: str
    password: str
    database: str


def major_version(folder: Path) -> tuple[int, ...]:
    """Parse the version folder name of /usr/lib/postgresql/VERSION/bin, such as 15 or 9.6."""
    return tuple(int(part) for part in folder.parent.name.split(".") if part.isdigit())


def find_binaries() -> Path | None:
    """Return the folder containing initdb, pg_ctl and postgres: from PATH, else the newest Debian one."""
    on_path = shutil.which("initdb")
    if on_path:
        folder = Path(on_path).resolve().parent
        if all((folder / name).is_file() for name in SERVER_BINARIES):
            return folder
    debian = sorted(map(Path, glob.glob("/usr/lib/postgresql/*/bin")), key=major_version, reverse=True)
    for folder in debian:
        if all((folder / name).is_file() for name in SERVER_BINARIES):
            return folder
    return None


def skip_or_fail(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV_VAR) == "1":
        pytest.fail(f"{reason} (and {REQUIRE_ENV_VAR}=1 forbids skipping); install the postgresql package")
    pytest.skip(f"{reason}; install the postgresql package, or set {REQUIRE_ENV_VAR}=1 to fail instead")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerCommands:
    """Runner of the server binaries in ``folder``, as the postgres system user when this process is root."""

    def __init__(self, binaries: Path, folder: Path):
        self.binaries = binaries
        self.folder = folder
        self.as_root = os.geteuid() == 0

    def run(self, name: str, *args: str) -> None:
        command = [str(self.binaries / name), *args]
        if self.as_root:
            command = ["runuser", "-u", SYSTEM_USER, "--", *command]
        # The postgres user may have no access to the caller's working directory.
        result = subprocess.run(command, cwd=self.folder, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{name} failed with exit status {result.returncode}: "
                               f"{result.stderr.strip() or result.stdout.strip()}")


def make_server_folder() -> Path:
    """Create the server's folder, owned by the user that runs the server."""
    # Directly under the system temporary directory, because pytest's base folder is mode 0700
    # (closed to the postgres user) and a Unix socket path must fit in 107 bytes.
    folder = Path(tempfile.mkdtemp(prefix="k8s-analysis-pg-"))
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            shutil.rmtree(folder)
            skip_or_fail(f"running as root, and there is no {SYSTEM_USER!r} system user to run PostgreSQL as")
        os.chown(folder, account.pw_uid, account.pw_gid)
    return folder


def stop_server(data_dir: Path) -> None:
    """Ask the postmaster for a fast shutdown by its pid, and wait until it has exited."""
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return
    # The first line of postmaster.pid is the postmaster's pid.
    pid = int(pid_file.read_text().splitlines()[0])
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    # The postmaster deletes its pid file last on shutdown, which is what pg_ctl stop waits for too.
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while pid_file.exists():
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.1)


def create_user_and_database(socket_dir: Path, port: int, server: PostgresServer) -> None:
    # Over the Unix socket the superuser logs in without a password (initdb --auth-local=trust).
    connection = psycopg2.connect(host=str(socket_dir), port=port, user=SUPERUSER, dbname="postgres")
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE ROLE "{server.username}" LOGIN PASSWORD %s', (server.password,))
            cursor.execute(f'CREATE DATABASE "{server.database}" OWNER "{server.username}"')
    finally:
        connection.close()


@contextlib.contextmanager
def running_postgres(username: str = "k8s_analysis", database: str = "k8s_analysis_test") -> Iterator[PostgresServer]:
    """Start a fresh PostgreSQL server with a password user owning ``database``, and yield its settings.

    Skips the calling test when no server binaries are installed (fails with
    K8S_ANALYSIS_REQUIRE_POSTGRES=1).
    """
    binaries = find_binaries()
    if binaries is None:
        skip_or_fail("no PostgreSQL server binaries (initdb, pg_ctl, postgres) on PATH or under "
                     "/usr/lib/postgresql/*/bin")
    folder = make_server_folder()
    commands = ServerCommands(binaries, folder)
    data_dir = folder / "data"
    port = free_port()
    server = PostgresServer(host="127.0.0.1", port=port, username=username,
                            password=secrets.token_urlsafe(18), database=database)
    try:
        commands.run("initdb", "-D", str(data_dir), "-U", SUPERUSER, "-E", "UTF8", "--no-locale",
                     "--auth-local=trust", "--auth-host=scram-sha-256")
        # fsync off: the data is thrown away with the folder, so durability only costs time.
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
        log = folder / "server.log"
        try:
            commands.run("pg_ctl", "-D", str(data_dir), "-l", str(log), "-o", options,
                         "-w", "-t", str(START_TIMEOUT_S), "start")
        except RuntimeError as error:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log written)"
            raise RuntimeError(f"{error}\nPostgreSQL server log {log}:\n{tail}") from error
        create_user_and_database(folder, port, server)
        yield server
    finally:
        stop_server(data_dir)
        shutil.rmtree(folder, ignore_errors=True)
