"""segs from the socket's counter, without a kernel: raw records through the
decoder, with counters that go back, wrap or start mid-life, never give a
line a segs the kernel did not count."""

import errno

import pytest

from xctl_probe.kernel.binding import ffi
from xctl_probe.kernel.decoder import FLAG_HISTORY, SOURCE_CLOSE, SOURCE_RETRANSMIT, SOURCE_SYNACK
from xctl_probe.meaning.accounting import rise, segs

from lab.records import decode

NO_HISTORY = None


def feed(*readings):
    """segs of each (source, prev_retrans or NO_HISTORY, retrans, skb_segs[, err])
    record, written as the BPF program writes them and decoded."""
    raw = ffi.new(f"struct xp_record[{len(readings)}]")
    for slot, (source, prev, retrans, skb_segs, *err) in zip(raw, readings):
        slot.source = source
        slot.retrans = retrans
        slot.skb_segs = skb_segs
        slot.err = err[0] if err else 0
        if prev is not NO_HISTORY:
            slot.prev_retrans = prev
            slot.flags = FLAG_HISTORY
    return [segs(record) for record in decode(bytes(ffi.buffer(raw)))]


def test_rise_of_the_counter_carries_what_a_skipped_run_missed():
    # The run at retrans 3 was skipped: the next record carries it.
    assert feed((SOURCE_RETRANSMIT, 0, 1, 1), (SOURCE_RETRANSMIT, 1, 2, 1),
                (SOURCE_RETRANSMIT, 2, 4, 1), (SOURCE_CLOSE, 4, 5, 0)) == [1, 1, 2, 1]


def test_a_socket_born_under_the_probe_counts_from_its_birth():
    # Its SYN's run was skipped (or its record lost): the baseline is the
    # counter at birth, 0, so the next record carries both segments.
    assert feed((SOURCE_RETRANSMIT, 0, 2, 1)) == [2]


def test_a_counter_that_goes_back_is_a_reset_not_a_rise():
    # TCP_SYNCNT 1, connect() fails: two SYNs, then tcp_disconnect() zeroes
    # the counter before close (the line that read 4294967294 before).
    assert feed((SOURCE_RETRANSMIT, 0, 1, 1), (SOURCE_RETRANSMIT, 1, 2, 1),
                (SOURCE_CLOSE, 2, 0, 0)) == [1, 1, 0]
    # Reconnected after a reset the probe did not see: what it retransmitted
    # since is the counter.
    assert feed((SOURCE_RETRANSMIT, 5, 2, 1), (SOURCE_RETRANSMIT, 2, 3, 1)) == [2, 1]


def test_a_counter_that_wraps_rises_by_the_difference():
    assert feed((SOURCE_RETRANSMIT, 2**32 - 2, 1, 1)) == [3]
    assert rise(2**32 - 1, 0) == 1 and rise(10, 3) == 3 and rise(3, 10) == 7


def test_a_socket_first_seen_mid_life_counts_its_own_skb_only():
    # Older than the probe: its earlier retransmissions happened before the
    # probe could see them.
    assert feed((SOURCE_RETRANSMIT, NO_HISTORY, 5000, 3), (SOURCE_RETRANSMIT, 5000, 5004, 4)) == [
        3, 4]


@pytest.mark.parametrize("err,first", [
    (-errno.EBUSY, 0), (-errno.ENOMEM, 0), (-errno.EHOSTUNREACH, 0),  # failed before counting
    (-errno.ENOBUFS, 2), (1, 2),  # failed in transmit, after the counters moved
])
def test_a_failed_first_attempt(err, first):
    assert feed((SOURCE_RETRANSMIT, NO_HISTORY, 7, 2, err)) == [first]


def test_a_failed_attempt_with_history_counts_the_rise():
    assert feed((SOURCE_RETRANSMIT, 7, 7, 2, -errno.EBUSY), (SOURCE_RETRANSMIT, 7, 9, 2)) == [0, 2]


def test_close_record_without_history_counts_nothing():
    assert feed((SOURCE_CLOSE, NO_HISTORY, 9, 0)) == [0]


def test_synack_of_a_request_socket_is_one_segment():
    assert feed((SOURCE_SYNACK, NO_HISTORY, 1, 1), (SOURCE_SYNACK, NO_HISTORY, 2, 1)) == [1, 1]


def test_synack_of_a_fast_open_child_is_the_rise_of_its_counter():
    assert feed((SOURCE_SYNACK, 0, 1, 1), (SOURCE_SYNACK, 1, 3, 1)) == [1, 2]
