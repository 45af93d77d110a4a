"""A network namespace of the lab's own, and nftables loss in it: the one
primitive the bench's storms and the tests' namespaces (tests/lab/netns.py)
are built on, so both measure and check the same loss."""

import itertools
import json
import os
import subprocess
from typing import List, Optional

from ..errors import ProbeError

_names = itertools.count()
# The longest IP and TCP headers of a packet without data: IPv6's, and TCP's with options.
_HEADERS_MAX = 40 + 60


def checked(cmd: List[str], **kwargs) -> str:
    """``cmd``'s stdout; a failure as one line, with what the tool said."""
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)
    if result.returncode:
        why = " ".join(result.stderr.split())[:300]
        raise ProbeError(f"{' '.join(cmd)} failed ({result.returncode}): {why}")
    return result.stdout


class Netns:
    """A network namespace, removed on close(). With ``mtu``, loopback carries
    segments of that size (1448 bytes at 1500, as on a real link) rather than
    64 KiB ones."""

    # The nftables table drop_one_in() fills and lift_loss() empties.
    table = "xctl_lab"

    def __init__(self, prefix: str = "xctl-lab", mtu: Optional[int] = None):
        self.name = f"{prefix}-{os.getpid()}-{next(_names)}"
        self.dropped = 0
        checked(["ip", "netns", "add", self.name])
        try:
            self.inode = os.stat(f"/run/netns/{self.name}").st_ino
            size = ["mtu", str(mtu), "gso_max_size", str(mtu)] if mtu else []
            checked(self.inside("ip", "link", "set", "lo", "up", *size))
        except BaseException:
            self.close()
            raise

    def inside(self, *cmd: str) -> List[str]:
        """``cmd`` as run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(self, *cmd: str, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("check", True)
        return subprocess.run(self.inside(*cmd), **kwargs)

    def popen(self, *cmd: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.inside(*cmd), **kwargs)

    def nft(self, *commands: str) -> None:
        for command in commands:
            checked(self.inside("nft", command))

    def drop_one_in(self, n: int, port: int, both_ways: bool = False,
                    data_only: bool = False) -> None:
        """Drops one packet in n towards ``port`` (or from it too) in the input
        hook, counted by nftables in the named counter ``dropped``; with
        ``data_only``, one data packet in n (handshakes, ACKs and bare FINs
        all pass)."""
        self.nft(f"add table inet {self.table}",
                 f"add chain inet {self.table} in {{ type filter hook input priority 0; }}",
                 f"add counter inet {self.table} dropped",
                 self._loss_rule("dport", port, n, data_only))
        if both_ways:
            self.nft(self._loss_rule("sport", port, n, data_only))

    def _loss_rule(self, direction: str, port: int, n: int, data_only: bool) -> str:
        # In the input hook the length is the IP packet's: longer than any
        # header (IPv6's 40 bytes with TCP's 60 at most) means data.
        data = f"meta length > {_HEADERS_MAX} " if data_only else ""
        return (f"add rule inet {self.table} in tcp {direction} {port} {data}"
                f"numgen random mod {n} == 0 counter name dropped drop")

    def nft_dropped(self) -> int:
        """Packets nftables counted, in rules' own counters and in named ones."""
        out = checked(self.inside("nft", "-j", "list", "ruleset"))
        total = 0
        for item in json.loads(out)["nftables"]:
            if "counter" in item:
                total += item["counter"]["packets"]
            for expr in item.get("rule", {}).get("expr", []):
                if isinstance(expr.get("counter"), dict):
                    total += expr["counter"]["packets"]
        return total

    def lift_loss(self) -> None:
        """Ends the loss: removes the rules, then adds what they dropped to
        ``dropped`` (the named counter outlives its rules: a count read before
        the rules go would miss what they drop meanwhile). Without loss, only
        the rest of the ruleset goes."""
        chain = self.run("nft", "list", "chain", "inet", self.table, "in", check=False,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if chain.returncode == 0:
            self.nft(f"flush chain inet {self.table} in")
            self.dropped += self.nft_dropped()
        self.nft("flush ruleset")

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False)

    def __enter__(self) -> "Netns":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
