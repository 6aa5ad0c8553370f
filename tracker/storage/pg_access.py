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
- :data:`REFERENCED` tables hold rows runs share (a version of a path two projects read, an
  environment, a param or metric key): a role reads one while a run it sees references it (a
  file link, ``runs.environment_id``; a key while one of its projects has had it,
  :data:`KEYS`), checked through :data:`VIEWS`. Any writer adds one (``ON CONFLICT DO
  NOTHING`` needs no sight of an existing row); a path's versions count up across projects,
  so a writer numbers the next one through :data:`FILE_VERSION`, a ``SECURITY DEFINER``
  function that answers only the latest number and whether that version holds the writer's
  own content, never another project's rows.
- :data:`SHARED` tables are catalog-wide: ``meta`` and the grants (each role its own rows).
- :data:`BLOBS`, the stored notebooks, are keyed by content: a role reads one through a file link
  of a run it sees, or while no run references it (on its way into a batch, or left by a purge
  within the grace); any writer stores one, and removes one no run references (of any project:
  :data:`BLOB_IN_USE` looks past the policies).

The owner of the tables and superusers bypass row-level security: they see every project (the
owner runs ``tracker admin``). Every statement here is idempotent, so they both create a catalog
and add access control to one created before it.
"""

from __future__ import annotations

from tracker import _ids
from tracker.storage import pg_schema

DEFAULT_PROJECT = "default"  # the project of a run recorded with none
GRANTS = "project_grants"  # the table of (grantee, project, can_write)
#: catalog-wide tables (see the module's docstring)
SHARED = ("meta", GRANTS)
BLOBS = "blobs"  # stored notebooks, seen through the runs that reference them

_S = pg_schema.SCHEMA
_PROJECT = f"coalesce({{row}}project, '{DEFAULT_PROJECT}')"
_READABLE = f"ARRAY(SELECT g.project FROM {_S}.{GRANTS} g)"
_WRITABLE = f"ARRAY(SELECT g.project FROM {_S}.{GRANTS} g WHERE g.can_write)"
# a grant of the role's (to it or to a role it inherits from); {row} names the grants row
_MINE = ("EXISTS (SELECT 1 FROM pg_catalog.pg_roles o WHERE o.rolname = {row}grantee "
         "AND pg_catalog.pg_has_role(o.oid, 'USAGE'))")
# The projects a role reads, for a view: a view reads its tables as their owner, past the
# grants table's own policy, so it keeps the role's rows itself (current_user is the role's).
_MY_READABLE = f"ARRAY(SELECT g.project FROM {_S}.{GRANTS} g WHERE {_MINE.format(row='g.')})"
#: what a role's runs reference, one security-barrier view each, readable by every granted
#: role (each sees its own runs' references only). The shared tables' policies read these,
#: not the run tables: a policy on a run table inside another table's policy made a hashed
#: scan of every run per row looked at, and JIT on (a path's versions: 483 ms at 100k runs).
VIEWS = {
    "seen_environments": "SELECT r.environment_id FROM {s}.runs r",
    "seen_files": "SELECT ra.artifact_id FROM {s}.run_artifacts ra "
                  "JOIN {s}.runs r ON r.id = ra.run_id",
}
#: the params and metrics keys each project's runs have had, kept by triggers: "does a run of
#: mine have this key" read through the runs took 1.7 s at 100k runs in two projects (every
#: run of the project, for a key of the other's only); one row per project here, read by its
#: primary key. A run moved or purged leaves its keys listed in the project it was in.
KEYS = "project_keys"
_ADD_KEYS = (f"INSERT INTO {_S}.{KEYS} SELECT DISTINCT {_PROJECT.format(row='r.')}, "
             "v.namespace, v.key FROM {values} v JOIN " + f"{_S}.runs r ON r.id = v.run_id "
             "{where} ON CONFLICT DO NOTHING")
_KEY_STATEMENTS = (
    f"CREATE TABLE IF NOT EXISTS {_S}.{KEYS} (project text NOT NULL, namespace text NOT NULL, "
    "key text NOT NULL, PRIMARY KEY (namespace, key, project))",
    # SECURITY DEFINER: a writer neither sees nor writes the table (nor every run's project)
    f"CREATE OR REPLACE FUNCTION {_S}.add_project_keys() RETURNS trigger LANGUAGE plpgsql "
    "SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ BEGIN "
    "IF TG_TABLE_NAME = 'runs' THEN "
    + _ADD_KEYS.format(values=f"{_S}.{pg_schema.VALUES}", where="WHERE v.run_id = NEW.id")
    # most inserts of a run's values add no row (the ON CONFLICT update of a value): then no
    # join is planned or run
    + "; ELSIF EXISTS (SELECT 1 FROM added) THEN " + _ADD_KEYS.format(values="added", where="")
    + "; END IF; RETURN NULL; END $$",
    f"DROP TRIGGER IF EXISTS add_project_keys ON {_S}.{pg_schema.VALUES}",
    f"CREATE TRIGGER add_project_keys AFTER INSERT ON {_S}.{pg_schema.VALUES} "
    "REFERENCING NEW TABLE AS added FOR EACH STATEMENT "
    f"EXECUTE FUNCTION {_S}.add_project_keys()",
    f"DROP TRIGGER IF EXISTS add_project_keys ON {_S}.runs",
    f"CREATE TRIGGER add_project_keys AFTER UPDATE OF project ON {_S}.runs FOR EACH ROW "
    f"WHEN (OLD.project IS DISTINCT FROM NEW.project) EXECUTE FUNCTION {_S}.add_project_keys()",
    _ADD_KEYS.format(values=f"{_S}.{pg_schema.VALUES}", where=""),  # the keys so far
)

#: tables of rows runs share, each with what makes a row seen: a run the role sees references
#: it (through a view of :data:`VIEWS`). File records by IN, hashed once per statement, as the
#: run tables are: the files table reads every version for each path's latest (one run's
#: files: 1.5 s at 100k runs with a probe per version as EXISTS, JIT off); the others are few
#: or read one by one: EXISTS, an index probe each.
REFERENCED = {
    "artifacts": f"artifacts.id IN (SELECT f.artifact_id FROM {_S}.seen_files f)",
    "environments": f"EXISTS (SELECT 1 FROM {_S}.seen_environments e "
                    "WHERE e.environment_id = environments.id)",
    **{f"{name}_keys": f"EXISTS (SELECT 1 FROM {_S}.{KEYS} k "
                       f"WHERE k.namespace = '{name}s' AND k.key = {name}_keys.key)"
       for name in ("param", "metric")},
}
#: the shared tables a writer adds to (and updates: an artifact's kept blob)
SHARED_WRITES = tuple(REFERENCED)
# What the policies look rows up by that the schema has no index for: a run's environment
# (seen_environments) and a notebook's file records (blob_in_use, once per blob read); the
# others read run_artifacts(artifact_id) and the keys' primary key.
_INDEXES = (f"CREATE INDEX IF NOT EXISTS runs_environment ON {_S}.runs (environment_id)",
            f"CREATE INDEX IF NOT EXISTS artifacts_blob ON {_S}.artifacts (blob)")
#: ``(same_id, latest, taken)`` of a path for a writer numbering its version: ``wanted``'s id
#: if the path has that version id (a version pushed before), else the latest version's id if
#: it holds ``digest``; the latest number (0 for none); whether number ``number`` is taken.
#: Past the policies (SECURITY DEFINER), so only writers may call it, and it answers nothing
#: else of the rows it reads.
FILE_VERSION = f"{_S}.file_version(path text, digest text, wanted text, number integer)"
_FILE_VERSION = (
    f"CREATE OR REPLACE FUNCTION {FILE_VERSION} RETURNS TABLE (same_id text, latest integer, "
    "taken boolean) LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp "
    f"AS $$ SELECT coalesce((SELECT a.id FROM {_S}.artifacts a WHERE a.key = path "
    "AND a.id = wanted), (SELECT CASE WHEN l.hash = digest THEN l.id END "
    f"FROM {_S}.artifacts l WHERE l.key = path ORDER BY l.version DESC LIMIT 1)), "
    f"(SELECT coalesce(max(a.version), 0) FROM {_S}.artifacts a WHERE a.key = path), "
    f"EXISTS (SELECT 1 FROM {_S}.artifacts a WHERE a.key = path AND a.version = number) $$")
#: whether any artifact of any project names the blob ``blob`` (a read or removal of a
#: blob must not take a row another project references for an unreferenced one)
BLOB_IN_USE = f"{_S}.blob_in_use(blob text)"
_BLOB_IN_USE = (
    f"CREATE OR REPLACE FUNCTION {BLOB_IN_USE} RETURNS boolean LANGUAGE sql STABLE "
    "SECURITY DEFINER SET search_path = pg_catalog, pg_temp "
    f"AS $$ SELECT EXISTS (SELECT 1 FROM {_S}.artifacts a WHERE a.blob = blob_in_use.blob) $$")


#: whether a text has the shape of a run id: a granted role writes ``runs`` with SQL of its
#: own, and the id it chooses is shown to every role that reads the project, so the runs
#: policies take only ids (and parent ids) of the shape tracker makes. Its existence also says
#: an older catalog's policies have that check (``tracker.storage.pg_store``).
IS_RUN_ID = f"{_S}.is_run_id"
_IS_RUN_ID = (f"CREATE OR REPLACE FUNCTION {IS_RUN_ID}(id text) RETURNS boolean LANGUAGE sql "
              f"IMMUTABLE AS $$ SELECT id ~ '{_ids.RUN_ID_PATTERN}' $$")
_RUN_ID_SHAPE = f"{IS_RUN_ID}(id) AND (parent_id IS NULL OR {IS_RUN_ID}(parent_id))"


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
    cannot move a row into a project the role may not write); a run's id of tracker's shape."""
    read, write = _check(table, _READABLE), _check(table, _WRITABLE)
    if table == "runs":
        shaped = f"{write} AND {_RUN_ID_SHAPE}"
        return _enabled(table, read=read, insert=shaped, change=shaped, delete=write)
    # runs' own policy limits the sub-select to readable runs. IN, hashed once per scan:
    # as EXISTS, its cost estimate (millions) set JIT off, 0.6 s for 20k params, not 36 ms.
    # Writes keep EXISTS, an index probe per row: IN hashed every run per INSERT (25 ms).
    read = f"{table}.run_id IN (SELECT r.id FROM {_S}.runs r)"
    return _enabled(table, read=read, insert=write, change=write, delete=write)


def _views() -> list[str]:
    """The views of :data:`VIEWS`, each keeping the rows of the role's readable projects."""
    return [f"CREATE OR REPLACE VIEW {_S}.{name} WITH (security_barrier) AS "
            f"{body.format(s=_S)} WHERE {_PROJECT.format(row='r.')} = ANY ({_MY_READABLE})"
            for name, body in VIEWS.items()]


def _referenced_policies(table: str) -> list[str]:
    """Read and changed while a run the role sees references the row; added by any writer
    (the table privileges say who writes)."""
    seen = REFERENCED[table]
    return _enabled(table, read=seen, insert="true", change=seen, delete=seen)


def _blob_policies() -> list[str]:
    """A stored notebook is read through a file record the role sees (artifacts' own policy),
    or while unreferenced; stored by any writer; removed only while unreferenced."""
    seen = f"EXISTS (SELECT 1 FROM {_S}.artifacts a WHERE a.blob = {BLOBS}.key)"
    unused = f"NOT {_S}.blob_in_use({BLOBS}.key)"
    return _enabled(BLOBS, read=f"{seen} OR {unused}", insert="true", change="true",
                    delete=unused)


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


def _like_runs(privileges: str, grant: str) -> str:
    """A block running ``grant`` (a ``format()`` text: ``%1$s`` a privilege, ``%2$s`` a role)
    for each privilege in ``privileges`` a role holds on ``runs``: what was granted before the
    object ``grant`` names existed."""
    return (f"DO $$ DECLARE g record; BEGIN FOR g IN SELECT a.grantee::regrole::text AS who, "
            f"a.privilege_type AS what FROM pg_catalog.pg_class c, "
            f"pg_catalog.aclexplode(c.relacl) a WHERE c.oid = '{_S}.runs'::regclass "
            f"AND a.grantee NOT IN (0, c.relowner) AND a.privilege_type IN ({privileges}) LOOP "
            f"EXECUTE format('{grant}', g.what, g.who); END LOOP; END $$")


def writer_functions() -> list[str]:
    """What every writer calls, access control or none: :data:`FILE_VERSION`, for writers
    only (a catalog without access control has its owner alone)."""
    return [_FILE_VERSION, f"REVOKE ALL ON FUNCTION {FILE_VERSION} FROM PUBLIC"]


def value_statements() -> list[str]:
    """Access control for the value table of a catalog created before it: its policies, and
    the privileges each role has on ``runs`` given on it too (granted before it existed)."""
    return [*_policies(pg_schema.VALUES),
            _like_runs("'SELECT', 'INSERT', 'UPDATE', 'DELETE'",
                       f"GRANT %1$s ON {_S}.{pg_schema.VALUES} TO %2$s")]


def statements() -> list[str]:
    """The DDL of access control, idempotent: the grants table, every run table's policies,
    the shared tables' and the functions they need (run by the tables' owner)."""
    grants = f"{_S}.{GRANTS}"
    return [
        f"CREATE TABLE IF NOT EXISTS {grants} (grantee text NOT NULL, project text NOT NULL, "
        "can_write boolean NOT NULL, PRIMARY KEY (grantee, project))",
        f"ALTER TABLE {grants} ENABLE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS tracker_own_grants ON {grants}",
        f"CREATE POLICY tracker_own_grants ON {grants} FOR SELECT "
        f"USING ({_MINE.format(row=f'{GRANTS}.')})",
        _IS_RUN_ID,
        *(statement for table in run_tables() for statement in _policies(table)),
        *_INDEXES,
        *_views(),
        *_KEY_STATEMENTS,
        *_enabled(KEYS, read=f"project = ANY ({_READABLE})", insert="false", change="false",
                  delete="false"),
        *(_like_runs("'SELECT'", f"GRANT SELECT ON {_S}.{view} TO %2$s") for view in VIEWS),
        *(statement for table in REFERENCED for statement in _referenced_policies(table)),
        *writer_functions(),
        _like_runs("'INSERT'", f"GRANT EXECUTE ON FUNCTION {FILE_VERSION} TO %2$s"),
        _BLOB_IN_USE,
        *_blob_policies(),
    ]
