"""A server answering short requests under loss, the probe watching: the
accepting side's owners (issue 18). Clients connect again and again, each
sends a request; the server reads it, answers and closes the connection
itself; one data packet in ten is lost each way, so the server retransmits
both while it holds the socket and after its close(), and the clients while
they send their requests."""

import json
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

from .accounting import flow_lines
from .kernel_trace import KernelTrace
from .netns import Netns
from .probe import ProbeProcess
from .xctl_contract import check_probe_line

SERVER, CLIENT = b"xpt-answer", b"xpt-ask"
# What a socket goes through before its own close(), or shutdown(); what
# follows comes after it. A SYN-ACK's line is the listener's (NEW_SYN_RECV).
BEFORE_CLOSE = frozenset({"SYN_SENT", "SYN_RECV", "NEW_SYN_RECV", "ESTABLISHED", "CLOSE_WAIT"})


@dataclass(frozen=True)
class AnsweringRun:
    """What run_answering saw: the probe's exit code and raw lines, who the
    server and the clients are, the answers the clients read in full, the
    namespace's counter deltas, and the port's retransmissions no BPF program
    saw (they ran on top of a thread of PID 1)."""
    rc: int
    lines: List[bytes]
    port: int
    netns: int
    server_pid: int
    client_pid: int
    answers: int
    delta: Dict[str, int]
    skipped: int
    err_layout: bool

    def events(self) -> List[dict]:
        """The retransmission lines about the run's flows, each contract-checked."""
        return flow_lines([check_probe_line(raw) for raw in self.lines], self.port, self.netns)


def run_answering(port: int, seconds: float = 10.0, clients: int = 8, kib: int = 256,
                  request_kib: int = 16, drop_one_in: int = 10,
                  probe: Optional[Dict] = None) -> AnsweringRun:
    """``clients`` threads of one process asking for ``seconds``, each
    answer ``kib`` KiB, over loopback at MTU 1500 (segments of 1448 bytes,
    as on a real link); ``probe`` holds ProbeProcess's keyword arguments."""
    ns = Netns(mtu=1500)
    watcher = trace = server = None
    try:
        ns.drop_one_in(drop_one_in, port, both_ways=True, data_only=True)
        watcher = ProbeProcess(**(probe or {}))
        trace = KernelTrace.retransmissions(port)
        before = ns.counters()
        server = ns.spawn("--role", "answer", "--port", str(port), "--kib", str(kib),
                          "--request-kib", str(request_kib), "--name-hex", SERVER.hex(),
                          script="short_flows.py")
        server_pid = json.loads(server.stdout.readline())["pid"]
        asking = ns.spawn("--role", "ask", "--port", str(port), "--clients", str(clients),
                          "--seconds", str(seconds), "--kib", str(kib),
                          "--request-kib", str(request_kib), "--name-hex", CLIENT.hex(),
                          script="short_flows.py")
        out, _ = asking.communicate(timeout=seconds + 300)
        said = [json.loads(line) for line in out.splitlines()]
        # Loss lifted: the last closes go through without a long backoff.
        ns.lift_loss()
        ns.wait_settled(port, timeout=120)
        after = ns.counters()
        skipped = trace.on_pid1()
        time.sleep(0.5)
        rc = watcher.stop()
        return AnsweringRun(
            rc=rc, lines=watcher.lines, port=port, netns=ns.inode, server_pid=server_pid,
            client_pid=said[0]["pid"], answers=said[-1]["answers"],
            delta={k: after[k] - before.get(k, 0) for k in after}, skipped=skipped,
            err_layout=watcher.err_layout)
    finally:
        if trace is not None:
            trace.close()
        for proc in (server, watcher):
            if proc is not None:
                proc.kill()
        ns.close()
