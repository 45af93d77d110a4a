"""Corners where a counter or a state misleads, caused on purpose on the
real kernel and held against the namespace's own counters."""

import signal
import subprocess
import sys
import time

import pytest

from xctl_probe.kernel.decoder import RECORD_STRUCT
from xctl_probe.kernel.preconditions import KERNEL_BTF

from lab.accounting import check_segs, flow_lines
from lab.btf import has_struct
from lab.marks import requires_root
from lab.netns import Netns
from lab.probe import ProbeProcess
from lab.xctl_contract import check_probe_line

# Records a 4 KiB ring buffer holds: each has an 8-byte header.
RING_RECORDS = 4096 // (RECORD_STRUCT.size + 8)

pytestmark = requires_root

CONNECT_GIVES_UP_THEN_AGAIN = """
import socket, subprocess, sys
port = int(sys.argv[1])
client = socket.socket()
client.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 1)
try:
    client.connect(("127.0.0.1", port))  # SYN, one retransmission, then ETIMEDOUT
    sys.exit("connect() went through the black hole")
except TimeoutError:
    pass
# The failed attempt reset the socket's counter; the same socket connects again.
subprocess.run(["nft", "flush", "chain", "inet", "xpt", "in"], check=True)
server = socket.socket()
server.bind(("127.0.0.1", port))
server.listen()
client.connect(("127.0.0.1", port))
conn, _ = server.accept()
client.sendall(b"x" * 100000)
client.close()
while conn.recv(65536):
    pass
conn.close()
server.close()
"""


def test_a_counter_reset_by_a_failed_connect_is_no_rise(lab):
    ns, finish = lab
    port = 9540
    ns.nft(f"add rule inet xpt in tcp dport {port} tcp flags & (syn | ack) == syn drop")
    ns.run(sys.executable, "-c", CONNECT_GIVES_UP_THEN_AGAIN, str(port))
    events, delta = finish(port)  # sum(segs) == TcpRetransSegs, or it fails
    assert delta["TcpExtTCPSynRetrans"] >= 1
    assert all(0 < e["segs"] <= delta["TcpRetransSegs"] for e in events), events
    syn = [e for e in events if e.get("kind") == "syn"]
    assert sum(e["segs"] for e in syn) == delta["TcpExtTCPSynRetrans"]


def test_a_retransmission_the_qdisc_refuses_is_named(lab):
    """A qdisc that takes nothing for 1.5 s, while data is in flight:
    transmissions and retransmissions fail with NET_XMIT_DROP. From 6.17 the tracepoint reports them (err 1,
    err_name NET_XMIT_DROP) and Σsegs is exact; before, it does not fire for
    them, and check_segs allows what TcpExtTCPRetransFail counted."""
    ns, finish = lab
    port = 9545
    sender = ns.spawn("--port", str(port), "--seconds", "4")
    sender.stdout.readline()
    time.sleep(0.5)
    # The receiver's ACKs dropped first, so that data is in flight and the
    # retransmission timer runs, whatever the timing of loopback.
    ns.nft(f"add rule inet xpt in tcp sport {port} drop")
    time.sleep(0.3)
    ns.run("tc", "qdisc", "add", "dev", "lo", "root", "pfifo", "limit", "0")
    time.sleep(1.5)
    ns.run("tc", "qdisc", "del", "dev", "lo", "root")
    ns.nft("flush chain inet xpt in")
    sender.wait(timeout=120)
    events, delta = finish(port)
    failed = [e for e in events if e["err"]]
    assert delta["TcpExtTCPRetransFail"] >= 1
    if has_struct(KERNEL_BTF, "trace_event_raw_tcp_retransmit_skb"):  # 6.17+
        assert failed and {(e["err"], e["err_name"]) for e in failed} == {(1, "NET_XMIT_DROP")}
    else:
        assert not failed
    assert all("err_name" not in e for e in events if not e["err"])


def segs_of(events, *kinds):
    return sum(e["segs"] for e in events if e.get("kind") in kinds)


FAST_OPEN_SERVER_IN_SYN_RECV = """
import socket, subprocess, sys, time
port = int(sys.argv[1])
server = socket.socket()
server.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 16)
server.bind(("127.0.0.1", port))
server.listen()
client = socket.socket()
client.sendto(b"hello", socket.MSG_FASTOPEN, ("127.0.0.1", port))
conn, _ = server.accept()  # at once: the SYN's data is there
assert conn.recv(100) == b"hello"
conn.sendall(b"z" * 20000)  # in SYN_RECV: the client's ACKs are all dropped
time.sleep(3.5)  # two SYN-ACK timeouts, and the first data segment lost
subprocess.run(["nft", "flush", "chain", "inet", "xpt", "in"], check=True)
got = 0
while got < 20000:  # the next SYN-ACK is acknowledged, with SACKs for the data
    got += len(client.recv(65536))
client.close()
conn.close()
server.close()
"""


def test_a_fast_open_server_recovering_data_in_syn_recv_is_not_a_synack(lab):
    """A server socket accepted on its SYN's data (TCP Fast Open) sends data
    while its handshake is unfinished. Until the client's ACK gets through it
    stays in SYN_RECV, and the ACK that finally does so carries SACKs that make
    it fast-retransmit the lost data, still in SYN_RECV. The segment is data,
    so the kind comes from loss recovery, not from the state."""
    ns, finish = lab
    port = 9550
    ns.run("sysctl", "-q", "net.ipv4.tcp_fastopen=0x207")  # client and server, no cookie
    # Segments of 1448 bytes, one per packet: a dropped packet is one segment.
    ns.run("ip", "link", "set", "lo", "mtu", "1500", "gso_max_size", "1500")
    ns.nft(f"add rule inet xpt in tcp dport {port} tcp flags & syn == 0 drop",
           f"add rule inet xpt in tcp sport {port} tcp flags & syn == 0 meta length > 200 "
           "numgen inc mod 1000000 == 0 drop")
    ns.run(sys.executable, "-c", FAST_OPEN_SERVER_IN_SYN_RECV, str(port))
    events, delta = finish(port)
    assert delta["TcpExtTCPFastOpenPassive"] == 1 and delta["TcpExtTCPSynRetrans"] >= 2
    in_syn_recv = [e for e in events if e["state"] == "SYN_RECV"]
    assert in_syn_recv and all(e["kind"] in ("fast", "rto") for e in in_syn_recv), events
    assert segs_of(events, "synack") == delta["TcpExtTCPSynRetrans"]
    assert segs_of(events, "fast") == delta["TcpExtTCPFastRetrans"]
    assert segs_of(events, "rto") == delta["TcpExtTCPSlowStartRetrans"] + (
        delta["TcpExtTCPTimeouts"] - delta["TcpExtTCPSynRetrans"])


FAST_OPEN_DATA_NOT_ACKNOWLEDGED = """
import socket, sys
port = int(sys.argv[1])
server = socket.socket()  # no Fast Open here: its SYN-ACK acknowledges the SYN only
server.bind(("127.0.0.1", port))
server.listen()
client = socket.socket()
client.sendto(b"y" * 1000, socket.MSG_FASTOPEN, ("127.0.0.1", port))
conn, _ = server.accept()
got = 0
while got < 1000:
    got += len(conn.recv(65536))
client.close()
conn.close()
server.close()
"""


def test_fast_open_data_the_syn_ack_did_not_acknowledge_is_noncongestion(lab):
    ns, finish = lab
    port = 9555
    ns.run("sysctl", "-q", "net.ipv4.tcp_fastopen=5")  # client, data without a cookie
    ns.run(sys.executable, "-c", FAST_OPEN_DATA_NOT_ACKNOWLEDGED, str(port))
    events, delta = finish(port)
    assert delta["TcpExtTCPFastOpenActiveFail"] == 1
    assert delta["TcpExtTCPTimeouts"] == 0 and delta["TcpExtTCPSlowStartRetrans"] >= 1
    assert {e["kind"] for e in events} == {"noncongestion"}, events
    assert segs_of(events, "noncongestion") == delta["TcpExtTCPSlowStartRetrans"]


PMTU_SERVER = """
import socket, sys
server = socket.socket()
server.bind(("10.77.1.2", int(sys.argv[1])))
server.listen()
print("listening", flush=True)
conn, _ = server.accept()
while conn.recv(65536):
    pass
"""

PMTU_CLIENT = """
import socket, sys
client = socket.create_connection(("10.77.1.2", int(sys.argv[1])))
client.sendall(b"q" * 300000)
client.close()
"""


@pytest.fixture
def narrow_path():
    """client namespace -- router -- server namespace, the router's link to the
    server with an MTU of 1280 while both ends keep 1500: the client learns
    the path MTU only from the router's ICMP fragmentation-needed."""
    client, router, server = Netns(), Netns(), Netns()
    try:
        for a, a_if, b, b_if in ((client, "c0", router, "r0"), (router, "r1", server, "s0")):
            subprocess.run(["ip", "link", "add", a_if, "netns", a.name, "type", "veth",
                            "peer", "name", b_if, "netns", b.name], check=True)
        client.run("ip", "addr", "add", "10.77.0.1/24", "dev", "c0")
        client.run("ip", "link", "set", "c0", "up")
        client.run("ip", "route", "add", "default", "via", "10.77.0.2")
        router.run("ip", "addr", "add", "10.77.0.2/24", "dev", "r0")
        router.run("ip", "link", "set", "r0", "up")
        router.run("ip", "addr", "add", "10.77.1.1/24", "dev", "r1")
        router.run("ip", "link", "set", "r1", "up", "mtu", "1280")
        router.run("sysctl", "-q", "net.ipv4.ip_forward=1")
        server.run("ip", "addr", "add", "10.77.1.2/24", "dev", "s0")
        server.run("ip", "link", "set", "s0", "up")
        server.run("ip", "route", "add", "default", "via", "10.77.1.1")
        yield client, server
    finally:
        for ns in (client, router, server):
            ns.close()


def test_a_path_mtu_drop_is_noncongestion(narrow_path):
    client, server = narrow_path
    port = 9560
    listener = subprocess.Popen(["ip", "netns", "exec", server.name, sys.executable, "-c",
                                 PMTU_SERVER, str(port)], stdout=subprocess.PIPE, text=True)
    probe = ProbeProcess()
    try:
        assert listener.stdout.readline() == "listening\n"
        before = client.counters()
        client.run(sys.executable, "-c", PMTU_CLIENT, str(port))
        listener.wait(timeout=60)
        client.wait_settled(port)
        after = client.counters()
        time.sleep(0.5)
        assert probe.stop() == 0
    finally:
        probe.kill()
        listener.kill()
    delta = {k: after[k] - before.get(k, 0) for k in after}
    route = client.run("ip", "route", "get", "10.77.1.2", capture_output=True, text=True).stdout
    assert "mtu 1280" in route and delta["IcmpInDestUnreachs"] >= 1
    events = flow_lines([check_probe_line(raw) for raw in probe.lines], port, client.inode)
    check_segs(sum(e["segs"] for e in events), delta, probe.err_layout)
    # The MTU drop is the only Loss episode; on a slow guest the segments
    # lost meanwhile can also start a fast recovery, which keeps its kind.
    assert delta["TcpExtTCPTimeouts"] == 0
    assert {e["kind"] for e in events} <= {"noncongestion", "fast", "tlp"}, events
    assert segs_of(events, "noncongestion") == delta["TcpExtTCPSlowStartRetrans"] > 0
    assert segs_of(events, "fast") == delta["TcpExtTCPFastRetrans"]


SYNS_INTO_A_BLACK_HOLE = """
import socket, sys, time
sockets = []
for _ in range(int(sys.argv[2])):
    s = socket.socket()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 1)
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", int(sys.argv[1])))
    sockets.append(s)
time.sleep(1.6)  # each retransmits its SYN once, at 1 s
"""

BORN_UNDER_THE_PROBE = """
import socket, sys
port = int(sys.argv[1])
server = socket.socket()
server.bind(("127.0.0.1", port))
server.listen()
client = socket.create_connection(("127.0.0.1", port))  # its first SYN is dropped
conn, _ = server.accept()
print("connected", flush=True)
sys.stdin.readline()
client.sendall(b"d" * 100000)  # its first data segment is dropped
client.close()
while conn.recv(65536):
    pass
"""


@pytest.mark.probe_args("--ring-kib", "4")
def test_a_socket_born_under_the_probe_counts_a_first_retransmission_it_missed(lab):
    """The socket's first retransmission, its SYN, leaves no record: the
    reader is stopped and the ring full. Its next record must carry it, which
    only the socket's counter at birth, taken by the probe, makes possible."""
    ns, finish = lab
    port = 9565
    probe = finish.probe
    crowd = Netns()
    try:
        crowd.nft("add table inet xpt",
                  "add chain inet xpt in { type filter hook input priority 0; }",
                  "add rule inet xpt in tcp dport 9566 drop")
        ns.nft(f"add rule inet xpt in tcp dport {port} tcp flags & (syn | ack) == syn "
               "numgen inc mod 1000000 == 0 drop",
               f"add rule inet xpt in tcp dport {port} meta length > 100 "
               "numgen inc mod 1000000 == 0 drop")
        probe.proc.send_signal(signal.SIGSTOP)
        # 60 SYN retransmissions fill a 4 KiB ring (RING_RECORDS records).
        crowd.run(sys.executable, "-c", SYNS_INTO_A_BLACK_HOLE, "9566", "60")
        assert crowd.counters()["TcpRetransSegs"] >= 60
        subject = ns.spawn_script(BORN_UNDER_THE_PROBE, str(port))
        assert subject.stdout.readline() == "connected\n"
        probe.proc.send_signal(signal.SIGCONT)
        assert probe.wait_lines(RING_RECORDS - 4, timeout=10)  # the crowd's records drained
        subject.stdin.write("go\n")
        subject.stdin.flush()
        subject.wait(timeout=60)
    finally:
        probe.proc.send_signal(signal.SIGCONT)
        crowd.close()
    events, delta = finish(port)  # sum(segs) == TcpRetransSegs, or it fails
    assert delta["TcpExtTCPSynRetrans"] == 1 and delta["TcpRetransSegs"] == 2
    assert [e["segs"] for e in events] == [2] and events[0]["kind"] != "syn", events
    assert sum(check_probe_line(raw).get("lost", 0) for raw in probe.lines) >= 1


HANDSHAKES_IN_BATCHES = """
import socket, sys, threading
port = int(sys.argv[1])
server = socket.socket()
server.bind(("127.0.0.1", port))
server.listen(128)
accepted = []
threading.Thread(target=lambda: [accepted.append(server.accept()) for _ in range(40)],
                 daemon=True).start()

def handshake(client_port):
    client = socket.socket()
    client.bind(("127.0.0.1", client_port))
    client.connect(("127.0.0.1", port))
    client.close()

for batch in range(4):
    threads = [threading.Thread(target=handshake, args=(41000 + batch * 10 + i,))
               for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
"""


@pytest.mark.probe_args("--window", "0.5")
def test_each_handshake_is_measured_afresh(lab):
    """Forty handshakes whose first SYN-ACK is dropped, in batches a second
    apart, so that request sockets come and go and the kernel reuses their
    memory. A request socket gives no close record: keyed by its address, a
    new handshake would be measured against an old one's sample, older than
    the (short) window, and read 0 or 100. Each must read what it alone did:
    its first SYN-ACK retransmission, of two SYN-ACKs sent, is 50 %."""
    ns, finish = lab
    port = 9570
    ns.nft("add set inet xpt answered { type ipv4_addr . inet_service; flags dynamic; }",
           f"add rule inet xpt in tcp sport {port} tcp flags == (syn | ack) "
           "ip daddr . tcp dport @answered accept",
           f"add rule inet xpt in tcp sport {port} tcp flags == (syn | ack) "
           "add @answered { ip daddr . tcp dport } drop")
    ns.run(sys.executable, "-c", HANDSHAKES_IN_BATCHES, str(port))
    events, delta = finish(port)
    first = {}
    for e in sorted(events, key=lambda e: e["ts"]):
        if e.get("kind") == "synack":
            first.setdefault(e["dport"], e["value"])
    assert len(first) == 40 and set(first.values()) == {"50"}, first
    assert segs_of(events, "syn", "synack") == delta["TcpExtTCPSynRetrans"]
