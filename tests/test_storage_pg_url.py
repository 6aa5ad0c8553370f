"""PostgreSQL catalog URLs: recognised, and never shown with their password (in an error, a
warning, the CLI's output), whatever form the password takes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tracker.settings import tracker_settings
from tracker.storage.pg_url import is_postgres_url, redacted

SECRET = "s3cr#t:p@ss"  # ':' '@' and '#' inside: each cuts a naive parser short


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://alice@db.example:5432/runs", "postgresql://alice@db.example:5432/runs"),
    ("postgresql://alice:hunter2@db.example/runs", "postgresql://alice:***@db.example/runs"),
    ("postgres://alice:hunter2@h1:5432,h2:5433/runs?sslmode=require",
     "postgres://alice:***@h1:5432,h2:5433/runs?sslmode=require"),
    ("postgresql://alice:@db/runs", "postgresql://alice:***@db/runs"),
    (f"postgresql://alice:{SECRET}@db/runs", "postgresql://alice:***@db/runs"),
    ("postgresql:///runs?host=/run/pg&password=hunter2&sslmode=disable",
     "postgresql:///runs?host=/run/pg&password=***&sslmode=disable"),
    ("postgresql://db/runs?PASSWORD=hunter2", "postgresql://db/runs?PASSWORD=***"),
    ("postgresql://db/runs?service=team", "postgresql://db/runs?service=team"),
    ("postgresql://", "postgresql://"),
])
def test_a_password_is_hidden_and_nothing_else_changes(url: str, shown: str) -> None:
    assert redacted(url) == shown


@pytest.mark.parametrize("text", ["postgresql://u@h/db", "POSTGRES://u@h/db",
                                  " postgresql:///db"])
def test_postgres_urls_are_told_from_paths(text: str) -> None:
    assert is_postgres_url(text)


@pytest.mark.parametrize("text", ["catalog.duckdb", "postgresql.duckdb", "s3://b/c.duckdb",
                                  "/data/postgres://x"])
def test_paths_and_other_urls_are_not_postgres_urls(text: str) -> None:
    assert not is_postgres_url(text)


def test_notebook_metadata_naming_a_server_is_explained_without_the_password() -> None:
    settings = tracker_settings({"catalog": f"postgresql://alice:{SECRET}@db/runs"})
    assert settings.catalog is None
    said = " ".join(settings.problems)
    assert "is a server" in said and "alice:***@db" in said
    assert SECRET not in said


def test_the_cli_does_not_show_the_password(tmp_path: Path) -> None:
    url = f"postgresql://alice:{SECRET}@db.example/runs"
    done = subprocess.run([sys.executable, "-m", "tracker", "--catalog", url, "runs"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode != 0
    assert "alice:***@db.example" in done.stderr
    assert SECRET not in done.stdout + done.stderr
