"""Coalescing of the lines that wait for a slow reader, without a kernel."""

from test_event import record

from xctl_probe.meaning.event import to_event
from xctl_probe.output.pending import PendingLines


def line(segs=1, value="1", sport=40000, state=1):
    return to_event(record(sport=sport, state=state), segs, 1, value)


def test_a_flow_keeps_one_line_with_the_sum_and_the_newest_rest():
    pending = PendingLines()
    pending.add(line(segs=2, value="10"))
    pending.add(line(segs=1, sport=40001))
    pending.add(line(segs=3, value="20"))
    pending.add(line(segs=1, value="30", state=4))
    lines = pending.take()
    assert [(l.sport, l.segs, l.value, l.state, l.count) for l in lines] == [
        (40000, 6, "30", "FIN_WAIT1", 3), (40001, 1, "1", "ESTABLISHED", None)]
    assert len(pending) == 0 and pending.take() == []


def test_merging_lines_that_merged_before_adds_their_counts():
    pending = PendingLines()
    first, second = line(segs=2), line(segs=5)
    first.count, second.count = 4, 3
    pending.add(first)
    pending.add(second)
    assert [(l.segs, l.count) for l in pending.take()] == [(7, 7)]


def test_past_the_bound_records_are_counted_not_kept():
    pending = PendingLines(max_flows=1)
    pending.add(line())
    pending.add(line(sport=40001))
    pending.add(line())
    assert pending.dropped == 1 and [l.count for l in pending.take()] == [2]
    # The bound is on waiting flows: once written, a new flow is kept again.
    pending.add(line(sport=40001))
    assert len(pending) == 1 and pending.dropped == 1


def test_the_same_addresses_in_two_namespaces_are_two_flows():
    pending = PendingLines()
    pending.add(to_event(record(netns=1), 1, 1, "1"))
    pending.add(to_event(record(netns=2), 1, 1, "1"))
    pending.add(to_event(record(netns=1), 2, 2, "2"))
    assert [(l.netns, l.segs) for l in pending.take()] == [(1, 3), (2, 1)]
