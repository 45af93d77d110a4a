"""Drops that are no loss, one test per class of xctl_probe/meaning/drop_classes.py,
on the real kernel: each class's drops caused for real in a namespace of the
test's own. The probe as xctl runs it writes no line for them, and its program
put no record of them in its ring (its own counters, every namespace), while a
probe with --drops all, beside it on the same kernel events, writes them,
each marked loss false with value 0, as many as the kernel's own counter of
them where it has one. The policy the loaded program holds is the table's
for the names bpftool reads from this kernel's BTF."""

import re
import subprocess
import sys
import time

import pytest

from xctl_probe.kernel.drop_reasons import DropReasons
from xctl_probe.kernel.preconditions import KERNEL_BTF
from xctl_probe.meaning.drop_classes import BY_NAME, unknown

from lab.btf import has_member
from lab.kernel_trace import KernelTrace
from lab.marks import requires_root
from lab.netns import Netns
from lab.probe import ProbeProcess
from lab.programs import probe_map
from lab.two_probes import TwoProbes

pytestmark = requires_root

# include/net/tcp_states.h, restated: the states after the peer's FIN, and CLOSE.
AFTER_FIN = {"TIME_WAIT": 6, "CLOSE": 7, "CLOSE_WAIT": 8, "LAST_ACK": 9, "CLOSING": 11}


def codes_of(*names):
    """This kernel's numbers for ``names``; the test is skipped where it lacks one."""
    reasons = DropReasons(KERNEL_BTF)
    missing = [name for name in names if reasons.code(name) is None]
    if missing:
        pytest.skip(f"this kernel names no {', '.join(missing)}")
    return [reasons.code(name) for name in names]


def no_loss_lines(default, everything, names, codes, states=None):
    """The class's drop lines of the --drops all probe, after holding both
    probes to the class being no loss: no line and no record by default."""
    def of_class(seen):
        return [line for line in seen.lines_of(names)
                if states is None or line.get("state") in states]

    numbers = None if states is None else set(states.values())
    shown = of_class(everything)
    print(f"--drops all: {len(shown)} lines of {names}, "
          f"{everything.records_of(codes, numbers)} records anywhere")
    assert all(line["loss"] is False and line["value"] == "0" for line in shown), shown[:3]
    assert of_class(default) == []
    assert default.records_of(codes, numbers) == 0
    # A line of drops only counted in a flood (kernel/drop_tallies.py) has
    # no record of its own, and no peer: its dport is 0, a real flow's never.
    assert everything.records_of(codes, numbers) >= len([line for line in shown
                                                         if line["dport"]])
    return shown


def bpftool_reasons():
    """{value: name} of enum skb_drop_reason as bpftool prints the kernel's BTF."""
    out = subprocess.run(["bpftool", "btf", "dump", "file", str(KERNEL_BTF), "format", "c"],
                         capture_output=True, text=True, check=True).stdout
    body = re.search(r"enum skb_drop_reason \{(.*?)\};", out, re.S).group(1)
    return {int(value): re.sub(r"^SKB_(DROP_REASON_)?", "", name)
            for name, value in re.findall(r"(\w+) = (\d+),", body)}


def test_the_loaded_policy_is_the_tables_for_every_reason_of_this_kernel():
    codes_of("NOT_SPECIFIED")
    assert unknown(DropReasons(KERNEL_BTF)) == []
    probe = ProbeProcess()
    try:
        [section] = probe_map(probe.proc.pid, ".rodata.drops").values()
        loaded = section[".rodata.drops"][0]["drop_policy"]
    finally:
        assert probe.stop() == 0
    assert loaded["report_all"] == 0
    expected = [0] * len(loaded["classes"])
    for value, name in bpftool_reasons().items():
        if value < len(expected):
            expected[value] = BY_NAME[name].drop_class
    assert loaded["classes"] == expected


ENDINGS = """
import ctypes, socket, sys, time
port, count = int(sys.argv[1]), int(sys.argv[2])
libc = ctypes.CDLL(None, use_errno=True)
server = socket.socket()
server.bind(("127.0.0.1", port))
server.listen()
for _ in range(count):
    # Disconnected (connect() to AF_UNSPEC) with data unread: tcp_disconnect()
    # frees the receive queue.
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    conn.sendall(b"x" * 4000)
    client.recv(1, socket.MSG_PEEK)  # until it has arrived
    if libc.connect(client.fileno(), ctypes.create_string_buffer(16), 16):
        raise OSError(ctypes.get_errno(), "connect(AF_UNSPEC)")
    client.close()
    conn.close()
    # Closed before the server's last data: the client answers it with a reset.
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    client.close()
    assert conn.recv(1) == b""
    conn.send(b"late")
    time.sleep(0.05)
    conn.close()
print("done")
"""


def test_frees_at_teardown_are_no_loss():
    codes = codes_of("QUEUE_PURGE", "TCP_ABORT_ON_DATA")
    ns = Netns()
    probes = None
    port, count = 9740, 5
    try:
        probes = TwoProbes()
        before = ns.counters()
        ended = ns.run(sys.executable, "-c", ENDINGS, str(port), str(count),
                       capture_output=True, text=True)
        assert ended.stdout.strip() == "done", ended.stderr
        aborted = ns.counters()["TcpExtTCPAbortOnData"] - before.get("TcpExtTCPAbortOnData", 0)
        default, everything = probes.stop(port, ns.inode)
        shown = no_loss_lines(default, everything, ("QUEUE_PURGE", "TCP_ABORT_ON_DATA"), codes)
        assert aborted == count
        # Each abort a line, but for a run of the drop program the kernel
        # skipped (the probe counts it lost): none, most of the time.
        abort_lines = len([line for line in shown if line["reason"] == "TCP_ABORT_ON_DATA"])
        assert abort_lines <= aborted <= abort_lines + everything.skipped
        assert len([line for line in shown if line["reason"] == "QUEUE_PURGE"]) >= count
    finally:
        if probes is not None:
            probes.kill()
        ns.close()


def test_duplicates_of_data_already_received_are_no_loss():
    """The receiver's ACKs blackholed for a while: the sender's timeouts
    retransmit data the receiver already has. The kernel counts each such
    segment in TcpExtDelayedACKLost (or not at all when its BPF runs were
    skipped, on top of a thread of PID 1)."""
    names = ("TCP_OLD_DATA", "TCP_OLD_SEQUENCE")
    codes = codes_of(*names)
    ns = Netns()
    probes = trace = None
    port = 9741
    try:
        ns.nft("add table inet xpt", "add chain inet xpt in { type filter hook input priority 0; }")
        probes = TwoProbes()
        trace = KernelTrace({"skb/kfree_skb": " || ".join(f"reason == {c}" for c in codes)})
        before = ns.counters()
        sender = ns.spawn("--port", str(port), "--seconds", "3")
        time.sleep(0.5)
        ns.nft(f"add rule inet xpt in tcp sport {port} tcp flags & (syn | fin | rst) == 0 drop")
        time.sleep(1.5)
        ns.nft("flush chain inet xpt in")
        sender.communicate(timeout=120)
        ns.wait_settled(port)
        duplicates = ns.counters()["TcpExtDelayedACKLost"] - before.get("TcpExtDelayedACKLost", 0)
        default, everything = probes.stop(port, ns.inode)
        shown = no_loss_lines(default, everything, names, codes)
        skipped = trace.on_pid1()
        print(f"TcpExtDelayedACKLost {duplicates}, {skipped} on top of PID-1 threads")
        assert len(shown) >= 1
        assert duplicates - skipped <= sum(line["segs"] for line in shown) <= duplicates
        # The losses the blackout made are the same lines in both probes.
        assert sum(line["segs"] for line in default.lines_of(["NETFILTER_DROP"])) == \
            sum(line["segs"] for line in everything.lines_of(["NETFILTER_DROP"]))
    finally:
        if trace is not None:
            trace.close()
        if probes is not None:
            probes.kill()
        ns.close()


CAPTURE = """
import socket, struct, sys, time
port = int(sys.argv[1])
capture = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))  # ETH_P_ALL
capture.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
capture.bind(("lo", 0))
server = socket.socket()
server.bind(("127.0.0.1", port))
server.listen()
client = socket.create_connection(("127.0.0.1", port))
conn, _ = server.accept()
for _ in range(200):
    client.sendall(b"x" * 1000)
    conn.recv(4096)
client.close()
conn.close()
time.sleep(0.2)
# PACKET_STATISTICS (linux/if_packet.h): tp_packets, tp_drops.
print(struct.unpack("II", capture.getsockopt(263, 6, 8))[1])
"""


def test_copies_for_a_capture_that_falls_behind_are_no_loss():
    """A packet socket that never reads: its copies of the flow's packets are
    dropped (the kernel traces those it frees last), the packets go on."""
    codes = codes_of("PACKET_SOCK_ERROR")
    ns = Netns()
    probes = None
    port = 9742
    try:
        probes = TwoProbes()
        captured = ns.run(sys.executable, "-c", CAPTURE, str(port), capture_output=True,
                          text=True)
        dropped = int(captured.stdout)
        default, everything = probes.stop(port, ns.inode)
        shown = no_loss_lines(default, everything, ("PACKET_SOCK_ERROR",), codes)
        print(f"the capture's own count of its drops: {dropped}")
        assert 1 <= len(shown) <= dropped
    finally:
        if probes is not None:
            probes.kill()
        ns.close()


def test_segments_after_the_peers_fin_are_no_loss():
    """The receiver shuts its side at once (traffic.py) while the sender goes
    on: the sender sits in CLOSE_WAIT, and every ACK it gets is processed and
    freed without a reason."""
    codes = codes_of("NOT_SPECIFIED")
    if not has_member(KERNEL_BTF, "trace_event_raw_kfree_skb", "rx_sk"):
        pytest.skip("the kernel names the receiving socket of a drop from Linux 6.11 (rx_sk)")
    ns = Netns()
    probes = None
    port = 9743
    try:
        probes = TwoProbes()
        ns.traffic(port, 2)
        ns.wait_settled(port)
        default, everything = probes.stop(port, ns.inode)
        shown = no_loss_lines(default, everything, ("NOT_SPECIFIED",), codes, AFTER_FIN)
        assert len(shown) >= 1
    finally:
        if probes is not None:
            probes.kill()
        ns.close()
