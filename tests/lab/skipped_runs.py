"""Runs of the probe's programs that the kernel skips, on demand and exactly:
the probe loaded from its object plus one program that the kernel skips
once for each time it is triggered (skipped_runs.bpf.c), and the kernel's own
count of them, as bpftool reports it.

The program prints (bpf_printk) from the printk tracepoint. Before Linux 6.2
("bpf: Remove trace_printk_lock") printing held a lock that the printing
program would take again: a deadlock, so it is not to be run there. Loading a
program that prints turns on the kernel's bpf_trace_printk trace event (the
kernel's own doing); ``printk_event_kept`` puts it back as it was.
"""

import contextlib
import importlib.util
import json
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Dict, Iterator

from xctl_probe.bench.program_stats import program_ids

from .kernel_trace import TRACEFS

LAB = Path(__file__).resolve().parent
SOURCE = LAB / "skipped_runs.bpf.c"
BPF_OBJECT_BUILDER = LAB.parent.parent / "build" / "bpf_object.py"
NESTED, TRIGGER = "xp_nested", "xp_printk"
PRINTK_EVENT = f"{TRACEFS}/events/bpf_trace/bpf_trace_printk/enable"


def can_run_here() -> bool:
    release = tuple(int(part) for part in re.findall(r"\d+", platform.release())[:2])
    return release >= (6, 2)


def build(out_dir: Path) -> Path:
    """The object, compiled as the probe's own is (build/bpf_object.py)."""
    spec = importlib.util.spec_from_file_location("bpf_object", BPF_OBJECT_BUILDER)
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    out = out_dir / "skipped_runs.bpf.o"
    builder.compile_object(SOURCE, out)
    return out


@contextlib.contextmanager
def printk_event_kept() -> Iterator[None]:
    """The kernel's bpf_trace_printk trace event as it was before, afterwards."""
    if not os.path.ismount(TRACEFS):
        subprocess.run(["mount", "-t", "tracefs", "nodev", TRACEFS], check=True)
    with open(PRINTK_EVENT) as f:
        was = f.read().strip()
    try:
        yield
    finally:
        with open(PRINTK_EVENT, "w") as f:
            f.write(was)


class ProbePrograms:
    """The BPF programs a running probe holds, as the kernel lists them."""

    def __init__(self, pid: int):
        self._pid = pid

    def listed(self) -> Dict[str, dict]:
        """{name: bpftool's entry} of the programs the probe holds now."""
        ids = program_ids(self._pid)
        out = subprocess.run(["bpftool", "-j", "prog", "list"], capture_output=True, text=True,
                             check=True).stdout
        return {p["name"]: p for p in json.loads(out) if p["id"] in ids}

    def skipped(self) -> Dict[str, int]:
        """{name: runs the kernel skipped} of those it skipped any of, as bpftool
        reports them (it names recursion_misses only when not 0)."""
        return {name: p["recursion_misses"] for name, p in self.listed().items()
                if p.get("recursion_misses")}

    def make_skip(self, runs: int, packet_dir: Path) -> None:
        """Runs the trigger ``runs`` times, in the kernel: as many runs skipped."""
        packet = packet_dir / "packet"
        packet.write_bytes(bytes(64))  # a socket program's test run wants a packet
        trigger = self.listed()[TRIGGER]["id"]
        subprocess.run(["bpftool", "prog", "run", "id", str(trigger), "data_in", str(packet),
                        "repeat", str(runs)], capture_output=True, check=True)
