"""The job protocol between the runner and the side scripts (tracker_side, mlflow_side).

Every measurement runs in a fresh subprocess: ``python -m benchmarks.<side> '<json job>'``.
The child prints protocol lines (``@@bench {json}``) as it goes: one per sample, then a final
``result``; anything else on stdout (MLflow chatter) is ignored. Streaming samples lets the
runner stop a slow MLflow query at the timeout and still keep the samples taken before it.
This module is stdlib only: the MLflow venv imports it too.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
_MARK = "@@bench "

Handler = Callable[[dict[str, Any]], dict[str, Any] | None]


# --- the child's half -------------------------------------------------------------------------


def serve(handlers: dict[str, Handler]) -> None:
    """Read the job from argv (or stdin), run its ``op`` and print the result line."""
    text = sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read()
    job = json.loads(text)
    result = handlers[job["op"]](job)
    emit({"result": result or {}})


def emit(payload: dict[str, Any]) -> None:
    """Print one protocol line and flush it, so the runner sees it at once."""
    print(_MARK + json.dumps(payload), flush=True)


def repeat(measure: Callable[[], float], *, repeats: int, budget_s: float,
           tag: str | None = None) -> list[float]:
    """Call ``measure`` (returns seconds) up to ``repeats`` times within ``budget_s``; emit each.

    At least one sample is always taken: a slow operation still gets its number. ``tag`` names
    the operation when a job measures several; the runner then knows which one was running.
    """
    samples: list[float] = []
    if tag is not None:
        emit({"begin": tag})
    started = time.perf_counter()
    while len(samples) < repeats:
        sample = measure()
        samples.append(sample)
        emit({"sample": sample} if tag is None else {"sample": sample, "tag": tag})
        if time.perf_counter() - started > budget_s:
            break
    return samples


def per_call_batch(log: Callable[[str, float], Any], *, kind: str,
                   size: int) -> Callable[[], float]:
    """A measurement of seconds per ``log`` call over ``size`` calls, the same on both sides.

    Params get distinct keys (MLflow refuses a new value for a logged param; tracker treats the
    same value again as a no-op); metrics all go to one key.
    """
    counter = iter(range(10**9))

    def batch() -> float:
        keys = [f"k{next(counter)}" for _ in range(size)]
        started = time.perf_counter()
        for i, key in enumerate(keys):
            log(key if kind == "param" else "loss", i * 0.5)
        return (time.perf_counter() - started) / len(keys)

    return batch


def error_kind(error: Exception) -> str:
    """How a failed call is counted: SQLite's lock error by its text, anything else by its type."""
    text = str(error)
    return "database is locked" if "database is locked" in text else type(error).__name__


def read_loop(read: Callable[[], Any], *, go: str, stop: str) -> dict[str, int]:
    """Read once (a process that has used its store), wait for ``go``, then read back to back
    until ``stop`` exists, emitting each read's seconds, failed ones included (a user waited for
    them too). Returns the failed reads by kind."""
    read()
    wait_for_go(go)
    errors: dict[str, int] = {}
    while not os.path.exists(stop):
        started = time.perf_counter()
        try:
            read()
        except Exception as error:  # counted, as a user's notebook would see it
            kind = error_kind(error)
            errors[kind] = errors.get(kind, 0) + 1
        emit({"sample": time.perf_counter() - started})
    return errors


def watch(finished: Callable[[], set[str]], *, stop: str, poll_s: float) -> None:
    """A long-lived process that has read its store: poll ``finished()`` (names of the finished
    runs) every ``poll_s`` until ``stop`` exists, and emit when each new name first shows.

    ``at`` is the wall-clock time the read that showed it returned: what a user would see then.
    A failed read is an ``error`` event, and polling goes on.
    """
    known = finished()
    emit({"ready": True})
    while not os.path.exists(stop):
        try:
            new = finished() - known
        except Exception as error:
            emit({"event": "error", "kind": error_kind(error)})
            new = set()
        if new:
            emit({"event": "seen", "names": sorted(new), "at": time.time()})
            known |= new
        time.sleep(poll_s)


def wait_for_go(path: str) -> float:
    """Say ready, then wait until the runner creates ``path``: several workers start together.

    Returns the wall-clock start time.
    """
    emit({"ready": True})
    while not os.path.exists(path):
        time.sleep(0.001)
    return time.time()


# --- the runner's half ------------------------------------------------------------------------


@dataclass
class JobResult:
    """What a job reported: its samples, its final result, and how it ended.

    ``tagged`` holds the samples of a job that measures several operations, by tag; ``current``
    is the tag whose samples were being taken last (the one a timeout interrupted). ``events``
    are what a long-lived job reported as it went (see :func:`watch`).
    """

    samples: list[float] = field(default_factory=list)
    tagged: dict[str, list[float]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    current: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    timed_out: bool = False
    error: str | None = None
    elapsed: float = 0.0

    def check(self) -> JobResult:
        """Raise when the job failed (a timeout is not a failure: the caller reports it)."""
        if self.error is not None and not self.timed_out:
            raise RuntimeError(self.error)
        return self


class Job:
    """A running side script; its protocol lines are collected with an idle timeout."""

    def __init__(
        self,
        python: str | Path,
        side: str,
        job: dict[str, Any],
        *,
        env: dict[str, str] | None = None,
    ) -> None:
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._ended = False
        self.out = JobResult()
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [str(python), "-m", f"benchmarks.{side}", json.dumps(job)],
            cwd=REPO,
            env=_child_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def expect(self, key: str, *, timeout_s: float) -> bool:
        """Collect lines until one carries ``key`` (True), or the job ends or goes quiet."""
        return self._pump(timeout_s, until=key)

    def wait(self, *, timeout_s: float) -> JobResult:
        """Collect lines until the child exits, or kill it after ``timeout_s`` without a line."""
        self._pump(timeout_s, until=None)
        if self.out.timed_out:
            self.process.kill()
        code = self.process.wait()
        self.out.elapsed = time.perf_counter() - self.started
        if code != 0 and not self.out.timed_out:
            self.out.error = f"exit {code}: {self._stderr_tail()}"
        self._stderr.close()
        return self.out

    def _pump(self, timeout_s: float, *, until: str | None) -> bool:
        while not self._ended:
            try:
                line = self._lines.get(timeout=timeout_s)
            except queue.Empty:
                self.out.timed_out = True
                return False
            if line is None:
                self._ended = True
                break
            if _take(self.out, line, until):
                return True
        return False

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:  # closed at its end: no pipe left for the collector
            for line in self.process.stdout:
                if line.startswith(_MARK):
                    self._lines.put(line[len(_MARK) :])
        self._lines.put(None)

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        lines = self._stderr.read().strip().splitlines()
        return " | ".join(lines[-3:]) or "no output"


def run_job(
    python: str | Path,
    side: str,
    job: dict[str, Any],
    *,
    timeout_s: float,
    env: dict[str, str] | None = None,
) -> JobResult:
    """Run one job to the end (see :class:`Job`)."""
    return Job(python, side, job, env=env).wait(timeout_s=timeout_s)


def _take(out: JobResult, line: str, until: str | None) -> bool:
    """Record one protocol line; whether it carries the key ``until``."""
    payload = json.loads(line)
    if "begin" in payload:
        out.current = payload["begin"]
    if "sample" in payload:
        tag = payload.get("tag")
        (out.samples if tag is None else out.tagged.setdefault(tag, [])).append(payload["sample"])
    if "event" in payload:
        out.events.append(payload)
    if "result" in payload:
        out.result = payload["result"]
    return until is not None and until in payload


def _child_env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {**os.environ, **(extra or {})}
    # The MLflow venv's python must find this package; the project venv has it installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env
