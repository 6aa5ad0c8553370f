"""Who sees what on a PostgreSQL catalog (tracker/pg_admin.py, tracker/storage/pg_access.py), on
a real server with two real roles: a role granted project A reads, changes and records only A's
runs, whatever it sends (the public reads, sql(), its own SQL); the grants and `tracker admin`
work as documented, and the SQL script a DBA runs gives the same catalog."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
import pytest
from psycopg import sql
from test_storage_pg_store import drop_values

import tracker
from tracker import events, pg_admin
from tracker.cli import main
from tracker.errors import (
    ArgumentError,
    CatalogError,
    ProjectAccessError,
    ReadOnlySQLError,
    RunNotFoundError,
)
from tracker.storage import pg_access, pg_blobs, pg_schema, pg_writer
from tracker.storage.pg_store import PgStore

T0 = 1_780_000_000.0
RUN_TABLES_SQL = ("params", "metrics", "tags", "cells", "run_artifacts", "status_changes",
                  pg_schema.VALUES)


class Team(NamedTuple):
    """A catalog holding one run of project A, one of B and one with no project, and a fresh
    role per project (granted nothing yet)."""

    owner_url: str
    database: str
    role_a: str
    role_b: str
    cluster: Any

    def url(self, role: str) -> str:
        return str(self.cluster.url(self.database, role))

    def catalog(self, role: str) -> tracker.Catalog:
        return tracker.Catalog(self.url(role))


def _events(run_id: str, project: str | None) -> list[events.Spooled]:
    start: dict[str, Any] = {"name": run_id, "started_at": T0, "host": "box", "pid": 1}
    if project is not None:
        start["project"] = project
    shapes: list[events.Event] = [
        events.Start(run_id, start),
        events.Param(run_id, "lr", 0.1, "float", T0 + 1),
        events.Metric(run_id, "loss", 0.5, 1, T0 + 2),
        events.Tag(run_id, "stage", "dev", T0 + 2),
        events.Cell(run_id, {"seq": 1, "execution_count": 1, "source": "x = 1",
                             "started_at": T0 + 1, "duration": 0.5, "success": True}),
        events.Artifact(run_id, "output", f"/data/{run_id}.csv",
                        {"size": 1, "mtime": T0, "hash": f"h-{run_id}"}, T0 + 3, "api"),
        events.End(run_id, "completed", T0 + 4, None),
    ]
    return [events.Spooled(run_id, seq, event) for seq, event in enumerate(shapes, 1)]


def _apply(url: str, batch: list[events.Spooled]) -> None:
    with PgStore(url, 10).connect(write=True) as connection:
        assert pg_writer.apply(connection, batch) == []


@pytest.fixture
def team(pg_cluster: Any, pg_url: str) -> Team:
    database = pg_url.split("/")[3].split("?")[0]
    role_a, role_b = f"ann_{database}", f"bob_{database}"
    for role in (role_a, role_b):
        pg_cluster.admin(f"CREATE ROLE {role} LOGIN")
    pg_admin.init(pg_url)
    _apply(pg_url, [*_events("ran00000000a0001", "A"), *_events("ran00000000b0001", "B"),
                    *_events("ran0000000000001", None)])
    return Team(pg_url, database, role_a, role_b, pg_cluster)


@pytest.fixture
def granted(team: Team) -> Team:
    pg_admin.grant(team.owner_url, team.role_a, "A")
    pg_admin.grant(team.owner_url, team.role_b, "B")
    return team


def _ids(frame: Any, column: str = "id") -> list[str]:
    return sorted(set(frame[column]))


def test_a_role_reads_only_its_projects_runs(granted: Team) -> None:
    ann = granted.catalog(granted.role_a)
    assert _ids(ann.runs()) == ["ran00000000a0001"]
    assert _ids(ann.runs("params.lr > 0 or id = 'ran00000000b0001'", include_deleted=True)) == \
        ["ran00000000a0001"]
    assert ann.count_runs(by=None)["count"].tolist() == [1]
    assert ann.get_run("ran00000000a0001").project == "A"
    for ref in ("ran00000000b0001", "000b", "ran0000000000001"):
        with pytest.raises(RunNotFoundError):
            ann.get_run(ref)
    assert ann.keys() and ann.metric_history("ran00000000a0001")["value"].tolist() == [0.5]
    assert _ids(ann.artifacts(), "run_id") == ["ran00000000a0001"]
    bob = granted.catalog(granted.role_b)
    assert _ids(bob.runs()) == ["ran00000000b0001"]


@pytest.mark.parametrize("table", ["runs", *RUN_TABLES_SQL])
def test_sql_sees_only_the_projects_rows_of_every_run_table(granted: Team, table: str) -> None:
    column = "id" if table == "runs" else "run_id"
    owner = tracker.Catalog(granted.owner_url).sql(f"SELECT {column} FROM tracker.{table}")
    seen = granted.catalog(granted.role_a).sql(f"SELECT {column} FROM tracker.{table}")
    expected = {"ran00000000a0001"} if table != "status_changes" else set()
    assert set(seen[column]) == expected
    assert set(owner[column]) >= expected  # the owner bypasses row-level security


def test_values_added_to_an_older_catalog_are_secured_as_the_run_tables(granted: Team) -> None:
    """Roles granted before ``latest_values`` existed read and write it after the owner's
    next connection adds it, each only its projects' rows."""
    drop_values(granted.owner_url)
    assert len(tracker.Catalog(granted.owner_url).runs()) == 3  # the owner's connection adds it
    ann = granted.catalog(granted.role_a)
    assert _ids(ann.runs("params.lr > 0 and metrics.loss = 0.5")) == ["ran00000000a0001"]
    seen = ann.sql(f"SELECT run_id FROM tracker.{pg_schema.VALUES}")
    assert set(seen["run_id"]) == {"ran00000000a0001"}
    _apply(granted.url(granted.role_a), _events("ran00000000a0002", "A"))  # its writes keep it
    assert _ids(ann.runs("params.lr > 0")) == ["ran00000000a0001", "ran00000000a0002"]


def test_every_table_is_per_project_or_named_shared(granted: Team) -> None:
    with psycopg.connect(granted.owner_url) as connection:
        secured = dict(connection.execute(
            "SELECT relname, relrowsecurity FROM pg_class WHERE relkind = 'r' AND "
            "relnamespace = 'tracker'::regnamespace").fetchall())
    assert set(secured) == {*pg_access.run_tables(), *pg_access.SHARED, *pg_access.REFERENCED,
                            pg_access.BLOBS, pg_access.KEYS}
    assert {name for name, on in secured.items() if not on} == {"meta"}
    assert set(RUN_TABLES_SQL) | {"runs"} <= set(pg_access.run_tables())


def test_a_stored_notebook_is_read_only_through_a_run_the_role_sees(granted: Team) -> None:
    for run_id, project in (("ran00000000a0002", "A"), ("ran00000000b0002", "B")):
        with PgStore(granted.owner_url, 10).connect(write=True) as connection:
            pg_blobs.store(connection, f"blob-{run_id}", b"{}")
            connection.execute("UPDATE blobs SET stored_at = now() - interval '2 hours'")
        notebook = events.Artifact(run_id, "notebook", "/work/nb.ipynb",
                                   {"size": 2, "hash": f"h:{run_id}", "blob": f"blob-{run_id}"},
                                   T0 + 1, "stored")
        _apply(granted.owner_url, [*_events(run_id, project)[:1],
                                   events.Spooled(run_id, 9, notebook)])
    ann = granted.catalog(granted.role_a)
    assert set(ann.sql("SELECT key FROM tracker.blobs")["key"]) == {"blob-ran00000000a0002"}
    with PgStore(granted.url(granted.role_a), 10).connect(write=True) as connection:
        pg_blobs.store(connection, "blob-ran00000000b0002", b"{}")  # B's: stored already, skipped
        assert connection.execute("DELETE FROM blobs").rowcount == 0  # all referenced
    with PgStore(granted.owner_url, 10).connect() as connection:
        assert pg_blobs.read(connection, "blob-ran00000000b0002") == b"{}"


def test_a_role_cannot_change_another_projects_runs(granted: Team) -> None:
    ann = granted.catalog(granted.role_a)
    for change in (ann.delete_run, ann.restore_run):
        with pytest.raises(RunNotFoundError):
            change("ran00000000b0001")
    with pytest.raises(RunNotFoundError):
        ann.delete_runs(ids=["ran00000000a0001", "ran00000000b0001"])
    # the filter sees A's runs only
    assert ann.delete_runs("id IS NOT NULL") == ["ran00000000a0001"]
    with psycopg.connect(granted.url(granted.role_a)) as connection:
        for statement in ("UPDATE tracker.runs SET name = 'mine', deleted_at = now()",
                          "DELETE FROM tracker.params", "DELETE FROM tracker.metrics",
                          "UPDATE tracker.tags SET value = 'x'", "DELETE FROM tracker.cells",
                          "DELETE FROM tracker.run_artifacts"):
            connection.execute(statement)
        # a run of A cannot be moved into B
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            connection.execute("UPDATE tracker.runs SET project = 'B'")
    owner = tracker.Catalog(granted.owner_url)
    b_run = owner.get_run("ran00000000b0001")
    assert (b_run.name, b_run.deleted_at, b_run.params) == ("ran00000000b0001", None, {"lr": 0.1})
    assert owner.sql("SELECT count(*) AS n FROM tracker.params WHERE run_id = 'ran00000000b0001'"
                     )["n"].tolist() == [1]
    assert owner.sql("SELECT value FROM tracker.tags WHERE run_id = 'ran00000000b0001'"
                     )["value"].tolist() == ["dev"]


def _insert_run(url: str, run_id: str, parent_id: str | None = None) -> None:
    """Write a run of project A with SQL of the role's own, as any client of the server may."""
    with psycopg.connect(url) as connection:
        connection.execute("INSERT INTO tracker.runs (id, parent_id, project, status, started_at)"
                           " VALUES (%s, %s, 'A', 'running', now())", [run_id, parent_id])


HOSTILE_IDS = [("<img src=x onerror=alert(1)>", None), ("ran00000000a0009", "../../etc"),
               ("RAN00000000A0009", None), ("ran00000000a000", None)]


@pytest.mark.parametrize(("run_id", "parent_id"), HOSTILE_IDS)
def test_a_writer_cannot_choose_a_run_id_of_another_shape(granted: Team, run_id: str,
                                                          parent_id: str | None) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        _insert_run(granted.url(granted.role_a), run_id, parent_id)
    _insert_run(granted.url(granted.role_a), "ran00000000a0009", "ran00000000a0001")
    with psycopg.connect(granted.url(granted.role_a)) as connection:  # nor change one to it
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            connection.execute("UPDATE tracker.runs SET id = %s, parent_id = %s "
                               "WHERE id = 'ran00000000a0009'", [run_id, parent_id])


def test_access_control_from_before_the_run_id_check_gains_it(granted: Team) -> None:
    with psycopg.connect(granted.owner_url) as connection:  # the runs policies of before
        connection.execute("ALTER POLICY tracker_insert ON tracker.runs WITH CHECK (true)")
        connection.execute("ALTER POLICY tracker_update ON tracker.runs USING (true) "
                           "WITH CHECK (true)")
        connection.execute("DROP FUNCTION tracker.is_run_id")
    tracker.Catalog(granted.url(granted.role_a)).runs()  # a writer cannot bring it: no change
    _insert_run(granted.url(granted.role_a), "old-shape")
    tracker.Catalog(granted.owner_url).runs()  # the owner's next connection brings it
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        _insert_run(granted.url(granted.role_a), "new-shape")


def test_sql_cannot_write_even_where_the_role_may(granted: Team) -> None:
    with pytest.raises(ReadOnlySQLError):
        granted.catalog(granted.role_a).sql("WITH d AS (DELETE FROM tracker.runs RETURNING 1) "
                                            "SELECT * FROM d")


def test_sql_on_a_table_the_role_may_not_read_is_an_access_error(granted: Team) -> None:
    ann = granted.catalog(granted.role_a)
    with pytest.raises(ProjectAccessError, match="permission denied for table pg_authid") as caught:
        ann.sql("SELECT rolpassword FROM pg_catalog.pg_authid")
    assert not isinstance(caught.value, ReadOnlySQLError)  # not "one read-only query"


def test_a_role_records_into_its_project_only(granted: Team) -> None:
    _apply(granted.url(granted.role_a), _events("ran00000000a0002", "A"))
    assert _ids(granted.catalog(granted.role_a).runs()) == ["ran00000000a0001", "ran00000000a0002"]
    for project in ("B", None):
        with pytest.raises(ProjectAccessError, match="may not write runs of that project"):
            _apply(granted.url(granted.role_a), _events("ran0000000000002", project))
    # events of B's existing run are not applied either: the run is not there for this role
    with PgStore(granted.url(granted.role_a), 10).connect(write=True) as connection:
        late = [events.Spooled("ran00000000b0001", 99,
                               events.Param("ran00000000b0001", "lr", 9, "int", T0))]
        assert pg_writer.apply(connection, late) == late
    assert _ids(tracker.Catalog(granted.owner_url).runs()) == \
        ["ran0000000000001", "ran00000000a0001", "ran00000000a0002", "ran00000000b0001"]


def test_a_read_only_grant_reads_and_refuses_every_change(team: Team) -> None:
    pg_admin.grant(team.owner_url, team.role_a, "A", read_only=True)
    ann = team.catalog(team.role_a)
    assert _ids(ann.runs()) == ["ran00000000a0001"]
    with pytest.raises(ProjectAccessError, match="permission denied for table runs"):
        ann.delete_run("ran00000000a0001")
    assert ann.get_run("ran00000000a0001").deleted_at is None
    with pytest.raises(ProjectAccessError, match="permission denied for table runs"):
        _apply(team.url(team.role_a), _events("ran00000000a0003", "A"))
    with psycopg.connect(team.url(team.role_a)) as connection:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute("DELETE FROM tracker.params")


def test_a_change_of_a_read_only_projects_run_is_refused_not_skipped(granted: Team) -> None:
    pg_admin.grant(granted.owner_url, granted.role_a, "B", read_only=True)
    ann = granted.catalog(granted.role_a)
    with pytest.raises(ProjectAccessError, match="may read but not change the runs "
                                                 "ran00000000b0001, "
                                                 "of project"):
        ann.delete_runs(ids=["ran00000000a0001", "ran00000000b0001"])
    assert ann.runs(include_deleted=True)["deleted_at"].isna().all()  # nothing was changed
    assert ann.delete_run("ran00000000a0001") == "ran00000000a0001"


def test_runs_with_no_project_are_the_default_projects(team: Team) -> None:
    pg_admin.grant(team.owner_url, team.role_a, pg_access.DEFAULT_PROJECT)
    assert _ids(team.catalog(team.role_a).runs()) == ["ran0000000000001"]
    _apply(team.url(team.role_a), _events("ran0000000000003", None))
    assert _ids(team.catalog(team.role_a).runs()) == ["ran0000000000001", "ran0000000000003"]


def test_members_of_a_granted_group_role_inherit_its_projects(team: Team) -> None:
    group = f"analysts_{team.database}"
    team.cluster.admin(f"CREATE ROLE {group} NOLOGIN")
    team.cluster.admin(f"GRANT {group} TO {team.role_b}")
    pg_admin.grant(team.owner_url, group, "A")
    pg_admin.grant(team.owner_url, group, "B", read_only=True)
    assert _ids(team.catalog(team.role_b).runs()) == ["ran00000000a0001", "ran00000000b0001"]
    with pytest.raises(ProjectAccessError, match="permission denied for schema tracker"):
        team.catalog(team.role_a).runs()  # ann is in no group: granted nothing


def test_a_role_granted_nothing_sees_no_run(team: Team) -> None:
    with psycopg.connect(team.owner_url) as connection:  # even with SELECT granted by hand
        connection.execute(f"GRANT USAGE ON SCHEMA tracker TO {team.role_a}")
        connection.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA tracker TO {team.role_a}")
    ann = team.catalog(team.role_a)
    assert ann.runs().empty
    assert ann.sql("SELECT * FROM tracker.params").empty
    assert ann.sql("SELECT * FROM tracker.project_grants").empty


def test_revoke_takes_the_project_and_then_the_privileges_away(granted: Team) -> None:
    pg_admin.grant(granted.owner_url, granted.role_a, "B", read_only=True)
    assert pg_admin.grants(granted.owner_url) == [
        pg_admin.Grant(granted.role_a, "A", True), pg_admin.Grant(granted.role_a, "B", False),
        pg_admin.Grant(granted.role_b, "B", True)]
    assert pg_admin.revoke(granted.owner_url, granted.role_a, "A") == \
        pg_admin.Grant(granted.role_a, "A", True)
    ann = granted.catalog(granted.role_a)
    assert _ids(ann.runs()) == ["ran00000000b0001"]
    with psycopg.connect(granted.url(granted.role_a)) as connection:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # no write privilege left
            connection.execute("DELETE FROM tracker.params")
    pg_admin.revoke(granted.owner_url, granted.role_a, "B")
    with pytest.raises(CatalogError, match="the database refused"):
        granted.catalog(granted.role_a).runs()
    with pytest.raises(ArgumentError, match="has no grant on project 'B'; its grants: none"):
        pg_admin.revoke(granted.owner_url, granted.role_a, "B")


def test_only_the_owner_administers_and_only_existing_roles_are_granted(granted: Team) -> None:
    with pytest.raises(ProjectAccessError, match="must run as the role owning the catalog"):
        pg_admin.grant(granted.url(granted.role_a), granted.role_a, "B")
    with pytest.raises(ArgumentError, match="there is no role 'nobody_here'"):
        pg_admin.grant(granted.owner_url, "nobody_here", "A")
    for bad in ("", "a\x00b", 3):
        with pytest.raises(ArgumentError):
            pg_admin.grant(granted.owner_url, bad, "A")
        with pytest.raises(ArgumentError):
            pg_admin.grant(granted.owner_url, granted.role_a, bad)
    with pytest.raises(ArgumentError, match="works on a PostgreSQL catalog"):
        pg_admin.init("catalog.duckdb")


def test_hostile_role_and_project_names_stay_names(team: Team) -> None:
    role = f'x"; DROP TABLE tracker.runs; --{uuid.uuid4().hex[:6]}'
    project = "A'); DELETE FROM tracker.runs; --"
    with psycopg.connect(team.owner_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    _apply(team.owner_url, _events("ran00000000h0001", project))
    pg_admin.grant(team.owner_url, role, project)
    with psycopg.connect(team.owner_url) as connection:
        connection.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        assert connection.execute("SELECT id FROM tracker.runs").fetchall() == \
            [("ran00000000h0001",)]
    assert len(tracker.Catalog(team.owner_url).runs()) == 4


def _older(url: str) -> None:
    """Take the catalog at ``url`` back to before access control."""
    with psycopg.connect(url) as connection:
        for table in (*pg_access.run_tables(), *pg_access.REFERENCED):
            connection.execute(f"ALTER TABLE tracker.{table} DISABLE ROW LEVEL SECURITY")
            for policy in ("read", "insert", "update", "delete"):
                connection.execute(f"DROP POLICY tracker_{policy} ON tracker.{table}")
        connection.execute(f"DROP TABLE tracker.{pg_access.GRANTS} CASCADE")  # and its views


def test_init_adds_access_control_to_a_catalog_created_before_it(team: Team) -> None:
    _older(team.owner_url)
    with pytest.raises(CatalogError, match="run 'tracker admin init' on it first"):
        pg_admin.grant(team.owner_url, team.role_a, "A")
    pg_admin.init(team.owner_url)
    pg_admin.init(team.owner_url)  # again: nothing changes
    pg_admin.grant(team.owner_url, team.role_a, "A")
    assert _ids(team.catalog(team.role_a).runs()) == ["ran00000000a0001"]
    assert set(team.catalog(team.role_a).sql("SELECT uri FROM tracker.artifacts")["uri"]) == \
        {"/data/ran00000000a0001.csv"}


def test_the_script_for_a_dba_makes_the_same_catalog(pg_cluster: Any, pg_url: str,
                                                     tmp_path: Path) -> None:
    database = pg_url.split("/")[3].split("?")[0]
    role = f"carl_{database}"
    pg_cluster.admin(f"CREATE ROLE {role} LOGIN")
    text = pg_admin.script([pg_admin.Grant(role, "A", True)])
    script = tmp_path / "catalog.sql"
    script.write_text(text, encoding="utf-8")
    done = subprocess.run([str(pg_cluster.bin / "psql"), "-v", "ON_ERROR_STOP=1", "-q", "-f",
                           str(script), pg_url], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    with psycopg.connect(pg_url) as connection:
        policies = connection.execute("SELECT count(*) FROM pg_policies WHERE schemaname = "
                                      "'tracker'").fetchone()
    tables = [*pg_access.run_tables(), *pg_access.REFERENCED, pg_access.BLOBS, pg_access.KEYS]
    assert policies == (4 * len(tables) + 1,)  # and the grants'
    _apply(pg_url, [*_events("ran00000000a0001", "A"), *_events("ran00000000b0001", "B")])
    assert _ids(tracker.Catalog(pg_cluster.url(database, role)).runs()) == ["ran00000000a0001"]
    assert f"schema version {pg_schema.SCHEMA_VERSION}" in text


def test_the_admin_command(granted: Team, capsys: pytest.CaptureFixture[str]) -> None:
    url = granted.owner_url.replace("postgres@", "postgres:Secr3t@", 1)  # trust: unused
    assert main(["admin", "init", url]) == 0
    assert "postgres:***@" in capsys.readouterr().out
    assert main(["admin", "grants", "--catalog", url.replace("/t_", "/missing_")]) == 1
    assert "Secr3t" not in capsys.readouterr().err
    assert main(["admin", "grant", granted.role_b, "--project", "A", "--read-only",
                 "--catalog", url]) == 0
    assert main(["admin", "grants", "--catalog", url]) == 0
    out = capsys.readouterr().out
    assert f"{granted.role_b}  A  read\n" in out and f"{granted.role_a}  A  read, write" in out
    assert main(["admin", "revoke", granted.role_b, "--project", "A", "--catalog", url]) == 0
    assert _ids(granted.catalog(granted.role_b).runs()) == ["ran00000000b0001"]
    assert main(["admin", "grant", "nobody_here", "--project", "A", "--catalog", url]) == 1
    assert "there is no role 'nobody_here'" in capsys.readouterr().err
    assert main(["admin", "sql", "--grant", "ann", "--project", "A"]) == 0
    script = capsys.readouterr().out
    assert script.startswith("-- A tracker catalog") and 'GRANT USAGE ON SCHEMA "tracker" ' \
        'TO "ann"' in script and "VALUES ('ann', 'A', true)" in script


def test_deleting_by_filter_runs_the_role_may_only_read_is_refused_and_deletes_nothing(
        granted: Team) -> None:
    # the old code's FOR UPDATE skipped ran00000000b0001 (row-level security hides it from a lock)
    # and deleted ran00000000a0001 alone, saying nothing
    pg_admin.grant(granted.owner_url, granted.role_a, "B", read_only=True)
    ann = granted.catalog(granted.role_a)
    with pytest.raises(ProjectAccessError, match="may read but not change the runs "
                                                 "ran00000000b0001, "
                                                 "of project.s. 'B': nothing was changed"):
        ann.delete_runs("params.lr > 0")
    assert ann.runs(include_deleted=True)["deleted_at"].isna().all()  # ran00000000a0001 too
    assert ann.delete_runs("params.lr > 0 and project = 'A'") == ["ran00000000a0001"]
    assert _ids(ann.runs(deleted_only=True)) == ["ran00000000a0001"]


def _shared_events(run_id: str, project: str, env: str, files: list[tuple[str, str, str]],
                   param: str, metric: str) -> list[events.Spooled]:
    """A run of ``project`` in environment ``env`` with one param and one metric of its own
    and the files ``(role, path, hash)``."""
    shapes: list[events.Event] = [
        events.Start(run_id, {"name": run_id, "started_at": T0, "project": project}),
        events.Param(run_id, param, "x", "str", T0 + 1),
        events.Metric(run_id, metric, 1.0, 1, T0 + 1),
        events.Env(run_id, env, {"packages": {f"{env}-package": "1.0"}}),
        *(events.Artifact(run_id, role, path, {"size": 1, "hash": digest}, T0 + 2, "api")
          for role, path, digest in files),
        events.End(run_id, "completed", T0 + 3, None),
    ]
    return [events.Spooled(run_id, seq, event) for seq, event in enumerate(shapes, 1)]


@pytest.fixture
def sharing(granted: Team) -> Team:
    """B's runs record a version 1 and 2 of /data/shared.csv, an environment and keys of their
    own and one A uses too; then A's writer, seeing none of B's rows, records B's version 2
    again (its input), its own version 3 of that path, and B's shared environment and key."""
    bob, ann = granted.url(granted.role_b), granted.url(granted.role_a)
    _apply(bob, _shared_events("ran00000000b0002", "B", "env-b",
                               [("input", "/data/shared.csv", "v1"),
                                ("output", "/data/b-only.csv", "b")],
                               "b_secret", "b_loss"))
    _apply(bob, _shared_events("ran00000000b0003", "B", "env-shared",
                               [("output", "/data/shared.csv", "v2")], "both", "both_loss"))
    _apply(ann, _shared_events("ran00000000a0002", "A", "env-shared",
                               [("input", "/data/shared.csv", "v2"),
                                ("output", "/data/shared.csv", "v3")], "both", "both_loss"))
    return granted


# What A's role sees of each table of shared rows (A's runs: ran00000000a0001, ran00000000a0002).
A_SEES = {
    "artifacts": ("uri, version", {("/data/ran00000000a0001.csv", 1), ("/data/shared.csv", 2),
                                   ("/data/shared.csv", 3)}),
    "environments": ("id", {("env-shared",)}),
    "param_keys": ("key, kind", {("lr", "float"), ("both", "str")}),
    "metric_keys": ("key", {("loss",), ("both_loss",)}),
    pg_access.KEYS: ("project, namespace, key", {("A", "params", "lr"), ("A", "params", "both"),
                                                 ("A", "metrics", "loss"),
                                                 ("A", "metrics", "both_loss")}),
}


@pytest.mark.parametrize("table", [*sorted(pg_access.REFERENCED), pg_access.KEYS])
def test_sql_sees_of_each_shared_table_only_rows_a_granted_run_references(
        sharing: Team, table: str) -> None:
    columns, expected = A_SEES[table]
    seen = sharing.catalog(sharing.role_a).sql(f"SELECT * FROM tracker.{table}")
    assert set(seen[columns.split(", ")].itertuples(index=False, name=None)) == expected
    owner = tracker.Catalog(sharing.owner_url).sql(f"SELECT {columns} FROM tracker.{table}")
    assert len(owner) > len(expected)  # B's own rows are there, for the owner


def test_the_api_shows_a_role_nothing_of_another_projects_files_environments_or_keys(
        sharing: Team) -> None:
    ann = sharing.catalog(sharing.role_a)
    assert ann.keys() == ["params.both", "params.lr", "metrics.both_loss", "metrics.loss",
                          "tags.stage"]
    assert not {"params.b_secret", "metrics.b_loss"} & set(ann.runs().columns)
    files = ann.artifacts()
    assert set(zip(files["uri"], files["version"])) == A_SEES["artifacts"][1]
    assert ann.get_artifact("/data/shared.csv").version == 3
    assert ann.lineage("ran00000000a0002").empty  # B's ran00000000b0003 wrote v2: not A's to see
    assert "env-shared-package" in str(ann.diff("ran00000000a0001", "ran00000000a0002").environment)
    bob = sharing.catalog(sharing.role_b)  # and B sees none of A's version 3
    assert set(bob.artifacts()["version"]) == {1, 2}
    assert _ids(tracker.Catalog(sharing.owner_url).lineage("ran00000000a0002"), "run_id") == \
        ["ran00000000b0003"]


def test_a_writer_shares_rows_another_project_recorded_without_seeing_them(
        sharing: Team) -> None:
    with psycopg.connect(sharing.owner_url) as connection:
        versions = connection.execute(
            "SELECT a.version, a.hash, array_agg(ra.run_id ORDER BY ra.run_id) "
            "FROM tracker.artifacts a JOIN tracker.run_artifacts ra ON ra.artifact_id = a.id "
            "WHERE a.key = '/data/shared.csv' GROUP BY a.version, a.hash "
            "ORDER BY a.version").fetchall()
        environments = connection.execute("SELECT count(*) FROM tracker.environments "
                                           "WHERE id = 'env-shared'").fetchone()
    # one version 2, read by A and written by B; A's own content numbered after B's
    assert versions == [(1, "v1", ["ran00000000b0002"]),
                        (2, "v2", ["ran00000000a0002", "ran00000000b0003"]),
                        (3, "v3", ["ran00000000a0002"])]
    assert environments == (1,)


def test_the_version_function_is_the_writers_alone(sharing: Team) -> None:
    pg_admin.grant(sharing.owner_url, sharing.role_b, "A", read_only=True)
    pg_admin.revoke(sharing.owner_url, sharing.role_b, "B")  # bob now only reads A
    with psycopg.connect(sharing.url(sharing.role_b)) as connection:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute("SELECT * FROM tracker.file_version('/data/shared.csv', "
                               "NULL, NULL, NULL)")
    with psycopg.connect(sharing.url(sharing.role_a)) as connection:  # a writer: no rows
        assert connection.execute(
            "SELECT * FROM tracker.file_version('/data/b-only.csv', 'x', NULL, 1)"
        ).fetchall() == [(None, 1, True)]


def test_access_control_from_before_the_shared_tables_policies_is_brought_up_to_date(
        sharing: Team) -> None:
    with psycopg.connect(sharing.owner_url) as connection:
        for table in pg_access.REFERENCED:
            connection.execute(f"ALTER TABLE tracker.{table} DISABLE ROW LEVEL SECURITY")
        connection.execute("DROP FUNCTION tracker.file_version, tracker.blob_in_use CASCADE")
    tracker.Catalog(sharing.owner_url).runs()  # the owner's next connection
    seen = sharing.catalog(sharing.role_a).sql("SELECT id FROM tracker.environments")
    assert set(seen["id"]) == {"env-shared"}
    _apply(sharing.url(sharing.role_a), _shared_events(
        "ran00000000a0003", "A", "env-shared", [("output", "/data/shared.csv", "v4")], "both", "m"))


def test_a_run_moved_into_a_project_brings_its_keys(sharing: Team) -> None:
    with psycopg.connect(sharing.owner_url) as connection:  # as a writer's Update can
        connection.execute("UPDATE tracker.runs SET project = 'A' WHERE id = 'ran00000000b0002'")
    assert {"params.b_secret", "metrics.b_loss"} <= set(sharing.catalog(sharing.role_a).keys())
