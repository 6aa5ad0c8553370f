"""The throwaway PostgreSQL cluster of the tests: benchmarks/pg_server.py's (a temporary folder,
a Unix socket, no TCP port), made fast (no fsync) and given what the tests need: a template
database and a role that must give a password.

``tests/conftest.py`` starts one cluster per test session and gives each test a fresh database
(``CREATE DATABASE ... TEMPLATE``, fast).
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# benchmarks/ is not an installed package: import the copy beside these tests.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import pg_server as server  # noqa: E402
from benchmarks.pg_server import (  # noqa: E402
    PORT,
    SUPERUSER,
    PostgresUnavailable,
    binaries,
    sweep,
)

__all__ = ["PORT", "SUPERUSER", "TEMPLATE", "PASSWORD_ROLE", "ROLE_PASSWORD", "Cluster",
           "PostgresUnavailable", "binaries", "sweep"]

TEMPLATE = "tracker_template"
#: the role the password tests log in as; the cluster asks it for a password (scram-sha-256)
PASSWORD_ROLE = "tracker_pw"
ROLE_PASSWORD = "pa:ss@w/rd#1"  # ':' '@' '/' '#': a URL must percent-encode each
# Tests need no durability: a crash of the test machine loses a throwaway cluster anyway.
_FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class Cluster(server.Cluster):
    """The tests' cluster: fast, with a template database and the password role."""

    def __init__(self) -> None:
        super().__init__(_FAST, hba=(f"local all {PASSWORD_ROLE} scram-sha-256",))
        self.admin(f"CREATE DATABASE {TEMPLATE}")
        self.admin(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{ROLE_PASSWORD}'")

    def fresh_database(self) -> str:
        """A new empty database, copied from the template; returns its name."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        self.admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return name
