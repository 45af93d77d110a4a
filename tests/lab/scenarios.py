"""Whole scenarios, shared by the tests and the report scripts, so a figure in
a report comes from the same scenario a test checks: a loss storm, a pair
of processes of their own, and the cgroups a test makes."""

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from .accounting import flow_lines
from .netns import Netns
from .probe import ProbeProcess
from .xctl_contract import check_probe_line


@dataclass(frozen=True)
class StormRun:
    """What run_storm saw: the probe's exit code, raw lines and stderr, the
    namespace's counter deltas (nstat), nftables' drops, the sender's own
    JSON lines, and the run's wall-clock span (epoch ms)."""
    rc: int
    lines: List[bytes]
    stderr: str
    delta: Dict[str, int]
    nft_dropped: int
    netns: int
    sender: dict
    span_ms: Tuple[float, float]
    port: int
    err_layout: bool

    def events(self) -> List[dict]:
        """The retransmission lines about the storm's flows, each contract-checked."""
        return flow_lines([check_probe_line(raw) for raw in self.lines], self.port, self.netns)


@dataclass(frozen=True)
class PairRun:
    """What run_pair saw: the probe's exit code, raw lines and stderr, the
    namespace's counter deltas, and who the server and client are (the
    client's forked child, when it has one)."""
    rc: int
    lines: List[bytes]
    stderr: str
    port: int
    netns: int
    server_pid: int
    client_pid: int
    client_port: int
    child_pid: Optional[int]
    delta: Dict[str, int]
    err_layout: bool

    def events(self) -> List[dict]:
        """The retransmission lines about the pair's flows, each contract-checked."""
        return flow_lines([check_probe_line(raw) for raw in self.lines], self.port, self.netns)


def run_storm(port: int = 9000, seconds: float = 6.0, drop_one_in: int = 5,
              family: str = "4") -> StormRun:
    """The acceptance scenario: bulk TCP through a namespace that drops one
    packet in ``drop_one_in`` towards ``port``, with the probe running.

    """
    ns = Netns()
    probe = None
    try:
        ns.drop_one_in(drop_one_in, port)
        probe = ProbeProcess()
        before = ns.counters()
        started_ms = time.time() * 1000
        sender = ns.traffic(port, seconds, family)
        ns.wait_settled(port)
        after = ns.counters()
        # Give the ring buffer a moment; the probe also drains it on SIGTERM.
        time.sleep(0.5)
        rc = probe.stop()
        ended_ms = time.time() * 1000
        return StormRun(
            rc=rc, lines=probe.lines, stderr=probe.stderr_text(),
            delta={k: after[k] - before.get(k, 0) for k in after}, nft_dropped=ns.dropped,
            netns=ns.inode, sender=sender, span_ms=(started_ms, ended_ms), port=port,
            err_layout=probe.err_layout)
    finally:
        if probe is not None:
            probe.kill()
        ns.close()


def run_pair(port: int, seconds: float = 4.0, family: str = "4", probe_first: bool = True,
             client_name: bytes = b"xpt-client", server_name: bytes = b"xpt-server",
             drop_one_in: int = 5, client_env: Optional[Dict[str, str]] = None,
             client_fork: bool = False, probe: Optional[Dict] = None) -> PairRun:
    """A server and a client process of their own, both sending, through a
    namespace that drops one packet in ``drop_one_in`` both ways. With
    probe_first=False the connection is up before the probe starts; with
    client_fork the client shares its socket with a child that does the
    sending; ``probe`` holds ProbeProcess's keyword arguments (prefix,
    interpreter, script)."""
    probe_kwargs = probe or {}
    ns = Netns()
    probe = None
    procs: List[subprocess.Popen] = []
    try:
        ns.drop_one_in(drop_one_in, port, both_ways=True)
        if probe_first:
            probe = ProbeProcess(**probe_kwargs)
            before = ns.counters()
        server = ns.spawn("--role", "server", "--port", str(port), "--family", family,
                          "--duplex", "--seconds", str(seconds), "--name-hex", server_name.hex())
        procs.append(server)
        server_info = json.loads(server.stdout.readline())
        client = ns.spawn("--role", "client", "--port", str(port), "--family", family,
                          "--duplex", "--seconds", str(seconds), "--name-hex", client_name.hex(),
                          "--wait-go", *(["--fork"] if client_fork else []), env=client_env)
        procs.append(client)
        client_info = json.loads(client.stdout.readline())
        if probe is None:
            probe = ProbeProcess(**probe_kwargs)
            before = ns.counters()
        client.stdin.write("go\n")
        client.stdin.flush()
        child_pid = json.loads(client.stdout.readline())["child"] if client_fork else None
        time.sleep(seconds)
        ns.lift_loss()
        for proc in procs:
            proc.wait(timeout=seconds + 120)
        ns.wait_settled(port)
        after = ns.counters()
        time.sleep(0.5)
        rc = probe.stop()
        return PairRun(
            rc=rc, lines=probe.lines, stderr=probe.stderr_text(), port=port, netns=ns.inode,
            server_pid=server_info["pid"], client_pid=client_info["pid"],
            client_port=client_info["port"], child_pid=child_pid,
            delta={k: after[k] - before.get(k, 0) for k in after},
            err_layout=probe.err_layout)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if probe is not None:
            probe.kill()
        ns.close()


@dataclass(frozen=True)
class Owners:
    """Lines by the owner they name: ``right`` the pid and
    comm of the process holding the socket, ``wrong`` any other pid (never
    acceptable: the README promises the pid is never a bystander's),
    ``unnamed`` no pid at all (allowed, rarely)."""
    events: List[dict]
    right: List[dict]
    wrong: List[dict]
    unnamed: List[dict]

    def mostly_named(self) -> bool:
        """At least 99 % of the lines name an owner."""
        return 100 * len(self.unnamed) <= len(self.events)


def by_owner(events: List[dict], expected: Callable[[dict], Tuple[int, str]]) -> Owners:
    """``events`` by the owner they name, against ``expected(event)``: the
    (pid, comm) of the process holding the event's socket."""
    right, wrong, unnamed = [], [], []
    for e in events:
        if "pid" not in e:
            unnamed.append(e)
        elif (e["pid"], e.get("comm")) == expected(e):
            right.append(e)
        else:
            wrong.append(e)
    return Owners(events, right, wrong, unnamed)


def owner_share(run: PairRun, client_comm: str, server_comm: str) -> Owners:
    """The lines of a run_pair run by owner: server lines are those whose
    local port is the port, client lines the others."""
    return by_owner(run.events(), lambda e: ((run.server_pid, server_comm)
                                             if e["sport"] == run.port
                                             else (run.client_pid, client_comm)))


def remove_cgroups(*directories: Path) -> None:
    """Removes cgroups a test made, innermost first, waiting for their last
    process to leave (rmdir fails while one is still in)."""
    for directory in directories:
        for _ in range(50):
            try:
                directory.rmdir()
                break
            except OSError:
                time.sleep(0.1)
