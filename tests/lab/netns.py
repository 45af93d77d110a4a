"""A network namespace of a test's own: nftables loss in it, traffic through
it, and the kernel's own counters (nstat) and nftables' counters read from it."""

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Optional

from .waits import patient

LAB = Path(__file__).resolve().parent
_names = itertools.count()


class Netns:
    """A network namespace of the test's own, removed on close()."""

    def __init__(self, prefix: str = "xpt"):
        self.name = f"{prefix}-{os.getpid()}-{next(_names)}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.run("ip", "link", "set", "lo", "up")
        self.inode = os.stat(f"/run/netns/{self.name}").st_ino
        self.dropped = 0

    def run(self, *cmd: str, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("check", True)
        return subprocess.run(["ip", "netns", "exec", self.name, *cmd], **kwargs)

    def nft(self, *commands: str) -> None:
        for command in commands:
            self.run("nft", command)

    def drop_one_in(self, n: int, port: int, both_ways: bool = False) -> None:
        """Drops one packet in n towards ``port`` (or from it too), counted by
        nftables in the named counter xpt dropped."""
        self.nft(
            "add table inet xpt",
            "add chain inet xpt in { type filter hook input priority 0; }",
            "add counter inet xpt dropped",
            f"add rule inet xpt in tcp dport {port} numgen random mod {n} == 0 "
            "counter name dropped drop",
        )
        if both_ways:
            self.nft(f"add rule inet xpt in tcp sport {port} numgen random mod {n} == 0 "
                     "counter name dropped drop")

    def nft_dropped(self) -> int:
        """Packets nftables counted, in rules' own counters and in named ones."""
        out = self.run("nft", "-j", "list", "ruleset", capture_output=True, text=True).stdout
        total = 0
        for item in json.loads(out)["nftables"]:
            if "counter" in item:
                total += item["counter"]["packets"]
            for expr in item.get("rule", {}).get("expr", []):
                if isinstance(expr.get("counter"), dict):
                    total += expr["counter"]["packets"]
        return total

    def counters(self) -> Dict[str, int]:
        out = self.run("nstat", "-asz", "--json", capture_output=True, text=True).stdout
        return json.loads(out)["kernel"]

    def wait_settled(self, port: int, timeout: float = 30.0) -> None:
        """Until no socket on ``port`` can retransmit any more (none left but TIME-WAIT
        and listeners)."""
        deadline = time.monotonic() + patient(timeout)
        while time.monotonic() < deadline:
            out = self.run(
                "ss", "-Htan", f"( sport = :{port} or dport = :{port} )",
                capture_output=True, text=True,
            ).stdout
            if all(line.startswith(("TIME-WAIT", "LISTEN")) for line in out.splitlines()):
                return
            time.sleep(0.1)
        raise TimeoutError(f"sockets on port {port} still open after {timeout} s")

    def wait_socket(self, state: str, port: int, timeout: float = 60.0) -> None:
        """Until a socket towards ``port`` is in ``state`` (ss's name: syn-sent, ...)."""
        deadline = time.monotonic() + patient(timeout)
        while time.monotonic() < deadline:
            if self.run("ss", "-Htan", "state", state, f"( dport = :{port} )",
                        capture_output=True, text=True).stdout.strip():
                return
            time.sleep(0.05)
        raise TimeoutError(f"no socket towards port {port} in {state} after {timeout} s")

    def lift_loss(self) -> None:
        """Ends the storm: removes the nftables rules, then adds what they
        dropped to ``dropped`` (the named counter outlives its rules: a count
        read before the rules go would miss what they drop meanwhile)."""
        self.run("nft", "flush", "chain", "inet", "xpt", "in")
        self.dropped += self.nft_dropped()
        self.run("nft", "flush", "ruleset")

    def traffic(self, port: int, seconds: float, family: str = "4", *extra: str) -> dict:
        """Client and server in one process, the client sending for ``seconds``;
        then the loss is lifted, so the connection closes without waiting out
        a long RTO backoff (at 1 in 5 both ways, that tail can take minutes).
        Its JSON lines, merged."""
        proc = self.spawn("--port", str(port), "--seconds", str(seconds), "--family", family,
                          *extra)
        time.sleep(seconds)
        self.lift_loss()
        out, _ = proc.communicate(timeout=300)
        return merged_lines(out)

    def spawn(self, *args: str, env: Optional[Dict[str, str]] = None,
              script: str = "traffic.py") -> subprocess.Popen:
        """traffic.py (or another script of the tests') in the background, with
        extra environment variables, and stdin and stdout pipes to talk to it."""
        extra = ["env", *(f"{k}={v}" for k, v in env.items())] if env else []
        return subprocess.Popen(
            ["ip", "netns", "exec", self.name, *extra, sys.executable,
             str(LAB / script), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )


    def spawn_script(self, script: str, *args: str) -> subprocess.Popen:
        """A Python script of the test's own in the background, with stdin and stdout pipes."""
        return subprocess.Popen(
            ["ip", "netns", "exec", self.name, sys.executable, "-c", script, *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False)


def merged_lines(text: str) -> dict:
    merged = {}
    for line in text.splitlines():
        merged.update(json.loads(line))
    return merged
