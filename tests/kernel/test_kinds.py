"""Why: each kind of retransmission caused on purpose, found in the lines,
and held against the kernel's own counter for that kind."""

import time

import pytest

from lab.accounting import flow_lines
from lab.marks import requires_root
from lab.scenarios import run_storm
from lab.xctl_contract import check_probe_line

pytestmark = [requires_root, pytest.mark.kernels]


def kinds(events, kind):
    return [e for e in events if e.get("kind") == kind]


def test_fast_retransmits_under_random_loss():
    run = run_storm(port=9500, seconds=4.0, drop_one_in=5)
    events = flow_lines([check_probe_line(raw) for raw in run["lines"]], run["port"], run["netns"])
    fast = kinds(events, "fast")
    fast_segs = sum(e["segs"] for e in fast)
    kernel = run["delta"]["TcpExtTCPFastRetrans"]
    assert fast and kernel
    # The kernel counts outside the Loss state what we call fast: equal but
    # for a segment carried into another line by a skipped BPF run.
    assert abs(fast_segs - kernel) <= max(2, kernel // 100), (fast_segs, kernel)


def test_rto_when_the_path_goes_black(lab):
    ns, finish = lab
    sender = ns.spawn("--port", "9510", "--seconds", "4")
    # Connected first: where start-up is slow (a guest kernel), the black hole
    # must hit the data, not the handshake.
    sender.stdout.readline()
    time.sleep(1.0)
    ns.nft("add rule inet xpt in tcp dport 9510 drop")  # longer than any RTO here
    time.sleep(1.5)
    ns.nft("flush chain inet xpt in")
    sender.wait(timeout=120)
    events, delta = finish(9510)
    rto = kinds(events, "rto")
    assert delta["TcpExtTCPTimeouts"] >= 1
    assert len(rto) >= delta["TcpExtTCPTimeouts"]
    assert all(e["dport"] == 9510 for e in rto)


def test_tail_loss_probes_in_request_response(lab):
    ns, finish = lab
    # The handshake spared, and timed from the connection: a dropped SYN or a
    # slow start (a guest kernel) must not eat the seconds of requests.
    ns.nft("add rule inet xpt in tcp dport 9520 tcp flags & syn == 0 "
           "numgen random mod 5 == 0 drop")
    pinger = ns.spawn("--port", "9520", "--seconds", "3", "--pingpong")
    pinger.stdout.readline()
    pinger.wait(timeout=120)
    ns.nft("flush chain inet xpt in")
    events, delta = finish(9520)
    tlp = kinds(events, "tlp")
    assert tlp, {e.get("kind") for e in events}
    assert len(tlp) <= delta["TcpExtTCPLossProbes"]


def test_syn_retransmissions(lab):
    ns, finish = lab
    ns.nft("add rule inet xpt in tcp dport 9530 tcp flags & (syn | ack) == syn drop")
    sender = ns.spawn("--port", "9530", "--seconds", "0.5")
    ns.wait_socket("syn-sent", 9530)
    time.sleep(1.5)  # the first retransmitted SYN, at 1 s, is dropped too
    ns.nft("flush chain inet xpt in")
    sender.wait(timeout=120)
    events, delta = finish(9530)
    syn = kinds(events, "syn")
    assert len(syn) == delta["TcpExtTCPSynRetrans"] >= 2
    assert all(e["state"] == "SYN_SENT" and e["dport"] == 9530 for e in syn)
