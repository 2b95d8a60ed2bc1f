"""A throw-away PostgreSQL cluster for the team-server tests: the distribution's own `initdb`/`pg_ctl`, a data
folder in a fresh temporary directory, listening on 127.0.0.1 and a free port only, always stopped and removed."""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.helpers.registry import free_port

SUPERUSER = "postgres"


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian: /usr/lib/postgresql/<major>/bin), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path and shutil.which("pg_ctl") else None


def missing_reason() -> str | None:
    """Why the cluster cannot start here, or None."""
    if binaries() is None:
        return "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; apt-get install postgresql)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: PostgreSQL refuses to run as root"
    if os.geteuid() == 0 and not _system_user_exists(SUPERUSER):
        return f"running as root without a {SUPERUSER!r} system user to run PostgreSQL as"
    try:
        import psycopg2  # type: ignore[import-untyped]  # noqa: F401  (mlflow's SQLAlchemy driver for postgresql+psycopg2://)
    except ImportError:
        return "psycopg2 is not installed (pip install -e '.[server]')"
    return None


def _system_user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@dataclasses.dataclass(frozen=True)
class Cluster:
    port: int

    def uri(self, database: str) -> str:
        """A SQLAlchemy URI for `database` (trust authentication on 127.0.0.1: a test cluster only)."""
        return f"postgresql+psycopg2://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres")
        try:
            connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return self.uri(name)


def _as_owner(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its tools as the `postgres` system user."""
    return ["runuser", "-u", SUPERUSER, "--", *args] if os.geteuid() == 0 else args


def _run(args: list[str]) -> None:
    result = subprocess.run(_as_owner(args), check=False, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    """initdb + pg_ctl start on 127.0.0.1:<free port>; pg_ctl stop (fast, then immediate) and removal after."""
    bin_dir = binaries()
    assert bin_dir is not None, missing_reason()
    # Not under pytest's tmp folder: that is private to root, and the server runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="ganops-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, SUPERUSER, SUPERUSER)
    data, port = root / "data", free_port()
    try:
        _run([str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
              "--no-sync"])
        options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} -c fsync=off"
        _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "server.log"),
              "-w", "-t", "60", "start"])
        try:
            yield Cluster(port)
        finally:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"])
            if (data / "postmaster.pid").exists():
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
    finally:
        shutil.rmtree(root, ignore_errors=True)
