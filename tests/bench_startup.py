"""Start-up and memory of the probe, as figures (not a test: machines here
are shared and noisy). Run as root: make bench.

For each of --runs starts: ms from exec to the "attached" line, and the
probe's RSS once attached; beside them a bare `python3 -c pass` for scale.
"""

import argparse
import statistics
import subprocess
import sys
import time

from netlab import PROBE, probe_env


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def one_start():
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(PROBE)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=probe_env())
    line = proc.stderr.readline().decode()
    attached_ms = (time.perf_counter() - started) * 1000
    if "attached" not in line:
        raise SystemExit(f"probe did not attach: {line!r}")
    rss = rss_kib(proc.pid)
    proc.terminate()
    proc.wait(10)
    return attached_ms, rss


def bare_python_ms() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    starts = [one_start() for _ in range(args.runs)]
    bare = [bare_python_ms() for _ in range(args.runs)]
    ms = [s[0] for s in starts]
    rss = [s[1] for s in starts]
    print(f"start-up to attached: median {statistics.median(ms):.0f} ms "
          f"(min {min(ms):.0f}, max {max(ms):.0f}) over {args.runs} starts")
    print(f"bare python3 -c pass: median {statistics.median(bare):.0f} ms "
          f"(probe/bare ratio {statistics.median(ms) / statistics.median(bare):.1f})")
    print(f"RSS once attached: median {statistics.median(rss) / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
