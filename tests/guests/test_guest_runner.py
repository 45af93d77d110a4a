"""The guests' runner (tests/guests/runner.py): its choices without a guest
(the kernels' list, each guest's selection, image, command, output and
verdict), then its watchdog: a guest that has not ended in time is killed
with everything under it, QEMU included, says so, shows its console's last
lines, and fails the run. The watchdog's test needs QEMU, virtme-ng and the
6.1 kernel (make test-kernels installs them, then runs this before the
guests)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from guests.runner import (GUEST_PYTHON, GUEST_REPO, REPO, SELECTIONS, TESTS, Kernel,
                           expected_layout, image_dir, judge, live_processes, missing, new_result,
                           newest, read_kernels, take_line, vng_command)
from lab.marks import requires_root

pytestmark = pytest.mark.guest_runner

RUNNER = Path(__file__).resolve().parent / "runner.py"
ARM64 = Kernel("arm64", "arm64", "-", r"6\.1\.0-[0-9]+-arm64")
AMD64 = Kernel("6.1", "amd64", "-", r"6\.1\.0-[0-9]+-amd64")


def test_the_kernels_list_names_each_guest_once_with_a_known_arch():
    kernels = read_kernels()
    assert len({k.name for k in kernels}) == len(kernels) >= 4, kernels
    assert {k.arch for k in kernels} == set(SELECTIONS)
    for kernel in kernels:
        re.compile(kernel.release)


@pytest.mark.parametrize("arch", sorted(SELECTIONS))
def test_every_test_a_guest_runs_exists(arch):
    """The selections name tests by node id: one renamed must fail here, not
    only in a guest."""
    # pytest's script, not python -m pytest: that would import the checkout's
    # package, which has no binding built in it, before the venv's.
    collect = subprocess.run(
        [str(Path(sys.executable).parent / "pytest"), "-p", "no:cacheprovider", "--collect-only", "-q",
         *(str(TESTS / "kernel" / test) for test in SELECTIONS[arch])],
        capture_output=True, text=True, cwd=REPO)
    assert collect.returncode == 0, collect.stdout + collect.stderr
    assert "deselected" not in collect.stdout


def test_the_newest_image_of_a_release_is_booted(tmp_path):
    for name in ["vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-57-amd64", "vmlinuz-6.1.0-10-amd64",
                 "vmlinuz-6.1.0-99-cloud-amd64", "config-6.1.0-99-amd64"]:
        (tmp_path / name).touch()
    assert newest(tmp_path, AMD64.release) == str(tmp_path / "vmlinuz-6.1.0-57-amd64")
    assert newest(tmp_path, r"5\.10\.0-[0-9]+-amd64") is None


def test_arm64_images_are_not_looked_for_in_boot(tmp_path):
    assert image_dir(AMD64, tmp_path) == Path("/boot")
    assert image_dir(ARM64, tmp_path) == tmp_path / "arm64" / "kernel" / "boot"


def test_what_a_guest_lacks_says_what_to_do(tmp_path):
    boot = image_dir(ARM64, tmp_path)
    assert "make test-kernels" in missing(ARM64, tmp_path)
    boot.mkdir(parents=True)
    (boot / "vmlinuz-6.1.0-50-arm64").touch()
    assert "no arm64 root" in missing(ARM64, tmp_path)
    stamp = tmp_path / "arm64" / "root" / "opt" / "xpt" / ".wheel"
    stamp.parent.mkdir(parents=True)
    stamp.touch()
    assert missing(ARM64, tmp_path) is None


@pytest.mark.parametrize("release, layout", [
    ("5.10.0-32-amd64", "before Linux 6.17"), ("6.12.118+deb12-amd64", "before Linux 6.17"),
    ("6.17.0", "Linux 6.17+"), ("6.18.1-arm64", "Linux 6.17+"), ("7.0", "Linux 6.17+")])
def test_the_layout_a_guest_must_report_follows_its_release(release, layout):
    assert expected_layout(release) == layout


def test_an_amd64_guest_runs_this_checkout_on_the_hosts_files():
    vng = vng_command(AMD64, "/boot/vmlinuz-6.1.0-57-amd64")
    assert "--root" not in vng and "--arch" not in vng
    assert vng[vng.index("--run") + 1] == "/boot/vmlinuz-6.1.0-57-amd64"
    command = vng[vng.index("--exec") + 1]
    assert sys.executable in command and command.endswith("--inside amd64")


def test_the_arm64_guest_runs_its_own_root_and_the_wheels_venv(tmp_path):
    vng = vng_command(ARM64, "K", tmp_path)
    assert vng[vng.index("--arch") + 1] == "arm64"
    assert vng[vng.index("--root") + 1] == str(tmp_path / "arm64" / "root")
    assert vng[vng.index("--rodir") + 1] == f"{GUEST_REPO}={REPO}"
    command = vng[vng.index("--exec") + 1]
    assert f"{GUEST_PYTHON} tests/guests/runner.py --inside arm64" in command
    assert sys.executable not in command


def test_a_guests_lines_give_its_kernel_attach_summary_and_result():
    result = new_result("6.1")
    for line in ["kernel 6.1.0-57-amd64",
                 "probe: xctl-probe-ebpf: attached to 5 tracepoints in 812 ms since exec; "
                 "tcp_retransmit_skb(sk, skb), before Linux 6.17; HZ 250 (the test saw it after "
                 "1.9 s; waits stretched 1.0 times)",
                 "kernel 6.1 is named only once",
                 "==== 1 failed, 12 passed in 203.31s (0:03:23) ====",
                 "xctl-guest-result: 1"]:
        take_line(result, line, "before Linux 6.17")
    assert result["release"] == "6.1.0-57-amd64" and result["attach"] == 812
    assert result["layout_ok"] and result["rc"] == 1
    assert result["summary"] == "1 failed, 12 passed in 203.31s (0:03:23)"


def test_a_probe_that_did_not_attach_fails_the_layout():
    result = new_result("5.10")
    take_line(result, "probe: probe did not attach: 'xctl-probe-ebpf: error: ...'",
              "before Linux 6.17")
    assert result["attach"] is None and not result["layout_ok"]


def guest(name, summary, rc=0, layout_ok=True, left=()):
    return dict(new_result(name), release="R", attach=900, summary=summary, rc=rc,
                layout_ok=layout_ok, left=list(left), seconds=321.4)


def test_the_verdict_counts_tests_and_guests_that_never_reported():
    lines, ok = judge([guest("6.1", "13 passed in 300.00s"),
                       guest("6.12", "2 failed, 11 passed in 300.00s", rc=1),
                       guest("5.10", None, rc=None, layout_ok=False)])
    assert not ok
    assert lines[0] == ("guest 6.1: kernel R, attached in 900 ms, layout as expected, "
                        "13 passed in 300.00s, 321 s in all")
    assert lines[1].endswith("-- FAILED") and lines[2].endswith("no pytest summary, 321 s in "
                                                                 "all -- FAILED")
    assert lines[-1] == "24 passed, 3 failed"


@pytest.mark.parametrize("spoiler", [{"layout_ok": False}, {"left": [4242]}, {"rc": 1}])
def test_a_guest_whose_tests_passed_still_fails_on_anything_else(spoiler):
    lines, ok = judge([dict(guest("6.1", "13 passed in 300.00s"), **spoiler)])
    assert not ok and lines[-1] == "13 passed, 1 failed"


def live_processes_naming(text: str) -> list:
    return [(pid, cmdline) for pid, _, cmdline in live_processes() if text in cmdline]


@requires_root
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
