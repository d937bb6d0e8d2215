"""ProgressLog: one line per interval with count, bytes and rate; a final line only when asked."""

from __future__ import annotations

import itertools
import logging

import pytest

from dativo_provider.progress import ProgressLog, format_bytes


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "t"]


def test_rows_bytes_and_rate_at_each_interval(caplog):
    clock = itertools.count(0.0, 1.0).__next__  # one second per reading
    progress = ProgressLog(logging.getLogger("t"), "sales.orders: streaming", unit="rows", interval=10,
                           clock=clock)
    with caplog.at_level(logging.INFO, logger="t"):
        for _ in range(25):
            progress.advance(1000, nbytes=64 * 1024)
    assert _lines(caplog) == [
        "sales.orders: streaming: 10000 rows (640.0 KiB) running after 10s, 1000 rows/s",
        "sales.orders: streaming: 20000 rows (1.2 MiB) running after 20s, 1000 rows/s",
    ]


def test_no_line_before_the_interval_and_finish_says_done(caplog):
    clock = iter([0.0, 4.0, 9.9, 12.0]).__next__
    progress = ProgressLog(logging.getLogger("t"), "lake.t: compaction", total=3, unit="files", interval=10,
                           clock=clock)
    with caplog.at_level(logging.INFO, logger="t"):
        progress.advance()
        progress.advance()
        progress.finish("2 files rewritten")
    assert _lines(caplog) == ["lake.t: compaction: 2/3 files done after 12s, 0.2 files/s (2 files rewritten)"]


def test_the_default_clock_can_be_replaced_for_a_whole_run(monkeypatch, caplog):
    ticks = itertools.count(0.0, 30.0)
    monkeypatch.setattr("dativo_provider.progress.monotonic", lambda: next(ticks))
    progress = ProgressLog(logging.getLogger("t"), "erasure", unit="files")  # the default 10 s interval
    with caplog.at_level(logging.INFO, logger="t"):
        progress.advance(3)
    assert _lines(caplog) == ["erasure: 3 files running after 30s, 0.1 files/s"]


@pytest.mark.parametrize(("count", "text"), [
    (0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 * 2**20, "5.0 MiB"), (3 * 2**30, "3.0 GiB"),
    (7 * 2**40, "7.0 TiB"),
])
def test_bytes_read_in_binary_units(count, text):
    assert format_bytes(count) == text
