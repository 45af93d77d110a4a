"""TCP packets the kernel drops, on the real kernel: against nftables' own
counter (and the kernel's own trace events), a closed port, the names the
running kernel gives its reasons, and the owner of a socket that drops."""

import platform
import re
import subprocess
import time

import pytest

from xctl_probe.kernel.drop_reasons import DropReasons
from xctl_probe.kernel.loader import LoadedProbe
from xctl_probe.kernel.objects import PROBE_OBJECT
from xctl_probe.kernel.preconditions import KERNEL_BTF

from lab.accounting import drop_lines
from lab.kernel_trace import KernelTrace
from lab.marks import requires_root
from lab.netns import Netns
from lab.probe import ProbeProcess
from lab.waits import patient
from lab.xctl_contract import check_probe_line

pytestmark = requires_root

ETH_P_IP = 0x0800


def reasons_of_this_kernel():
    reasons = DropReasons(KERNEL_BTF)
    if not reasons.available:
        pytest.skip("this kernel's kfree_skb has no drop reason (Linux 5.17+)")
    return reasons


def kernel_release():
    return tuple(int(part) for part in re.findall(r"\d+", platform.release())[:2])


def test_netfilter_drops_match_nftables_counter():
    """nftables drops one packet in seven towards a port: the probe's
    NETFILTER_DROP lines for that port add up to nftables' own counter, or
    fall short by exactly the drops the kernel's trace saw on top of a
    PID-1 thread."""
    reasons = reasons_of_this_kernel()
    code = next(c for c in range(1 << 16) if reasons.name(c) == "NETFILTER_DROP")
    ns = Netns()
    probe = trace = None
    port = 9710
    try:
        ns.drop_one_in(7, port)
        probe = ProbeProcess()
        trace = KernelTrace(
            {"skb/kfree_skb": f"reason == {code} && protocol == {ETH_P_IP}"})
        senders = set()
        # A flow that lost a retransmission or two backs off for seconds: in a
        # slow guest 4 s may then see only a few drops. Rounds until ten.
        while ns.dropped < 10 and len(senders) < 5:
            if senders:
                ns.drop_one_in(7, port)
            senders.add(ns.traffic(port, 4)["pid"])
            ns.wait_settled(port)
        time.sleep(0.5)
        assert probe.stop() == 0
        tasks = trace.tasks()
        on_pid1 = trace.on_pid1()
        events = [check_probe_line(raw) for raw in probe.lines]
        drops = [e for e in drop_lines(events, port, ns.inode) if e["reason"] == "NETFILTER_DROP"]
        seen = sum(e["segs"] for e in drops)
        owned = sum(e.get("pid") in senders for e in drops)
        print(f"nftables dropped {ns.dropped} in {len(senders)} round(s); the probe reported "
              f"{seen} in {len(drops)} lines; the kernel's trace: {len(tasks)} NETFILTER_DROP, "
              f"{on_pid1} on top of PID-1 threads; {owned} of {len(drops)} lines name the owner")
        assert ns.dropped >= 10
        assert len(tasks) == ns.dropped
        assert seen == ns.dropped - on_pid1
        assert all(e["reason_code"] == code and e["kind"] == "drop" and e["sport"] == port
                   for e in drops)
        # No socket in the record (netfilter drops before the lookup): the
        # owner comes from the packet's four-tuple in its namespace.
        assert owned == len(drops), [e for e in drops if e.get("pid") not in senders][:3]
    finally:
        if trace is not None:
            trace.close()
        if probe is not None:
            probe.kill()
        ns.close()


def test_a_syn_to_a_closed_port_is_no_socket():
    reasons_of_this_kernel()
    ns = Netns()
    probe = None
    port = 9711
    try:
        probe = ProbeProcess()
        ns.knock(port)
        time.sleep(0.5)
        assert probe.stop() == 0
        drops = drop_lines([check_probe_line(raw) for raw in probe.lines], port, ns.inode)
        assert drops, "no drop line for the SYN"
        syn = drops[0]
        assert (syn["reason"], syn["kind"], syn["segs"], syn["value"]) == ("NO_SOCKET", "drop",
                                                                          1, "1")
        # Local side first: the closed port, then the client that knocked.
        assert (syn["saddr"], syn["sport"], syn["daddr"]) == ("127.0.0.1", port, "127.0.0.1")
        assert "pid" not in syn and "state" not in syn
    finally:
        if probe is not None:
            probe.kill()
        ns.close()


def bpftool_drop_reasons():
    """{value: name} of enum skb_drop_reason as bpftool prints the kernel's BTF."""
    out = subprocess.run(["bpftool", "btf", "dump", "file", str(KERNEL_BTF), "format", "c"],
                         capture_output=True, text=True, check=True).stdout
    body = re.search(r"enum skb_drop_reason \{(.*?)\};", out, re.S).group(1)
    return {int(value): name for name, value in re.findall(r"(\w+) = (\d+),", body)}


def test_reason_names_come_from_this_kernels_btf():
    reasons = reasons_of_this_kernel()
    expected = bpftool_drop_reasons()
    assert len(expected) == len(reasons) > 20
    for value, name in expected.items():
        stripped = re.sub(r"^SKB_(DROP_REASON_)?", "", name)
        assert reasons.name(value) == stripped, (value, name)


SERVER_DROPS_ALL = """
import ctypes, socket, struct, sys, time
port = int(sys.argv[1])
server = socket.socket()
server.bind(("127.0.0.1", port))
server.listen()
print("ready", flush=True)
conn, _ = server.accept()
conn.recv(5)
# A classic BPF filter that keeps nothing: every later segment is dropped
# after the socket is found (SOCKET_FILTER), the socket known to the kernel.
program = struct.pack("HBBI", 0x06, 0, 0, 0)
buf = ctypes.create_string_buffer(program)
fprog = struct.pack("HL", 1, ctypes.addressof(buf))
SO_ATTACH_FILTER = 26  # asm-generic/socket.h; Python's socket module lacks it
conn.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
print("filtering", flush=True)
time.sleep(3)
"""

CLIENT_SENDS = """
import socket, sys, time
client = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
client.sendall(b"hello")
sys.stdin.readline()
for _ in range(20):
    client.send(b"x" * 100)
    time.sleep(0.05)
time.sleep(2)
"""


def test_a_drop_on_a_socket_the_kernel_knows_names_its_owner():
    reasons_of_this_kernel()
    ns = Netns()
    probe = server = client = None
    port = 9712
    try:
        probe = ProbeProcess()
        server = ns.spawn_script(SERVER_DROPS_ALL, str(port))
        assert server.stdout.readline().strip() == "ready"
        client = ns.spawn_script(CLIENT_SENDS, str(port))
        assert server.stdout.readline().strip() == "filtering"
        client.stdin.write("go\n")
        client.stdin.flush()
        client.wait(patient(30))
        server.wait(patient(30))
        time.sleep(0.5)
        assert probe.stop() == 0
        drops = [e for e in drop_lines([check_probe_line(raw) for raw in probe.lines], port,
                                       ns.inode) if e["reason"] == "SOCKET_FILTER"]
        print(f"{len(drops)} SOCKET_FILTER drop lines; owners: "
              f"{sorted({(e.get('pid'), e.get('comm')) for e in drops}, key=str)}")
        assert len(drops) >= 5
        # Every line names the server, whether the kernel named its socket or
        # the packet's four-tuple found it; once the server has closed
        # (FIN_WAIT1), the owner found before stays.
        assert all(e.get("pid") == server.pid and e["sport"] == port for e in drops), drops
        named = [e for e in drops if "state" in e]
        if kernel_release() >= (6, 11):
            # The kernel passes the receiving socket (rx_sk) with every drop.
            assert len(named) == len(drops)
            assert len([e for e in named if e["state"] == "ESTABLISHED"]) >= 5
    finally:
        for proc in (client, server):
            if proc is not None and proc.poll() is None:
                proc.kill()
        if probe is not None:
            probe.kill()
        ns.close()


def test_no_drops_reports_retransmissions_only():
    reasons_of_this_kernel()
    ns = Netns()
    probe = None
    port = 9713
    try:
        probe = ProbeProcess("--no-drops")
        assert "attached to 4 tracepoints" in probe.attach_line
        ns.knock(port)
        time.sleep(0.5)
        assert probe.stop() == 0
        assert not drop_lines([check_probe_line(raw) for raw in probe.lines], port, ns.inode)
    finally:
        if probe is not None:
            probe.kill()
        ns.close()


@pytest.fixture
def btf_without_drop_reasons(tmp_path):
    """This kernel's BTF, cut to what the object relocates against, with
    enum skb_drop_reason renamed away: a kernel before 5.17, as the probe sees it."""
    path = tmp_path / "pre-5.17.btf"
    subprocess.run(["bpftool", "gen", "min_core_btf", str(KERNEL_BTF), str(path),
                    str(PROBE_OBJECT)], check=True)
    data = path.read_bytes()
    assert data.count(b"skb_drop_reason\0") == 1
    path.write_bytes(data.replace(b"skb_drop_reason\0", b"skb_drop_reasoX\0"))
    return path


def test_a_kernel_without_drop_reasons_keeps_retransmissions(btf_without_drop_reasons):
    reasons_of_this_kernel()
    assert not DropReasons(btf_without_drop_reasons).available
    with LoadedProbe(btf_path=btf_without_drop_reasons, drops=None) as probe:
        assert "skb:kfree_skb" not in probe.hooks
        assert len(probe.attached) == 4
