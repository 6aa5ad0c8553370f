"""Query results as DataFrames (tracker.frames): what every read of tracker returns."""

from __future__ import annotations

import threading
import time
import warnings

import duckdb

from tracker.frames import frame


def test_a_query_becomes_a_frame_with_its_types_kept_where_values_are_missing() -> None:
    con = duckdb.connect()
    table = frame(con, "SELECT * FROM (VALUES (1::BIGINT, true, ['a']), (NULL, NULL, NULL)) "
                       "t(n, b, l) WHERE n IS NULL OR n = ?", [1])
    assert list(table.columns) == ["n", "b", "l"]
    assert str(table["n"].dtype) == "Int64" and str(table["b"].dtype) == "boolean"
    assert table["l"].tolist() == [["a"], None]


def test_a_result_the_caller_left_unread_does_not_stop_the_next_read() -> None:
    con = duckdb.connect()
    assert con.execute("SELECT range FROM range(5)").fetchone() == (0,)
    assert frame(con, "SELECT 42 AS answer")["answer"].tolist() == [42]


def test_reads_on_other_threads_leave_the_warnings_a_user_is_catching_alone() -> None:
    """A read on a background thread (the runs browser's loaders, the live ticker) must not touch
    the process's warning state: ``warnings.catch_warnings`` there restored the old handler
    while the main thread was catching warnings, and the main thread's warning was lost."""
    stop = threading.Event()

    def read() -> None:
        con = duckdb.connect()
        while not stop.is_set():
            frame(con, "SELECT range AS n FROM range(3)")

    reader = threading.Thread(target=read)
    reader.start()
    try:
        lost = 0
        for _ in range(200):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                time.sleep(0.002)  # while the reader goes in and out of its reads
                warnings.warn("seen", UserWarning, stacklevel=1)
            lost += not [w for w in caught if str(w.message) == "seen"]
    finally:
        stop.set()
        reader.join()
    assert lost == 0
