"""Owners on the per-record path (lines.py, drop_lines.py), without a kernel:
synthetic records through LineMaker, the sockets' holders and /proc made by
the test."""

import os

import pytest

from xctl_probe.kernel.decoder import FLAG_HISTORY, SOURCE_DROP

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

