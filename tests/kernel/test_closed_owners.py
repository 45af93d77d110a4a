"""Owners of sockets that have lost their file: short-lived connections that
close() with their data still in flight, and processes that exit right after,
under loss. Their retransmissions come after the file is gone, where /proc
has nothing to say; the kernel remembered who connected and who closed."""

import json
import time

from lab.accounting import check_segs, flow_lines
from lab.kernel_trace import KernelTrace
from lab.marks import requires_root
from lab.netns import Netns
from lab.probe import ProbeProcess
from lab.xctl_contract import check_probe_line

pytestmark = requires_root

SINK, CLIENT, ONCE = b"xpt-sink", b"xpt-short", b"xpt-once"


def _ports(proc) -> dict:
    """{local port: pid} of every connection a short_flows.py client made."""
    out, _ = proc.communicate(timeout=300)
    return {info["port"]: info["pid"] for info in map(json.loads, out.splitlines())}


def test_short_lived_connections_name_their_owner_after_close():
    port = 9450
    ns = Netns()
    probe = sink = trace = None
    try:
        ns.drop_one_in(5, port, both_ways=True)
        probe = ProbeProcess()
        # Many handshakes and closes in softirq: where one runs on top of a
        # thread of PID 1 no BPF program sees it, and a request's last SYN-ACK
        # or a socket's last retransmission has no later record to carry it.
        # Only the port's own retransmissions: another on the machine is none
        # of this test's.
        trace = KernelTrace.retransmissions(port)
        before = ns.counters()
        sink = ns.spawn("--role", "sink", "--port", str(port), "--name-hex", SINK.hex(),
                        script="short_flows.py")
        sink_pid = json.loads(sink.stdout.readline())["pid"]
        client = ns.spawn("--role", "client", "--port", str(port), "--count", "30",
                          "--kib", "300", "--name-hex", CLIENT.hex(), script="short_flows.py")
        owners = {p: (pid, CLIENT.decode()) for p, pid in _ports(client).items()}
        exited = set()
        for _ in range(6):
            once = ns.spawn("--role", "once", "--port", str(port), "--kib", "1024",
                            "--name-hex", ONCE.hex(), script="short_flows.py")
            ports = _ports(once)
            owners.update({p: (pid, ONCE.decode()) for p, pid in ports.items()})
            exited.update(ports.values())
        # The closed sockets go on retransmitting under loss, then the tail is let through.
        time.sleep(3)
        ns.lift_loss()
        ns.wait_settled(port, timeout=120)
        after = ns.counters()
        skipped = trace.on_pid1()
        time.sleep(0.5)
        assert probe.stop() == 0
    finally:
        if trace is not None:
            trace.close()
        for proc in (sink, probe):
            if proc is not None:
                proc.kill()
        ns.close()

    events = flow_lines([check_probe_line(raw) for raw in probe.lines], port, ns.inode)
    right, wrong, unnamed = [], [], []
    for e in events:
        expected = ((sink_pid, SINK.decode()) if e["sport"] == port
                    else owners.get(e["sport"]))
        if "pid" not in e:
            unnamed.append(e)
        elif (e["pid"], e.get("comm")) == expected:
            right.append(e)
        else:
            wrong.append((e["pid"], e.get("comm"), e["state"], e["sport"], expected))
    closed = [e for e in events if e["sport"] != port and e["state"] != "ESTABLISHED"]
    gone = [e for e in events if e.get("pid") in exited]
    print(f"short-lived: of {len(events)} lines {len(right)} name the right owner, "
          f"{len(wrong)} a wrong one, {len(unnamed)} none; "
          f"{len(closed)} client lines after close(), {len(gone)} of processes that exited; "
          f"sum(segs) {sum(e['segs'] for e in events)}, TcpRetransSegs "
          f"{after['TcpRetransSegs'] - before.get('TcpRetransSegs', 0)}, "
          f"{skipped} retransmissions on top of PID-1 threads")
    assert len(closed) >= 20, "the test must see retransmissions after close()"
    # Each sent 16 segments of 64 KiB (loopback's MTU) at one loss in five:
    # nearly all of them retransmitted something.
    assert len({e["pid"] for e in gone}) >= 4, f"lines of {len(gone)} exited processes"
    # Every pid named is the socket's owner, never a bystander's; and,
    # separately, at least 99 % of the lines name one.
    assert wrong == []
    assert 100 * len(unnamed) <= len(events), [(e["state"], e["sport"]) for e in unnamed[:10]]
    check_segs(sum(e["segs"] for e in events), {k: after[k] - before.get(k, 0) for k in after},
               probe.err_layout, skipped)
