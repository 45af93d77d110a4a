"""--interval: the writer's rollups against a real pipe, on synthetic lines.
At most one line per flow (and drop reason, and loss or not) per interval,
Σsegs and the records exact, nothing written before an interval ends, and
what waits written at close. No kernel probe."""

import os
import select
import time

import msgspec
import pytest

from xctl_probe.output.pending import PendingLines
from xctl_probe.output.writer import LineWriter

from lab.records import line as record_line
from lab.xctl_contract import check_probe_line


@pytest.fixture
def line(tmp_path):
    def make(sport=40000, segs=1, value=1):
        return record_line(tmp_path, skb_segs=segs, retrans=value, sent=100, sport=sport)
    return make


def read_all(fd):
    """Every line written so far; the writer has closed."""
    data = b""
    while select.select([fd], [], [], 0)[0]:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        data += chunk
    return [check_probe_line(raw + b"\n") for raw in data.split(b"\n")[:-1]]


def as_drop(line, reason, loss=True):
    return msgspec.structs.replace(line, kind="drop", reason=reason, reason_code=1,
                                   loss=None if loss else False)


def test_nothing_before_the_interval_ends_and_at_close_one_line_per_flow(line):
    read_end, write_end = os.pipe()
    writer = LineWriter(write_end, interval_s=3600)
    for i in range(300):
        writer.put([line(sport=50000 + i % 3, segs=1 + i % 2, value=i % 100)], 0)
    writer.put([line(sport=60000, segs=4, value=7)], 0)
    assert not select.select([read_end], [], [], 0.3)[0]  # the hour has not ended
    assert writer.close(1.0) == 0
    lines = read_all(read_end)
    assert [(l["sport"], l["segs"], l.get("count"), l["value"]) for l in lines] == [
        (50000, 150, 100, "97"), (50001, 150, 100, "98"), (50002, 150, 100, "99"),
        (60000, 4, None, "7")]  # one record: no count, as the schema's ge=2 says
    assert writer.lines == 4
    os.close(read_end)
    os.close(write_end)


def test_drop_reasons_and_loss_roll_up_apart_from_retransmissions(line):
    read_end, write_end = os.pipe()
    writer = LineWriter(write_end, interval_s=3600)
    flow = line(sport=50000)
    writer.put([flow, as_drop(flow, "NETFILTER_DROP"), as_drop(flow, "TCP_OFOMERGE", False),
                as_drop(flow, "NETFILTER_DROP"), flow, as_drop(flow, "TCP_OFOMERGE", False),
                as_drop(flow, "TCP_OFOMERGE")], 0)
    writer.close(1.0)
    lines = read_all(read_end)
    assert [(l["kind"], l.get("reason"), l.get("loss"), l["segs"], l.get("count"))
            for l in lines] == [("fast", None, None, 2, 2), ("drop", "NETFILTER_DROP", None, 2, 2),
                                ("drop", "TCP_OFOMERGE", False, 2, 2),
                                ("drop", "TCP_OFOMERGE", None, 1, None)]
    os.close(read_end)
    os.close(write_end)


def test_each_interval_writes_a_flow_once_and_sums_stay_exact(line):
    """Records of three flows every few ms for about a second, intervals of
    0.2 s: each read is whole intervals' lines, at most one per flow each."""
    read_end, write_end = os.pipe()
    interval = 0.2
    started = time.monotonic()
    writer = LineWriter(write_end, interval_s=interval)
    sent = 0
    while time.monotonic() - started < 1.0:
        writer.put([line(sport=50000 + sent % 3, segs=2)], 0)
        sent += 1
        time.sleep(0.002)
    writer.close(1.0)
    elapsed = time.monotonic() - started
    lines = read_all(read_end)
    # Ends on the grid within the writer's life, and one at close.
    most = 3 * (int(elapsed / interval) + 1)
    print(f"{sent} records as {len(lines)} lines in {elapsed:.2f} s (at most {most})")
    assert len(lines) <= most and len(lines) < sent
    assert sum(l["segs"] for l in lines) == 2 * sent
    assert sum(l.get("count", 1) for l in lines) == sent
    assert writer.lines == len(lines)
    os.close(read_end)
    os.close(write_end)


def test_a_record_refused_by_the_bound_is_lost_on_the_next_lines(line):
    read_end, write_end = os.pipe()
    writer = LineWriter(write_end, PendingLines(max_flows=1), interval_s=3600)
    writer.put([line(sport=1), line(sport=2), line(sport=1)], 3)
    assert writer.lost == 3 + 1
    writer.close(1.0)
    assert [(l["sport"], l["count"], l["lost"]) for l in read_all(read_end)] == [(1, 2, 4)]
    os.close(read_end)
    os.close(write_end)


def test_the_grid_skips_ends_a_slow_write_missed():
    """A write that took three intervals: the next one waits for the grid's
    next end after it, rather than writing twice in one interval."""
    read_end, write_end = os.pipe()
    writer = LineWriter(write_end, interval_s=1000)
    with writer._lock:
        writer._due -= 4500  # as if the writer woke 3.5 intervals after an end
        due = writer._due
    writer.close(1.0)
    # The first end after the wake-up, on the same grid: 4 intervals on.
    assert writer._due - due == 4000
    os.close(read_end)
    os.close(write_end)
