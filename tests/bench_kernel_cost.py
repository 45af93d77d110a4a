"""Kernel time per call of each of the probe's BPF programs, from
kernel.bpf_stats_enabled, under a loss storm, a handshake whose last ACK is
dropped (SYN-ACK retransmissions) and a churn of short connections
(tcp_destroy_sock runs for every TCP socket). Run as root: make bench."""

import json
import subprocess
import sys

from netlab import Netns, ProbeProcess

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


def main() -> None:
    with open(STATS) as f:
        previous = f.read().strip()
    with open(STATS, "w") as f:
        f.write("1")
    ns = Netns()
    probe = ProbeProcess()
    try:
        ns.drop_one_in(5, 9600)
        ns.traffic(9600, 4.0)
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
        for prog in json.loads(out):
            if prog.get("name", "").startswith("xp_") and prog.get("type") == "tracing":
                runs = prog.get("run_cnt", 0)
                ns_total = prog.get("run_time_ns", 0)
                per_call = ns_total / runs if runs else 0
                print(f"{prog['name']}: {runs} calls, {per_call:.0f} ns per call")
        probe.stop()
    finally:
        probe.kill()
        ns.close()
        with open(STATS, "w") as f:
            f.write(previous)


if __name__ == "__main__":
    main()
