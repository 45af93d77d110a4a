"""The per-record path (lines.py) against the reference one (decoder.Record
through accounting.segs, event.to_event and FlowRates.rate; for a drop,
DropCounts and event.drop_event), record for record, without a kernel: the
fast path must never say something else."""

import os
import random
import socket

import pytest
from test_event import SECOND

from xctl_probe.context.owners import Owners
from xctl_probe.kernel.decoder import (FLAG_ERR_LAYOUT, FLAG_HISTORY, FLAG_UNDO_MARKER,
                                       RECORD_FIELDS, RECORD_STRUCT, SOURCE_CLOSE, SOURCE_DROP,
                                       SOURCE_RETRANSMIT, SOURCE_SYNACK, decode)
from xctl_probe.meaning.accounting import segs
from xctl_probe.meaning.event import drop_event, to_event
from xctl_probe.meaning.flows import DropCounts, FlowRates, format_rate
from xctl_probe.output.lines import LineMaker

NAMES = [name for name, _ in RECORD_FIELDS]
OFFSET_NS = 1_700_000_000 * SECOND


def raw_record(**fields):
    values = dict.fromkeys(NAMES, 0)
    values.update(netns=4026531840, family=socket.AF_INET, sport=40000, dport=9000,
                  owner_comm=bytes(16), saddr=socket.inet_aton("10.0.0.1") + bytes(12),
                  daddr=socket.inet_aton("10.0.0.2") + bytes(12))
    values.update(fields)
    return RECORD_STRUCT.pack(*(values[name] for name in NAMES))


def storm(seed, count=3000, flows=12, drops=False):
    """Records as a storm gives them: a few flows, counters that rise (and
    sometimes reset), every source, flag, state, error and kind; with
    ``drops``, a third of them dropped packets of those flows, of three
    reasons, with and without a TCP state."""
    rng = random.Random(seed)
    retrans = [rng.randrange(0, 1 << 32) for _ in range(flows)]
    sent = [r + rng.randrange(0, 1 << 20) for r in retrans]
    ts = SECOND
    out = []
    for _ in range(count):
        f = rng.randrange(flows)
        ts += rng.choice((1000, 50_000, 700 * 1_000_000))
        prev = retrans[f] & 0xFFFFFFFF
        retrans[f] = 0 if rng.random() < 0.01 else retrans[f] + rng.choice((0, 1, 1, 2, 45))
        sent[f] += rng.randrange(1, 200)
        out.append(raw_record(
            ts_ns=ts, cookie=1000 + f, ino=0, cgroup_id=77 * (f % 2),
            skb_segs=rng.choice((1, 2)), retrans=retrans[f] & 0xFFFFFFFF,
            prev_retrans=prev, sent=sent[f] & 0xFFFFFFFF, tgid=rng.choice((0, 0, 5)),
            srtt_us=rng.choice((0, 812)), err=rng.choice((0, 0, 0, -105, 1, -11)),
            flags=rng.choice((0, FLAG_HISTORY, FLAG_HISTORY | FLAG_UNDO_MARKER,
                              FLAG_HISTORY | FLAG_ERR_LAYOUT)),
            family=socket.AF_INET, sport=40000 + f, dport=9000,
            tcp_flags=rng.choice((0x10, 0x18, 0x02, 0x12, 0x11)),
            state=rng.choice((1, 2, 3, 4, 12, 14)),
            source=rng.choice((SOURCE_RETRANSMIT,) * 6 + (SOURCE_SYNACK, SOURCE_CLOSE)
                              + (SOURCE_DROP,) * (4 if drops else 0)),
            reason=rng.choice((2, 3, 77)),
            ca_state=rng.choice((0, 1, 3, 4)), pending=rng.choice((0, 1, 5)),
            rto=rng.choice((0, 50, 51, 3000)), backoff=rng.choice((0, 1, 7)),
            ack_age=rng.choice((0, 1, 299, 1 << 31))))
    return b"".join(out)


def reference(raw, window_s, hz):
    rates = FlowRates(int(window_s * 1e9))
    drops = DropCounts(int(window_s * 1e9))
    lines = []
    for record in decode(raw):
        ts_ms = (record.ts_ns + OFFSET_NS) // 1_000_000
        if record.source == SOURCE_DROP:
            flow = (record.netns, record.saddr, record.daddr, record.sport, record.dport)
            total = drops.add(flow, record.ts_ns, record.skb_segs).total
            lines.append(drop_event(record, ts_ms, str(total), f"UNKNOWN_{record.reason}"))
            continue
        count = segs(record)
        if count:
            rate = rates.rate(record.cookie, record.ts_ns, record.retrans, record.sent)
            lines.append(to_event(record, count, ts_ms, format_rate(rate), hz=hz))
        if record.source == SOURCE_CLOSE:
            rates.forget(record.cookie)
    return lines


@pytest.mark.parametrize("seed, hz, drops", [(0, 250, False), (1, 250, True), (2, 1000, False),
                                             (3, 300, True), (4, None, False)])
def test_the_per_record_path_says_what_the_reference_says(seed, hz, drops, tmp_path):
    raw = storm(seed, drops=drops)
    maker = LineMaker(Owners(proc=str(tmp_path)), window_s=10, hz=hz)
    size = RECORD_STRUCT.size
    made = []
    for start in range(0, len(raw), 97 * size):  # batches, as the ring gives them
        made += maker.lines(raw[start:start + 97 * size], OFFSET_NS)
    expected = reference(raw, 10, hz)
    assert len(expected) > 1000
    for index, (got, want) in enumerate(zip(made, expected)):
        assert got == want, f"line {index}"
    assert len(made) == len(expected)


def test_the_rate_text_is_the_percent_rounded(tmp_path):
    rng = random.Random(7)
    for _ in range(20000):
        rates = FlowRates(SECOND)
        sent = rng.randrange(1, 1 << 32)
        retrans = rng.randrange(0, sent + 1)
        flow = rates.flow(1, 0, retrans, sent)
        assert flow.value(retrans, sent) == format_rate(flow.percent(retrans, sent))


@pytest.fixture
def fake_proc(tmp_path):
    """A /proc with process 4242 ("trainer") holding the socket of inode 555."""
    os.makedirs(tmp_path / "4242" / "fd")
    (tmp_path / "4242" / "comm").write_text("trainer\n")
    os.symlink("socket:[555]", tmp_path / "4242" / "fd" / "7")
    return tmp_path


def test_owner_is_found_once_and_kept_for_the_flow(fake_proc):
    maker = LineMaker(Owners(proc=str(fake_proc)), window_s=10)
    first = raw_record(ts_ns=SECOND, cookie=9, ino=555, retrans=1, sent=10, flags=FLAG_HISTORY,
                       state=1, source=SOURCE_RETRANSMIT)
    lines = maker.lines(first, OFFSET_NS)
    assert (lines[0].pid, lines[0].comm) == (4242, "trainer")
    # The process closed the socket since: the flow keeps the owner it had.
    os.unlink(fake_proc / "4242" / "fd" / "7")
    later = raw_record(ts_ns=2 * SECOND, cookie=9, ino=555, retrans=2, prev_retrans=1, sent=20,
                       flags=FLAG_HISTORY, state=1, tgid=31, source=SOURCE_RETRANSMIT)
    lines = maker.lines(later, OFFSET_NS)
    assert (lines[0].pid, lines[0].comm, lines[0].segs) == (4242, "trainer", 1)


def test_a_flow_without_owner_is_asked_again_in_a_later_batch(fake_proc):
    maker = LineMaker(Owners(proc=str(fake_proc)), window_s=10)
    record = dict(cookie=9, ino=556, sent=10, flags=FLAG_HISTORY, state=1,
                  source=SOURCE_RETRANSMIT)
    lines = maker.lines(raw_record(ts_ns=SECOND, retrans=1, **record), OFFSET_NS)
    assert lines[0].pid is None
    os.symlink("socket:[556]", fake_proc / "4242" / "fd" / "8")
    lines = maker.lines(raw_record(ts_ns=2 * SECOND, retrans=2, prev_retrans=1, **record),
                           OFFSET_NS)
    assert lines[0].pid == 4242


def test_a_socket_without_file_is_named_by_the_owner_the_kernel_remembered(fake_proc):
    """close() took the file away before the first retransmission: the
    process the kernel saw closing it, alive (its job from /proc), gone (the
    comm the kernel took), or its pid taken by another process since."""
    maker = LineMaker(Owners(proc=str(fake_proc)), window_s=10)
    (fake_proc / "4242" / "environ").write_bytes(b"SLURM_JOB_ID=77\0")
    record = dict(ino=0, retrans=1, sent=10, flags=FLAG_HISTORY, state=4, tgid=0,
                  source=SOURCE_RETRANSMIT)
    alive = maker.lines(raw_record(ts_ns=SECOND, cookie=1, owner_tgid=4242,
                                   owner_comm=b"trainer".ljust(16, b"\0"), **record), OFFSET_NS)
    gone = maker.lines(raw_record(ts_ns=SECOND, cookie=2, owner_tgid=4343,
                                  owner_comm=b"uploader".ljust(16, b"\0"), **record), OFFSET_NS)
    reused = maker.lines(raw_record(ts_ns=SECOND, cookie=3, owner_tgid=4242,
                                    owner_comm=b"curl".ljust(16, b"\0"), **record), OFFSET_NS)
    nobody = maker.lines(raw_record(ts_ns=SECOND, cookie=4, **record), OFFSET_NS)
    assert [(e.pid, e.comm, e.job_id) for e in alive + gone + reused + nobody] == [
        (4242, "trainer", "77"), (4343, "uploader", None), (4242, "curl", None),
        (None, None, None)]


def test_the_file_holder_comes_before_the_remembered_owner(fake_proc):
    maker = LineMaker(Owners(proc=str(fake_proc)), window_s=10)
    lines = maker.lines(raw_record(ts_ns=SECOND, cookie=9, ino=555, retrans=1, sent=10,
                                   flags=FLAG_HISTORY, state=1, source=SOURCE_RETRANSMIT,
                                   owner_tgid=4343, owner_comm=b"parent".ljust(16, b"\0")),
                        OFFSET_NS)
    assert (lines[0].pid, lines[0].comm) == (4242, "trainer")


def test_a_drop_names_its_socket_owner_and_keeps_it_for_the_flow(fake_proc):
    maker = LineMaker(Owners(proc=str(fake_proc)), window_s=10)
    drop = dict(source=SOURCE_DROP, reason=2, skb_segs=1, state=8, tgid=0)
    first = maker.lines(raw_record(ts_ns=SECOND, ino=555, **drop), OFFSET_NS)
    # Its socket's file closed since, and the next drop names no socket.
    os.unlink(fake_proc / "4242" / "fd" / "7")
    later = maker.lines(raw_record(ts_ns=2 * SECOND, ino=0, **drop), OFFSET_NS)
    assert [(e.pid, e.comm, e.value, e.state) for e in first + later] == [
        (4242, "trainer", "1", "CLOSE_WAIT"), (4242, "trainer", "2", "CLOSE_WAIT")]


def test_a_drop_flow_without_owner_is_asked_again_at_its_next_drop(fake_proc):
    maker = LineMaker(Owners(proc=str(fake_proc)), window_s=10)
    drop = dict(source=SOURCE_DROP, reason=2, skb_segs=1, state=1, ino=556)
    first = raw_record(ts_ns=SECOND, **drop)
    second = raw_record(ts_ns=SECOND + 1, **drop)
    assert maker.lines(first, OFFSET_NS)[0].pid is None
    os.symlink("socket:[556]", fake_proc / "4242" / "fd" / "8")
    assert [e.pid for e in maker.lines(first + second, OFFSET_NS)] == [4242, 4242]
