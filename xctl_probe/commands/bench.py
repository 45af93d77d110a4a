"""``xctl-probe-ebpf bench``: what the probe costs on this node, as figures.

A benchmark, never a pass or fail: machines are shared and noisy, so it
prints what it measured and how, for a person (or, with --json, a program)
to compare, as ratios within one run where it can.

- events_per_s: synthetic records of the real layout, written by a BPF
  program (bpf/bench.bpf.c, run in the kernel through BPF_PROG_TEST_RUN) into
  the probe's own ring buffer, then taken through the probe's real path:
  ring, decode, owner, rate, event, JSONL written to /dev/null by the writer
  thread. Only the user-space side is timed. drain_per_s: the same ring
  drained by C code that only counts records, the ceiling of any reader;
  drain_ratio = events_per_s / drain_per_s. drop_events_per_s: the same,
  with records of dropped packets (reason NOT_SPECIFIED on sockets in
  CLOSE_WAIT, the flood a loss storm's ends bring), which take a path of
  their own.
- bpf_ns_per_event: kernel time per call of the retransmission program
  (the kernel's own run-time statistics) during a real loss storm the bench
  makes in a network namespace of its own (eight connections over loopback
  at MTU 1500, one packet in five dropped by nftables), the median of --runs
  storms; the other programs' ns per call beside it. drop_ns_reported is the
  drop program's, in those storms (nftables' drops, each reported);
  drop_ns_ignored its cost per call for drops it ignores (UDP datagrams to a
  closed port).
- startup_ms: from starting the probe to its "attached" line, as xctl
  starts it, the median of --starts starts; rss_mb: the probe's peak RSS
  over the idle period and the storms; idle_cpu_pct: the CPU the probe used
  over --idle-seconds with no retransmission to report.
"""

import contextlib
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from ..context.owners import Owners
from ..errors import BadInstall, KernelUnsupported, ProbeError
from ..kernel.binding import ffi, lib
from ..kernel.drop_reasons import DropReasons
from ..kernel.loader import KERNEL_BTF, LOAD_TIME_PROGRAMS, RING_MAP, LoadedProbe
from ..kernel.objects import BENCH_OBJECT
from ..kernel.ringbuf import RECORD_SIZE, RingReader
from ..output.stream import Stream

BENCH_PROGRAM = "xp_bench_record"
# struct xp_bench_config in bpf/bench.bpf.c: ino, flows, netns, drops, reason.
_CONFIG = struct.Struct("=QIIII")
RETRANSMIT_PROGRAM = "xp_tcp_retransmit_skb"
DROP_PROGRAM = "xp_kfree_skb"
IGNORED_DROPS = 20000
# Room for 139,000 records: the bench fills three quarters of it per round.
BENCH_RING_BYTES = 16 << 20
STORM_PORT = 9000
# Connections of the storm: one alone spends much of it in timeouts, and
# storms of one vary too much to compare.
STORM_CONNECTIONS = 8
MIN_STORM_RECORDS = 5000

_TRAFFIC = """
import socket, sys, threading, time
port, seconds, count = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
server = socket.socket()
server.bind(("127.0.0.1", port))
server.listen(count)
def receive(conn):
    while conn.recv(1 << 20):
        pass
    conn.close()
def send(client, deadline):
    chunk = b"x" * 65536
    while time.monotonic() < deadline:
        client.sendall(chunk)
    client.shutdown(socket.SHUT_WR)
    while client.recv(65536):
        pass
    client.close()
clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
threads = [threading.Thread(target=receive, args=(server.accept()[0],)) for _ in range(count)]
deadline = time.monotonic() + seconds
threads += [threading.Thread(target=send, args=(client, deadline)) for client in clients]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""


_UDP_TO_CLOSED_PORT = """
import socket, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(count):
    sender.sendto(b"x", ("127.0.0.1", port))
"""


class SyntheticRecords:
    """bpf/bench.bpf.c loaded against the probe's ring map."""

    def __init__(self, ring_map_fd: int):
        if not BENCH_OBJECT.is_file():
            raise BadInstall(f"BPF object {BENCH_OBJECT} not found; reinstall the package")
        self._obj = lib.bpf_object__open_file(os.fsencode(BENCH_OBJECT), ffi.NULL)
        if self._obj == ffi.NULL:
            raise BadInstall(f"cannot open {BENCH_OBJECT}: {os.strerror(ffi.errno)}; "
                             "reinstall the package")
        try:
            ring = lib.bpf_object__find_map_by_name(self._obj, RING_MAP.encode())
            prog = lib.bpf_object__find_program_by_name(self._obj, BENCH_PROGRAM.encode())
            if ring == ffi.NULL or prog == ffi.NULL:
                raise BadInstall(f"{BENCH_OBJECT} lacks {RING_MAP} or {BENCH_PROGRAM}; "
                                 "reinstall the package")
            err = -lib.bpf_map__reuse_fd(ring, ring_map_fd) or -lib.bpf_object__load(self._obj)
            if err:
                raise KernelUnsupported(f"cannot load the bench's BPF program: "
                                        f"{os.strerror(err)}")
            self._fd = lib.bpf_program__fd(prog)
        except BaseException:
            self.close()
            raise

    def write(self, count: int, flows: int, ino: int, netns: int,
              drop_reason: Optional[int] = None) -> None:
        """``count`` records over ``flows`` flows: retransmissions, or with a
        ``drop_reason`` dropped packets."""
        config = _CONFIG.pack(ino, flows, netns, drop_reason is not None, drop_reason or 0)
        result = lib.xp_test_run_data(self._fd, config, len(config), count)
        if result < 0:
            raise KernelUnsupported(f"cannot run the bench's BPF program: "
                                    f"{os.strerror(-result)}")

    def close(self) -> None:
        if self._obj != ffi.NULL:
            lib.bpf_object__close(self._obj)
            self._obj = ffi.NULL


def throughput(object_path: Path, records: int, flows: int,
               drops: Optional[DropReasons] = None) -> Dict[str, float]:
    """events_per_s through the real path and drain_per_s through the C drain;
    with ``drops``, the kernel's reasons, of dropped packets."""
    reason = None if drops is None else drops.code("NOT_SPECIFIED")
    per_round = BENCH_RING_BYTES // (RECORD_SIZE + 8) * 3 // 4
    devnull = os.open(os.devnull, os.O_WRONLY)
    # The synthetic flows' socket: the probe looks its owner up, and finds the bench.
    owned = socket.socket()
    ino = os.fstat(owned.fileno()).st_ino
    netns = os.stat("/proc/self/ns/net").st_ino
    try:
        with LoadedProbe(object_path, ring_bytes=BENCH_RING_BYTES, attach=False) as probe:
            producer = SyntheticRecords(probe.map_fd(RING_MAP))
            stream = Stream(probe, 10.0, Owners(), out_fd=devnull, reasons=drops)
            counter = RingReader(probe.map_fd(RING_MAP))
            try:
                busy = 0.0
                for done in range(0, records, per_round):
                    producer.write(min(per_round, records - done), flows, ino, netns, reason)
                    started = time.perf_counter()
                    stream.drain()
                    if not stream.wait_written(60):
                        raise ProbeError("bench: the writer did not finish within 60 s")
                    busy += time.perf_counter() - started
                lines = stream.lines_written
                drained, drain_busy = 0, 0.0
                for done in range(0, records, per_round):
                    producer.write(min(per_round, records - done), flows, ino, netns, reason)
                    started = time.perf_counter()
                    drained += counter.count_all()
                    drain_busy += time.perf_counter() - started
            finally:
                counter.close()
                stream.close(1.0)
                producer.close()
            lost = probe.lost_records()
    finally:
        owned.close()
        os.close(devnull)
    if lost or drained != records:
        raise ProbeError(f"bench: {lost} synthetic records found the ring full, "
                         f"{drained} of {records} drained; this is a bug, please report")
    return {"events_per_s": records / busy, "drain_per_s": records / drain_busy,
            "lines": lines}


def probe_command() -> List[str]:
    """How to start this probe as xctl does: ``python3 PATH``."""
    script = Path(sys.argv[0])
    if script.is_file() and script.name != "__main__.py":
        return [sys.executable, str(script.resolve())]
    return [sys.executable, "-m", "xctl_probe"]


def startup_ms(command: List[str], object_path: Path, starts: int) -> List[float]:
    times = []
    for _ in range(starts):
        started = time.perf_counter()
        proc = subprocess.Popen([*command, "--object", str(object_path), "--duration", "0"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        line = proc.stderr.readline().decode(errors="replace").strip()
        elapsed = (time.perf_counter() - started) * 1000
        proc.communicate()
        if "attached" not in line:
            raise ProbeError(f"bench: the probe did not start: {line}")
        times.append(elapsed)
    return times


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of ``pid`` so far, in ns (schedstat)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def program_ids(pid: int) -> Dict[int, str]:
    """The BPF programs ``pid`` holds, from its descriptors' fdinfo."""
    ids = {}
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                for line in f:
                    if line.startswith("prog_id:"):
                        ids[int(line.split()[1])] = ""
        except OSError:
            continue
    return ids


def program_stats(ids: Dict[int, str]) -> Dict[str, Tuple[int, int]]:
    """{program name: (run_time_ns, run_cnt)} of the programs in ``ids``."""
    stats = {}
    current = ffi.new("uint32_t *", 0)
    name = ffi.new("char[64]")
    run_time = ffi.new("uint64_t *")
    run_cnt = ffi.new("uint64_t *")
    while lib.xp_next_program(current, name, 64, run_time, run_cnt) == 0:
        if current[0] in ids:
            stats[ffi.string(name).decode(errors="replace")] = (run_time[0], run_cnt[0])
    return stats


def _run(*cmd: str, **kwargs) -> None:
    result = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)
    if result.returncode:
        why = result.stderr if isinstance(result.stderr, str) else result.stderr.decode(
            errors="replace")
        why = " ".join(why.split())[:300]
        raise ProbeError(f"bench: {' '.join(cmd)} failed ({result.returncode}): {why}")


@contextlib.contextmanager
def _namespace():
    """A network namespace of the bench's own, loopback up at MTU 1500 (segments
    of 1448 bytes, as on a real link, rather than 64 KiB loopback ones); yields
    a function that runs a command inside it."""
    name = f"xctl-bench-{os.getpid()}"
    _run("ip", "netns", "add", name)
    try:
        def inside(*cmd: str, **kwargs):
            _run("ip", "netns", "exec", name, *cmd, **kwargs)

        inside("ip", "link", "set", "lo", "up", "mtu", "1500", "gso_max_size", "1500")
        yield name, inside
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def storm(seconds: float, port: int, connections: int = STORM_CONNECTIONS) -> None:
    """Bulk TCP over loopback in a namespace of its own, ``connections`` at
    once, one packet in five dropped."""
    with _namespace() as (name, inside):
        inside("nft", "-f", "-", input=(
            "table inet xctl_bench {\n chain in {\n  type filter hook input priority 0;\n"
            f"  tcp dport {port} numgen random mod 5 == 0 drop\n }}\n}}\n"), text=True)
        sender = subprocess.Popen(["ip", "netns", "exec", name, sys.executable, "-c", _TRAFFIC,
                                   str(port), str(seconds), str(connections)])
        try:
            time.sleep(seconds)
            # Lift the loss, so the connections close without a long backoff.
            inside("nft", "flush", "ruleset")
            sender.wait(120)
        finally:
            if sender.poll() is None:
                sender.kill()
                sender.wait()


def udp_drops(count: int, port: int) -> None:
    """``count`` UDP datagrams to a closed port: each a drop the probe ignores."""
    with _namespace() as (_, inside):
        inside(sys.executable, "-c", _UDP_TO_CLOSED_PORT, str(port), str(count))


def storm_tools_missing() -> Optional[str]:
    missing = [tool for tool, package in (("ip", "iproute2"), ("nft", "nftables"))
               if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not found (install iproute2 and nftables)"
    return None


def kernel_cost(command: List[str], object_path: Path, runs: int, seconds: float,
                idle_s: float, say: Callable[[str], None]) -> Dict[str, object]:
    """The probe as xctl runs it: idle CPU, then ns per call in storms, then peak RSS."""
    proc = subprocess.Popen([*command, "--object", str(object_path)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    figures: Dict[str, object] = {}
    try:
        line = proc.stderr.readline().decode(errors="replace").strip()
        if "attached" not in line:
            raise ProbeError(f"bench: the probe did not start: {line}")
        before = cpu_ns(proc.pid)
        time.sleep(idle_s)
        figures["idle_cpu_pct"] = (cpu_ns(proc.pid) - before) / (idle_s * 1e9) * 100
        say(f"idle_cpu_pct      {figures['idle_cpu_pct']:10.3f}  over {idle_s:g} s "
            "without retransmissions")
        why_not = storm_tools_missing()
        if why_not:
            say(f"bpf_ns_per_event        n/a  no storm: {why_not}")
        else:
            figures["programs"] = _storms(proc.pid, runs, seconds, say)
            retransmit = figures["programs"].get(RETRANSMIT_PROGRAM) or {}
            figures["bpf_ns_per_event"] = retransmit.get("ns_per_call")
        figures["rss_mb"] = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return figures


def _storms(pid: int, runs: int, seconds: float, say: Callable[[str], None]
            ) -> Dict[str, Dict[str, float]]:
    ids = program_ids(pid)
    stats_fd = lib.xp_enable_run_time_stats()
    if stats_fd < 0:
        raise KernelUnsupported(f"cannot turn on BPF run-time statistics: "
                                f"{os.strerror(-stats_fd)}")
    per_run: List[Dict[str, Tuple[int, float]]] = []
    try:
        for run in range(runs):
            before = program_stats(ids)
            storm(seconds, STORM_PORT)
            after = program_stats(ids)
            costs = {}
            for name, (run_time, calls) in after.items():
                d_calls = calls - before.get(name, (0, 0))[1]
                d_time = run_time - before.get(name, (0, 0))[0]
                costs[name] = (d_calls, d_time / d_calls if d_calls else 0.0)
            per_run.append(costs)
            calls, ns = costs.get(RETRANSMIT_PROGRAM, (0, 0.0))
            say(f"storm {run + 1}/{runs}: {RETRANSMIT_PROGRAM} {calls} records, {ns:.0f} ns "
                "per record" + ("" if calls >= MIN_STORM_RECORDS else
                                f" (fewer than {MIN_STORM_RECORDS}: raise --storm-seconds)"))
        before = program_stats(ids)
        udp_drops(IGNORED_DROPS, STORM_PORT)
        after = program_stats(ids)
    finally:
        os.close(stats_fd)
    programs = {}
    for name in sorted(name for name in per_run[0] if name not in LOAD_TIME_PROGRAMS):
        calls = [run[name][0] for run in per_run if name in run]
        costs = [run[name][1] for run in per_run if name in run and run[name][0]]
        programs[name] = {"calls_per_run": statistics.median(calls),
                          "ns_per_call": round(statistics.median(costs)) if costs else None}
    if DROP_PROGRAM in after:
        d_time = after[DROP_PROGRAM][0] - before[DROP_PROGRAM][0]
        d_calls = after[DROP_PROGRAM][1] - before[DROP_PROGRAM][1]
        programs[DROP_PROGRAM]["ignored_calls"] = d_calls
        programs[DROP_PROGRAM]["ignored_ns_per_call"] = round(d_time / d_calls) if d_calls else None
    return programs


def run(object_path: Path, records: int, flows: int, runs: int, storm_seconds: float,
        starts: int, idle_s: float, say: Callable[[str], None]) -> Dict[str, object]:
    figures: Dict[str, object] = {}
    rates = throughput(object_path, records, flows)
    figures["events_per_s"] = round(rates["events_per_s"])
    figures["drain_per_s"] = round(rates["drain_per_s"])
    figures["drain_ratio"] = round(rates["events_per_s"] / rates["drain_per_s"], 4)
    say(f"events_per_s   {figures['events_per_s']:13,}  {records:,} synthetic records on "
        f"{flows} flows: ring, decode, owner, rate, event, JSONL to /dev/null "
        f"({rates['lines']:,} lines)")
    say(f"drain_per_s    {figures['drain_per_s']:13,}  the same ring drained in C, only "
        f"counting; drain_ratio {figures['drain_ratio']}")
    reasons = DropReasons(KERNEL_BTF) if KERNEL_BTF.is_file() else None
    if reasons is not None and reasons.code("NOT_SPECIFIED") is not None:
        drop_rates = throughput(object_path, records, flows, reasons)
        figures["drop_events_per_s"] = round(drop_rates["events_per_s"])
        say(f"drop_events_per_s {figures['drop_events_per_s']:10,}  the same with dropped "
            "packets (NOT_SPECIFIED, in CLOSE_WAIT)")
    else:
        say("drop_events_per_s        n/a  this kernel names no drop reasons")

    command = probe_command()
    times = startup_ms(command, object_path, starts)
    figures["startup_ms"] = round(statistics.median(times), 1)
    say(f"startup_ms     {figures['startup_ms']:13}  start to attached, median of {starts} "
        f"(min {min(times):.0f}, max {max(times):.0f})")

    cost = kernel_cost(command, object_path, runs, storm_seconds, idle_s, say)
    figures["bpf_ns_per_event"] = cost.get("bpf_ns_per_event")
    figures["rss_mb"] = round(cost["rss_mb"], 1)
    figures["idle_cpu_pct"] = round(cost["idle_cpu_pct"], 3)
    for name, program in cost.get("programs", {}).items():
        ns = program["ns_per_call"]
        say(f"{name:28} {'-' if ns is None else ns:>6} ns per call, median of {runs} storms "
            f"of {storm_seconds:g} s ({program['calls_per_run']:,.0f} calls per storm)")
    if "programs" in cost:
        figures["programs_ns_per_call"] = {
            name: program["ns_per_call"] for name, program in cost["programs"].items()}
        drop = cost["programs"].get(DROP_PROGRAM)
        if drop is not None:
            figures["drop_ns_reported"] = drop["ns_per_call"]
            figures["drop_ns_ignored"] = drop.get("ignored_ns_per_call")
            say(f"{DROP_PROGRAM + ' ignored':28} {drop.get('ignored_ns_per_call')!s:>6} ns per "
                f"call: {drop.get('ignored_calls', 0):,} UDP datagrams to a closed port (not TCP); "
                "reported: the storms' TCP drops above")
    say(f"bpf_ns_per_event {figures['bpf_ns_per_event']!s:>11}  {RETRANSMIT_PROGRAM}, "
        f"kernel time per record")
    say(f"rss_mb         {figures['rss_mb']:13}  peak, over the idle period and the storms")
    return figures


def as_json(figures: Dict[str, object]) -> str:
    return json.dumps(figures, separators=(",", ":"))
