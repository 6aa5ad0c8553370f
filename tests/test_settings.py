"""metadata.tracker, checked: every unusable field keeps its default and is explained."""

from __future__ import annotations

from typing import Any

import pytest

from tracker.settings import TrackerSettings, tracker_settings


def test_usable_metadata_is_kept_as_given() -> None:
    settings = tracker_settings({
        "project": " churn ", "name": "baseline", "labels": ["gpu", "v2"],
        "catalog": "../runs/catalog.duckdb",
        "capture": {"enabled": False, "include": ["/scratch/**"], "exclude": ["**/*.log"]},
        "reproduce": {"ignore": ["logs/*", "metrics.*_seconds"]},
        "future_setting": {"anything": 1}})  # unknown fields are left for newer versions
    assert settings == TrackerSettings(
        project="churn", name="baseline", labels=("gpu", "v2"), catalog="../runs/catalog.duckdb",
        capture_enabled=False, capture_include=("/scratch/**",), capture_exclude=("**/*.log",),
        reproduce_ignore=("logs/*", "metrics.*_seconds"))


def test_missing_or_null_metadata_is_all_defaults() -> None:
    assert tracker_settings(None) == TrackerSettings()
    assert tracker_settings({}) == TrackerSettings()
    assert tracker_settings({"project": None, "capture": None}) == TrackerSettings()


def test_one_label_as_text_is_a_list_of_one() -> None:
    assert tracker_settings({"labels": "nightly"}).labels == ("nightly",)


@pytest.mark.parametrize(("metadata", "field", "says"), [
    ({"labels": 5}, "labels", "must be a list of text, not a number (5); using no labels"),
    ({"labels": True}, "labels", "not true/false (true)"),
    ({"labels": ["ok", {"a": 1}]}, "labels", "entry 1 must be text, not an object"),
    ({"labels": ["x"] * 101}, "labels", "has 101 entries (at most 100)"),
    ({"labels": [""]}, "labels", "entry 0 is empty"),
    ({"project": 5}, "project", "must be text, not a number (5); using the default project"),
    ({"project": ""}, "project", "is empty"),
    ({"project": "x" * 1_000_000}, "project", "is 1,000,000 characters long (at most 200)"),
    ({"project": "a\x00b"}, "project", "holds control characters"),
    ({"project": "a\ud800"}, "project", "holds control characters"),
    ({"name": ["a", ["b", ["c"]]]}, "name", "must be text, not a list"),
    ({"name": "line\nbreak"}, "name", "holds control characters"),
    ({"catalog": 123}, "catalog", "must be text, not a number (123); using the default catalog"),
    ({"catalog": "postgresql://u@h/db"}, "catalog",
     "team catalogs on a server are not supported yet; using the default catalog"),
    ({"catalog": "s3://bucket/catalog.duckdb"}, "catalog", "is a server"),
    ({"catalog": "   "}, "catalog", "is empty"),
    ({"catalog": "~/.ipython/profile_default/startup/00-x.py"}, "catalog",
     "it must end in .duckdb; using the default catalog"),
    ({"catalog": "catalog.duckdb/../.bashrc"}, "catalog", "must end in .duckdb"),
    ({"capture": {"enabled": "no"}}, "capture.enabled", "must be true or false"),
    ({"capture": {"include": [1]}}, "capture.include", "entry 0 must be text"),
    ({"capture": {"exclude": {"*.log": True}}}, "capture.exclude", "must be a list of text"),
    ({"reproduce": {"ignore": [3]}}, "reproduce.ignore", "entry 0 must be text"),
])
def test_an_unusable_field_keeps_its_default_and_is_named(metadata: dict[str, Any], field: str,
                                                          says: str) -> None:
    settings = tracker_settings(metadata)
    assert settings == TrackerSettings(problems=settings.problems)  # every setting a default
    [problem] = settings.problems
    assert problem.startswith(f"metadata.tracker.{field} ")
    assert says in problem
    assert len(problem) < 300  # huge or nested values are cut


def test_other_fields_are_kept_when_one_is_unusable() -> None:
    settings = tracker_settings({"project": "vision", "labels": 5, "capture": {"enabled": 1}})
    assert (settings.project, settings.labels, settings.capture_enabled) == ("vision", None, True)
    assert [problem.split()[0] for problem in settings.problems] == [
        "metadata.tracker.labels", "metadata.tracker.capture.enabled"]


@pytest.mark.parametrize("metadata", [5, "churn", ["project"], True])
def test_metadata_that_is_not_an_object_is_ignored_with_one_problem(metadata: Any) -> None:
    settings = tracker_settings(metadata)
    assert settings == TrackerSettings(problems=settings.problems)
    [problem] = settings.problems
    assert problem.startswith("metadata.tracker must be an object")


@pytest.mark.parametrize("group", ["capture", "reproduce"])
def test_a_group_that_is_not_an_object_is_one_problem(group: str) -> None:
    settings = tracker_settings({group: ["enabled"]})
    assert settings.problems == (
        f'metadata.tracker.{group} must be an object, not a list (["enabled"]); '
        "using the defaults",)


def test_keep_policy_from_metadata() -> None:
    settings = tracker_settings({"keep": {"output_max": "5 MiB", "run_max": 1000,
                                          "exclude": ["*.ckpt"]}})
    assert settings.keep == {"output_max": 5 << 20, "run_max": 1000, "exclude": ("*.ckpt",)}
    assert tracker_settings({"keep": False}).keep == {"enabled": False}


def test_an_unusable_keep_policy_keeps_the_defaults_and_says_why() -> None:
    settings = tracker_settings({"keep": {"output_max": "lots"}})
    assert settings.keep is None
    assert "metadata.tracker.keep field 'output_max' 'lots' is not a size" in settings.problems[0]
