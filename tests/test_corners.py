"""Corners where a counter or a state misleads, caused on purpose on the
real kernel and held against the namespace's own counters."""

import sys
import time

import pytest

from btf import has_struct
from conftest import requires_root
from xctl_probe.loader import KERNEL_BTF

pytestmark = [requires_root, pytest.mark.kernels]

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
    """A qdisc that takes nothing for 1.5 s: transmissions and retransmissions
    fail with NET_XMIT_DROP. From 6.17 the tracepoint reports them (err 1,
    err_name NET_XMIT_DROP) and Σsegs is exact; before, it does not fire for
    them, and check_segs allows what TcpExtTCPRetransFail counted."""
    ns, finish = lab
    port = 9545
    sender = ns.spawn("--port", str(port), "--seconds", "4")
    sender.stdout.readline()
    time.sleep(0.5)
    ns.run("tc", "qdisc", "add", "dev", "lo", "root", "pfifo", "limit", "0")
    time.sleep(1.5)
    ns.run("tc", "qdisc", "del", "dev", "lo", "root")
    sender.wait(timeout=120)
    events, delta = finish(port)
    failed = [e for e in events if e["err"]]
    assert delta["TcpExtTCPRetransFail"] >= 1
    if has_struct(KERNEL_BTF, "trace_event_raw_tcp_retransmit_skb"):  # 6.17+
        assert failed and {(e["err"], e["err_name"]) for e in failed} == {(1, "NET_XMIT_DROP")}
    else:
        assert not failed
    assert all("err_name" not in e for e in events if not e["err"])
