"""Setting up who sees what on a PostgreSQL catalog: the logic of ``tracker admin``.

:func:`init` creates the catalog (or brings an older one up to date) with its access control
(:mod:`tracker.storage.pg_access`); :func:`grant` lets a role (a user, or a group role whose
members then inherit it) read, or read and write, one project's runs; :func:`revoke` takes
that back; :func:`script` writes the same as one SQL script for a DBA who runs it in psql. Each
runs as the role owning the catalog's tables (or a superuser), in one transaction.

Role names become SQL only as ``psycopg.sql.Identifier`` (quoted), projects and roles as
data only as bound values; both are checked first (text, no NUL, the role exists).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from tracker import arguments, shared_store
from tracker.errors import ArgumentError, CatalogError, ProjectAccessError
from tracker.storage import pg_access, pg_schema
from tracker.storage.pg_store import PgStore
from tracker.storage.pg_url import is_postgres_url, redacted

_GRANTS = f"{pg_schema.SCHEMA}.{pg_access.GRANTS}"
_UPSERT = (f"INSERT INTO {_GRANTS} VALUES (%s, %s, %s) "
           "ON CONFLICT (grantee, project) DO UPDATE SET can_write = excluded.can_write")


class Grant(NamedTuple):
    """One role's access to one project's runs."""

    role: str
    project: str
    can_write: bool


class _Step(NamedTuple):
    """One statement: a fixed text with bound values, or a composed one (with identifiers)
    and none."""

    query: Any  # str or psycopg.sql.Composable
    params: tuple[Any, ...] = ()


def store_of(url: str | None) -> PgStore:
    """The PostgreSQL catalog at ``url``; ArgumentError for anything else (a catalog file has
    no roles: it is its owner's alone)."""
    from tracker.catalog import lock_timeout

    if not isinstance(url, str) or not is_postgres_url(url):
        shown = redacted(url) if isinstance(url, str) else url
        raise ArgumentError(f"tracker admin works on a PostgreSQL catalog "
                            f"(postgresql://user@host/db), not {shown!r}: pass its URL or set "
                            "TRACKER_CATALOG")
    return PgStore(url, lock_timeout())


def init(url: str | None) -> PgStore:
    """Create the catalog at ``url`` with its access control, or add access control to one
    created before it; returns its store."""
    store = store_of(url)
    with store.connect(write=True) as connection:
        _must_own(connection, store)
        for statement in pg_access.statements():
            connection.execute(statement)
        shared_store.make_database_owner(connection)  # granted roles may not write meta
    return store


def grant(url: str | None, role: Any, project: Any, *, read_only: bool = False) -> Grant:
    """Let ``role`` (and the roles that inherit from it) read ``project``'s runs, and record,
    change and delete them unless ``read_only``; granting again replaces the access."""
    given = Grant(_role(role), _project(project), not read_only)
    store = store_of(url)
    with store.connect(write=True) as connection:
        _must_administer(connection, store)
        _must_exist(connection, given.role, store)
        for step in grant_steps(given):
            connection.execute(step.query, step.params or None)
    return given


def revoke(url: str | None, role: Any, project: Any) -> Grant:
    """Take back ``role``'s access to ``project``; its table privileges go with its last
    grant (its write privileges with its last writable one). Returns the grant removed."""
    who, what = _role(role), _project(project)
    store = store_of(url)
    with store.connect(write=True) as connection:
        _must_administer(connection, store)
        removed = connection.execute(
            f"DELETE FROM {_GRANTS} WHERE grantee = %s AND project = %s RETURNING can_write",
            [who, what]).fetchone()
        if removed is None:
            raise ArgumentError(f"role {who!r} has no grant on project {what!r}; its grants: "
                                f"{_projects_of(connection, who) or 'none'}")
        for step in _revoke_steps(connection, who):
            connection.execute(step.query)
    return Grant(who, what, bool(removed[0]))


def grants(url: str | None) -> list[Grant]:
    """Every grant of the catalog, by role then project."""
    store = store_of(url)
    with store.connect() as connection:
        _must_administer(connection, store)
        rows = connection.execute(f"SELECT grantee, project, can_write FROM {_GRANTS} "
                                  "ORDER BY grantee, project").fetchall()
    return [Grant(*row) for row in rows]


def script(to_grant: Sequence[Grant] = ()) -> str:
    """The SQL that creates a catalog in a new database with its access control and the
    grants ``to_grant``, for its owner to run (``psql -v ON_ERROR_STOP=1 -f``): one
    transaction, so a failed statement leaves the database as it was."""
    from psycopg import sql

    steps = [_Step(f"CREATE SCHEMA IF NOT EXISTS {pg_schema.SCHEMA}"),
             _Step(f"SET search_path TO {pg_schema.SCHEMA}"),
             _Step("SET client_min_messages TO warning"),  # no "policy ... does not exist"
             *map(_Step, pg_schema.create_statements()),
             _Step("INSERT INTO meta VALUES ('schema_version', %s)",
                   (str(pg_schema.SCHEMA_VERSION),)),
             *map(_Step, pg_access.statements()),
             *(step for given in to_grant for step in grant_steps(given))]
    lines = [f"-- A tracker catalog (schema version {pg_schema.SCHEMA_VERSION}) with row-level "
             "security by project.", "-- Run as the database's owner on a new database: "
             "psql -v ON_ERROR_STOP=1 -f this.sql", "BEGIN;"]
    for step in steps:
        if step.params:
            text = sql.SQL(step.query.replace("%s", "{}")).format(
                *map(sql.Literal, step.params)).as_string()
        else:
            text = step.query if isinstance(step.query, str) else step.query.as_string()
        lines.append(text + ";")
    return "\n".join([*lines, "COMMIT;", ""])


def grant_steps(given: Grant) -> list[_Step]:
    """The statements of one grant: schema usage, table privileges, the grants row."""
    from psycopg import sql

    who, schema = sql.Identifier(given.role), sql.Identifier(pg_schema.SCHEMA)
    steps = [_Step(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, who)),
             _Step(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(schema, who))]
    if given.can_write:
        steps += [_Step(sql.SQL("GRANT INSERT, UPDATE, DELETE ON {} TO {}").format(
                      _tables((*pg_access.run_tables(), pg_access.BLOBS)), who)),
                  _Step(sql.SQL("GRANT INSERT, UPDATE ON {} TO {}").format(
                      _tables(pg_access.SHARED_WRITES), who)),
                  _Step(sql.SQL(f"GRANT EXECUTE ON FUNCTION {pg_access.FILE_VERSION} TO {{}}"
                                ).format(who))]
    return [*steps, _Step(_UPSERT, tuple(given))]


def _revoke_steps(connection: Any, role: str) -> list[_Step]:
    """What ``role`` loses with a grant gone: every table privilege when none is left, the
    write privileges when no writable one is."""
    from psycopg import sql

    left, writes = connection.execute(f"SELECT count(*), coalesce(bool_or(can_write), false) "
                                      f"FROM {_GRANTS} WHERE grantee = %s", [role]).fetchone()
    who, schema = sql.Identifier(role), sql.Identifier(pg_schema.SCHEMA)
    functions = _Step(sql.SQL("REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {} FROM {}").format(
        schema, who))  # the writers' one (pg_access.FILE_VERSION)
    if not left:
        return [_Step(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(schema,
                                                                                      who)),
                functions,
                _Step(sql.SQL("REVOKE USAGE ON SCHEMA {} FROM {}").format(schema, who))]
    if not writes:
        return [_Step(sql.SQL("REVOKE INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} "
                              "FROM {}").format(schema, who)), functions]
    return []


def _tables(names: Sequence[str]) -> Any:
    from psycopg import sql

    return sql.SQL(", ").join(sql.Identifier(pg_schema.SCHEMA, name) for name in names)


def _must_own(connection: Any, store: PgStore) -> None:
    """ProjectAccessError unless the role connected owns the catalog's tables (or is a
    superuser): only they can set policies and grant."""
    owner, mine = connection.execute(
        "SELECT pg_catalog.pg_get_userbyid(c.relowner), pg_catalog.pg_has_role(c.relowner, "
        "'USAGE') FROM pg_catalog.pg_class c WHERE c.oid = %s::regclass",
        [f"{pg_schema.SCHEMA}.runs"]).fetchone()
    if not mine:
        raise ProjectAccessError(
            f"tracker admin must run as the role owning the catalog {store.shown} ({owner!r}) "
            "or a superuser: connect as it (the user in the URL, or PGUSER)", path=store.shown)


def _must_administer(connection: Any, store: PgStore) -> None:
    """:func:`_must_own`, and CatalogError for a catalog created before access control
    (:func:`init` adds it)."""
    _must_own(connection, store)
    if connection.execute("SELECT to_regclass(%s)", [_GRANTS]).fetchone()[0] is None:
        raise CatalogError(f"the catalog {store.shown} predates access control: run "
                           "'tracker admin init' on it first", path=store.shown)


def _must_exist(connection: Any, role: str, store: PgStore) -> None:
    found = connection.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s",
                               [role]).fetchone()
    if found is None:
        raise ArgumentError(f"there is no role {role!r} on the server of {store.shown}: create "
                            "it first (CREATE ROLE name LOGIN, or a group role: CREATE ROLE "
                            "name NOLOGIN)")


def _projects_of(connection: Any, role: str) -> str:
    rows = connection.execute(f"SELECT project FROM {_GRANTS} WHERE grantee = %s "
                              "ORDER BY project", [role]).fetchall()
    return ", ".join(repr(row[0]) for row in rows)


def _role(value: Any) -> str:
    return _name(value, "role", "'ann' or a group role such as 'analysts'")


def _project(value: Any) -> str:
    return _name(value, "project", f"'churn' ({pg_access.DEFAULT_PROJECT!r} holds the runs "
                                   "recorded with no project)")


def _name(value: Any, name: str, example: str) -> str:
    checked = arguments.text(value, name, example)
    if not checked or "\x00" in checked:
        raise ArgumentError(f"{name} must be non-empty text without NUL, e.g. {example}")
    return checked
