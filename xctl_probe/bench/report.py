"""The bench's lines for a person, one figure each, with how it was measured."""

from typing import Dict, List


def throughput_lines(figures: Dict[str, object], records: int, flows: int,
                     lines: int) -> List[str]:
    return [
        f"events_per_s   {figures['events_per_s']:13,}  {records:,} synthetic records on "
        f"{flows} flows: ring, decode, owner, rate, event, JSONL to /dev/null ({lines:,} lines)",
        f"drain_per_s    {figures['drain_per_s']:13,}  the same ring drained in C, only "
        f"counting; drain_ratio {figures['drain_ratio']}",
    ]


def metrics_throughput_line(figures: Dict[str, object], plain: List[int],
                            tapped: List[int]) -> str:
    return (f"events_per_s_metrics {figures['events_per_s_metrics']:7,}  the same with "
            f"--metrics' tap; metrics_ratio {figures['metrics_ratio']} (medians of "
            f"{len(plain)} runs each, interleaved: {plain} without, {tapped} with)")


def drop_throughput_line(drop_events_per_s, reason: str) -> str:
    if drop_events_per_s is None:
        return "drop_events_per_s        n/a  this kernel names no drop reasons"
    return (f"drop_events_per_s {drop_events_per_s:10,}  the same with dropped packets "
            f"({reason}, in ESTABLISHED)")


def startup_line(median_ms: float, times: List[float]) -> str:
    return (f"startup_ms     {median_ms:13}  start to attached, median of {len(times)} "
            f"(min {min(times):.0f}, max {max(times):.0f})")


def idle_line(idle_cpu_pct: float, idle_s: float) -> str:
    return f"idle_cpu_pct      {idle_cpu_pct:10.3f}  over {idle_s:g} s without retransmissions"


def no_storm_line(why: str) -> str:
    return f"bpf_ns_per_event        n/a  no storm: {why}"


def storm_line(run: int, runs: int, program: str, calls: int, ns: float,
               enough: int) -> str:
    return (f"storm {run + 1}/{runs}: {program} {calls} records, {ns:.0f} ns per record"
            + ("" if calls >= enough else f" (fewer than {enough}: raise --storm-seconds)"))


def program_lines(programs: Dict[str, Dict[str, float]], runs: int,
                  storm_seconds: float) -> List[str]:
    lines = []
    for name, program in programs.items():
        ns = program["ns_per_call"]
        lines.append(f"{name:28} {'-' if ns is None else ns:>6} ns per call, median of {runs} "
                     f"storms of {storm_seconds:g} s ({program['calls_per_run']:,.0f} calls "
                     "per storm)")
    return lines


def ignored_drops_line(program: str, drop: Dict[str, float]) -> str:
    return (f"{program + ' ignored':28} {drop.get('ignored_ns_per_call')!s:>6} ns per call: "
            f"{drop.get('ignored_calls', 0):,} UDP datagrams to a closed port (not TCP); "
            "reported: the storms' TCP drops above")


def kernel_time_line(bpf_ns_per_event, program: str) -> str:
    return f"bpf_ns_per_event {bpf_ns_per_event!s:>11}  {program}, kernel time per record"


def rss_line(rss_mb: float) -> str:
    return f"rss_mb         {rss_mb:13}  peak, over the idle period and the storms"


def flood_lines(figures: Dict[str, object]) -> List[str]:
    return [
        f"flood_drops_per_s {figures['flood_drops_per_s']:10,}  SYNs dropped by nftables "
        f"({figures['flood_dropped']:,} of {figures['flood_sent']:,} sent)",
        f"flood_lines_per_s {figures['flood_lines_per_s']:10}  the flood's lines; their segs "
        f"{figures['flood_segs']:,} (nftables: {figures['flood_dropped']:,})",
        f"flood_cpu_pct     {figures['flood_cpu_pct']:10}  the probe's, over the flood; peak RSS "
        f"{figures['flood_rss_mb']} MB; {figures['flood_drop_ns_per_call']} ns per drop "
        "in the kernel",
    ]
