"""What a flood of dropped packets costs the probe as xctl runs it: SYNs as
fast as one process sends them, every one dropped by nftables (the storm
lab's syn_flood), for --flood-seconds. The drops a second nftables counted,
the probe's CPU over the flood, its lines a second (its stdout read here),
the sum of the flood lines' segs against nftables' count, its peak RSS, and
the drop program's kernel time per call over the flood."""

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, List

from ..lab.storm import syn_flood
from .probe_process import cpu_ns, peak_rss_mb, start_probe, stop_probe
from .program_stats import per_call, program_ids, program_stats, run_time_stats

FLOOD_PORT = 9002
DROP_PROGRAM = "xp_kfree_skb"


def flood_cost(command: List[str], object_path: Path, seconds: float) -> Dict[str, object]:
    proc = start_probe(command, object_path, stdout=subprocess.PIPE)
    lines: List[bytes] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout))
    try:
        reader.start()
        ids = program_ids(proc.pid)
        with run_time_stats():
            stats = program_stats(ids)
            cpu, started = cpu_ns(proc.pid), time.monotonic()
            sent, dropped = syn_flood(seconds, FLOOD_PORT)
            elapsed = time.monotonic() - started
            cpu = cpu_ns(proc.pid) - cpu
            calls, ns = per_call(stats, program_stats(ids)).get(DROP_PROGRAM, (0, 0.0))
        rss = peak_rss_mb(proc.pid)
    finally:
        stop_probe(proc)
        reader.join()
    flood = [line for line in map(json.loads, lines)
             if line.get("kind") == "drop" and line["sport"] == FLOOD_PORT]
    return {
        "flood_drops_per_s": round(dropped / elapsed),
        "flood_sent": sent,
        "flood_dropped": dropped,
        "flood_segs": sum(line["segs"] for line in flood),
        "flood_lines_per_s": round(len(flood) / elapsed, 1),
        "flood_cpu_pct": round(cpu / (elapsed * 1e9) * 100, 2),
        "flood_rss_mb": round(rss, 1),
        "flood_drop_ns_per_call": round(ns) if calls else None,
    }
