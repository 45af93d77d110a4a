"""The real-kernel tests inside other kernels: Debian's 6.1 and 6.12.

Each kernel boots under virtme-ng (QEMU without KVM) with this machine's
files as its root, read-only, so the guest runs the very BPF object and venv
built here. Inside, the tests marked ``kernels`` run (accounting, owners,
kinds, the contract, signals, least privilege), after a first start of the
probe that shows how long it takes to attach and which tracepoint layout it
chose, and before one round of the accounting and owner reports, for the
figures.

    python tests/guests/runner.py [--only 6.1] [--timeout SECONDS]

Prints each guest's output as it comes, prefixed with its kernel, then one
summary line per kernel and a last line "N passed, N failed" over all of
them. Exits non-zero if any guest failed, or never reported. `make
test-kernels` installs the kernels, QEMU and virtme-ng first.

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
from typing import Iterator, List, Optional, Tuple

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent

# (name, Debian's generic kernel image in /boot, the layout of
# tcp_retransmit_skb the probe must choose there); tests/guests/install_kernels.sh
# installs them.
KERNELS = [
    ("6.1", r"vmlinuz-6\.1\.0-\d+-amd64", "before Linux 6.17"),
    ("6.12", r"vmlinuz-6\.12\.\d+\+(deb[\d.]+|bpo)-amd64", "before Linux 6.17"),
]
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


def newest(pattern: str) -> Optional[str]:
    found = sorted((p.name for p in BOOT.iterdir() if re.fullmatch(pattern, p.name)),
                   key=version_key)
    return str(BOOT / found[-1]) if found else None


def inside() -> int:
    """In the guest: which kernel, a first attach, then the chosen tests."""
    import pytest

    sys.path.insert(0, str(TESTS))
    from lab.probe import ProbeProcess

    print(f"kernel {os.uname().release}", flush=True)
    started = time.monotonic()
    probe = ProbeProcess()
    waited = time.monotonic() - started
    probe.stop(timeout=60)
    # The tests' waits stretch with the emulation's slowness, which the host
    # running the guest decides.
    patience = max(1.0, waited / ATTACH_AT_PATIENCE_1)
    os.environ["XPT_PATIENCE"] = str(patience)
    print(f"probe: {probe.attach_line.strip()} (the test saw it after {waited:.1f} s; "
          f"waits stretched {patience:.1f} times)", flush=True)
    rc = int(pytest.main(["-p", "no:cacheprovider", "-m", "kernels", "-q", "-rfE",
                          str(TESTS / "kernel")]))
    sys.stdout.flush()  # pytest's closing line before the reports' own output
    # The figures behind the tests on this kernel: one storm, one owner round.
    for report in (["report_accounting.py", "--runs", "1"], ["report_owners.py", "--runs", "1"]):
        rc = rc or subprocess.run([sys.executable, str(TESTS / "bench" / report[0]),
                                         *report[1:]]).returncode
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


def run_guest(name: str, vmlinuz: str, layout: str, timeout: float, consoles: Path) -> dict:
    command = (f"cd {shlex.quote(str(REPO))} && PYTHONDONTWRITEBYTECODE=1 "
               f"{shlex.quote(sys.executable)} {shlex.quote(str(Path(__file__).resolve()))} "
               "--inside")
    # --verbose sends the kernel's console to vng's stderr; the appended
    # loglevel, coming last, keeps it to errors.
    vng = [str(Path(sys.executable).parent / "vng"), "--run", vmlinuz, "--disable-kvm",
           "--cpus", str(GUEST_CPUS), "--memory", "2G", "--verbose",
           "--append", CONSOLE_LOGLEVEL,
           "--exec", command]
    env = dict(os.environ)
    # vng starts virtme-run, which pip put beside it.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    consoles.mkdir(parents=True, exist_ok=True)
    console = consoles / f"{name}.console"
    started = time.monotonic()
    result = {"name": name, "release": None, "attach": None, "summary": None, "rc": None,
              "layout_ok": False, "killed": False, "left": []}
    with open(console, "wb") as console_file:
        proc = subprocess.Popen(vng, stdout=subprocess.PIPE, stderr=console_file,
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
            line = raw.decode(errors="replace").rstrip()
            print(f"[{name}] {line}", flush=True)
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


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this kernel (6.1, 6.12); repeatable")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
                        help=f"guests run side by side, each with {GUEST_CPUS} vCPU: more "
                        "vCPUs than the host has cores slows each guest many times over "
                        "(default: the host's cores, %(default)s)")
    parser.add_argument("--consoles", type=Path, default=REPO / "build" / "out" / "guests",
                        metavar="DIR", help="where each guest's console goes, as NAME.console "
                        "(default: build/out/guests)")
    parser.add_argument("--timeout", type=float, default=1500, metavar="SECONDS",
                        help="give up on a guest after this long (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.inside:
        return inside()

    guests = []
    for name, pattern, layout in KERNELS:
        if args.only and name not in args.only:
            continue
        vmlinuz = newest(pattern)
        if vmlinuz is None:
            print(f"guests: no kernel {pattern} in {BOOT}; `make test-kernels` installs it",
                  file=sys.stderr)
            return 2
        guests.append((name, vmlinuz, layout, args.timeout, args.consoles))
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda guest: run_guest(*guest), guests))

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
        print(f"guest {r['name']}: kernel {r['release']}, attached in {r['attach']} ms, "
              f"layout {'as expected' if r['layout_ok'] else 'WRONG'}, "
              f"{r['summary'] or 'no pytest summary'}, {r['seconds']:.0f} s in all"
              f"{'' if good else ' -- FAILED'}")
    print(f"{passed} passed, {failed} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
