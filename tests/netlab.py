"""Real kernels, real packets: network namespaces with nftables loss, the
probe as a process, and the kernel's own counters to hold it against.

Shared by the tests and by the report scripts, so a figure in a report comes
from the same scenario a test checks.
"""

import fcntl
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from xctl_contract import check_probe_line

TESTS = Path(__file__).resolve().parent

# How much longer than on the host a wait may take: a guest under emulation
# runs several times slower, and by how much depends on the machine that
# runs it. tests/guests.py sets it in the guest from how long the guest's
# first probe took to attach. Only waits scale by it, never a figure a test
# asserts about the probe itself.
PATIENCE = float(os.environ.get("XPT_PATIENCE", "1"))


def patient(seconds: float) -> float:
    return seconds * PATIENCE
VENV_BIN = Path(sys.executable).parent
PROBE = VENV_BIN / "xctl-probe-ebpf"
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ from Python 3.10 on
_names = itertools.count()


def probe_env() -> Dict[str, str]:
    """The environment xctl passes on, minus PYTHONUNBUFFERED, which would hide a missing flush."""
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)
    return env


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
             str(TESTS / script), *args],
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


class ProbeProcess:
    """The installed probe, started as xctl starts it, its stdout collected as raw lines."""

    def __init__(self, *args: str, interpreter: Optional[str] = None, read_stderr: bool = True,
                 prefix: Sequence[str] = (), script: Path = PROBE,
                 pipe_bytes: Optional[int] = None):
        cmd = [*prefix, interpreter or sys.executable, str(script), *args]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=probe_env(),
        )
        if pipe_bytes is not None:
            # How much the probe can write before a reader that stopped blocks it
            # (64 KiB by default, a page at least).
            fcntl.fcntl(self.proc.stdout.fileno(), F_SETPIPE_SZ, pipe_bytes)
        self.lines: List[bytes] = []
        self.arrived_ms: List[float] = []
        self._arrived = threading.Condition()
        self._reading = threading.Event()
        self._reading.set()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.attach_line = self._wait_attached() if read_stderr else None

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._reading.wait()
            with self._arrived:
                self.arrived_ms.append(time.time() * 1000)
                self.lines.append(line)
                self._arrived.notify_all()

    def _wait_attached(self) -> str:
        line = self.proc.stderr.readline().decode()
        if "attached" not in line:
            self.proc.kill()
            raise RuntimeError(f"probe did not attach: {line!r} {self.proc.stderr.read()!r}")
        return line

    @property
    def err_layout(self) -> bool:
        """Whether the probe attached to the 6.17+ tracepoint (sk, skb, err), as it said."""
        if self.attach_line is None:
            raise RuntimeError("started with read_stderr=False: the attach line was not read")
        return "(sk, skb, err)" in self.attach_line

    def pause(self) -> None:
        """Stops reading stdout, as a stalled xctl would: once the pipe is
        full, the probe's writes block."""
        self._reading.clear()

    def resume(self) -> None:
        self._reading.set()

    def wait_lines(self, count: int, timeout: float) -> bool:
        return self.wait_for(lambda: len(self.lines) >= count, timeout)

    def wait_for(self, predicate, timeout: float) -> bool:
        """Until ``predicate()`` holds, checked as lines arrive."""
        with self._arrived:
            return bool(self._arrived.wait_for(predicate, patient(timeout)))

    def stop(self, timeout: float = 10.0) -> int:
        self.resume()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(patient(timeout))
        self._reader.join(patient(timeout))
        return rc

    def stderr_text(self) -> str:
        return self.proc.stderr.read().decode(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


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


def check_segs(total: int, delta: Dict[str, int], err_layout: bool, skipped: int = 0) -> None:
    """The probe's sum of segs against the kernel's TcpRetransSegs.

    Exact, but for one thing a kernel before 6.17 hides: its tracepoint does
    not fire for a retransmission that failed in transmit (counted in
    TcpExtTCPRetransFail too). The socket's counter still rose, so the
    socket's next line or its close line carries those segments, except when
    they came before the socket's first line, which counts its own skb. There
    the sum may fall short, by no more than what failed. ``skipped``: the
    retransmissions whose BPF runs the kernel skipped (KernelTrace.on_pid1);
    a later record of the socket carries them, unless none comes (a
    request's last SYN-ACK, a socket's last retransmission and its close
    both skipped): the sum may fall short by no more than those.
    """
    kernel, failed = delta["TcpRetransSegs"], delta.get("TcpExtTCPRetransFail", 0)
    if err_layout or not failed:
        assert kernel - skipped <= total <= kernel, (
            f"sum(segs) {total} != TcpRetransSegs {kernel}"
            + (f" (less {skipped} skipped runs at most)" if skipped else ""))
    else:
        assert kernel - failed - skipped <= total <= kernel, (
            f"sum(segs) {total} outside TcpRetransSegs {kernel} - TcpExtTCPRetransFail {failed}"
            f" - {skipped} skipped runs")


TRACEFS = "/sys/kernel/tracing"


class KernelTrace:
    """The kernel's own trace events (``{"skb/kfree_skb": filter or None}``),
    in a trace instance of the caller's own (tracefs mounted if it is not).
    They see every event, also those that happen on top of a thread of PID 1,
    where no BPF program runs on these machines (kernel-notes)."""

    def __init__(self, events: Dict[str, Optional[str]]):
        if not os.path.ismount(TRACEFS):
            subprocess.run(["mount", "-t", "tracefs", "nodev", TRACEFS], check=True)
        self.path = f"{TRACEFS}/instances/xpt-{os.getpid()}-{next(_TRACES)}"
        os.mkdir(self.path)
        self._events = list(events)
        for event, condition in events.items():
            if condition:
                with open(f"{self.path}/events/{event}/filter", "w") as f:
                    f.write(condition)
            with open(f"{self.path}/events/{event}/enable", "w") as f:
                f.write("1")

    def tasks(self) -> List[int]:
        """The thread id each event ran on top of, in order."""
        with open(f"{self.path}/trace") as f:
            return [int(m.group(1)) for m in re.finditer(r"-(\d+)\s+\[\d+\].*?: \w+:", f.read())]

    def on_pid1(self) -> int:
        """How many of the events ran on top of a thread of PID 1."""
        threads = {int(tid) for tid in os.listdir("/proc/1/task")}
        return sum(tid in threads for tid in self.tasks())

    def close(self) -> None:
        for event in self._events:
            with open(f"{self.path}/events/{event}/enable", "w") as f:
                f.write("0")
        os.rmdir(self.path)


_TRACES = itertools.count()


def wait_attached_programs(count: int = 5, timeout: float = 60.0) -> List[dict]:
    """Waits, through bpftool only, until ``count`` programs of ours are loaded."""
    deadline = time.monotonic() + patient(timeout)
    while time.monotonic() < deadline:
        programs = [p for p in our_programs() if p.get("type") == "tracing"]
        if len(programs) >= count:
            return programs
        time.sleep(0.05)
    raise TimeoutError(f"fewer than {count} xp_ tracing programs after {timeout} s")


def our_programs() -> List[dict]:
    """BPF programs of this probe now loaded in the kernel (their names start with xp_)."""
    out = subprocess.run(["bpftool", "-j", "prog", "list"], capture_output=True, text=True,
                         check=True).stdout
    return [p for p in json.loads(out) if p.get("name", "").startswith("xp_")]


def program_holders(prog_ids) -> List[str]:
    """'PID (comm)' of every process holding a descriptor of one of these
    programs, or of a link to one (their fdinfo names the prog_id)."""
    wanted = {str(i) for i in prog_ids}
    holders = set()
    for fdinfo in Path("/proc").glob("[0-9]*/fdinfo/*"):
        try:
            text = fdinfo.read_text()
        except OSError:  # the process or descriptor went away meanwhile
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key == "prog_id" and value.strip() in wanted:
                pid = fdinfo.parts[2]
                try:
                    comm = Path(f"/proc/{pid}/comm").read_text().strip()
                except OSError:
                    comm = "?"
                holders.add(f"{pid} ({comm})")
    return sorted(holders)


def wait_programs_gone(timeout: float = 10.0) -> None:
    """Until no program of ours is loaded any more.

    The kernel frees a tracing program only after a grace period once its
    last reference is gone, so it can stay listed for a moment after the
    probe has exited. One still listed after ``timeout`` is really held: the
    failure names the programs and the processes that hold them.
    """
    deadline = time.monotonic() + patient(timeout)
    while True:
        left = our_programs()
        if not left:
            return
        if time.monotonic() >= deadline:
            names = ", ".join(sorted(f"{p['name']} (id {p['id']})" for p in left))
            holders = ", ".join(program_holders(p["id"] for p in left)) or "no process"
            raise AssertionError(
                f"BPF programs left after {patient(timeout):g} s: {names}; held by {holders}")
        time.sleep(0.05)


def flow_lines(events: List[dict], port: int, netns: int) -> List[dict]:
    """The probe's retransmission lines about flows on ``port`` inside one namespace."""
    return [e for e in events if port in (e["sport"], e["dport"]) and e["netns"] == netns
            and e.get("kind") != "drop"]


def drop_lines(events: List[dict], port: int, netns: int) -> List[dict]:
    """The probe's drop lines about flows on ``port`` inside one namespace."""
    return [e for e in events if port in (e["sport"], e["dport"]) and e["netns"] == netns
            and e.get("kind") == "drop"]


def run_storm(port: int = 9000, seconds: float = 6.0, drop_one_in: int = 5,
              family: str = "4") -> dict:
    """The acceptance scenario: bulk TCP through a namespace that drops one
    packet in ``drop_one_in`` towards ``port``, with the probe running.

    Returns the probe's raw lines, the kernel's counter deltas for the
    namespace, nftables' drop count and the wall-clock span of the run.
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
        return {
            "rc": rc,
            "lines": probe.lines,
            "stderr": probe.stderr_text(),
            "delta": {k: after[k] - before.get(k, 0) for k in after},
            "nft_dropped": ns.dropped,
            "netns": ns.inode,
            "sender": sender,
            "span_ms": (started_ms, ended_ms),
            "port": port,
            "err_layout": probe.err_layout,
        }
    finally:
        if probe is not None:
            probe.kill()
        ns.close()


def run_pair(port: int, seconds: float = 4.0, family: str = "4", probe_first: bool = True,
             client_name: bytes = b"xpt-client", server_name: bytes = b"xpt-server",
             drop_one_in: int = 5, client_env: Optional[Dict[str, str]] = None,
             client_fork: bool = False, probe: Optional[Dict] = None) -> dict:
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
        return {
            "rc": rc, "lines": probe.lines, "stderr": probe.stderr_text(), "port": port,
            "netns": ns.inode, "server_pid": server_info["pid"],
            "client_pid": client_info["pid"], "client_port": client_info["port"],
            "child_pid": child_pid,
            "delta": {k: after[k] - before.get(k, 0) for k in after},
            "err_layout": probe.err_layout,
        }
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if probe is not None:
            probe.kill()
        ns.close()


def owner_share(run, client_comm, server_comm):
    """(lines naming the right pid and comm, the lines) of a run_pair run:
    server lines are those whose local port is the port, client lines the others."""
    events = flow_lines([check_probe_line(raw) for raw in run["lines"]], run["port"],
                        run["netns"])
    right = 0
    for e in events:
        expected = ((run["server_pid"], server_comm) if e["sport"] == run["port"]
                    else (run["client_pid"], client_comm))
        right += (e.get("pid"), e.get("comm")) == expected
    return right, events
