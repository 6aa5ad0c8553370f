"""The named shapes of recorded events (tracker.events) and their spool lines, which must stay
readable: a spool a process of an earlier release left behind is still ingested."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

import tracker
from tracker import events

EVERY_KIND = [
    events.Start("r1", {"name": "a", "started_at": 1.0}),
    events.Param("r1", "lr", 0.1, "float", 2.0),
    events.Metric("r1", "loss", 0.5, 3, 2.0),
    events.Artifact("r1", "input", "s3://bucket/data.csv", None, 2.0),
    events.Stored("r1", "notebook", "/tmp/a.ipynb", 2.0),
    events.Cell("r1", {"seq": 1, "source": "x = 1", "success": True}),
    events.Env("r1", "env-1", {"python": "3.11"}),
    events.Update("r1", {"name": "renamed"}),
    events.End("r1", "completed", 3.0, None),
    events.Beat("r1", 2.5),
]


@pytest.mark.parametrize("event", EVERY_KIND, ids=lambda event: type(event).__name__)
def test_every_kind_reads_back_from_its_spool_line(event: events.Event) -> None:
    line = json.dumps(events.as_list(event))
    assert events.from_list(json.loads(line)) == event
    assert type(events.from_list(json.loads(line))) is type(event)


def test_a_line_is_the_kind_then_the_fields_in_order() -> None:
    metric = events.Metric("r1", "loss", 0.5, None, 2.0)
    assert events.as_list(metric) == ["metric", "r1", "loss", 0.5, None, 2.0]
    assert (metric.key, metric.value, metric.step) == ("loss", 0.5, None)


@pytest.mark.parametrize("items", [
    ["telemetry", "r1", 1], ["metric", "r1", "loss"], ["metric", 5, "loss", 0.5, None, 1.0],
    [], ["end"],
])
def test_what_fits_no_shape_is_refused(items: list[object]) -> None:
    with pytest.raises((ValueError, TypeError)):
        events.from_list(items)


# What a process of the release before named shapes wrote: `[seq, *event_tuple]`, one a line.
PREVIOUS_RELEASE = """\
[1, "start", "0old0run0001", {"name": "from-the-past", "project": "default", "started_at": 1700000000.0, "host": "HOST", "pid": PID, "process_start": null, "username": "me", "labels": ["old"], "notes": null, "parent_id": null}]
[2, "param", "0old0run0001", "lr", 0.01, "float", 1700000001.0]
[3, "metric", "0old0run0001", "loss", 0.25, 7, 1700000002.0]
[4, "artifact", "0old0run0001", "input", "https://example.com/data.csv", null, 1700000003.0]
[5, "cell", "0old0run0001", {"seq": 1, "execution_count": 1, "cell_id": null, "source_hash": "h", "source": "x = 1", "started_at": 1700000003.5, "duration": 0.1, "success": true, "error_type": null, "error_message": null}]
[6, "env", "0old0run0001", "env-old", {"python": "3.11.7"}]
[7, "set", "0old0run0001", {"notebook_name": "old.ipynb"}]
[8, "beat", "0old0run0001", 1700000004.0]
[9, "end", "0old0run0001", "completed", 1700000005.0, null]
"""  # noqa: E501 (spool lines are as long as they are)


def test_a_spool_left_by_the_previous_release_is_still_ingested(
        catalog: tracker.Catalog) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # the process that wrote the spool is gone
    host = socket.gethostname()
    catalog.spool_dir.mkdir(parents=True)
    owner = json.dumps({"owner": {"host": host, "pid": child.pid, "process_start": None}})
    lines = PREVIOUS_RELEASE.replace("HOST", host).replace("PID", str(child.pid))
    (catalog.spool_dir / f"{host}-{child.pid}-0old.jsonl").write_text(owner + "\n" + lines)

    run = catalog.get_run("0old0run0001")

    assert (run.name, run.status, run.labels, run.params) == (
        "from-the-past", "completed", ("old",), {"lr": 0.01})
    assert run.notebook_name == "old.ipynb"
    history = catalog.metric_history(run.id)
    assert (history["step"].tolist(), history["value"].tolist()) == ([7], [0.25])
    assert catalog.artifacts(run.id)["uri"].tolist() == ["https://example.com/data.csv"]
    assert catalog.sql("SELECT count(*) AS n FROM cells")["n"].tolist() == [1]
    assert catalog.sql("SELECT id FROM environments")["id"].tolist() == ["env-old"]
    assert list(catalog.spool_dir.glob("*.jsonl")) == []  # all of it is in the catalog
