"""The probe as xctl runs it (``python3 PATH``), seen from outside: how long
it takes to attach, the CPU its threads use, its peak RSS."""

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List

from ..errors import ProbeError


def probe_command() -> List[str]:
    """How to start this probe as xctl does: ``python3 PATH``."""
    script = Path(sys.argv[0])
    if script.is_file() and script.name != "__main__.py":
        return [sys.executable, str(script.resolve())]
    return [sys.executable, "-m", "xctl_probe"]


def _start(command: List[str], object_path: Path, *args: str,
           stdout=subprocess.DEVNULL) -> subprocess.Popen:
    return subprocess.Popen([*command, "--object", str(object_path), *args],
                            stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE)


def _wait_attached(proc: subprocess.Popen) -> None:
    """Until the start-up line, past the notices before it (a kernel
    without drop reasons says so first)."""
    while True:
        line = proc.stderr.readline().decode(errors="replace").strip()
        if "attached" in line:
            return
        if not line or ": error:" in line:
            raise ProbeError(f"bench: the probe did not start: {line or 'no start-up line'}")


def startup_ms(command: List[str], object_path: Path, starts: int) -> List[float]:
    """From start to the "attached" line, once per start."""
    times = []
    for _ in range(starts):
        started = time.perf_counter()
        proc = _start(command, object_path, "--duration", "0")
        try:
            _wait_attached(proc)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            proc.communicate()
        times.append(elapsed)
    return times


def start_probe(command: List[str], object_path: Path,
                stdout=subprocess.DEVNULL) -> subprocess.Popen:
    """The probe, attached; ``stop_probe()`` it."""
    proc = _start(command, object_path, stdout=stdout)
    try:
        _wait_attached(proc)
    except BaseException:
        stop_probe(proc)
        raise
    return proc


def stop_probe(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def running_probe(command: List[str], object_path: Path) -> Iterator[int]:
    """The probe, attached, until the block ends; yields its pid."""
    proc = start_probe(command, object_path)
    try:
        yield proc.pid
    finally:
        stop_probe(proc)


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


def idle_cpu_pct(pid: int, seconds: float) -> float:
    before = cpu_ns(pid)
    time.sleep(seconds)
    return (cpu_ns(pid) - before) / (seconds * 1e9) * 100


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0
