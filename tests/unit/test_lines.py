"""Owners on the per-record path (lines.py, drop_lines.py), without a kernel:
synthetic records through LineMaker, the sockets' holders and /proc made by
the test."""

import os

import pytest

from xctl_probe.kernel.decoder import FLAG_HISTORY, SOURCE_DROP, SOURCE_OWNER

from lab.records import OFFSET_NS, SECOND, Holders, maker, record


@pytest.fixture
def fake_proc(tmp_path):
    """A /proc with process 4242 ("trainer")."""
    os.makedirs(tmp_path / "4242")
    (tmp_path / "4242" / "comm").write_text("trainer\n")
    return tmp_path


@pytest.fixture
def holders():
    """Process 4242 holds the socket of inode 555."""
    return Holders({555: {4242}})


def test_owner_is_found_once_and_kept_for_the_flow(fake_proc, holders):
    lines_maker = maker(fake_proc, holders=holders)
    first = record(ts_ns=SECOND, cookie=9, ino=555, retrans=1, sent=10, flags=FLAG_HISTORY)
    lines = lines_maker.lines(first, OFFSET_NS)
    assert (lines[0].pid, lines[0].comm) == (4242, "trainer")
    # The process closed the socket since: the flow keeps the owner it had.
    del holders[555]
    later = record(ts_ns=2 * SECOND, cookie=9, ino=555, retrans=2, prev_retrans=1, sent=20,
                   flags=FLAG_HISTORY, tgid=31)
    lines = lines_maker.lines(later, OFFSET_NS)
    assert (lines[0].pid, lines[0].comm, lines[0].segs) == (4242, "trainer", 1)


def test_a_flow_without_owner_is_asked_again_in_a_later_batch(fake_proc, holders):
    lines_maker = maker(fake_proc, holders=holders)
    fields = dict(cookie=9, ino=556, sent=10, flags=FLAG_HISTORY)
    lines = lines_maker.lines(record(ts_ns=SECOND, retrans=1, **fields), OFFSET_NS)
    assert lines[0].pid is None
    holders[556] = {4242}
    lines = lines_maker.lines(record(ts_ns=2 * SECOND, retrans=2, prev_retrans=1, **fields),
                              OFFSET_NS)
    assert lines[0].pid == 4242


def test_a_socket_without_file_is_named_by_the_owner_the_kernel_remembered(fake_proc):
    """close() took the file away before the first retransmission: the
    process the kernel saw closing it, alive (its job from /proc), gone (the
    comm the kernel took), or its pid taken by another process since."""
    lines_maker = maker(fake_proc)
    (fake_proc / "4242" / "environ").write_bytes(b"SLURM_JOB_ID=77\0")
    fields = dict(ts_ns=SECOND, ino=0, retrans=1, sent=10, flags=FLAG_HISTORY, state=4, tgid=0)

    def owner_of(cookie, owner_tgid=0, owner_comm=b""):
        return lines_maker.lines(record(cookie=cookie, owner_tgid=owner_tgid,
                                        owner_comm=owner_comm.ljust(16, b"\0"), **fields),
                                 OFFSET_NS)
    lines = (owner_of(1, 4242, b"trainer") + owner_of(2, 4343, b"uploader")
             + owner_of(3, 4242, b"curl") + owner_of(4))
    assert [(e.pid, e.comm, e.job_id) for e in lines] == [
        (4242, "trainer", "77"), (4343, "uploader", None), (4242, "curl", None),
        (None, None, None)]


def test_the_file_holder_comes_before_the_remembered_owner(fake_proc, holders):
    lines = maker(fake_proc, holders=holders).lines(record(ts_ns=SECOND, cookie=9, ino=555, retrans=1, sent=10,
                                          flags=FLAG_HISTORY, owner_tgid=4343,
                                          owner_comm=b"parent".ljust(16, b"\0")), OFFSET_NS)
    assert (lines[0].pid, lines[0].comm) == (4242, "trainer")


def test_a_drop_names_its_socket_owner_and_keeps_it_for_the_flow(fake_proc, holders):
    lines_maker = maker(fake_proc, holders=holders)
    drop = dict(source=SOURCE_DROP, reason=2, skb_segs=1, state=8, tgid=0)
    first = lines_maker.lines(record(ts_ns=SECOND, ino=555, **drop), OFFSET_NS)
    # Its socket's file closed since, and the next drop names no socket.
    del holders[555]
    later = lines_maker.lines(record(ts_ns=2 * SECOND, ino=0, **drop), OFFSET_NS)
    assert [(e.pid, e.comm, e.value, e.state) for e in first + later] == [
        (4242, "trainer", "1", "CLOSE_WAIT"), (4242, "trainer", "2", "CLOSE_WAIT")]


def test_a_drop_flow_without_owner_is_asked_again_at_its_next_drop(fake_proc, holders):
    lines_maker = maker(fake_proc, holders=holders)
    drop = dict(source=SOURCE_DROP, reason=2, skb_segs=1, state=1, ino=556)
    first = record(ts_ns=SECOND, **drop)
    second = record(ts_ns=SECOND + 1, **drop)
    assert lines_maker.lines(first, OFFSET_NS)[0].pid is None
    holders[556] = {4242}
    assert [e.pid for e in lines_maker.lines(first + second, OFFSET_NS)] == [4242, 4242]


def test_a_socket_closed_before_its_batch_was_read_is_named_by_its_closer(fake_proc):
    """A server's socket retransmits while the server holds it, and the
    server closes it before the probe reads the batch: no holder is left to
    find, and the process the kernel saw closing it, in a later record of the
    same socket (its owner record, or a retransmission), names the earlier
    lines too; never another socket's. The owner record gives no line."""
    lines_maker = maker(fake_proc)
    held = dict(ino=556, state=1, flags=FLAG_HISTORY, sent=10, retrans=1)
    trainer = dict(owner_tgid=4242, owner_comm=b"trainer".ljust(16, b"\0"))
    batch = (record(ts_ns=SECOND, cookie=9, **held) + record(ts_ns=SECOND, cookie=10, **held)
             + record(ts_ns=SECOND, cookie=11, **held)
             + record(ts_ns=2 * SECOND, cookie=9, source=SOURCE_OWNER, prev_retrans=1, **held,
                      **trainer)
             + record(ts_ns=2 * SECOND, cookie=11, ino=0, state=4, flags=FLAG_HISTORY, sent=20,
                      retrans=2, prev_retrans=1, **trainer))
    lines = lines_maker.lines(batch, OFFSET_NS)
    assert [(e.state, e.pid, e.comm) for e in lines] == [
        ("ESTABLISHED", 4242, "trainer"), ("ESTABLISHED", None, None),
        ("ESTABLISHED", 4242, "trainer"), ("FIN_WAIT1", 4242, "trainer")]


def test_a_socket_closed_after_its_batch_was_read_is_named_from_the_next_batch(fake_proc):
    """Closed after the batch was read and before the pass for its holders:
    the record of its close is in the next batch, read ahead for it (and made
    into lines next); a batch whose sockets all have an owner reads nothing
    ahead."""
    lines_maker = maker(fake_proc, holders=Holders({555: {4242}}))
    read_ahead = []
    closed = record(ts_ns=2 * SECOND, cookie=9, source=SOURCE_OWNER, ino=556, retrans=1,
                    prev_retrans=1, flags=FLAG_HISTORY, owner_tgid=4242,
                    owner_comm=b"trainer".ljust(16, b"\0"))

    def ahead():
        read_ahead.append(closed)
        return closed

    held = record(ts_ns=SECOND, cookie=8, ino=555, retrans=1, sent=10, flags=FLAG_HISTORY)
    # A dropped packet without a socket is no socket to name here (drop_lines' own).
    dropped = record(ts_ns=SECOND, cookie=0, ino=0, source=SOURCE_DROP, reason=2, sport=9000,
                     dport=40000)
    assert [e.pid for e in lines_maker.lines(held + dropped, OFFSET_NS, ahead)] == [4242, None]
    assert read_ahead == []
    gone = record(ts_ns=SECOND, cookie=9, ino=556, retrans=1, sent=10, flags=FLAG_HISTORY)
    assert [(e.pid, e.comm) for e in lines_maker.lines(gone, OFFSET_NS, ahead)] == [
        (4242, "trainer")]
    assert read_ahead == [closed]
    assert lines_maker.lines(closed, OFFSET_NS, ahead) == []


def test_an_owner_the_kernel_told_stays_with_its_socket(fake_proc):
    """Named by the kernel's record of its close, a socket keeps that owner
    when it is asked again (another task on the CPU) by a record that names
    none, as it keeps a holder found once; a newer word of the kernel's
    replaces it."""
    lines_maker = maker(fake_proc)
    held = dict(cookie=9, ino=556, state=1, flags=FLAG_HISTORY, sent=10)
    told = record(ts_ns=SECOND, source=SOURCE_OWNER, retrans=1, prev_retrans=1, **held,
                  owner_tgid=4242, owner_comm=b"trainer".ljust(16, b"\0"))
    first = lines_maker.lines(record(ts_ns=SECOND, retrans=1, **held) + told, OFFSET_NS)
    again = lines_maker.lines(record(ts_ns=2 * SECOND, retrans=2, prev_retrans=1, tgid=77,
                                     **held), OFFSET_NS)
    newer = lines_maker.lines(record(ts_ns=3 * SECOND, retrans=3, prev_retrans=2, tgid=78,
                                     owner_tgid=4343, owner_comm=b"uploader".ljust(16, b"\0"),
                                     **held), OFFSET_NS)
    assert [(e.pid, e.comm) for e in first + again + newer] == [
        (4242, "trainer"), (4242, "trainer"), (4343, "uploader")]
