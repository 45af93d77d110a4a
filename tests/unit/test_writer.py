"""The writer thread against a real pipe: whole lines, a reader that stalls,
a reader that goes away. No kernel probe: stdout's side only."""

import fcntl
import os
import select
import time

import pytest

from xctl_probe.output.pending import PendingLines
from xctl_probe.output.writer import BEHIND_S, LineWriter

from lab.records import line as record_line
from lab.xctl_contract import check_probe_line

F_GETPIPE_SZ = 1032


@pytest.fixture
def line(tmp_path):
    """A line of ``segs`` segments on the flow of local port ``sport``, whose
    rate over the window is ``value`` percent."""
    def make(sport=40000, segs=1, value=1):
        return record_line(tmp_path, skb_segs=segs, retrans=value, sent=100, sport=sport)
    return make


def read_lines(fd, until, timeout_s=10.0):
    """Reads whole lines from ``fd`` until ``until(lines)`` holds."""
    data = b""
    deadline = time.monotonic() + timeout_s
    lines = []
    while not until(lines):
        # A wait in select, not in read: a line that never comes fails the test.
        left = deadline - time.monotonic()
        assert left > 0 and select.select([fd], [], [], left)[0], f"only {len(lines)} lines arrived"
        data += os.read(fd, 1 << 20)
        *whole, data = data.split(b"\n")
        lines += [check_probe_line(raw + b"\n") for raw in whole]
    return lines


def wait_for(condition, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_reader_that_keeps_up_gets_every_line_as_it_was(line):
    read_end, write_end = os.pipe()
    writer = LineWriter(write_end)
    writer.put([line(40000, 1, 1), line(40001, 2, 2), line(40000, 3, 3)], 0)
    lines = read_lines(read_end, lambda lines: len(lines) == 3)
    assert [(l["sport"], l["segs"], l["value"], l.get("count")) for l in lines] == [
        (40000, 1, "1", None), (40001, 2, "2", None), (40000, 3, "3", None)]
    assert writer.close(1.0) == 0 and writer.lines == 3
    os.close(read_end)
    os.close(write_end)


def test_behind_a_stalled_reader_lines_merge_per_flow_and_none_is_lost(line):
    read_end, write_end = os.pipe()
    capacity = fcntl.fcntl(write_end, F_GETPIPE_SZ)
    writer = LineWriter(write_end)
    # Fill the pipe until the writer is blocked in a write for longer than BEHIND_S.
    filler = 0
    while not writer._writing_since:
        writer.put([line(sport=1000 + filler % 1000)], 0)
        filler += 1
        time.sleep(0.0005)
    time.sleep(BEHIND_S * 3)
    # Now the reader is behind: 300 records on three flows wait as three lines.
    for i in range(300):
        writer.put([line(sport=50000 + i % 3, segs=2, value=i % 100)], 0)
    lines = read_lines(read_end, lambda lines: sum(l["sport"] >= 50000 for l in lines) == 3,
                       timeout_s=30)
    assert len(lines) - 3 <= filler < capacity
    merged = [l for l in lines if l["sport"] >= 50000]
    assert [(l["sport"], l["segs"], l["count"], l["value"]) for l in merged] == [
        (50000, 200, 100, "97"), (50001, 200, 100, "98"), (50002, 200, 100, "99")]
    # Caught up: lines are their own again.
    writer.put([line(sport=60000)], 0)
    assert read_lines(read_end, lambda lines: len(lines) == 1)[0].get("count") is None
    assert writer.close(1.0) == 0
    os.close(read_end)
    os.close(write_end)


def test_lost_is_cumulative_on_every_line_and_counts_the_pending_bound(line):
    read_end, write_end = os.pipe()
    writer = LineWriter(write_end, PendingLines(max_flows=1))
    writer.put([line()], 0)
    assert "lost" not in read_lines(read_end, lambda lines: len(lines) == 1)[0]
    writer.put([line(), line()], 5)
    assert [l["lost"] for l in read_lines(read_end, lambda lines: len(lines) == 2)] == [5, 5]
    while not writer._writing_since:
        writer.put([line()], 5)
        time.sleep(0.0005)
    time.sleep(BEHIND_S * 3)
    writer.put([line(sport=3), line(sport=4), line(sport=4)], 7)  # 4 finds the bound full
    assert writer.lost == 7 + 2
    lines = read_lines(read_end, lambda lines: lines and lines[-1].get("lost") == 9)
    assert lines[-1]["sport"] == 3 and lines[-1].get("count") is None
    writer.close(1.0)
    os.close(read_end)
    os.close(write_end)


def test_a_reader_that_never_resumes_bounds_the_final_flush(line):
    read_end, write_end = os.pipe()
    writer = LineWriter(write_end)
    while not writer._writing_since:
        writer.put([line()], 0)
        time.sleep(0.0005)
    writer.put([line(sport=1)], 0)
    started = time.monotonic()
    unwritten = writer.close(0.5)
    assert 0.5 <= time.monotonic() - started < 5
    assert unwritten >= 2  # the blocked write's lines, and the one behind it
    os.close(read_end)


def test_a_reader_that_goes_away_closes_the_writer(line):
    read_end, write_end = os.pipe()
    writer = LineWriter(write_end)
    os.close(read_end)
    writer.put([line()], 0)
    wait_for(lambda: writer.closed)
    assert writer.lines == 0
    writer.close(1.0)
    os.close(write_end)
