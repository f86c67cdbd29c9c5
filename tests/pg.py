"""A throwaway PostgreSQL server for tests: Debian's binaries, a data folder in a temporary folder, loopback only.

PostgreSQL refuses to run as root, and the tests do: when they do, ``initdb`` and ``pg_ctl`` run as the ``postgres``
system user (the Debian package makes it), in a folder that user owns. The server listens on 127.0.0.1 on a free
port, its unix socket in the same folder (never ``/var/run/postgresql``), and trusts local connections: it is for one
test session, reachable from this machine only.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from serving.local import HOST, free_port

BIN_DIRS = [Path(f"/usr/lib/postgresql/{v}/bin") for v in (17, 16, 15, 14, 13)]
SUPERUSER = "postgres"


def bin_dir() -> Path | None:
    """The first Debian PostgreSQL whose ``initdb``, ``pg_ctl`` and ``postgres`` are all here, or None."""
    for path in BIN_DIRS:
        if all((path / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return path
    return None


def missing() -> str | None:
    """Why a PostgreSQL cannot be started here (a skip reason), or None."""
    if bin_dir() is None:
        return "PostgreSQL is not installed (Debian's `postgresql` package: /usr/lib/postgresql/<version>/bin)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SUPERUSER)
        except KeyError:
            return "running as root, and there is no `postgres` system user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root, and there is no `runuser` to run PostgreSQL as the `postgres` user"
    return None


@dataclass
class Postgres:
    folder: Path
    port: int
    tools: Path

    def url(self, database: str = "postgres", driver: str = "postgresql") -> str:
        """A SQLAlchemy URL for a database of this server (``postgresql://postgres@127.0.0.1:PORT/DB``)."""
        return f"{driver}://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create a database; its URL."""
        import sqlalchemy as sa

        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        finally:
            engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (fast: open connections are closed) and remove its folder."""
        try:
            _run(_as_owner([str(self.tools / "pg_ctl"), "stop", "-D", str(self.folder / "data"), "-m", "fast"]))
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def _as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", SUPERUSER, "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stdout}{done.stderr}")


def start() -> Postgres:
    """initdb a cluster in a new temporary folder and start it on a free loopback port; :meth:`Postgres.stop` stops
    it and removes the folder. The folder is made under the system's temporary folder, not pytest's (root's, mode
    700: the ``postgres`` user could not reach into it)."""
    tools = bin_dir()
    if tools is None:
        raise RuntimeError(missing() or "no PostgreSQL")
    folder = Path(tempfile.mkdtemp(prefix="eqsms-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam(SUPERUSER)
        os.chown(folder, user.pw_uid, user.pw_gid)
    data, port = folder / "data", free_port()
    _run(_as_owner([str(tools / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8"]))
    options = f"-c listen_addresses={HOST} -p {port} -k {folder} -c fsync=off -c full_page_writes=off"
    log = folder / "postgres.log"
    _run(_as_owner([str(tools / "pg_ctl"), "start", "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options]))
    return Postgres(folder, port, tools)
