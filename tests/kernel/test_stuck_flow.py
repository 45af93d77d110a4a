"""A stuck flow in plain sight: a connection blackholed for longer than
three retransmission timeouts backs off, and its lines say so (rto_ms
doubling, backoff rising, stalled_ms growing), where counts alone would show
a handful of retransmissions."""

import time

from lab.accounting import flow_lines
from lab.marks import requires_root
from lab.netns import Netns
from lab.probe import ProbeProcess
from lab.xctl_contract import check_probe_line

pytestmark = requires_root


def test_a_blackholed_flow_shows_its_backoff():
    port = 9460
    ns = Netns()
    probe = sender = None
    try:
        probe = ProbeProcess()
        sender = ns.spawn("--port", str(port), "--seconds", "14")
        time.sleep(1.5)
        ns.drop_one_in(1, port, both_ways=True)  # every packet, both ways: a black hole
        # Timeouts at about 0.2, 0.6, 1.4, 3.0 and 6.2 s: five of them.
        time.sleep(8)
        ns.lift_loss()
        sender.communicate(timeout=300)
        ns.wait_settled(port)
        time.sleep(0.5)
        assert probe.stop() == 0
    finally:
        for proc in (sender, probe):
            if proc is not None:
                proc.kill()
        ns.close()

    events = flow_lines([check_probe_line(raw) for raw in probe.lines], port, ns.inode)
    timeouts = [(e["backoff"], e["rto_ms"], e["stalled_ms"]) for e in events
                if e["dport"] == port and e["kind"] == "rto"]
    print("(backoff, rto_ms, stalled_ms) of the sender's timeouts:", timeouts)
    # The black hole's: timeouts in a row, until the ACK that ends them (the
    # recovery's own retransmissions, after it, are back at backoff 0).
    sequence = timeouts[:1]
    for line in timeouts[1:]:
        if line[0] != sequence[-1][0] + 1:
            break
        sequence.append(line)
    assert len(sequence) > 3, timeouts
    assert sequence[0][0] == 0 and timeouts[len(sequence)][0] == 0, timeouts
    for (_, rto, stalled), (_, next_rto, next_stalled) in zip(sequence, sequence[1:]):
        assert next_rto // 2 == rto, sequence  # doubled (ms rounded down from jiffies)
        assert next_stalled - stalled >= rto, sequence  # about the next timeout, 2 * rto
    # Every line of a socket carries them; the handshake's request and drops have none.
    assert all("rto_ms" in e and "backoff" in e and "stalled_ms" in e for e in events
               if e.get("kind") not in ("synack", "syn"))
