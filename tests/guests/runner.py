"""The real-kernel tests inside other kernels: Debian's 5.10, 6.1 and 6.12
on amd64, and 6.1 on arm64, as tests/guests/kernels.txt names them.

Each kernel boots under virtme-ng (QEMU without KVM). An amd64 guest has this
machine's files as its root, read-only, so it runs the very BPF object and
venv built here. The arm64 guest has a Debian root of its own
(tests/guests/make_arm64_root.sh) whose venv holds the aarch64 wheel from
dist/, and sees this checkout read-only at GUEST_REPO for the tests. Inside,
a first start of the probe shows how long it takes to attach and which
tracepoint layout it chose, then the guest's selection of tests runs
(SELECTIONS).

    python tests/guests/runner.py [--only NAME] [--jobs N] [--timeout SECONDS]

Prints each guest's output as it comes, prefixed with its name, then one
summary line per guest (kernel, attach time, pytest summary, wall time) and a
last line "N passed, N failed" over all of them. Exits non-zero if any guest
failed, or never reported. `make test-kernels` installs the kernels, QEMU,
virtme-ng and the arm64 root first.

A guest runs in a process group of its own (vng, virtme-run, QEMU). One that
has not ended within --timeout is killed with its whole group, and so is
whatever is left of a guest that ended; a guest without its result line
fails, with the last lines of its console: the guest kernel's messages of
level error and worse (soft lockups, RCU stalls, OOM kills, panics), kept in
build/out/guests/NAME.console (--consoles) beside the guest's own stderr.
"""

import argparse
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, List, NamedTuple, Optional, Tuple

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent

OUT = REPO / "build" / "out" / "guests"
KERNELS_LIST = Path(__file__).resolve().parent / "kernels.txt"


class Kernel(NamedTuple):
    name: str
    arch: str
    suite: str
    release: str  # a regex


def read_kernels(path: Path = KERNELS_LIST) -> List[Kernel]:
    """The guests of kernels.txt, in its order: the order they start in."""
    kernels = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            kernels.append(Kernel(*line.split()))
    return kernels


# What a guest runs, from tests/kernel. QEMU emulates every instruction, so a
# test takes many times as long as here: each guest runs, once, what another
# kernel could break. On amd64: Σsegs against TcpRetransSegs; owners, right
# and never wrong, over IPv4 and IPv6; each kind against its counter; the job
# from a job_4242 cgroup; xctl's contract and SIGTERM; least privilege; the
# layout and HZ that kernel gives. On arm64, slower still and the same
# kernel series as amd64's 6.1, what another architecture could break: the
# wheel's own build running Σsegs, owners, the kinds under random loss, the
# contract and SIGTERM. A node id that no longer exists fails
# test_guest_runner.py on this host.
SELECTIONS = {
    "amd64": [
        "test_retransmissions.py::test_segs_sum_equals_kernel_retrans_segs_exactly",
        "test_owners.py::test_right_owner_on_both_sides",
        "test_kinds.py",
        "test_job_ids.py::test_a_job_4242_cgroup_names_the_job_without_the_environment",
        "test_as_xctl_runs_it.py::test_events_arrive_and_sigterm_leaves_nothing_attached",
        "test_least_privilege.py::test_the_service_set_as_nobody_streams_with_the_right_owners",
        "test_least_privilege.py::test_without_a_load_capability_it_exits_with_one_line",
        "test_core_layout.py::test_loader_reports_the_layout_the_kernel_btf_has",
        "test_hz.py",
    ],
    "arm64": [
        "test_retransmissions.py::test_segs_sum_equals_kernel_retrans_segs_exactly",
        "test_owners.py::test_right_owner_on_both_sides[4]",
        "test_kinds.py::test_kinds_under_random_loss",
        "test_as_xctl_runs_it.py::test_events_arrive_and_sigterm_leaves_nothing_attached",
    ],
}
# Where the arm64 guest sees this checkout (make_arm64_root.sh makes the
# directory: the root is read-only in the guest) and its venv's python.
GUEST_REPO = "/opt/xctl-probe-ebpf"
GUEST_PYTHON = "/opt/xpt/bin/python"
BOOT = Path("/boot")
# The guest kernel's console at error level and worse only: a console at full
# verbosity, printed through the emulated serial port, once slowed a loaded
# guest into soft lockups.
CONSOLE_LOGLEVEL = "loglevel=4"
CONSOLE_TAIL = 40
# One vCPU each. QEMU's emulation runs a guest's vCPUs on host threads of
# their own, and a CPU can then execute kernel text that another is
# live-patching (static keys flipped by tracepoints, nftables hooks): with two
# vCPUs 6.12 panicked on it twice ("int3" in __schedule; a jump entered
# mid-instruction in ip_local_deliver, with nftables hooks coming and going).
# With one there is no other CPU, and the host's cores go to guests side by side.
GUEST_CPUS = 1
RESULT = "xctl-guest-result:"
# Seconds the first attach in a guest took on a run where every wait sufficed as
# written; a slower guest stretches the waits in proportion.
ATTACH_AT_PATIENCE_1 = 2.0
# pytest's closing line, with -q bare ("1 failed, 21 passed, 53 deselected in 203.31s").
SUMMARY = re.compile(r"^=* ?((?:\d+ \w+, )*\d+ \w+ in [\d.]+s\b.*?) ?=*$")
COUNTS = re.compile(r"(\d+) (passed|failed|errors?)")


def version_key(path: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def image_dir(kernel: Kernel, out: Path = OUT) -> Path:
    """Where install_kernels.sh puts the kernel's image: arm64's is no kernel
    for this machine's /boot."""
    return out / "arm64" / "kernel" / "boot" if kernel.arch == "arm64" else BOOT


def newest(directory: Path, release: str) -> Optional[str]:
    names = [p.name for p in directory.iterdir()] if directory.is_dir() else []
    found = sorted((name for name in names if re.fullmatch(f"vmlinuz-{release}", name)),
                   key=version_key)
    return str(directory / found[-1]) if found else None


def expected_layout(release: str) -> str:
    """The tracepoint layout the probe must report on this kernel (load_time_runs.py)."""
    major, minor = (int(n) for n in re.match(r"(\d+)\.(\d+)", release).groups())
    return "Linux 6.17+" if (major, minor) >= (6, 17) else "before Linux 6.17"


def inside(selection: str) -> int:
    """In the guest: which kernel, a first attach, then the selection's tests."""
    import pytest

    sys.path.insert(0, str(TESTS))
    from lab.probe import ProbeProcess

    print(f"kernel {os.uname().release}", flush=True)
    started = time.monotonic()
    try:
        probe = ProbeProcess()
    except RuntimeError as error:
        # The tests run all the same, each saying what it could not do.
        print(f"probe: {error}", flush=True)
    else:
        waited = time.monotonic() - started
        probe.stop(timeout=60)
        # The tests' waits stretch with the emulation's slowness, which the host
        # running the guest decides.
        patience = max(1.0, waited / ATTACH_AT_PATIENCE_1)
        os.environ["XPT_PATIENCE"] = str(patience)
        print(f"probe: {probe.attach_line.strip()} (the test saw it after {waited:.1f} s; "
              f"waits stretched {patience:.1f} times)", flush=True)
    # Without colours: a guest's console is a terminal, and the runner reads
    # pytest's closing line from it.
    # -s: each test's figures (Σsegs and TcpRetransSegs, owners right and
    # wrong, kinds and their counters) in the guest's output.
    rc = int(pytest.main(["-p", "no:cacheprovider", "-q", "-s", "-rfE", "--color=no",
                          *(str(TESTS / "kernel" / test) for test in SELECTIONS[selection])]))
    print(f"{RESULT} {rc}", flush=True)
    return rc


def live_processes() -> Iterator[Tuple[int, int, str]]:
    """(pid, process group, command line) of every process but zombies,
    which only wait to be reaped."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # After "(comm)": state, ppid, process group.
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except (OSError, IndexError):
                continue
            if fields[0] != "Z":
                yield int(entry.name), int(fields[2]), cmdline.decode(errors="replace")


def group_members(pgid: int) -> List[int]:
    return [pid for pid, group, _ in live_processes() if group == pgid]


def kill_group(pgid: int) -> List[int]:
    """SIGKILL to every process of the group, until none is left; returns
    the pids of those that would not go within 10 s."""
    deadline = time.monotonic() + 10
    while True:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return []
        left = group_members(pgid)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def console_tail(path: Path) -> List[str]:
    try:
        lines = path.read_bytes().decode(errors="replace").splitlines()
    except OSError:
        return []
    return lines[-CONSOLE_TAIL:]


def vng_command(kernel: Kernel, vmlinuz: str, out: Path = OUT) -> List[str]:
    """vng booting the kernel to run this script's --inside with the kernel's selection."""
    if kernel.arch == "arm64":
        inside_command = (f"cd {GUEST_REPO} && PYTHONDONTWRITEBYTECODE=1 {GUEST_PYTHON} "
                          "tests/guests/runner.py --inside arm64")
        root = ["--arch", "arm64", "--root", str(out / "arm64" / "root"),
                "--rodir", f"{GUEST_REPO}={REPO}"]
    else:
        inside_command = (f"cd {shlex.quote(str(REPO))} && PYTHONDONTWRITEBYTECODE=1 "
                          f"{shlex.quote(sys.executable)} "
                          f"{shlex.quote(str(Path(__file__).resolve()))} --inside amd64")
        root = []
    # --verbose sends the kernel's console to vng's stderr; the appended
    # loglevel, coming last, keeps it to errors.
    # 9p at once: virtiofsd cannot start here (fuse refuses it), and vng
    # waits for it a few seconds per shared directory before it falls back.
    return [str(Path(sys.executable).parent / "vng"), *root, "--run", vmlinuz,
            "--disable-kvm", "--force-9p", "--cpus", str(GUEST_CPUS), "--memory", "2G", "--verbose",
            "--append", CONSOLE_LOGLEVEL, "--exec", inside_command]


def new_result(name: str) -> dict:
    return {"name": name, "release": None, "attach": None, "summary": None, "rc": None,
            "layout_ok": False, "killed": False, "left": []}


def take_line(result: dict, line: str, layout: str) -> None:
    """What a line of the guest's output tells, into ``result``."""
    if line.startswith("kernel ") and result["release"] is None:
        result["release"] = line.split()[1]
    elif line.startswith("probe: "):
        found = re.search(r"in (\d+) ms since exec", line)
        result["attach"] = int(found.group(1)) if found else None
        result["layout_ok"] = layout in line
    elif SUMMARY.match(line):
        result["summary"] = SUMMARY.match(line).group(1)
    elif line.startswith(RESULT):
        result["rc"] = int(line.split()[1])


def run_guest(kernel: Kernel, vmlinuz: str, timeout: float, consoles: Path) -> dict:
    name = kernel.name
    env = dict(os.environ)
    # vng starts virtme-run, which pip put beside it.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    consoles.mkdir(parents=True, exist_ok=True)
    console = consoles / f"{name}.console"
    # QEMU for arm64 gives the guest no port for the command's output
    # ("cannot find script I/O ports"): it comes on the console, among the
    # kernel's messages, so there the runner reads the console and keeps it.
    console_only = kernel.arch == "arm64"
    layout = expected_layout(Path(vmlinuz).name[len("vmlinuz-"):])
    started = time.monotonic()
    result = new_result(name)
    with open(console, "wb") as console_file:
        proc = subprocess.Popen(vng_command(kernel, vmlinuz), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT if console_only else console_file,
                                stdin=subprocess.DEVNULL, env=env, cwd=REPO,
                                start_new_session=True)

        def expire():
            result["killed"] = True
            result["left"] = kill_group(proc.pid)

        # Killing the group ends QEMU, which closes the pipe read below.
        watchdog = threading.Timer(timeout, expire)
        watchdog.start()
        try:
            for raw in proc.stdout:
                if console_only:
                    console_file.write(raw)
                line = raw.decode(errors="replace").strip("\r\n")
                print(f"[{name}] {line}", flush=True)
                take_line(result, line, layout)
        finally:
            watchdog.cancel()
            watchdog.join()
            # vng ends soon after QEMU; whatever of the guest is still there then goes.
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            result["left"] = result["left"] or kill_group(proc.pid)
            proc.wait()
    result["seconds"] = time.monotonic() - started
    if result["killed"]:
        print(f"[{name}] no result after {timeout:.0f} s: killed the guest "
              f"(vng, virtme-run, QEMU)", flush=True)
    if result["left"]:
        print(f"[{name}] still running after SIGKILL: pids {result['left']}", flush=True)
    if result["rc"] is None:
        print(f"[{name}] the last lines of its console ({console}):", flush=True)
        for line in console_tail(console):
            print(f"[{name} console] {line}", flush=True)
    return result


def missing(kernel: Kernel, out: Path = OUT) -> Optional[str]:
    """What the guest lacks to boot, said with what to do; None when it can."""
    vmlinuz = newest(image_dir(kernel, out), kernel.release)
    if vmlinuz is None:
        return (f"no kernel vmlinuz-{kernel.release} in {image_dir(kernel, out)}; "
                "`make test-kernels` installs it")
    if kernel.arch == "arm64" and not (out / "arm64" / "root" / "opt" / "xpt" / ".wheel").is_file():
        return (f"no arm64 root with the wheel in {out / 'arm64' / 'root'}; "
                "`make test-kernels` makes it")
    return None


def judge(results: List[dict]) -> Tuple[List[str], bool]:
    """One summary line per guest and a last "N passed, N failed"; whether all passed."""
    lines = []
    passed = failed = 0
    ok = True
    for r in results:
        counts = {kind: int(n) for n, kind in COUNTS.findall(r["summary"] or "")}
        passed += counts.get("passed", 0)
        failures = counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0)
        good = (r["rc"] == 0 and r["layout_ok"] and counts.get("passed", 0) > 0
                and not r["left"])
        # A guest that failed without a failed test (it never reported, or left
        # a process behind) counts as one failure.
        failed += failures or (0 if good else 1)
        ok &= good
        lines.append(f"guest {r['name']}: kernel {r['release']}, attached in {r['attach']} ms, "
                     f"layout {'as expected' if r['layout_ok'] else 'WRONG'}, "
                     f"{r['summary'] or 'no pytest summary'}, {r['seconds']:.0f} s in all"
                     f"{'' if good else ' -- FAILED'}")
    lines.append(f"{passed} passed, {failed} failed")
    return lines, ok


def main(argv: Optional[List[str]] = None) -> int:
    kernels = read_kernels()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inside", choices=sorted(SELECTIONS), help=argparse.SUPPRESS)
    parser.add_argument("--only", action="append", metavar="NAME",
                        choices=[k.name for k in kernels],
                        help="run only this guest (%(choices)s); repeatable")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
                        help=f"guests run side by side, each with {GUEST_CPUS} vCPU, in the "
                        "order of kernels.txt, longest first: more vCPUs than the host has "
                        "cores slows each guest many times over (default: the host's cores, "
                        "%(default)s)")
    parser.add_argument("--consoles", type=Path, default=OUT, metavar="DIR",
                        help="where each guest's console goes, as NAME.console "
                        "(default: build/out/guests)")
    # More than twice what the slowest guest took on a loaded 2-core host
    # (5.10: 339 s; 6.12: 207 s).
    parser.add_argument("--timeout", type=float, default=900, metavar="SECONDS",
                        help="give up on a guest after this long (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.inside:
        return inside(args.inside)

    guests = []
    for kernel in kernels:
        if args.only and kernel.name not in args.only:
            continue
        lacking = missing(kernel)
        if lacking:
            print(f"guests: {kernel.name}: {lacking}", file=sys.stderr)
            return 2
        guests.append((kernel, newest(image_dir(kernel), kernel.release), args.timeout,
                       args.consoles))
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda guest: run_guest(*guest), guests))
    lines, ok = judge(results)
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
