"""Secrets are replaced by markers when recorded: the rules, the markers, and runs end to end."""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tracker
from tracker import redaction

# Built from pieces so that this file holds no credential-looking literal.
GITHUB_TOKEN = "ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3fG5"
MARKER = re.compile(r"^<redacted:(str|int|float|bool|none):[0-9a-f]{8}>$")


@pytest.fixture
def redactor(tmp_path: Path) -> redaction.Redactor:
    return redaction.Redactor(tmp_path / "catalog.duckdb.key", redaction.rules_from())


# -- which keys are secret --------------------------------------------------------------------


@pytest.mark.parametrize("key", [
    "password", "db_password", "DB_PASSWORD", "dbPassword", "passwd", "pwd", "passphrase",
    "secret", "client_secret", "secrets", "SECRET_KEY", "api_key", "apikey", "apiKey", "API-KEY",
    "access_key", "aws_secret_access_key", "private_key", "privateKey", "credentials",
    "google_credential", "creds", "auth", "authorization", "bearer", "token", "TOKEN",
    "access_token", "auth_token", "GITHUB_TOKEN", "hf_token", "refresh_token", "slackToken",
    "db.password", "database.credentials.user", "DB_PASS", "db_pass", "private_token",
    "npm_token", "PYPI_TOKEN", "sas_token", "AccountKey", "storage_account_key",
])
def test_secret_named_keys_are_recognised(redactor: redaction.Redactor, key: str) -> None:
    assert redactor.rules is not None and redactor.rules.secret_key(key)


@pytest.mark.parametrize("key", [
    "tokenizer", "max_tokens", "n_tokens", "num_tokens", "token_count", "max_token", "pad_token",
    "eos_token", "bos_token", "author", "authors", "authority", "secretary", "key", "sort_key",
    "primary_key", "passes", "compass", "lr", "learning_rate", "keyboard", "bypass",
    "second_pass", "forward_pass", "n_pass", "pass_count", "account", "account_id",
    "sas_url_expiry", "npm_version",
])
def test_ordinary_keys_are_not_secret(redactor: redaction.Redactor, key: str) -> None:
    assert redactor.rules is not None and not redactor.rules.secret_key(key)


# Pieces a key is built from in the next test: the default rules' words, near misses, case
# changes and separators, so that generated keys cross every branch of the key pattern.
_KEY_PIECES = ["pass", "Pass", "PASS", "word", "wd", "pwd", "cred", "s", "ential", "secret",
               "key", "Key", "KEY", "auth", "o", "orization", "bearer", "cookie", "token",
               "Token", "api", "access", "db", "sql", "root", "pad", "max", "er", "ors", "_",
               "-", ".", " ", "1", "\u212a", "ß", "T"]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_KEY_PIECES), max_size=6).map("".join) | st.text(max_size=12))
def test_the_quick_key_check_never_changes_a_decision(key: str) -> None:
    """secret_key() answers most keys from a cheap search for the pattern's letters: whatever
    the key, the answer is the one the words of the key give under the full patterns."""
    rules = redaction.rules_from()
    assert rules is not None
    words = "_" + re.sub(r"(?<=[a-z0-9])(?=[A-Z])|[^A-Za-z0-9]+", "_", key).strip("_").lower() \
        + "_"
    expected = bool(rules.keys.search(words)) and not rules.tokenizer.search(words)
    assert rules.secret_key(key) == expected


# -- which values are credentials -------------------------------------------------------------


CREDENTIALS = {
    "aws access key": "AKIA" + "IOSFODNN7EXAMPLE",
    "github token": GITHUB_TOKEN,
    "github fine-grained": "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "slack": "xoxb-" + "123456789012-abcdefABCDEF",
    "jwt": "eyJ" + "hbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n",
    "google": "AIza" + "SyA1234567890abcdefghijklmnopqrstuv",
    "openai": "sk-" + "proj-abcdefghijklmnopqrstuvwxyz012345",
    "stripe": "sk_live_" + "abcdefghijklmnop1234",
    "hugging face": "hf_" + "abcdefghijklmnopqrstuvwxyz123456",
    "gitlab": "glpat-" + "aBcDeFgHiJkLmNoPqRsT12",
    "npm": "npm_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
    "pypi": "pypi-" + "AgEIcHlwaS5vcmcCJGFiY2RlZjEyLTM0NTYtNzg5MC1hYmNkLWVmMDEyMzQ1Njc4OQ",
    "private key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEow" + "IBAAKCAQEA\n-----END RSA "
                   "PRIVATE KEY-----",
}


@pytest.mark.parametrize("name", sorted(CREDENTIALS))
def test_credentials_in_text_become_markers(redactor: redaction.Redactor, name: str) -> None:
    secret = CREDENTIALS[name]
    scrubbed = redactor.text(f"before {secret} after")
    assert secret not in scrubbed
    assert re.fullmatch(r"before <redacted:str:[0-9a-f]{8}> after", scrubbed), scrubbed


def test_only_the_password_of_a_url_goes(redactor: redaction.Redactor) -> None:
    scrubbed = redactor.text("postgresql://analyst:hunter2@db.internal:5432/sales")
    assert re.fullmatch(r"postgresql://analyst:<redacted:str:[0-9a-f]{8}>@db.internal:5432/sales",
                        scrubbed)


def test_an_aws_secret_key_is_recognised_beside_its_name(redactor: redaction.Redactor) -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
    assert secret not in (redactor.text(f"aws_secret_access_key: {secret}") or "")
    path = "home/analyst/Projects/Experiments2024/run"  # alike, and not a secret
    assert redactor.text(f"wrote {path}") == f"wrote {path}"


def test_secret_named_pairs_in_text_lose_their_values(redactor: redaction.Redactor) -> None:
    scrubbed = redactor.text('connect failed: password="hunter2" user=bob max_tokens=512') or ""
    assert "hunter2" not in scrubbed
    assert "user=bob max_tokens=512" in scrubbed


def test_an_http_credential_loses_its_token_and_keeps_its_scheme(
        redactor: redaction.Redactor) -> None:
    bearer = redactor.text("Authorization: Bearer " + "abcdefghijklmnopqrstuvwx") or ""
    assert re.fullmatch(r"Authorization: Bearer <redacted:str:[0-9a-f]{8}>", bearer), bearer
    basic = redactor.text("curl -H 'Authorization: Basic " + "YWxhZGRpbjpvcGVuc2VzYW1l'") or ""
    assert "YWxhZGRpbjpvcGVuc2VzYW1l" not in basic and "Basic <redacted:str:" in basic


def test_an_azure_account_key_is_recognised(redactor: redaction.Redactor) -> None:
    key = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsu"
           + "Fq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")
    scrubbed = redactor.text(f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={key};"
                             "EndpointSuffix=core.windows.net") or ""
    assert key not in scrubbed and "AccountName=acct;AccountKey=<redacted:str:" in scrubbed


@pytest.mark.parametrize("text", [
    "lr=0.1 on the full data", "see https://example.org/a:b", "12:30 run", "sk-learn",
    "the author wrote 512 tokens", "xxh3_128:" + "0" * 32, "ghp_short",
    "basic settings are fine", "Basic understanding", "Bearer authentication", "npm_install",
    "pypi-mirror", "the bearer of this letter",
])
def test_ordinary_text_is_left_alone(redactor: redaction.Redactor, text: str) -> None:
    assert redactor.text(text) == text


# -- markers ----------------------------------------------------------------------------------


def test_a_marker_keeps_the_kind_and_equal_secrets_give_equal_markers(
        redactor: redaction.Redactor) -> None:
    first, kind = redactor.param("db_password", "hunter2", "str")
    assert MARKER.match(first) and first.startswith("<redacted:str:") and kind == "redacted"
    assert redactor.param("api_key", "hunter2", "str")[0] == first
    assert redactor.param("db_password", "hunter3", "str")[0] != first
    assert redactor.param("pin_secret", 1234, "int")[0].startswith("<redacted:int:")


def test_markers_are_keyed_by_a_private_key_file_per_catalog(tmp_path: Path) -> None:
    one = redaction.Redactor(tmp_path / "a.key", redaction.rules_from())
    again = redaction.Redactor(tmp_path / "a.key", redaction.rules_from())
    other = redaction.Redactor(tmp_path / "b.key", redaction.rules_from())
    marker = one.marker("hunter2", "str")
    assert again.marker("hunter2", "str") == marker  # the key file is made once, then read
    assert other.marker("hunter2", "str") != marker  # a plain hash would match a guess
    assert (tmp_path / "a.key").stat().st_mode & 0o777 == 0o600


def test_an_unusable_key_file_still_redacts_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "bad.key").write_text("not hex")
    redactor = redaction.Redactor(tmp_path / "bad.key", redaction.rules_from())
    with pytest.warns(tracker.TrackerWarning, match="compare only within this process"):
        marker = redactor.marker("hunter2", "str")
    assert MARKER.match(marker)


def test_a_fifo_as_the_key_file_does_not_hang_logging(
        tmp_path: Path, call_near_fifo: Callable[[Path, Callable[[], Any]], Any]) -> None:
    key = tmp_path / "c.duckdb.key"
    os.mkfifo(key)
    redactor = redaction.Redactor(key, redaction.rules_from())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stored = call_near_fifo(key, lambda: redactor.param("api_key", "hunter2", "str"))
    assert MARKER.match(stored[0])
    assert [str(w.message) for w in caught if "not a regular file" in str(w.message)]


def test_a_failure_to_check_stores_a_marker_and_warns(redactor: redaction.Redactor,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(text: str) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr(redactor, "_pairs", broken)
    with pytest.warns(tracker.TrackerWarning, match="could not be checked"):
        assert redactor.param("note", "a=b", "str") == ("<redacted:str:unchecked>", "str")


# -- cell sources -----------------------------------------------------------------------------


def test_secret_literals_in_code_keep_the_code_shape(redactor: redaction.Redactor) -> None:
    source = (
        "%matplotlib inline\n"
        'db_password = "hunter2"\n'
        "os.environ['API_KEY'] = 'abc123'\n"
        "token: str = 'tok-1'\n"
        'config = {"password": "pw1", "user": "bob"}\n'
        'engine = connect(host="db", password="pw2", port=5432)\n'
        "tokenizer = 'bert-base'\n"
        f"headers = {{'X-Trace': '{GITHUB_TOKEN}'}}\n"
        "user, passwd = 'bob', 'pw3'\n"
        "%env DB_PASSWORD=pw4\n"
    )
    scrubbed = redactor.source(source)
    for secret in ("hunter2", "abc123", "tok-1", "pw1", "pw2", "pw3", "pw4", GITHUB_TOKEN):
        assert secret not in scrubbed
    lines = scrubbed.splitlines()
    assert lines[0] == "%matplotlib inline"
    assert re.fullmatch(r'db_password = "<redacted:str:[0-9a-f]{8}>"', lines[1])
    assert lines[1].split('"')[1] == redactor.param("db_password", "hunter2", "str")[0]
    assert lines[4].endswith('"user": "bob"}') and 'host="db"' in lines[5]
    assert lines[6] == "tokenizer = 'bert-base'"
    assert lines[8].startswith("user, passwd = 'bob', \"<redacted:str:")
    assert lines[9].startswith("%env DB_PASSWORD=<redacted:str:")


@pytest.mark.parametrize("source", [
    'config = {"pass" "word": "hunter2"}',  # joined by Python: no piece is a secret's name
    'config = {"pa"  # split\n          "ssword": "hunter2"}',
    "config = {'pa' r'ssword': 'hunter2'}",
    'config = {"\\x70assword": "hunter2"}',  # an escape spells the name
    "ｐassword = 'hunter2'",  # Python reads the name as "password" (NFKC)
    "API_KEY = 'hunter2'",  # the check is case-blind
])
def test_secret_names_the_code_does_not_spell_out_are_still_found(
        redactor: redaction.Redactor, source: str) -> None:
    assert "hunter2" not in redactor.source(source)


def test_code_naming_no_secret_is_kept_as_written(redactor: redaction.Redactor) -> None:
    source = "with open('big.bin', 'wb') as out:\n    out.write(payload)  # 'x'\n"
    assert redactor.source(source) == source


def test_a_cell_whose_continuation_line_starts_with_an_operator_loses_its_secret(
        redactor: redaction.Redactor) -> None:
    scrubbed = redactor.source('api_token = "plainword"\nmsg = ("n: %d"\n       % n)\n')
    assert "plainword" not in scrubbed
    assert scrubbed.endswith('"\nmsg = ("n: %d"\n       % n)\n')


def test_a_cell_with_a_magic_on_several_lines_loses_its_secret(
        redactor: redaction.Redactor) -> None:
    scrubbed = redactor.source('db_password = "hunter2xyz"\n!pip install \\\n    requests\n')
    assert "hunter2xyz" not in scrubbed
    assert scrubbed.endswith('"\n!pip install \\\n    requests\n')


def test_the_space_form_of_env_magic_loses_its_secret(redactor: redaction.Redactor) -> None:
    scrubbed = redactor.source("%env DB_PASSWORD hunter7secret\n%env EPOCHS 10\n")
    assert re.fullmatch(r"%env DB_PASSWORD <redacted:str:[0-9a-f]{8}>\n%env EPOCHS 10\n",
                        scrubbed), scrubbed


def test_code_that_does_not_parse_still_loses_its_credentials(
        redactor: redaction.Redactor) -> None:
    scrubbed = redactor.source(f"if True:\nkey = '{GITHUB_TOKEN}'  # (bad indent)")
    assert GITHUB_TOKEN not in scrubbed and scrubbed.startswith("if True:\nkey = '<redacted")


def test_non_ascii_before_a_secret_literal_is_kept(redactor: redaction.Redactor) -> None:
    scrubbed = redactor.source('label = "é"; secret = "hunter2"  # ü\n')
    assert scrubbed.startswith('label = "é"; secret = "<redacted:str:')
    assert scrubbed.endswith('"  # ü\n')


# -- settings ---------------------------------------------------------------------------------


def test_extra_patterns_and_the_off_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKER_REDACT_KEYS", "^ssn$|iban")
    monkeypatch.setenv("TRACKER_REDACT_VALUES", r"ACME-[0-9]{6}")
    rules = redaction.rules_from()
    assert rules is not None and rules.secret_key("ssn") and rules.secret_key("customer_IBAN")
    assert not rules.secret_key("ssn_count")
    assert rules.values.search("order ACME-123456")
    monkeypatch.setenv("TRACKER_REDACT", "0")
    assert redaction.rules_from() is None
    monkeypatch.delenv("TRACKER_REDACT")
    assert redaction.rules_from(False) is None  # metadata.tracker.redact: false
    extra = redaction.rules_from({"keys": ["^pin$"], "values": "ZZ[0-9]{4}"})
    assert extra is not None and extra.secret_key("pin") and extra.values.search("ZZ1234")


def test_a_bad_extra_pattern_is_a_warning_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKER_REDACT_KEYS", "([unclosed")
    with pytest.warns(tracker.TrackerWarning, match="pattern"):
        rules = redaction.rules_from()
    assert rules is not None and rules.secret_key("password")


# -- runs, end to end -------------------------------------------------------------------------


def test_a_secret_param_is_stored_as_a_marker(catalog: tracker.Catalog) -> None:
    with catalog.start_run("login", params={"db_password": "hunter2", "lr": 0.1}) as run:
        run.log_param("tokenizer", "bert-base")
        run.log_param("max_tokens", 512)
        run.log_param("dsn", "postgresql://analyst:hunter2@db/sales")
    info = catalog.get_run(run.id)
    assert MARKER.match(info.params["db_password"])
    assert run.params["db_password"] == info.params["db_password"]  # in memory too
    assert info.params["lr"] == 0.1 and info.params["max_tokens"] == 512
    assert info.params["tokenizer"] == "bert-base"
    assert "hunter2" not in info.params["dsn"] and info.params["dsn"].startswith("postgresql://")
    table = catalog.runs()
    assert table.loc[0, "params.db_password"] == info.params["db_password"]


def test_a_known_secret_is_redacted_under_any_name(catalog: tracker.Catalog) -> None:
    with catalog.start_run("copied", params={"db_password": "hunter2-horse"}) as run:
        run.log_param("backup", "hunter2-horse")  # the same secret, logged under a plain name
        run.log_param("short", "abc")
    info = catalog.get_run(run.id)
    assert info.params["backup"] == info.params["db_password"] and info.params["short"] == "abc"


def test_a_known_secret_is_replaced_only_as_a_whole_token(catalog: tracker.Catalog) -> None:
    with catalog.start_run("near", params={"db_password": "hunter22"}) as run:
        run.log_param("texts", ("hunter22x", "hunter22 again"))
    info = catalog.get_run(run.id)
    assert info.params["texts"] == ["hunter22x", f"{info.params['db_password']} again"]


def test_a_marker_is_kept_as_it_is(redactor: redaction.Redactor) -> None:
    marker, _ = redactor.param("db_password", "hunter2", "str")
    assert redactor.param("db_password", marker, "redacted") == (marker, "redacted")
    assert redactor.value("api_key", marker) == marker


def test_artifact_uris_lose_their_credentials(catalog: tracker.Catalog) -> None:
    aws_key = "AKIA" + "IOSFODNN7EXAMPLE"
    with catalog.start_run("uris") as run:
        run.log_input("https://bob:Sup3rS3cret2@example.com/data.csv")
        run.log_output(f"s3://{aws_key}:wJalrXUtnFEMI@bucket/x")
    uris = " ".join(catalog.sql("SELECT uri FROM artifacts")["uri"])
    assert "Sup3rS3cret2" not in uris and aws_key not in uris and "wJalrXUtnFEMI" not in uris
    assert "https://bob:<redacted:str:" in uris


def test_notes_names_and_errors_are_scrubbed(catalog: tracker.Catalog) -> None:
    with pytest.raises(RuntimeError), catalog.start_run(
            "nightly", notes=f"pushed with {GITHUB_TOKEN}") as run:
        raise RuntimeError(f"login failed for token {GITHUB_TOKEN}")
    info = catalog.get_run(run.id)
    assert GITHUB_TOKEN not in (info.notes or "") and "<redacted:str:" in (info.notes or "")
    assert GITHUB_TOKEN not in (info.error or "") and info.error.startswith("RuntimeError")
    updated = catalog.update_run(run.id, notes=f"rotated {GITHUB_TOKEN}")
    assert GITHUB_TOKEN not in (updated.notes or "")


def test_nested_and_container_params_are_scrubbed(catalog: tracker.Catalog) -> None:
    with catalog.start_run("nested") as run:
        run.log_params({"db": {"password": "hunter2", "host": "db"}})
        run.log_param("tokens", [GITHUB_TOKEN, "plain"])
    info = catalog.get_run(run.id)
    assert MARKER.match(info.params["db.password"]) and info.params["db.host"] == "db"
    assert GITHUB_TOKEN not in json.dumps(info.params) and info.params["tokens"][1] == "plain"


def test_params_of_every_text_kind_are_scrubbed(catalog: tracker.Catalog) -> None:
    """Paths, bytes and enums are stored as text too: the same credentials go."""
    import enum

    url = "postgresql://alice:hunter2pass@db.internal/prod"
    target = enum.Enum("Target", {"PROD": url}).PROD
    with catalog.start_run("kinds") as run:
        run.log_params({"url_bytes": url.encode(), "target": target,
                        "cache": Path(f"/cache/{GITHUB_TOKEN}/x"), "plain": Path("/data/x")})
    stored = json.dumps(catalog.get_run(run.id).params)
    assert "hunter2pass" not in stored and GITHUB_TOKEN not in stored
    assert catalog.get_run(run.id).params["plain"] == "/data/x"


def test_runs_with_the_same_secret_compare_equal(catalog: tracker.Catalog) -> None:
    markers = []
    for password in ("hunter2", "hunter2", "swordfish"):
        with catalog.start_run(params={"db_password": password}) as run:
            pass
        markers.append(catalog.get_run(run.id).params["db_password"])
    assert all(MARKER.match(marker) for marker in markers)
    assert markers[0] == markers[1] != markers[2]
    same = catalog.runs("params.db_password = ?".replace("?", repr(markers[0])))
    assert len(same) == 2


def test_an_export_holds_no_secret(catalog: tracker.Catalog, tmp_path: Path) -> None:
    with catalog.start_run("shared", params={"api_key": "k-12345"},
                           notes=f"token {GITHUB_TOKEN}") as run:
        run.log_metric("acc", 0.9)
    descriptor = catalog.export_run(run.id, tmp_path / "shared.yaml")
    text = descriptor.read_text()
    assert "k-12345" not in text and GITHUB_TOKEN not in text and "<redacted:str:" in text


def test_the_spool_never_holds_a_secret(catalog: tracker.Catalog) -> None:
    run = catalog.start_run("spooled", params={"secret": "hunter2"}, notes=GITHUB_TOKEN)
    recorder = catalog.recorder
    recorder.spool()
    spooled = recorder.spool_path.read_bytes()
    run.end()
    assert b"hunter2" not in spooled and GITHUB_TOKEN.encode() not in spooled
    assert b"<redacted:str:" in spooled


def test_redaction_can_be_turned_off(catalog: tracker.Catalog,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKER_REDACT", "0")
    fresh = tracker.Catalog(catalog.path)  # settings are read when a catalog starts recording
    with fresh.start_run("clear", params={"db_password": "hunter2"}) as run:
        pass
    assert fresh.get_run(run.id).params["db_password"] == "hunter2"
    assert not redaction.key_file(fresh).exists()


def test_a_stored_notebook_is_a_scrubbed_copy(catalog: tracker.Catalog, tmp_path: Path) -> None:
    notebook = tmp_path / "analysis.ipynb"
    notebook.write_text(json.dumps({
        "cells": [
            {"cell_type": "code", "id": "c0", "metadata": {}, "execution_count": 1,
             "source": ["db_password = 'hunter2'\n", "print(db_password)"],
             "outputs": [{"output_type": "stream", "name": "stdout", "text": ["hunter2\n"]},
                         {"output_type": "error", "ename": "E", "evalue": GITHUB_TOKEN,
                          "traceback": [f"E: {GITHUB_TOKEN}"]},
                         {"output_type": "display_data", "metadata": {},
                          "data": {"image/png": "iVBORw0KGgo=", "text/plain": GITHUB_TOKEN}}]},
            {"cell_type": "markdown", "id": "m0", "metadata": {},
             "source": f"token: {GITHUB_TOKEN}"}],
        "metadata": {"papermill": {"parameters": {"db_password": "hunter2"}}},
        "nbformat": 4, "nbformat_minor": 5}))
    with catalog.start_run("stored") as run:
        run.record("stored", "notebook", str(notebook), 0.0)
    stored = next(a for a in catalog.get_run(run.id).artifacts if a["role"] == "notebook")
    blob = (catalog.blob_dir / stored["blob"]).read_bytes()
    assert GITHUB_TOKEN.encode() not in blob
    assert b"hunter2" not in blob  # printed too: a value known to be secret goes everywhere
    document = json.loads(blob)
    assert document["cells"][0]["source"].startswith('db_password = "<redacted:str:')
    assert MARKER.match(document["metadata"]["papermill"]["parameters"]["db_password"])
    assert document["cells"][0]["outputs"][2]["data"]["image/png"] == "iVBORw0KGgo="
    assert stored["hash"] == "xxh3_128:" + __import__("xxhash").xxh3_128_hexdigest(blob)


def test_a_notebook_may_turn_redaction_off_for_itself(tmp_path: Path) -> None:
    document = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [],
                           "source": "secret = 'hunter2'"}],
                "metadata": {"tracker": {"redact": False}}, "nbformat": 4, "nbformat_minor": 5}
    raw = json.dumps(document).encode()
    redactor = redaction.Redactor(tmp_path / "k.key", redaction.rules_from())
    assert redactor.notebook(raw) == raw
    assert not os.path.exists(tmp_path / "k.key")
