"""The kernel's run-time statistics of a process's BPF programs: run time
and calls, turned on for as long as they are read, and their cost per call
between two readings."""

import contextlib
import os
from typing import Dict, Iterator, Set, Tuple

from ..errors import KernelUnsupported
from ..kernel.binding import ffi, lib

Stats = Dict[str, Tuple[int, int]]


def program_ids(pid: int) -> Set[int]:
    """The BPF programs ``pid`` holds, from its descriptors' fdinfo."""
    ids = set()
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                for line in f:
                    if line.startswith("prog_id:"):
                        ids.add(int(line.split()[1]))
        except OSError:
            continue
    return ids


def program_stats(ids: Set[int]) -> Stats:
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


@contextlib.contextmanager
def run_time_stats() -> Iterator[None]:
    """The kernel counts programs' run time only while someone holds this on."""
    stats_fd = lib.xp_enable_run_time_stats()
    if stats_fd < 0:
        raise KernelUnsupported(f"cannot turn on BPF run-time statistics: "
                                f"{os.strerror(-stats_fd)}")
    try:
        yield
    finally:
        os.close(stats_fd)


def per_call(before: Stats, after: Stats) -> Dict[str, Tuple[int, float]]:
    """{program name: (calls, ns per call)} between two readings."""
    costs = {}
    for name, (run_time, calls) in after.items():
        d_time = run_time - before.get(name, (0, 0))[0]
        d_calls = calls - before.get(name, (0, 0))[1]
        costs[name] = (d_calls, d_time / d_calls if d_calls else 0.0)
    return costs
