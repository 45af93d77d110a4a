"""The acceptance scenario on the real kernel: a loss storm in a namespace of
our own, and the probe's lines held against the kernel's own counters."""

import sys

from lab.accounting import check_segs, flow_lines
from lab.marks import requires_root
from lab.scenarios import run_storm
from lab.xctl_contract import check_probe_line

pytestmark = requires_root


def test_segs_sum_equals_kernel_retrans_segs_exactly():
    run = run_storm(port=9000, seconds=6.0, drop_one_in=5)

    assert run.rc == 0, run.stderr
    events = [check_probe_line(raw) for raw in run.lines]
    ours = flow_lines(events, run.port, run.netns)

    assert run.nft_dropped > 0, "nftables dropped nothing: the scenario caused no loss"
    assert run.delta["TcpRetransSegs"] > 0
    check_segs(sum(e["segs"] for e in ours), run.delta, run.err_layout)
    # Every retransmission in the namespace was on the test port.
    assert len(ours) == len([e for e in events if e["netns"] == run.netns
                             and e.get("kind") != "drop"])


def test_lines_describe_the_flow_and_the_time():
    run = run_storm(port=9001, seconds=3.0, drop_one_in=5)

    events = run.events()
    assert events
    first_ms, last_ms = run.span_ms
    client_port = run.sender["port"]
    for e in events:
        assert first_ms - 1000 <= e["ts"] <= last_ms, "ts is not wall-clock epoch ms of the event"
        assert e["family"] == "ipv4" and e["saddr"] == e["daddr"] == "127.0.0.1"
        assert {e["sport"], e["dport"]} == {run.port, client_port}
        assert e["entity_id"] == f"network-{e['saddr']}-{e['daddr']}-{e['sport']}-{e['dport']}"
        assert e["segs"] >= 1 and e["err"] == 0
        # One process holds both sockets: it owns every line.
        assert e["pid"] == run.sender["pid"] and "node_id" not in e
    # The data flow runs from the client to the server's port.
    data = [e for e in events if e["dport"] == run.port]
    # The server half-closes at once, so the client sends from CLOSE_WAIT. The
    # one line from CLOSE is the socket's last word (no kind): segments of
    # retransmissions whose BPF run the kernel skipped, counted at close.
    sending_states = {"SYN_SENT", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "FIN_WAIT1", "CLOSING"}
    assert data and all(e["state"] in sending_states
                        or (e["state"] == "CLOSE" and "kind" not in e) for e in data)
    # ts follows the kernel's order of events within a flow.
    assert [e["ts"] for e in data] == sorted(e["ts"] for e in data)
    # One in five dropped: the flow's rate over the window shows a storm.
    assert max(float(e["value"]) for e in data) >= 10


HANDSHAKE_STUCK = """
import socket, subprocess, sys, time
port = int(sys.argv[1])
server = socket.socket()
server.bind(("127.0.0.1", port))
server.listen()
client = socket.create_connection(("127.0.0.1", port))
time.sleep(3.5)  # the server retransmits its SYN-ACK at about 1 s and 3 s
subprocess.run(["nft", "flush", "ruleset"], check=True)
client.send(b"x")  # now the handshake completes
conn, _ = server.accept()
conn.recv(1)
for s in (client, conn, server):
    s.close()
"""


def test_synack_retransmissions_are_reported_and_counted(lab):
    ns, finish = lab
    port = 9300
    # Let SYNs through to the server, drop everything else towards it: the
    # handshake's last ACK never arrives, so the server retransmits its SYN-ACK.
    ns.nft(f"add rule inet xpt in tcp dport {port} tcp flags & (syn | ack) == ack drop")
    ns.run(sys.executable, "-c", HANDSHAKE_STUCK, str(port))
    events, delta = finish(port)

    synack_retrans = delta["TcpExtTCPSynRetrans"]
    assert synack_retrans >= 2
    synacks = [e for e in events if e.get("kind") == "synack"]
    assert len(synacks) == synack_retrans
    assert all(e["sport"] == port and e["state"] == "NEW_SYN_RECV" and e["segs"] == 1
               for e in synacks)
    # The n-th retransmitted SYN-ACK of a request: n of n + 1 sent.
    assert [e["value"] for e in synacks][:2] == ["50", "66.67"]


ONE_SYN_RETRANSMITTED = """
import socket, sys
server = socket.socket()
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
socket.create_connection(("127.0.0.1", int(sys.argv[1]))).close()  # first SYN dropped
"""


def test_a_lone_retransmission_reaches_stdout_within_a_second(lab):
    """The BPF side wakes the reader only once records pile up; on a quiet
    node the reader's own timeout must still bring a single line out fast."""
    ns, finish = lab
    port = 9040
    ns.nft(f"add rule inet xpt in tcp dport {port} tcp flags & (syn | ack) == syn "
           "numgen inc mod 1000000 == 0 drop")
    ns.run(sys.executable, "-c", ONE_SYN_RETRANSMITTED, str(port))
    probe = finish.probe

    def retransmissions():
        """(arrival, line) of the namespace's retransmission lines so far (the
        dropped SYN has a drop line of its own)."""
        return [(arrived, e) for arrived, e in zip(probe.arrived_ms,
                                                   map(check_probe_line, probe.lines))
                if e["netns"] == ns.inode and e.get("kind") != "drop"]

    assert probe.wait_for(retransmissions, timeout=5.0)
    [(arrived_ms, event)] = retransmissions()
    delay_ms = arrived_ms - event["ts"]
    print(f"one retransmission: on stdout {delay_ms:.0f} ms after the kernel made it")
    assert delay_ms < 1000
    events, delta = finish(port)
    assert delta["TcpRetransSegs"] == 1 and [e["kind"] for e in events] == ["syn"]
