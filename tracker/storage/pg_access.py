"""Who sees what on a PostgreSQL catalog: projects mapped to the server's row-level security.

A role reads the runs of the projects granted to it (or to a role it belongs to) in
``tracker.project_grants``, and changes only those granted with ``can_write``; a run recorded
with no project is in the project :data:`DEFAULT_PROJECT`. The server enforces it on every
statement (filters, ``sql()``, psql alike), so no query of tracker's is trusted with it:

- ``runs`` is checked by its ``project``; every other table holding a run's data (a ``run_id``
  column: params, metrics, cells, tags, status changes, file links) by its run's row, which the
  policy reads through ``runs`` and so through the same check.
- ``project_grants`` shows each role only its own rows (``pg_has_role``), which is what the
  policies read: the list of a role's projects is computed once per statement (an ``ARRAY``
  sub-select, a PostgreSQL init plan), not once per row.
- ``latest_values`` (each run's latest params and metrics, kept by a trigger) is a run table
  like the others: a role reads, through a filter or ``sql()``, only the values of runs it sees.
- :data:`SHARED` tables are catalog-wide, not per project: the key lists, the environments and
  the file records (a path's versions count up across projects, so a writer must see every
  version to number the next one). What a run did with a file is its ``run_artifacts`` row.
- :data:`BLOBS`, the stored notebooks, are keyed by content: a role reads one through a file link
  of a run it sees, or while no run references it (on its way into a batch, or left by a purge
  within the grace); any writer stores one, and removes one no run references.

The owner of the tables and superusers bypass row-level security: they see every project (the
owner runs ``tracker admin``). Every statement here is idempotent, so they both create a catalog
and add access control to one created before it.
"""

from __future__ import annotations

from tracker.storage import pg_schema

DEFAULT_PROJECT = "default"  # the project of a run recorded with none
GRANTS = "project_grants"  # the table of (grantee, project, can_write)
#: tables without per-project rows (see the module's docstring)
SHARED = ("meta", "param_keys", "metric_keys", "artifacts", "environments", GRANTS)
BLOBS = "blobs"  # stored notebooks, seen through the runs that reference them
#: shared tables a writer adds to (and updates: an artifact's kept blob)
SHARED_WRITES = ("param_keys", "metric_keys", "artifacts", "environments")

_S = pg_schema.SCHEMA
_PROJECT = f"coalesce({{row}}project, '{DEFAULT_PROJECT}')"
_READABLE = f"ARRAY(SELECT g.project FROM {_S}.{GRANTS} g)"
_WRITABLE = f"ARRAY(SELECT g.project FROM {_S}.{GRANTS} g WHERE g.can_write)"
_MINE = (f"EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = {GRANTS}.grantee "
         "AND pg_catalog.pg_has_role(r.oid, 'USAGE'))")


def run_tables() -> tuple[str, ...]:
    """The tables whose rows belong to one run, hence to its project: ``runs``, every table
    with a ``run_id``, and the latest values of its params and metrics."""
    return (*(table for table in pg_schema.tables()
              if table == "runs" or "run_id" in dict(pg_schema.columns(table))),
            pg_schema.VALUES)


def _check(table: str, projects: str) -> str:
    """The condition that a row of ``table`` belongs to a run of one of ``projects``."""
    if table == "runs":
        return f"{_PROJECT.format(row='')} = ANY ({projects})"
    return (f"EXISTS (SELECT 1 FROM {_S}.runs r WHERE r.id = {table}.run_id "
            f"AND {_PROJECT.format(row='r.')} = ANY ({projects}))")


def _policies(table: str) -> list[str]:
    """Read by the readable projects; insert, change and delete by the writable ones (a change
    cannot move a row into a project the role may not write)."""
    read, write = _check(table, _READABLE), _check(table, _WRITABLE)
    if table != "runs":
        # runs' own policy limits the sub-select to readable runs. IN, hashed once per scan:
        # as EXISTS, its cost estimate (millions) set JIT off, 0.6 s for 20k params, not 36 ms.
        # Writes keep EXISTS, an index probe per row: IN hashed every run per INSERT (25 ms).
        read = f"{table}.run_id IN (SELECT r.id FROM {_S}.runs r)"
    return _enabled(table, read=read, insert=write, change=write, delete=write)


def _blob_policies() -> list[str]:
    """A stored notebook is read through a visible run's file link (run_artifacts' own policy),
    or while unreferenced; stored by any writer; removed only while unreferenced."""
    referenced = f"EXISTS (SELECT 1 FROM {_S}.artifacts a WHERE a.blob = {BLOBS}.key)"
    seen = (f"EXISTS (SELECT 1 FROM {_S}.artifacts a JOIN {_S}.run_artifacts ra "
            f"ON ra.artifact_id = a.id WHERE a.blob = {BLOBS}.key)")
    return _enabled(BLOBS, read=f"{seen} OR NOT {referenced}", insert="true", change="true",
                    delete=f"NOT {referenced}")


def _enabled(table: str, *, read: str, insert: str, change: str, delete: str) -> list[str]:
    """Row-level security on ``table`` with one policy per command, replacing any before."""
    on = f"ON {_S}.{table}"
    return [f"ALTER TABLE {_S}.{table} ENABLE ROW LEVEL SECURITY",
            *(f"DROP POLICY IF EXISTS {name} {on}"
              for name in ("tracker_read", "tracker_insert", "tracker_update", "tracker_delete")),
            f"CREATE POLICY tracker_read {on} FOR SELECT USING ({read})",
            f"CREATE POLICY tracker_insert {on} FOR INSERT WITH CHECK ({insert})",
            f"CREATE POLICY tracker_update {on} FOR UPDATE USING ({change}) WITH CHECK ({change})",
            f"CREATE POLICY tracker_delete {on} FOR DELETE USING ({delete})"]


def value_statements() -> list[str]:
    """Access control for the value table of a catalog created before it: its policies, and
    the privileges each role has on ``runs`` given on it too (granted before it existed)."""
    copied = (f"DO $$ DECLARE g record; BEGIN FOR g IN SELECT a.grantee::regrole::text AS who, "
              f"a.privilege_type AS what FROM pg_catalog.pg_class c, "
              f"pg_catalog.aclexplode(c.relacl) a WHERE c.oid = '{_S}.runs'::regclass "
              "AND a.grantee NOT IN (0, c.relowner) AND a.privilege_type IN "
              "('SELECT', 'INSERT', 'UPDATE', 'DELETE') LOOP "
              f"EXECUTE format('GRANT %s ON {_S}.{pg_schema.VALUES} TO %s', g.what, g.who); "
              "END LOOP; END $$")
    return [*_policies(pg_schema.VALUES), copied]


def statements() -> list[str]:
    """The DDL of access control, idempotent: the grants table and every run table's
    policies (run by the tables' owner)."""
    grants = f"{_S}.{GRANTS}"
    return [
        f"CREATE TABLE IF NOT EXISTS {grants} (grantee text NOT NULL, project text NOT NULL, "
        "can_write boolean NOT NULL, PRIMARY KEY (grantee, project))",
        f"ALTER TABLE {grants} ENABLE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS tracker_own_grants ON {grants}",
        f"CREATE POLICY tracker_own_grants ON {grants} FOR SELECT USING ({_MINE})",
        *(statement for table in run_tables() for statement in _policies(table)),
        *_blob_policies(),
    ]
