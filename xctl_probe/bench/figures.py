"""``xctl-probe-ebpf bench``: what the probe costs on this node, as figures.

A benchmark, never a pass or fail: machines are shared and noisy, so it
prints what it measured and how, for a person (or, with --json, a program)
to compare, as ratios within one run where it can.

- events_per_s: synthetic records of the real layout, written by a BPF
  program (bpf/bench.bpf.c, run in the kernel through BPF_PROG_TEST_RUN) into
  the probe's own ring buffer, then taken through the probe's real path, on
  its threads: the ring drained on one; decode, owner, rate, event on the
  line thread; JSONL written to /dev/null by the writer thread. Only the
  user-space side is timed; the median of METRICS_RUNS runs.
  events_per_s_metrics: the same with --metrics' tap counting every line, in
  runs interleaved with those (plain, tap, plain, ...), and metrics_ratio =
  events_per_s_metrics / events_per_s. drain_per_s: the same ring drained by
  C code that only counts records, the ceiling of any reader; drain_ratio =
  events_per_s / drain_per_s. drop_events_per_s: the same, with records of
  dropped packets (SOCKET_RCVBUFF on established sockets: receivers out of
  buffer), which take a path of their own.
- bpf_ns_per_event: kernel time per call of the retransmission program
  (the kernel's own run-time statistics) during a real loss storm the bench
  makes in a network namespace of its own (eight connections over loopback
  at MTU 1500, one packet in five dropped by nftables), the median of --runs
  storms; the other programs' ns per call beside it. drop_ns_reported is the
  drop program's, in those storms (nftables' drops, each reported, among the
  storm's drops that are no loss, skipped before a record is reserved);
  drop_ns_ignored its cost per call for drops it ignores (UDP datagrams to a
  closed port).
- startup_ms: from starting the probe to its "attached" line, as xctl
  starts it, the median of --starts starts; rss_mb: the probe's peak RSS
  over the idle period and the storms; idle_cpu_pct: the CPU the probe used
  over --idle-seconds with no retransmission to report.
- flood_*: a flood of SYNs as fast as one process sends them, every one
  dropped by nftables, for --flood-seconds, the probe as xctl runs it:
  drops a second, the probe's CPU, its lines a second, the sum of the flood
  lines' segs beside nftables' count (they are equal: the kernel counts
  what it does not put in the ring), peak RSS, and the drop program's
  kernel time per call.

Each figure comes from a module of its own: synthetic_records (throughput),
probe_process (start-up, CPU, RSS), storm_cost with program_stats (kernel
time in storms, made by xctl_probe.lab, the storm lab the tests share) and
flood_cost (the flood), report (the printed lines).
"""

import json
import statistics
from pathlib import Path
from typing import Callable, Dict, List

from ..kernel.drop_reasons import DropReasons
from ..kernel.preconditions import KERNEL_BTF
from ..lab.storm import storm_tools_missing
from . import report
from .flood_cost import flood_cost
from .probe_process import idle_cpu_pct, peak_rss_mb, probe_command, running_probe, startup_ms
from .storm_cost import DROP_PROGRAM, RETRANSMIT_PROGRAM, storm_costs
from .synthetic_records import DROP_REASON, throughput

Say = Callable[[str], None]

# Runs of events_per_s, with and without --metrics' tap, interleaved.
METRICS_RUNS = 3


def run(object_path: Path, records: int, flows: int, runs: int, storm_seconds: float,
        starts: int, idle_s: float, flood_s: float, say: Say) -> Dict[str, object]:
    figures = _throughput(object_path, records, flows, say)
    command = probe_command()
    times = startup_ms(command, object_path, starts)
    figures["startup_ms"] = round(statistics.median(times), 1)
    say(report.startup_line(figures["startup_ms"], times))
    figures.update(_kernel_cost(command, object_path, runs, storm_seconds, idle_s, say))
    if flood_s and storm_tools_missing() is None:
        figures.update(flood_cost(command, object_path, flood_s))
        for line in report.flood_lines(figures):
            say(line)
    return figures


def _throughput(object_path: Path, records: int, flows: int, say: Say) -> Dict[str, object]:
    plain: List[Dict[str, float]] = []
    tapped: List[float] = []
    for _ in range(METRICS_RUNS):
        plain.append(throughput(object_path, records, flows))
        tapped.append(throughput(object_path, records, flows, metrics=True)["events_per_s"])
    events = statistics.median(rates["events_per_s"] for rates in plain)
    drained = statistics.median(rates["drain_per_s"] for rates in plain)
    with_metrics = statistics.median(tapped)
    figures: Dict[str, object] = {
        "events_per_s": round(events),
        "drain_per_s": round(drained),
        "drain_ratio": round(events / drained, 4),
        "events_per_s_metrics": round(with_metrics),
        "metrics_ratio": round(with_metrics / events, 4),
    }
    for line in report.throughput_lines(figures, records, flows, plain[0]["lines"]):
        say(line)
    say(report.metrics_throughput_line(
        figures, [round(rates["events_per_s"]) for rates in plain], [round(r) for r in tapped]))
    reasons = DropReasons(KERNEL_BTF) if KERNEL_BTF.is_file() else None
    if reasons is not None and reasons.code(DROP_REASON) is not None:
        drop_rates = throughput(object_path, records, flows, reasons)
        figures["drop_events_per_s"] = round(drop_rates["events_per_s"])
    say(report.drop_throughput_line(figures.get("drop_events_per_s"), DROP_REASON))
    return figures


def _kernel_cost(command: List[str], object_path: Path, runs: int, seconds: float,
                 idle_s: float, say: Say) -> Dict[str, object]:
    """The probe as xctl runs it: idle CPU, then ns per call in storms, then peak RSS."""
    programs = None
    with running_probe(command, object_path) as pid:
        idle = idle_cpu_pct(pid, idle_s)
        say(report.idle_line(idle, idle_s))
        why_not = storm_tools_missing()
        if why_not:
            say(report.no_storm_line(why_not))
        else:
            programs = storm_costs(pid, runs, seconds, say)
        rss = peak_rss_mb(pid)
    retransmit = (programs or {}).get(RETRANSMIT_PROGRAM) or {}
    figures: Dict[str, object] = {"bpf_ns_per_event": retransmit.get("ns_per_call"),
                                  "rss_mb": round(rss, 1), "idle_cpu_pct": round(idle, 3)}
    if programs is not None:
        figures.update(_program_figures(programs, runs, seconds, say))
    say(report.kernel_time_line(figures["bpf_ns_per_event"], RETRANSMIT_PROGRAM))
    say(report.rss_line(figures["rss_mb"]))
    return figures


def _program_figures(programs: Dict[str, Dict[str, float]], runs: int, seconds: float,
                     say: Say) -> Dict[str, object]:
    for line in report.program_lines(programs, runs, seconds):
        say(line)
    figures: Dict[str, object] = {
        "programs_ns_per_call": {name: program["ns_per_call"]
                                 for name, program in programs.items()}}
    drop = programs.get(DROP_PROGRAM)
    if drop is not None:
        figures["drop_ns_reported"] = drop["ns_per_call"]
        figures["drop_ns_ignored"] = drop.get("ignored_ns_per_call")
        say(report.ignored_drops_line(DROP_PROGRAM, drop))
    return figures


def as_json(figures: Dict[str, object]) -> str:
    return json.dumps(figures, separators=(",", ":"))
