"""The real-kernel tests inside other kernels: Debian's 6.1 and 6.12.

Each kernel boots under virtme-ng (QEMU without KVM) with this machine's
files as its root, read-only, so the guest runs the very BPF object and venv
built here. Inside, the tests marked ``kernels`` run (accounting, owners,
kinds, the contract, signals), after a first start of the probe that shows
how long it takes to attach and which tracepoint layout it chose, and before
one round of the accounting and owner reports, for the figures.

    python tests/guests.py [--only 6.1] [--timeout SECONDS]

Prints each guest's output as it comes, prefixed with its kernel, then one
summary line per kernel and a last line "N passed, N failed" over all of
them. Exits non-zero if any guest failed, or never reported. `make
test-kernels` installs the kernels, QEMU and virtme-ng first.
"""

import argparse
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent

# (name, Debian's generic kernel image in /boot, the layout of
# tcp_retransmit_skb the probe must choose there); tests/install_kernels.sh
# installs them.
KERNELS = [
    ("6.1", r"vmlinuz-6\.1\.0-\d+-amd64", "before Linux 6.17"),
    ("6.12", r"vmlinuz-6\.12\.\d+\+(deb[\d.]+|bpo)-amd64", "before Linux 6.17"),
]
BOOT = Path("/boot")
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
    import netlab

    print(f"kernel {os.uname().release}", flush=True)
    started = time.monotonic()
    probe = netlab.ProbeProcess()
    waited = time.monotonic() - started
    probe.stop(timeout=60)
    # The tests' waits stretch with the emulation's slowness, which the host
    # running the guest decides.
    netlab.PATIENCE = max(1.0, waited / ATTACH_AT_PATIENCE_1)
    os.environ["XPT_PATIENCE"] = str(netlab.PATIENCE)
    print(f"probe: {probe.attach_line.strip()} (the test saw it after {waited:.1f} s; "
          f"waits stretched {netlab.PATIENCE:.1f} times)", flush=True)
    rc = int(pytest.main(["-p", "no:cacheprovider", "-m", "kernels", "-q", "-rfE", str(TESTS)]))
    sys.stdout.flush()  # pytest's closing line before the reports' own output
    # The figures behind the tests on this kernel: one storm, one owner round.
    for report in (["report_accounting.py", "--runs", "1"], ["report_owners.py", "--runs", "1"]):
        rc = rc or subprocess.run([sys.executable, str(TESTS / report[0]), *report[1:]]).returncode
    print(f"{RESULT} {rc}", flush=True)
    return rc


def run_guest(name: str, vmlinuz: str, layout: str, timeout: float) -> dict:
    command = (f"cd {shlex.quote(str(REPO))} && PYTHONDONTWRITEBYTECODE=1 "
               f"{shlex.quote(sys.executable)} {shlex.quote(str(Path(__file__).resolve()))} "
               "--inside")
    vng = [str(Path(sys.executable).parent / "vng"), "--run", vmlinuz, "--disable-kvm",
           "--cpus", "2", "--memory", "2G", "--exec", command]
    env = dict(os.environ)
    # vng starts virtme-run, which pip put beside it.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    started = time.monotonic()
    result = {"name": name, "release": None, "attach": None, "summary": None, "rc": None,
              "layout_ok": False}
    proc = subprocess.Popen(vng, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env, cwd=REPO)
    # A guest that hangs says nothing more: kill it, which ends the read below.
    watchdog = threading.Timer(timeout, proc.kill)
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
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    result["seconds"] = time.monotonic() - started
    if result["seconds"] >= timeout:
        print(f"[{name}] killed after {timeout:.0f} s", flush=True)
    return result


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this kernel (6.1, 6.12); repeatable")
    parser.add_argument("--timeout", type=float, default=1500, metavar="SECONDS",
                        help="give up on a guest after this long (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.inside:
        return inside()

    results = []
    for name, pattern, layout in KERNELS:
        if args.only and name not in args.only:
            continue
        vmlinuz = newest(pattern)
        if vmlinuz is None:
            print(f"guests: no kernel {pattern} in {BOOT}; `make test-kernels` installs it",
                  file=sys.stderr)
            return 2
        results.append(run_guest(name, vmlinuz, layout, args.timeout))

    passed = failed = 0
    ok = True
    for r in results:
        counts = {kind: int(n) for n, kind in COUNTS.findall(r["summary"] or "")}
        passed += counts.get("passed", 0)
        failed += counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0)
        good = r["rc"] == 0 and r["layout_ok"] and counts.get("passed", 0) > 0
        ok &= good
        print(f"guest {r['name']}: kernel {r['release']}, attached in {r['attach']} ms, "
              f"layout {'as expected' if r['layout_ok'] else 'WRONG'}, "
              f"{r['summary'] or 'no pytest summary'}, {r['seconds']:.0f} s in all"
              f"{'' if good else ' -- FAILED'}")
    if not ok and failed == 0:
        failed = 1  # a guest that never reported still fails the run
    print(f"{passed} passed, {failed} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
