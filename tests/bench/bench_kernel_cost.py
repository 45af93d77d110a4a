"""Kernel time per call of each of the probe's BPF programs, from
kernel.bpf_stats_enabled, under a loss storm (segments of 1448 bytes, one in
five dropped, over 5,000 retransmissions), a handshake whose last ACK is
dropped (SYN-ACK retransmissions) and a churn of short connections
(inet_sock_set_state and tcp_destroy_sock run for every TCP socket); the
median of several runs, each with a probe and a namespace of its own. Run
as root: make bench."""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the lab package

from lab.netns import Netns
from lab.probe import ProbeProcess

STATS = "/proc/sys/kernel/bpf_stats_enabled"

STUCK_HANDSHAKE = """
import socket, sys, time
server = socket.socket(); server.bind(("127.0.0.1", int(sys.argv[1]))); server.listen()
client = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
time.sleep(3.5)
"""

CHURN = """
import socket, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
server = socket.socket(); server.bind(("127.0.0.1", port)); server.listen(128)
for _ in range(count):
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    client.sendall(b"x" * 1000); conn.recv(1000)
    client.close(); conn.close()
"""


def one_run(object_path: str, storm_seconds: float) -> Dict[str, Tuple[int, float]]:
    """{program: (calls, ns per call)} for one probe over the whole workload."""
    ns = Netns(mtu=1500)
    probe = ProbeProcess(*(["--object", object_path] if object_path else []))
    try:
        ns.drop_one_in(5, 9600)
        ns.traffic(9600, storm_seconds)
        ns.nft("add table inet xpt",
               "add chain inet xpt in { type filter hook input priority 0; }",
               "add rule inet xpt in tcp dport 9602 tcp flags & (syn | ack) == ack drop")
        ns.run(sys.executable, "-c", STUCK_HANDSHAKE, "9602")
        ns.run(sys.executable, "-c", CHURN, "9601", "2000")
        ns.run("nft", "flush", "ruleset")
        ns.wait_settled(9600)
        ns.wait_settled(9602)
        out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True,
                             check=True).stdout
        result = {}
        for prog in json.loads(out):
            if prog.get("name", "").startswith("xp_") and prog.get("type") == "tracing":
                calls = prog.get("run_cnt", 0)
                result[prog["name"]] = (calls, prog.get("run_time_ns", 0) / calls if calls else 0)
        probe.stop()
        return result
    finally:
        probe.kill()
        ns.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--object", metavar="PATH",
                        help="another build of the BPF object, to compare with the installed one")
    parser.add_argument("--runs", type=int, default=3, help="runs to take the median of")
    parser.add_argument("--storm-seconds", type=float, default=15.0,
                        help="length of the loss storm (15 s: over 5,000 retransmissions here)")
    args = parser.parse_args()
    with open(STATS) as f:
        previous = f.read().strip()
    with open(STATS, "w") as f:
        f.write("1")
    try:
        runs: List[Dict[str, Tuple[int, float]]] = []
        for i in range(args.runs):
            runs.append(one_run(args.object, args.storm_seconds))
            print(f"run {i + 1}: " + "; ".join(
                f"{name} {calls} calls {ns:.0f} ns" for name, (calls, ns) in sorted(runs[-1].items())))
        for name in sorted(runs[0]):
            per_call = statistics.median(run[name][1] for run in runs if name in run)
            calls = statistics.median(run[name][0] for run in runs if name in run)
            print(f"{name}: median {per_call:.0f} ns per call ({calls:.0f} calls per run)")
    finally:
        with open(STATS, "w") as f:
            f.write(previous)


if __name__ == "__main__":
    main()
