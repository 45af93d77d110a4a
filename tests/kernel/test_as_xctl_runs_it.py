"""The probe as xctl runs it: `python3 PATH` with the python3 on PATH (not
the venv's), no arguments, PYTHONUNBUFFERED unset, stderr a pipe nobody reads."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.marks import requires_root
from lab.netns import Netns
from lab.probe import PROBE, VENV_BIN, ProbeProcess, probe_env
from lab.programs import tracing_programs, wait_attached_programs, wait_programs_gone
from lab.waits import patient
from lab.xctl_contract import check_probe_line

pytestmark = requires_root


@pytest.fixture
def foreign_python3():
    """python3 as xctl would find it: PATH without this venv."""
    path = os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep)
        if p and Path(p).resolve() != VENV_BIN.resolve()
    )
    found = shutil.which("python3", path=path)
    if found is None:
        pytest.skip("no python3 on PATH outside the venv")
    return found


@pytest.fixture
def base_python3():
    """The interpreter the venv was made from: not the venv's, and not a
    wrapper script (a pyenv shim is bash)."""
    path = Path(sys.base_prefix) / "bin" / "python3"
    if not path.exists():
        pytest.skip("no base interpreter")
    return str(path)


@pytest.fixture
def netns():
    ns = Netns()
    yield ns
    ns.close()


def test_events_arrive_and_sigterm_leaves_nothing_attached(foreign_python3, netns):
    netns.drop_one_in(5, 9100)
    probe = ProbeProcess(interpreter=foreign_python3, read_stderr=False)
    try:
        programs = wait_attached_programs()
        assert {p["name"] for p in programs} == tracing_programs()

        # Stretched in a slow guest: there 2 s of traffic, most of it the
        # sender's start, made from 36 retransmissions down to one.
        netns.traffic(9100, patient(2.0))
        assert probe.wait_lines(1, timeout=5.0), "no event reached stdout"
        events = [check_probe_line(raw) for raw in probe.lines]
        assert any(9100 in (e["sport"], e["dport"]) for e in events)
        # Flushed as it happens: each line is on stdout within a second of the event.
        delays = [arrived - e["ts"] for arrived, e in zip(probe.arrived_ms, events)]
        assert max(delays) < 1000, f"slowest line took {max(delays):.0f} ms"

        assert probe.stop() == 0
        wait_programs_gone()
        stderr = probe.stderr_text().splitlines()
        assert len(stderr) <= 3 and all(len(line) < 200 for line in stderr), stderr
        assert not any("Traceback" in line for line in stderr)
    finally:
        probe.kill()


def test_sigint_also_exits_cleanly(foreign_python3):
    probe = ProbeProcess(interpreter=foreign_python3, read_stderr=False)
    try:
        wait_attached_programs()
        probe.proc.send_signal(signal.SIGINT)
        assert probe.proc.wait(patient(10)) == 0
        wait_programs_gone()
    finally:
        probe.kill()


def _wait_for_binding(pid: int, timeout: float = 10.0) -> None:
    """Until the probe has mapped the libbpf binding: the probe's own code
    is running, its signal handling is in place, and the load is about to
    start. (Before that it is the interpreter starting up, whose own reaction
    to a signal is not ours to test.) Not before the probe's script runs in
    it: until it execs, the child is a copy of this test's process, which
    may have mapped the binding itself."""
    deadline = time.monotonic() + patient(timeout)
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            running_probe = os.fsencode(PROBE) in cmdline.read().split(b"\0")
        with open(f"/proc/{pid}/maps") as maps:
            if running_probe and "_libbpf" in maps.read():
                return
        # Not faster: each read of maps holds the process's memory map lock,
        # which its start-up (imports, mmap) needs; a slow guest starved on it.
        time.sleep(0.02)
    raise TimeoutError("the probe never loaded its binding")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("delay", [0.0, 0.02, 0.05, 0.1])
def test_stop_signal_while_loading_is_clean(base_python3, signum, delay):
    """A supervisor may stop the probe at any moment, loading included."""
    proc = subprocess.Popen([base_python3, str(PROBE)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=probe_env())
    try:
        _wait_for_binding(proc.pid)
        time.sleep(delay)
        proc.send_signal(signum)
        assert proc.wait(patient(10)) == 0
        assert b"Traceback" not in proc.stderr.read()
        wait_programs_gone()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_closing_stdout_ends_it(foreign_python3):
    proc = subprocess.Popen(
        [foreign_python3, str(PROBE)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=probe_env(),
    )
    try:
        wait_attached_programs()
        proc.stdout.close()  # xctl went away: the read end of the pipe is gone
        started = time.monotonic()
        assert proc.wait(patient(10)) == 0
        assert time.monotonic() - started < patient(5)
        wait_programs_gone()
        assert b"Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
