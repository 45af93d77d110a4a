"""Coalescing of the lines that wait for a slow reader, without a kernel:
lines of synthetic records, made by the probe's own path."""

import msgspec
import pytest

from xctl_probe.output.pending import PendingLines

from lab.records import FIN_WAIT1
from lab.records import line as record_line


@pytest.fixture
def line(tmp_path):
    """A line of ``segs`` segments on the flow of local port ``sport``, whose
    rate over the window is ``value`` percent."""
    def make(segs=1, value=1, sport=40000, state=1, netns=4026531840):
        return record_line(tmp_path, skb_segs=segs, retrans=value, sent=100, sport=sport,
                           state=state, netns=netns)
    return make


def test_a_flow_keeps_one_line_with_the_sum_and_the_newest_rest(line):
    pending = PendingLines()
    first = line(segs=2, value=10)
    pending.add(first)
    pending.add(line(segs=1, sport=40001))
    pending.add(line(segs=3, value=20))
    pending.add(line(segs=1, value=30, state=FIN_WAIT1))
    lines = pending.take()
    assert [(l.sport, l.segs, l.value, l.state, l.count) for l in lines] == [
        (40000, 6, "30", "FIN_WAIT1", 3), (40001, 1, "1", "ESTABLISHED", None)]
    assert len(pending) == 0 and pending.take() == []
    # The lines handed over are left as they were.
    assert (first.segs, first.value, first.count) == (2, "10", None)


def test_merging_lines_that_merged_before_adds_their_counts(line):
    pending = PendingLines()
    first = msgspec.structs.replace(line(segs=2), count=4)
    second = msgspec.structs.replace(line(segs=5), count=3)
    pending.add(first)
    pending.add(second)
    assert [(l.segs, l.count) for l in pending.take()] == [(7, 7)]


def test_past_the_bound_records_are_counted_not_kept(line):
    pending = PendingLines(max_flows=1)
    pending.add(line())
    pending.add(line(sport=40001))
    pending.add(line())
    assert pending.dropped == 1 and [l.count for l in pending.take()] == [2]
    # The bound is on waiting flows: once written, a new flow is kept again.
    pending.add(line(sport=40001))
    assert len(pending) == 1 and pending.dropped == 1


def test_the_same_addresses_in_two_namespaces_are_two_flows(line):
    pending = PendingLines()
    pending.add(line(netns=1))
    pending.add(line(netns=2))
    pending.add(line(segs=2, netns=1))
    assert [(l.netns, l.segs) for l in pending.take()] == [(1, 3), (2, 1)]
