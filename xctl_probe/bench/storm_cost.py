"""Kernel time per call of each of the probe's programs in loss storms (the
median of several), and the drop program's per call for drops it ignores."""

import statistics
from typing import Callable, Dict, List, Set, Tuple

from ..kernel.load_time_runs import LOAD_TIME_PROGRAMS
from ..lab.storm import storm, udp_drops
from .program_stats import per_call, program_ids, program_stats, run_time_stats
from .report import storm_line

RETRANSMIT_PROGRAM = "xp_tcp_retransmit_skb"
DROP_PROGRAM = "xp_kfree_skb"
IGNORED_DROPS = 20000
STORM_PORT = 9000
MIN_STORM_RECORDS = 5000


def _measured(ids: Set[int], action: Callable[[], None]) -> Dict[str, Tuple[int, float]]:
    before = program_stats(ids)
    action()
    return per_call(before, program_stats(ids))


def storm_costs(pid: int, runs: int, seconds: float, say: Callable[[str], None]
                ) -> Dict[str, Dict[str, float]]:
    """{program: calls_per_run, ns_per_call}, the drop program's with
    ignored_calls and ignored_ns_per_call too, for the probe ``pid``."""
    ids = program_ids(pid)
    per_run: List[Dict[str, Tuple[int, float]]] = []
    with run_time_stats():
        for run in range(runs):
            per_run.append(_measured(ids, lambda: storm(seconds, STORM_PORT)))
            calls, ns = per_run[-1].get(RETRANSMIT_PROGRAM, (0, 0.0))
            say(storm_line(run, runs, RETRANSMIT_PROGRAM, calls, ns, MIN_STORM_RECORDS))
        ignored = _measured(ids, lambda: udp_drops(IGNORED_DROPS, STORM_PORT))
    programs = _medians(per_run)
    if DROP_PROGRAM in ignored:
        calls, ns = ignored[DROP_PROGRAM]
        programs[DROP_PROGRAM]["ignored_calls"] = calls
        programs[DROP_PROGRAM]["ignored_ns_per_call"] = round(ns) if calls else None
    return programs


def _medians(per_run: List[Dict[str, Tuple[int, float]]]) -> Dict[str, Dict[str, float]]:
    """Each program's median calls and ns per call over the storms it ran in."""
    programs = {}
    for name in sorted(name for name in per_run[0] if name not in LOAD_TIME_PROGRAMS):
        calls = [run[name][0] for run in per_run if name in run]
        costs = [run[name][1] for run in per_run if name in run and run[name][0]]
        programs[name] = {"calls_per_run": statistics.median(calls),
                          "ns_per_call": round(statistics.median(costs)) if costs else None}
    return programs
