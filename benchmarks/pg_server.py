"""A throwaway PostgreSQL cluster: Debian's initdb/pg_ctl, a temporary folder, a Unix socket and
no TCP port, so nothing outside this machine can reach it.

The benchmarks (:mod:`benchmarks.figures.postgres`) start one for tracker and MLflow to share;
the tests' cluster (tests/pg_server.py) builds on this one. initdb and postgres refuse to run as
root: then they run as the ``postgres`` system user that Debian's package creates, which owns
the cluster's folder. Not root, they run as the user. Stdlib only until :meth:`Cluster.admin`
(psycopg, imported there).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

PORT = 5432  # names the socket file (.s.PGSQL.5432) in the cluster's own folder; no TCP
SUPERUSER = "postgres"
_PREFIX = "tracker-pg-"  # the clusters' folders in the temporary directory
_MADE_BY = "made-by.pid"  # in a cluster's folder: the pid of the process that made it


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started here; the message says why and what to install."""


def binaries() -> Path:
    """The folder of Debian's initdb and pg_ctl (``/usr/lib/postgresql/<version>/bin``, not
    always on PATH), newest version first; else the folder of an initdb on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
                   reverse=True)
    initdb = found[0] if found else shutil.which("initdb")
    if initdb is None:
        raise PostgresUnavailable("initdb was not found (apt-get install postgresql, or run "
                                  "scripts/test.sh / .ci/run as root, which install it)")
    return Path(initdb).resolve().parent


class Cluster:
    """A running PostgreSQL cluster in its own temporary folder; :meth:`stop` and :meth:`start`
    let fault tests take the server away and bring it back.

    ``settings`` are added to postgresql.conf (``{"fsync": "off"}``); ``hba`` lines come before
    the rule that trusts every local connection.
    """

    def __init__(self, settings: Mapping[str, str] | None = None, hba: tuple[str, ...] = ()
                 ) -> None:
        self.bin = binaries()
        sweep(self.bin)
        self.root = Path(tempfile.mkdtemp(prefix=_PREFIX))
        (self.root / _MADE_BY).write_text(str(os.getpid()), encoding="ascii")
        self.data = self.root / "data"
        self.socket_dir = self.root  # the socket file sits beside the data folder
        self._owner = _server_user()
        if self._owner is not None:
            # The server's user must reach its folder; root reaches everything anyway.
            os.chmod(self.root, 0o755)
            os.chown(self.root, self._owner.pw_uid, self._owner.pw_gid)
        self._server(["initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
                      "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"])
        conf = {"listen_addresses": "''", "unix_socket_directories": f"'{self.socket_dir}'",
                "port": str(PORT), "max_connections": "100", **(settings or {})}
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as out:
            out.writelines(f"{name} = {value}\n" for name, value in conf.items())
        (self.data / "pg_hba.conf").write_text("".join(f"{line}\n" for line in hba) +
                                               "local all all trust\n", encoding="utf-8")
        self.start()

    def _server(self, command: list[str]) -> None:
        """Run one of the server's programs as the server's user; fail with its output."""
        done = subprocess.run(_as_server_user(self.bin, command, self._owner),
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise PostgresUnavailable(f"{command[0]} failed ({done.returncode}): "
                                      f"{(done.stderr or done.stdout).strip()[-2000:]}")

    def start(self) -> None:
        """Start (or restart) the server and wait until it accepts connections."""
        self._server(["pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                      "-w", "-t", "60", "start"])

    def stop(self) -> None:
        """Stop the server at once (open connections are cut, as when a server goes away)."""
        self._server(["pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"])

    def url(self, database: str, user: str = SUPERUSER, password: str | None = None,
            scheme: str = "postgresql") -> str:
        """A libpq URL of ``database`` on this cluster's socket (the password
        percent-encoded, as URLs need); ``scheme`` names a driver for SQLAlchemy
        (``postgresql+psycopg2``)."""
        secret = f":{quote(password, safe='')}" if password is not None else ""
        return (f"{scheme}://{user}{secret}@/{database}"
                f"?host={self.socket_dir}&port={PORT}")

    def admin(self, statement: str, database: str = "postgres") -> None:
        """Run one statement as the superuser (in autocommit: CREATE DATABASE needs it)."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as connection:
            connection.execute(statement)  # type: ignore[arg-type]

    def close(self) -> None:
        """Stop the server and remove its folder."""
        try:
            self.stop()
        except PostgresUnavailable:
            pass  # already stopped (a fault test left it so)
        shutil.rmtree(self.root, ignore_errors=True)


def sweep(bin_dir: Path) -> list[Path]:
    """Stop and remove the clusters whose maker died without closing them (a test session
    killed mid-run left its server running); the folders removed. A cluster names its maker's
    pid in its folder: one whose maker still runs, or that names none, is left alone."""
    swept = []
    for root in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*"):
        try:
            maker = int((root / _MADE_BY).read_text(encoding="ascii"))
        except (OSError, ValueError):
            continue
        if _alive(maker):
            continue
        if (root / "data" / "postmaster.pid").exists():  # not running: pg_ctl says so
            subprocess.run(_as_server_user(bin_dir, ["pg_ctl", "-D", str(root / "data"), "-m",
                                                     "immediate", "-w", "stop"], _server_user()),
                           capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)
        swept.append(root)
    return swept


def _as_server_user(bin_dir: Path, command: list[str], owner: pwd.struct_passwd | None
                    ) -> list[str]:
    """The argv running one of the server's programs as the server's user (``owner``)."""
    argv = [str(bin_dir / command[0]), *command[1:]]
    return argv if owner is None else ["runuser", "-u", owner.pw_name, "--", *argv]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _server_user() -> pwd.struct_passwd | None:
    """The user the server runs as: ``postgres`` when we are root (initdb refuses root),
    else None (this user)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable("running as root, but there is no postgres system user to "
                                  "run the server as (apt-get install postgresql creates it)")\
            from None
