"""The per-record path (lines.py) copies a few definitions inline, for their
common case; here random records go through it and each line is held to the
definition called directly on the record's fields: accounting.segs,
flows.rate_value (counters.since), event.timers (event.jiffies_ms), and the
state and kind it caches per flow (event.state_name, event.kind)."""

import random
import socket

import pytest

from xctl_probe.kernel.decoder import (FLAG_ERR_LAYOUT, FLAG_HISTORY, FLAG_UNDO_MARKER,
                                       RECORD_STRUCT, SOURCE_CLOSE, SOURCE_DROP, SOURCE_RETRANSMIT,
                                       SOURCE_SYNACK)
from xctl_probe.kernel.ticks import HZ_CHOICES
from xctl_probe.meaning.accounting import segs
from xctl_probe.meaning.counters import since
from xctl_probe.meaning.event import err_name, kind, state_name, timers
from xctl_probe.meaning.flows import rate_value

from lab.records import OFFSET_NS, SECOND, decode, maker, record


def storm(seed, step_ns, count=3000, flows=12, drops=False):
    """Records as a storm gives them: a few flows, counters that rise (and
    sometimes reset or wrap), every source, flag, state, error and kind;
    with ``drops``, a quarter of them dropped packets of those flows, of
    three reasons, with and without a TCP state."""
    rng = random.Random(seed)
    retrans = [rng.randrange(0, 1 << 32) for _ in range(flows)]
    sent = [r + rng.randrange(0, 1 << 20) for r in retrans]
    ts = SECOND
    out = []
    for _ in range(count):
        f = rng.randrange(flows)
        ts += rng.choice(step_ns)
        prev = retrans[f] & 0xFFFFFFFF
        retrans[f] = 0 if rng.random() < 0.01 else retrans[f] + rng.choice((0, 1, 1, 2, 45))
        sent[f] += rng.randrange(1, 200)
        out.append(record(
            ts_ns=ts, cookie=1000 + f, cgroup_id=77 * (f % 2), skb_segs=rng.choice((1, 2)),
            retrans=retrans[f] & 0xFFFFFFFF, prev_retrans=prev, sent=sent[f] & 0xFFFFFFFF,
            tgid=rng.choice((0, 0, 5)), srtt_us=rng.choice((0, 812)),
            err=rng.choice((0, 0, 0, -105, 1, -11, -16)),
            flags=rng.choice((0, FLAG_HISTORY, FLAG_HISTORY | FLAG_UNDO_MARKER,
                              FLAG_HISTORY | FLAG_ERR_LAYOUT)),
            family=socket.AF_INET, sport=40000 + f,
            tcp_flags=rng.choice((0x10, 0x18, 0x02, 0x12, 0x11)),
            state=rng.choice((0, 1, 2, 3, 4, 12, 14)),
            source=rng.choice((SOURCE_RETRANSMIT,) * 6 + (SOURCE_SYNACK, SOURCE_CLOSE)
                              + (SOURCE_DROP,) * (3 if drops else 0)),
            reason=rng.choice((2, 3, 77)), ca_state=rng.choice((0, 1, 3, 4)),
            pending=rng.choice((0, 1, 5)), rto=rng.choice((0, 50, rng.randrange(1, 1 << 17))),
            backoff=rng.choice((0, 1, 7)),
            ack_age=rng.choice((0, 1, 1 << 31, rng.randrange(1 << 20)))))
    return b"".join(out)


def made(raw, proc, hz):
    """The lines of ``raw``, in batches as the ring gives them."""
    lines_maker = maker(proc, window_s=10, hz=hz)
    size = RECORD_STRUCT.size
    return [line for start in range(0, len(raw), 97 * size)
            for line in lines_maker.lines(raw[start:start + 97 * size], OFFSET_NS)]


def retransmission(record, hz):
    """What a retransmission's line says, by the definitions; None for no line."""
    count = segs(record)
    if not count:
        return None
    rto_ms, backoff, stalled_ms = timers(record.rto, record.backoff, record.ack_age,
                                         record.state, hz)
    return dict(segs=count, err=record.err, err_name=err_name(record.err),
                state=state_name(record.state), rto_ms=rto_ms, backoff=backoff,
                stalled_ms=stalled_ms, rtt_us=record.srtt_us or None,
                kind=kind(record.source, record.tcp_flags, record.ca_state, record.flags,
                          record.pending))


def said(line, fields):
    return {name: getattr(line, name) for name in fields}


@pytest.mark.parametrize("seed, hz, drops", [(0, 250, False), (1, 250, True), (2, 1000, False),
                                             (3, 300, True), (4, None, False)])
def test_within_the_first_window_every_line_says_what_the_definitions_say(seed, hz, drops,
                                                                          tmp_path):
    """All within the flows' first window, so the rate is over their lifetime."""
    raw = storm(seed, (1000, 50_000, 2_000_000), drops=drops)
    lines = made(raw, tmp_path, hz)
    expected = []
    dropped = {}
    for one in decode(raw):
        if one.source == SOURCE_DROP:
            flow = (one.sport, one.dport)
            dropped[flow] = dropped.get(flow, 0) + one.skb_segs
            expected.append(dict(kind="drop", segs=one.skb_segs, value=str(dropped[flow]),
                                 reason=f"UNKNOWN_{one.reason}", reason_code=one.reason,
                                 state=state_name(one.state) if one.state else None))
            continue
        wanted = retransmission(one, hz)
        if wanted is not None:
            wanted["value"] = rate_value(since(0, one.retrans), since(0, one.sent))
            expected.append(wanted)
    assert len(expected) > 1000 and len(lines) == len(expected)
    for index, (line, wanted) in enumerate(zip(lines, expected)):
        assert said(line, wanted) == wanted, f"line {index}"


@pytest.mark.parametrize("seed, hz", [(5, 250), (6, None)])
def test_over_many_windows_every_line_says_what_the_definitions_say(seed, hz, tmp_path):
    raw = storm(seed, (1000, 700 * 1_000_000, 9 * SECOND))
    expected = [wanted for wanted in (retransmission(one, hz) for one in decode(raw))
                if wanted is not None]
    lines = made(raw, tmp_path, hz)
    assert len(lines) == len(expected)
    for index, (line, wanted) in enumerate(zip(lines, expected)):
        assert said(line, wanted) == wanted, f"line {index}"
        assert 0 <= float(line.value) <= 100


def test_every_small_rate_is_the_definitions(tmp_path):
    """Small counters, where the rounding's halves are."""
    pairs = [(retrans, sent) for retrans in range(41) for sent in range(401)]
    raw = b"".join(record(ts_ns=SECOND + i, retrans=retrans, sent=sent)
                   for i, (retrans, sent) in enumerate(pairs))
    assert [line.value for line in made(raw, tmp_path, None)] == [
        rate_value(retrans, sent) for retrans, sent in pairs]


@pytest.mark.parametrize("hz", HZ_CHOICES)
def test_every_small_timer_is_the_definitions(hz, tmp_path):
    """rto and ack_age over three seconds of jiffies at every HZ a kernel can
    be built with, where a millisecond's rounding turns."""
    jiffies = range(1, 3 * hz)
    raw = b"".join(record(ts_ns=SECOND + j, rto=j, ack_age=3 * hz - j, backoff=j % 3)
                   for j in jiffies)
    assert [(line.rto_ms, line.backoff, line.stalled_ms) for line in made(raw, tmp_path, hz)] == [
        timers(j, j % 3, 3 * hz - j, 1, hz) for j in jiffies]
