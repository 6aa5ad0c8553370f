"""A PostgreSQL catalog's store (tracker/storage/pg_store.py) on a real server: its schema is
created once, versioned and migrated in one transaction, a newer one refused; a server that
cannot be reached, a wrong password or a missing privilege is a CatalogError that never shows
the password; libpq's own conventions work (PGPASSFILE, PGSERVICE with PGSERVICEFILE, sslmode
in the URL) and a password read from any of them is never shown."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from pg_server import PASSWORD_ROLE
from pg_server import ROLE_PASSWORD as PASSWORD

from tracker.errors import CatalogError, CatalogVersionError, NotACatalogError
from tracker.storage import pg_access, pg_schema, schema
from tracker.storage.pg_store import PgStore


def _tables(url: str) -> dict[str, list[str]]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'tracker' ORDER BY table_name, ordinal_position").fetchall()
    tables: dict[str, list[str]] = {}
    for table, column in rows:
        tables.setdefault(table, []).append(column)
    return tables


def _version(url: str) -> str:
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT value FROM tracker.meta WHERE key = 'schema_version'").fetchone()
    assert row is not None
    return str(row[0])


def test_the_first_connection_creates_the_file_catalogs_tables(pg_url: str) -> None:
    with PgStore(pg_url, 10).connect() as connection:
        assert connection.execute("SELECT count(*) FROM runs").fetchone() == (0,)
    tables = _tables(pg_url)
    # and its own: who sees which project, each project's keys and what its runs reference
    # (pg_access), the stored notebooks (pg_blobs)
    own = {pg_access.GRANTS, pg_access.KEYS, *pg_access.VIEWS, "blobs", pg_schema.VALUES}
    assert set(tables) == set(schema.TABLES) - set(pg_schema.LEFT_OUT) | own
    for table in own:
        del tables[table]
    for table, names in tables.items():
        expected = [name for name in schema.column_names(table) if name != "values_fresh"]
        assert names[:len(expected)] == expected, table
    assert _version(pg_url) == str(schema.SCHEMA_VERSION)


def test_a_read_only_connection_refuses_writes(pg_url: str) -> None:
    store = PgStore(pg_url, 10)
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction), store.connect() as connection:
        connection.execute("DELETE FROM runs")
    with store.connect(write=True) as connection:
        connection.execute("INSERT INTO meta VALUES ('note', 'kept')")
    with store.connect() as connection:
        assert connection.execute("SELECT value FROM meta WHERE key = 'note'").fetchone() == \
            ("kept",)


def test_every_session_reads_without_jit_and_sorts_a_large_filter_in_memory(pg_url: str) -> None:
    # set per connection, not per read: a read costs no round trip for them, and a granted
    # role's file reads (row-level security) are not JIT-compiled either
    store = PgStore(pg_url, 10)
    for keep in (True, False):  # kept ones and the fresh one a user's sql() gets
        with store.connect(keep=keep) as connection:
            assert connection.execute("SELECT current_setting('jit'), "
                                      "current_setting('work_mem')").fetchone() == ("off", "32MB")


def test_a_failed_operation_writes_nothing(pg_url: str) -> None:
    store = PgStore(pg_url, 10)
    with pytest.raises(RuntimeError), store.connect(write=True) as connection:
        connection.execute("INSERT INTO meta VALUES ('note', 'lost')")
        raise RuntimeError("the caller failed")
    with store.connect() as connection:
        assert connection.execute("SELECT count(*) FROM meta WHERE key = 'note'").fetchone() \
            == (0,)


def test_processes_starting_together_create_the_catalog_once(pg_url: str,
                                                             tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        from tracker.storage.pg_store import PgStore
        with PgStore({pg_url!r}, 30).connect(write=True) as connection:
            connection.execute("INSERT INTO meta VALUES (%s, 'here')", [__import__('sys').argv[1]])
    """)
    workers = [subprocess.Popen([sys.executable, "-c", code, f"worker{n}"],
                                stderr=subprocess.PIPE, text=True) for n in range(6)]
    errors = [worker.communicate(timeout=120)[1] for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * 6, errors
    with psycopg.connect(pg_url) as connection:
        assert connection.execute("SELECT count(*) FROM tracker.meta WHERE value = 'here'"
                                  ).fetchone() == (6,)


def test_a_newer_catalog_is_refused(pg_url: str) -> None:
    with PgStore(pg_url, 10).connect():
        pass
    with psycopg.connect(pg_url) as connection:
        connection.execute("UPDATE tracker.meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(CatalogVersionError, match="version 99, newer") as refused:
        with PgStore(pg_url, 10).connect():
            pass
    assert refused.value.version == 99
    assert _version(pg_url) == "99"


def _older(url: str) -> None:
    """Make the catalog at ``url`` one version older than this tracker's."""
    with PgStore(url, 10).connect():
        pass
    with psycopg.connect(url) as connection:
        connection.execute("UPDATE tracker.meta SET value = %s WHERE key = 'schema_version'",
                           [str(schema.SCHEMA_VERSION - 1)])


def test_a_migration_is_one_transaction(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _older(pg_url)

    def broken(connection: Any) -> None:
        connection.execute("CREATE TABLE half_done (x int)")
        connection.execute("ALTER TABLE runs ADD COLUMN nonsense nonsense_type")

    monkeypatch.setitem(pg_schema.MIGRATIONS, schema.SCHEMA_VERSION - 1, broken)
    with pytest.raises(psycopg.errors.UndefinedObject), PgStore(pg_url, 10).connect():
        pass
    assert "half_done" not in _tables(pg_url)
    assert _version(pg_url) == str(schema.SCHEMA_VERSION - 1)

    def adds(connection: Any) -> None:
        connection.execute("CREATE TABLE added (x int)")

    monkeypatch.setitem(pg_schema.MIGRATIONS, schema.SCHEMA_VERSION - 1, adds)
    with PgStore(pg_url, 10).connect():
        pass
    assert "added" in _tables(pg_url)
    assert _version(pg_url) == str(schema.SCHEMA_VERSION)


def drop_values(url: str) -> None:
    """Take the catalog at ``url`` back to before ``latest_values`` (same schema version), and
    so before the access control that came after it: the policies of the shared tables."""
    with psycopg.connect(url) as connection:
        for function in ("keep_latest", "drop_latest"):  # and their triggers
            connection.execute(f"DROP FUNCTION tracker.{function}() CASCADE")
        # and the key lists' policies, which read it
        connection.execute(f"DROP TABLE tracker.{pg_schema.VALUES} CASCADE")
        connection.execute("DROP FUNCTION tracker.latest_of(text)")
        connection.execute("DROP FUNCTION tracker.file_version, tracker.blob_in_use CASCADE")


def test_a_catalog_from_before_the_value_table_gets_it_filled(pg_url: str) -> None:
    with PgStore(pg_url, 10).connect(write=True) as connection:
        connection.execute("INSERT INTO runs (id, status, started_at, params, metrics) "
                           "VALUES ('r1', 'completed', now(), '{\"lr\": 0.1}', "
                           "'{\"acc\": 0.5}')")
    drop_values(pg_url)
    with PgStore(pg_url, 10).connect() as connection:  # a tracker that has it connects
        rows = connection.execute("SELECT run_id, namespace, key, number FROM latest_values "
                                  "ORDER BY namespace").fetchall()
    assert rows == [("r1", "metrics", "acc", 0.5), ("r1", "params", "lr", 0.1)]
    with PgStore(pg_url, 10).connect(write=True) as connection:  # and the trigger keeps it
        connection.execute("UPDATE runs SET params = '{\"lr\": 0.3}'")
        assert connection.execute("SELECT number FROM latest_values WHERE key = 'lr'"
                                  ).fetchall() == [(0.3,)]


def _value_indexes(url: str) -> list[str]:
    with psycopg.connect(url) as connection:
        return [row[0] for row in connection.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'tracker' AND tablename = %s "
            "ORDER BY 1", [pg_schema.VALUES]).fetchall()]


def test_a_catalog_from_before_the_value_indexes_gets_them_from_its_owner(
        pg_cluster: Any, pg_url: str) -> None:
    """The value table's first indexes could not answer a filter alone (the text's key was in
    the table, not the index): the owner's next connection replaces them, in its check's
    transaction; another role's connection leaves them, and reads on."""
    with PgStore(pg_url, 10).connect(write=True) as connection:
        connection.execute("INSERT INTO runs (id, status, started_at, params) VALUES "
                           "('r1', 'completed', now(), '{\"model\": \"cnn\"}')")
    with psycopg.connect(pg_url) as connection:  # the indexes as the first version made them
        for name, _ in pg_schema.VALUE_INDEXES:
            connection.execute(f"DROP INDEX tracker.{name}")
        connection.execute("CREATE INDEX latest_values_number ON tracker.latest_values "
                            "(namespace, key, nullif(number, 'NaN'::float8)) INCLUDE (run_id)")
        connection.execute("CREATE INDEX latest_values_text ON tracker.latest_values "
                            "USING hash (text_value)")
    old = ["latest_values_number", "latest_values_pkey", "latest_values_text"]
    assert _value_indexes(pg_url) == old
    database = pg_url.split("@/")[1].split("?")[0]
    pg_cluster.admin("CREATE ROLE reader_of_values LOGIN")
    pg_cluster.admin("GRANT USAGE ON SCHEMA tracker TO reader_of_values", database)
    pg_cluster.admin("GRANT SELECT ON ALL TABLES IN SCHEMA tracker TO reader_of_values",
                     database)
    other = pg_cluster.url(database, "reader_of_values")
    with PgStore(other, 10).connect() as connection:  # not the owner: may not, reads on
        # (row-level security shows it no run: no project is granted to it)
        assert connection.execute("SELECT count(*) FROM latest_values").fetchone() == (0,)
    assert _value_indexes(pg_url) == old
    with PgStore(pg_url, 10).connect() as connection:
        pass
    assert _value_indexes(pg_url) == sorted(
        ["latest_values_pkey", *(name for name, _ in pg_schema.VALUE_INDEXES)])


def _tag_values_nullable(url: str) -> bool:
    with psycopg.connect(url) as connection:
        return connection.execute(
            "SELECT is_nullable FROM information_schema.columns WHERE table_schema = 'tracker' "
            "AND table_name = 'tags' AND column_name = 'value'").fetchone() == ("YES",)


def test_an_older_catalog_is_upgraded_by_its_owner_only(pg_cluster: Any, pg_url: str) -> None:
    _older(pg_url)  # version 7: a tag had a value or no row
    with psycopg.connect(pg_url) as connection:
        connection.execute("ALTER TABLE tracker.tags ALTER COLUMN value SET NOT NULL")
    database = pg_url.split("@/")[1].split("?")[0]
    pg_cluster.admin("CREATE ROLE member_of_team LOGIN")
    pg_cluster.admin("GRANT USAGE ON SCHEMA tracker TO member_of_team", database)
    pg_cluster.admin("GRANT SELECT ON ALL TABLES IN SCHEMA tracker TO member_of_team", database)
    with pytest.raises(CatalogVersionError, match="only its owner may upgrade it"):
        with PgStore(pg_cluster.url(database, "member_of_team"), 10).connect():
            pass
    assert _version(pg_url) == str(schema.SCHEMA_VERSION - 1)
    assert not _tag_values_nullable(pg_url)
    with PgStore(pg_url, 10).connect():  # the owner
        pass
    assert _version(pg_url) == str(schema.SCHEMA_VERSION) and _tag_values_nullable(pg_url)


def test_every_schema_version_since_postgres_began_has_a_postgres_migration() -> None:
    missing = [version for version in range(pg_schema.FIRST_VERSION, schema.SCHEMA_VERSION)
               if version not in pg_schema.MIGRATIONS]
    assert missing == [], "add tracker.storage.pg_schema.MIGRATIONS for these versions"


def test_a_database_with_other_tables_in_the_tracker_schema_is_left_untouched(
        pg_url: str) -> None:
    with psycopg.connect(pg_url) as connection:
        connection.execute("CREATE SCHEMA tracker")
        connection.execute("CREATE TABLE tracker.invoices (n int)")
    with pytest.raises(NotACatalogError, match="not a tracker catalog"):
        with PgStore(pg_url, 10).connect():
            pass
    assert _tables(pg_url) == {"invoices": ["n"]}


def test_a_server_that_cannot_be_reached_is_a_catalog_error(tmp_path: Path) -> None:
    url = f"postgresql://alice:{quote(PASSWORD, safe='')}@/runs?host={tmp_path}&port=5999"
    with pytest.raises(CatalogError, match="cannot connect to the catalog") as refused:
        with PgStore(url, 2).connect():
            pass
    assert "pa" not in str(refused.value).split("alice:")[1].split("@")[0]
    assert "alice:***@" in str(refused.value)
    assert repr(PgStore(url, 2)) == f"PgStore('postgresql://alice:***@/runs?host={tmp_path}&port=5999')"


@pytest.fixture
def password_role(pg_cluster: Any, pg_url: str) -> str:
    """The test's database, owned by the role that must give PASSWORD (the cluster asks it
    for one)."""
    database = pg_url.split("/")[3].split("?")[0]
    pg_cluster.admin(f"ALTER DATABASE {database} OWNER TO {PASSWORD_ROLE}")
    return database


def test_a_password_in_the_url_works_and_a_wrong_one_is_never_shown(
        pg_cluster: Any, password_role: str) -> None:
    role = PASSWORD_ROLE
    with PgStore(pg_cluster.url(password_role, role, PASSWORD), 10).connect() as connection:
        assert connection.execute("SELECT current_user").fetchone() == (role,)
    wrong = "wr0ng-" + PASSWORD
    with pytest.raises(CatalogError, match="password authentication failed") as refused:
        with PgStore(pg_cluster.url(password_role, role, wrong), 10).connect():
            pass
    assert "wr0ng" not in str(refused.value) + refused.value.path


def test_libpq_finds_the_password_in_pgpassfile(pg_cluster: Any, password_role: str,
                                                tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    passfile = tmp_path / "pgpass"
    escaped = PASSWORD.replace("\\", "\\\\").replace(":", "\\:")
    passfile.write_text(f"*:*:{password_role}:{PASSWORD_ROLE}:{escaped}\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    url = pg_cluster.url(password_role, PASSWORD_ROLE)
    assert PASSWORD not in url
    with PgStore(url, 10).connect(write=True) as connection:
        assert connection.execute("SELECT count(*) FROM runs").fetchone() == (0,)


def test_a_role_that_may_not_create_the_catalog_is_told_what_to_ask_for(
        pg_cluster: Any, pg_url: str) -> None:
    database = pg_url.split("/")[3].split("?")[0]
    visitor = f"visitor_{database}"
    pg_cluster.admin(f"CREATE ROLE {visitor} LOGIN")
    with pytest.raises(CatalogError, match="ask its owner to grant this role a project"):
        with PgStore(pg_cluster.url(database, visitor), 10).connect():
            pass


def test_an_operation_the_server_stops_is_not_called_unreachable(pg_url: str) -> None:
    store = PgStore(pg_url, 10)
    with store.connect(write=True) as connection:
        connection.execute("INSERT INTO meta VALUES ('row', 'x')")
    with psycopg.connect(pg_url) as holder:
        holder.execute("SELECT * FROM tracker.meta WHERE key = 'row' FOR UPDATE")
        with pytest.raises(CatalogError, match="stopped the operation .*lock timeout"):
            with store.connect(write=True) as connection:
                connection.execute("SET LOCAL lock_timeout = '100ms'")
                connection.execute("UPDATE meta SET value = 'y' WHERE key = 'row'")


def _service_file(path: Path, database: str, socket_dir: Path, password: str) -> Path:
    path.write_text(f"[team]\nhost={socket_dir}\nport=5432\ndbname={database}\n"
                    f"user={PASSWORD_ROLE}\npassword={password}\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("how", ["url", "environment"])
def test_libpq_reads_the_service_file_and_never_shows_its_password(
        pg_cluster: Any, password_role: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        how: str) -> None:
    services = _service_file(tmp_path / "services.conf", password_role, pg_cluster.socket_dir,
                             PASSWORD)
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    url = "postgresql://?service=team"
    if how == "environment":
        monkeypatch.setenv("PGSERVICE", "team")
        url = "postgresql://"
    store = PgStore(url, 10)
    with store.connect() as connection:
        assert connection.execute("SELECT current_user, current_database()").fetchone() == \
            (PASSWORD_ROLE, password_role)
    wrong = "wr0ng-" + PASSWORD
    _service_file(services, password_role, pg_cluster.socket_dir, wrong)
    with pytest.raises(CatalogError, match="password authentication failed") as refused:
        with PgStore(url, 10).connect():
            pass
    shown = f"{refused.value} {refused.value.path} {store!r}"
    assert "wr0ng" not in shown and PASSWORD not in shown


def test_a_wrong_password_in_pgpassfile_is_never_shown(
        pg_cluster: Any, password_role: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"*:*:*:{PASSWORD_ROLE}:wr0ng-secret\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    with pytest.raises(CatalogError, match="password authentication failed") as refused:
        with PgStore(pg_cluster.url(password_role, PASSWORD_ROLE), 10).connect():
            pass
    assert "wr0ng" not in f"{refused.value} {refused.value.path}"


@pytest.mark.parametrize("mode", ["disable", "prefer", "require"])
def test_sslmode_in_the_url_goes_to_libpq(pg_cluster: Any, password_role: str,
                                          mode: str) -> None:
    # libpq ignores sslmode on a Unix socket (the tests' server has no TCP port): what is
    # tested is that the URL reaches libpq whole, the password percent-encoded beside it
    url = pg_cluster.url(password_role, PASSWORD_ROLE, PASSWORD) + f"&sslmode={mode}"
    with PgStore(url, 10).connect() as connection:
        options = {option.keyword: option.val for option in connection.pgconn.info}
        assert options[b"sslmode"] == mode.encode()
        assert connection.execute("SELECT current_user").fetchone() == (PASSWORD_ROLE,)


def test_a_bad_sslmode_is_a_catalog_error_without_the_password(pg_cluster: Any,
                                                               password_role: str) -> None:
    url = pg_cluster.url(password_role, PASSWORD_ROLE, PASSWORD) + "&sslmode=bogus"
    with pytest.raises(CatalogError, match="sslmode") as refused:
        with PgStore(url, 10).connect():
            pass
    shown = f"{refused.value} {refused.value.path} {PgStore(url, 10)!r}"
    assert PASSWORD not in shown and quote(PASSWORD, safe="") not in shown
    assert f"{PASSWORD_ROLE}:***@" in shown
