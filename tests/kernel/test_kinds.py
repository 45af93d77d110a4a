"""Why: each kind of retransmission caused on purpose, found in the lines,
and held exactly against the kernel's own counter for that kind.

Each packet carries one segment here (MTU 1500, one segment per GSO packet),
so each retransmission is one segment: the counters that count segments
(TcpExtTCPFastRetrans, TcpExtTCPSlowStartRetrans) count retransmissions, as
do those that count events (TcpExtTCPTimeouts, TcpExtTCPSynRetrans,
TcpExtTCPLossProbes). A retransmission whose BPF run the kernel skipped (on
top of a thread of PID 1, kernel-notes) has no line of its own, its segment
carried by the socket's next line, whatever that one's kind: so a kind's
lines are counted, and the skipped runs the kernel's own trace saw on the
test's port are added to the kind their socket's state gave them."""

import time
from contextlib import contextmanager

from lab.kernel_trace import KernelTrace
from lab.marks import requires_root

pytestmark = requires_root


def one_segment_per_packet(ns):
    ns.run("ip", "link", "set", "lo", "mtu", "1500", "gso_max_size", "1500", "gso_max_segs", "1")


@contextmanager
def traced(port):
    """The kernel's own trace of the port's retransmissions and congestion
    states, for as long as the test's traffic runs."""
    trace = KernelTrace.retransmissions(port, cong_states=True)
    try:
        yield trace
    finally:
        trace.close()


def lines_of(events, *kinds):
    return sum(e.get("kind") in kinds for e in events)


def check_kinds(events, delta, trace):
    """Each kind against its counter, exactly. Returns the skipped runs by
    state, and prints the figures."""
    skipped = trace.skipped_by_state()
    retransmissions = [e for e in trace.events()
                       if e.name in ("tcp_retransmit_skb", "tcp_retransmit_synack")]
    timeouts = delta["TcpExtTCPTimeouts"] - delta["TcpExtTCPSynRetrans"]
    print(f"lines by kind: fast {lines_of(events, 'fast')}, rto {lines_of(events, 'rto')}, "
          f"noncongestion {lines_of(events, 'noncongestion')}, tlp {lines_of(events, 'tlp')}, "
          f"syn {lines_of(events, 'syn')}, synack {lines_of(events, 'synack')}, "
          f"none {lines_of(events, None)}; skipped runs {skipped}; "
          f"trace {len(retransmissions)}; TcpRetransSegs {delta['TcpRetransSegs']}, "
          f"FastRetrans {delta['TcpExtTCPFastRetrans']}, Timeouts {delta['TcpExtTCPTimeouts']}, "
          f"SlowStartRetrans {delta['TcpExtTCPSlowStartRetrans']}, "
          f"SynRetrans {delta['TcpExtTCPSynRetrans']}, LossProbes {delta['TcpExtTCPLossProbes']}")
    # A failed retransmission counts in TcpRetransSegs but in no kind's
    # counter: there is none here, which the equations below rely on.
    assert delta["TcpExtTCPRetransFail"] == 0
    # One segment each, and only the test's own flows in the trace.
    assert len(retransmissions) == delta["TcpRetransSegs"]
    # A line for every run the kernel did not skip; the others' segments
    # in later lines (the sum of segs is checked by finish), a socket's last
    # line, at close, having no kind.
    assert len(events) - lines_of(events, None) == len(retransmissions) - sum(skipped.values())
    assert all(e["state"] == "CLOSE" for e in events if "kind" not in e), events
    assert lines_of(events, "syn", "synack") + skipped["syn"] + skipped["synack"] == delta[
        "TcpExtTCPSynRetrans"]
    assert lines_of(events, "fast") + skipped["recovery"] == delta["TcpExtTCPFastRetrans"]
    # Loss: one retransmission per timeout that is not a SYN's or a
    # SYN-ACK's (they count in TcpExtTCPTimeouts too), then what the kernel
    # retransmits while in Loss.
    assert lines_of(events, "rto", "noncongestion") + skipped["loss"] == (
        timeouts + delta["TcpExtTCPSlowStartRetrans"])
    # Open: loss probes. TcpExtTCPLossProbes counts too the probes that sent
    # new data instead of retransmitting: no more than that is exact.
    assert lines_of(events, "tlp") + skipped["other"] <= delta["TcpExtTCPLossProbes"]
    return skipped


def test_kinds_under_random_loss(lab):
    ns, finish = lab
    one_segment_per_packet(ns)
    ns.nft("add rule inet xpt in tcp dport 9500 numgen random mod 5 == 0 drop")
    with traced(9500) as trace:
        sender = ns.spawn("--port", "9500", "--seconds", "3")
        sender.stdout.readline()
        time.sleep(3)
        ns.nft("flush chain inet xpt in")  # the tail let through: no backoff of minutes
        sender.wait(timeout=120)
        events, delta = finish(9500)
        check_kinds(events, delta, trace)
    assert lines_of(events, "fast") and lines_of(events, "rto")


def test_rto_when_the_path_goes_black(lab):
    ns, finish = lab
    one_segment_per_packet(ns)
    with traced(9510) as trace:
        sender = ns.spawn("--port", "9510", "--seconds", "4")
        # Connected first: where start-up is slow (a guest kernel), the black
        # hole must hit the data, not the handshake.
        sender.stdout.readline()
        time.sleep(1.0)
        ns.nft("add rule inet xpt in tcp dport 9510 drop")  # longer than any RTO here
        time.sleep(1.5)
        ns.nft("flush chain inet xpt in")
        sender.wait(timeout=120)
        events, delta = finish(9510)
        check_kinds(events, delta, trace)
    assert delta["TcpExtTCPTimeouts"] >= 1 and lines_of(events, "rto") >= 1
    assert all(e["dport"] == 9510 for e in events if e.get("kind") == "rto")


def test_tail_loss_probes_in_request_response(lab):
    ns, finish = lab
    one_segment_per_packet(ns)
    # The handshake spared, and timed from the connection: a dropped SYN or a
    # slow start (a guest kernel) must not eat the seconds of requests.
    ns.nft("add rule inet xpt in tcp dport 9520 tcp flags & syn == 0 "
           "numgen random mod 5 == 0 drop")
    with traced(9520) as trace:
        pinger = ns.spawn("--port", "9520", "--seconds", "3", "--pingpong")
        pinger.stdout.readline()
        pinger.wait(timeout=120)
        ns.nft("flush chain inet xpt in")
        events, delta = finish(9520)
        skipped = check_kinds(events, delta, trace)
    assert lines_of(events, "tlp"), {e.get("kind") for e in events}
    # One request in flight, its echo awaited, and one echo at a time: a
    # probe never finds new data to send, so each one retransmits.
    assert lines_of(events, "tlp") + skipped["other"] == delta["TcpExtTCPLossProbes"]


def test_syn_retransmissions(lab):
    ns, finish = lab
    one_segment_per_packet(ns)
    ns.nft("add rule inet xpt in tcp dport 9530 tcp flags & (syn | ack) == syn drop")
    with traced(9530) as trace:
        sender = ns.spawn("--port", "9530", "--seconds", "0.5")
        ns.wait_socket("syn-sent", 9530)
        time.sleep(1.5)  # the first retransmitted SYN, at 1 s, is dropped too
        ns.nft("flush chain inet xpt in")
        sender.wait(timeout=120)
        events, delta = finish(9530)
        check_kinds(events, delta, trace)
    assert lines_of(events, "syn") >= 2
    assert all(e["state"] == "SYN_SENT" and e["dport"] == 9530
               for e in events if e.get("kind") == "syn")
