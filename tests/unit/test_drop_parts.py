"""The user-space parts of drops without a kernel probe: counts over the
window, the socket of a four-tuple in a namespace (a /proc made by the test),
and how reasons of other subsystems are named."""

import os
import socket

import pytest

from xctl_probe.context.sockets import SocketsByTuple
from xctl_probe.kernel.decoder import FLAG_COUNTED, SOURCE_DROP
from xctl_probe.kernel.drop_reasons import DropReasons, reported_reasons
from xctl_probe.kernel.preconditions import KERNEL_BTF
from xctl_probe.meaning.drop_counts import DropFlow, last_dropped
from xctl_probe.meaning.table import FlowTable

from lab.records import OFFSET_NS, maker, record

SECOND = 10**9


def drops(lines_maker, *at):
    """The value of the line of each (second, local port, packets) drop."""
    return [line.value for second, sport, packets in at for line in lines_maker.lines(
        record(ts_ns=second * SECOND, sport=sport, skb_segs=packets, source=SOURCE_DROP),
        OFFSET_NS)]


def test_drops_are_counted_over_the_window(tmp_path):
    assert drops(maker(tmp_path, window_s=16), (0, 1, 1), (1, 1, 1), (2, 1, 1), (3, 2, 1),
                 # 17 s later only the drops of the last 16 s (and at most a slice more) count.
                 (19, 1, 1), (19, 1, 4)) == ["1", "2", "3", "1", "1", "5"]


def test_silent_flows_are_forgotten_and_the_count_is_bounded():
    counts = FlowTable(SECOND, last_dropped, unit_ns=SECOND // 16, max_flows=4,
                       max_idle_ns=60 * SECOND)

    def add(flow, ts_ns):
        counts.forget_idle(ts_ns)
        (counts.get(flow) or counts.add(flow, DropFlow())).add(ts_ns, 1, SECOND, SECOND // 16)
    for flow in range(4):
        add(flow, flow * SECOND)
    add(4, 5 * SECOND)  # past the bound: the oldest quarter goes
    assert [flow for flow in range(5) if counts.get(flow)] == [1, 2, 3, 4]
    add(5, 100 * SECOND)  # all others silent for over a minute
    assert [flow for flow in range(6) if counts.get(flow)] == [5]


def proc_row(local, lport, remote, rport, state, ino):
    def hex_v4(address):
        return socket.inet_aton(address)[::-1].hex().upper()
    return (f"   0: {hex_v4(local)}:{lport:04X} {hex_v4(remote)}:{rport:04X} {state:02X} "
            f"00000000:00000000 00:00000000 00000000     0        0 {ino} 1 0000000000000000\n")


@pytest.fixture
def fake_proc(tmp_path):
    """Process 77 in a namespace (its ns/net inode) with a listener on :80,
    a connection 10.0.0.1:80 <- 10.0.0.2:5555, and nothing else."""
    (tmp_path / "77" / "ns").mkdir(parents=True)
    (tmp_path / "77" / "net").mkdir()
    (tmp_path / "77" / "ns" / "net").write_text("")
    header = "  sl  local_address rem_address   st ...\n"
    (tmp_path / "77" / "net" / "tcp").write_text(
        header + proc_row("0.0.0.0", 80, "0.0.0.0", 0, 0x0A, 1001)
        + proc_row("10.0.0.1", 80, "10.0.0.2", 5555, 0x01, 1002))
    (tmp_path / "77" / "net" / "tcp6").write_text(header)
    return tmp_path, os.stat(tmp_path / "77" / "ns" / "net").st_ino


def v4(address):
    return socket.inet_aton(address) + bytes(12)


def test_a_packet_finds_its_socket_by_four_tuple_then_by_listener(fake_proc):
    proc, netns = fake_proc
    sockets = SocketsByTuple(proc=str(proc))
    assert sockets.inode(netns, v4("10.0.0.1"), 80, v4("10.0.0.2"), 5555) == 1002
    assert sockets.inode(netns, v4("10.0.0.1"), 80, v4("10.0.0.3"), 6666) == 1001
    assert sockets.inode(netns, v4("10.0.0.1"), 81, v4("10.0.0.2"), 5555) == 0
    assert sockets.inode(netns + 1, v4("10.0.0.1"), 80, v4("10.0.0.2"), 5555) == 0


def test_a_miss_rereads_the_listing_at_most_once_per_refresh(fake_proc):
    proc, netns = fake_proc
    sockets = SocketsByTuple(proc=str(proc), refresh_s=3600)
    assert sockets.inode(netns, v4("10.0.0.1"), 81, v4("10.0.0.2"), 1) == 0
    with open(proc / "77" / "net" / "tcp", "a") as table:
        table.write(proc_row("10.0.0.1", 81, "10.0.0.2", 1, 0x01, 1003))
    assert sockets.inode(netns, v4("10.0.0.1"), 81, v4("10.0.0.2"), 1) == 0
    assert SocketsByTuple(proc=str(proc)).inode(netns, v4("10.0.0.1"), 81, v4("10.0.0.2"),
                                                1) == 1003


def test_reasons_of_other_subsystems_and_unknown_numbers_are_named():
    reasons = DropReasons(KERNEL_BTF)
    if not reasons.available:
        pytest.skip("this kernel's kfree_skb has no drop reason (Linux 5.17+)")
    assert reasons.name(0xFFFF) == "UNKNOWN_65535"
    # A subsystem this kernel's BTF names but whose own enum it lacks.
    subsystem = reasons._subsystems.get(1)
    if subsystem is not None:
        assert reasons.name((1 << 16) | 7) == f"{subsystem}_7"


def test_unreadable_drop_reasons_mean_retransmissions_only_with_why(tmp_path):
    """The stream and check ask reported_reasons alike: a BTF file the probe
    cannot read the reasons from is a reason not to report drops, not a failure."""
    not_btf = tmp_path / "vmlinux"
    not_btf.write_bytes(b"\x7fELF but no BTF here")
    reasons, said = reported_reasons(not_btf)
    assert reasons is None and said == (
        f"cannot read the drop reasons from {not_btf}: not BTF this probe reads")
    reasons, said = reported_reasons(KERNEL_BTF)
    if reasons is None:
        assert said == "this kernel's skb:kfree_skb carries no drop reason (Linux 5.17+)"
    else:
        assert said == f"{len(reasons)} drop reasons named by this kernel's BTF"


def test_drops_only_counted_in_a_flood_make_a_line_of_the_local_side_with_their_count(tmp_path):
    """A record user space makes of a key's tally (kernel/drop_tallies.py):
    no peer, no owner asked (the proc here has none to give anyway), its
    packets in segs and count, counted over the window like any drop of the
    same local side; a tally of one has no count (count means 2 or more)."""
    lines_maker = maker(tmp_path)
    counted = dict(source=SOURCE_DROP, flags=FLAG_COUNTED, daddr=bytes(16), dport=0,
                   sport=9830, tgid=4321)
    made = lines_maker.lines(record(ts_ns=1 * SECOND, skb_segs=5000, **counted)
                             + record(ts_ns=2 * SECOND, skb_segs=1, **counted), OFFSET_NS)
    assert [(line.segs, line.count, line.value, line.pid, line.daddr, line.dport)
            for line in made] == [(5000, 5000, "5000", None, "0.0.0.0", 0),
                                  (1, None, "5001", None, "0.0.0.0", 0)]
    assert made[0].entity_id == "network-10.0.0.1-0.0.0.0-9830-0"
