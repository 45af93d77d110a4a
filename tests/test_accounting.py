"""segs from the socket's counter, without a kernel: counters that go back,
wrap or start mid-life never give a line a segs the kernel did not count."""

import errno

import pytest

from test_event import record
from xctl_probe.accounting import Accounting, rise
from xctl_probe.decoder import SOURCE_CLOSE, SOURCE_RETRANSMIT, SOURCE_SYNACK

SOCK = 0xFFFF888012345678


def feed(accounting, *readings):
    """segs of each (source, retrans, skb_segs[, err]) record of one socket."""
    out = []
    for source, retrans, skb_segs, *err in readings:
        out.append(accounting.segs(record(sock=SOCK, source=source, retrans=retrans,
                                          skb_segs=skb_segs, err=err[0] if err else 0)))
    return out


def test_rise_of_the_counter_carries_what_a_skipped_run_missed():
    # The run at retrans 3 was skipped: the next record carries it.
    assert feed(Accounting(), (SOURCE_RETRANSMIT, 1, 1), (SOURCE_RETRANSMIT, 2, 1),
                (SOURCE_RETRANSMIT, 4, 1), (SOURCE_CLOSE, 5, 0)) == [1, 1, 2, 1]


def test_a_counter_that_goes_back_is_a_reset_not_a_rise():
    # TCP_SYNCNT 1, connect() fails: two SYNs, then tcp_disconnect() zeroes
    # the counter before close (the line that read 4294967294 before).
    assert feed(Accounting(), (SOURCE_RETRANSMIT, 1, 1), (SOURCE_RETRANSMIT, 2, 1),
                (SOURCE_CLOSE, 0, 0)) == [1, 1, 0]
    # Reconnected after the reset: what it retransmitted since is the counter.
    assert feed(Accounting(), (SOURCE_RETRANSMIT, 5, 1), (SOURCE_RETRANSMIT, 2, 1),
                (SOURCE_RETRANSMIT, 3, 1)) == [1, 2, 1]


def test_a_counter_that_wraps_rises_by_the_difference():
    assert feed(Accounting(), (SOURCE_RETRANSMIT, 2**32 - 2, 1),
                (SOURCE_RETRANSMIT, 1, 1)) == [1, 3]
    assert rise(2**32 - 1, 0) == 1 and rise(10, 3) == 3 and rise(3, 10) == 7


def test_a_socket_first_seen_mid_life_counts_its_own_skb_only():
    # Its earlier retransmissions happened before the probe could see them.
    assert feed(Accounting(), (SOURCE_RETRANSMIT, 5000, 3), (SOURCE_RETRANSMIT, 5004, 4)) == [3, 4]


@pytest.mark.parametrize("err,first", [
    (-errno.EBUSY, 0), (-errno.ENOMEM, 0), (-errno.EHOSTUNREACH, 0),  # failed before counting
    (-errno.ENOBUFS, 2), (1, 2),  # failed in transmit, after the counters moved
])
def test_a_failed_first_attempt(err, first):
    assert feed(Accounting(), (SOURCE_RETRANSMIT, 7, 2, err), (SOURCE_RETRANSMIT, 9, 2)) == [
        first, 2]


def test_close_records_end_the_socket_and_count_only_a_rise():
    accounting = Accounting()
    assert feed(accounting, (SOURCE_CLOSE, 9, 0)) == [0]  # never seen: nothing to carry
    assert feed(accounting, (SOURCE_RETRANSMIT, 9, 1), (SOURCE_CLOSE, 9, 0)) == [1, 0]
    assert len(accounting) == 0
    # A new socket at the same address starts afresh.
    assert feed(accounting, (SOURCE_RETRANSMIT, 1, 1)) == [1]


def test_synack_counts_one_and_keeps_no_state():
    accounting = Accounting()
    assert feed(accounting, (SOURCE_SYNACK, 1, 1), (SOURCE_SYNACK, 2, 1)) == [1, 1]
    assert len(accounting) == 0


def test_bounded_by_count():
    accounting = Accounting(max_sockets=2)
    for sock in (1, 2, 3):
        accounting.segs(record(sock=sock, retrans=10, skb_segs=1))
    assert len(accounting) == 2
    # The oldest was dropped: its next record counts as a first one.
    assert accounting.segs(record(sock=1, retrans=12, skb_segs=1)) == 1
    assert accounting.segs(record(sock=3, retrans=12, skb_segs=1)) == 2
