"""The guests' runner's watchdog (tests/guests/runner.py): a guest that has not ended in time is killed
with everything under it, QEMU included, says so, shows its console's last
lines, and fails the run. Needs QEMU, virtme-ng and the 6.1 kernel (make
test-kernels installs them, then runs this before the guests)."""

import subprocess
import sys
from pathlib import Path

import pytest

from guests.runner import live_processes
from lab.marks import requires_root

pytestmark = [requires_root, pytest.mark.guest_runner]

RUNNER = Path(__file__).resolve().parent / "runner.py"


def live_processes_naming(text: str) -> list:
    return [(pid, cmdline) for pid, _, cmdline in live_processes() if text in cmdline]


def test_a_guest_past_its_timeout_is_killed_with_its_qemu(tmp_path):
    before = set(live_processes_naming("qemu-system") + live_processes_naming("virtme"))
    # Long enough for QEMU to be booting the kernel, far too short for a result.
    run = subprocess.run([sys.executable, str(RUNNER), "--only", "6.1", "--timeout", "15",
                          "--consoles", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    print(run.stdout, run.stderr)
    lines = run.stdout.splitlines()
    assert run.returncode == 1
    assert "[6.1] no result after 15 s: killed the guest (vng, virtme-run, QEMU)" in lines
    assert not any("still running after SIGKILL" in line for line in lines)
    console = [line for line in lines if line.startswith("[6.1 console] ")]
    assert any("Linux version 6.1." in line for line in console), "QEMU never booted"
    assert lines[-1] == "0 passed, 1 failed"
    assert (tmp_path / "6.1.console").stat().st_size > 0
    after = set(live_processes_naming("qemu-system") + live_processes_naming("virtme"))
    assert after <= before, after - before
