"""A network namespace of a test's own: the package's storm lab namespace
(xctl_probe.lab.netns: the namespace, commands inside it, nftables
loss), plus what only tests need: the tests' traffic scripts run inside it,
the kernel's own counters (nstat) and waits on its sockets."""

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Optional

from xctl_probe.lab import netns as lab_netns

from .waits import patient

LAB = Path(__file__).resolve().parent


class Netns(lab_netns.Netns):
    """A network namespace of the test's own, removed on close()."""

    # The table the tests' own rules go into, beside drop_one_in()'s.
    table = "xpt"

    def __init__(self, prefix: str = "xpt", mtu: Optional[int] = None):
        super().__init__(prefix, mtu)

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
        return self.popen(*extra, sys.executable, str(LAB / script), *args,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def knock(self, port: int) -> None:
        """A SYN to a closed port of the namespace; the connection is refused."""
        result = self.run(sys.executable, "-c",
                          "import socket, sys\n"
                          "try:\n socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
                          "except ConnectionRefusedError:\n print('refused')\n", str(port),
                          capture_output=True, text=True)
        assert result.stdout.strip() == "refused"

    def spawn_script(self, script: str, *args: str) -> subprocess.Popen:
        """A Python script of the test's own in the background, with stdin and stdout pipes."""
        return self.popen(sys.executable, "-c", script, *args,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def merged_lines(text: str) -> dict:
    merged = {}
    for line in text.splitlines():
        merged.update(json.loads(line))
    return merged
