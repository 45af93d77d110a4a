"""Memory behind a slow reader: the probe's RSS after one minute and after
five minutes of a retransmission storm whose lines a reader takes at only
--lines-per-s (xctl falling far behind), as figures. Bounded memory shows as
the same RSS at both points; lines merged per flow keep every record
(Σcount) while the line rate drops to what the reader takes. Run as root:
make bench."""

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the lab package

from xctl_probe.lab.storm import storm

from lab.probe import PROBE, probe_env


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--lines-per-s", type=float, default=20.0)
    args = parser.parse_args()
    probe = subprocess.Popen([sys.executable, str(PROBE)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=probe_env())
    probe.stderr.readline()
    lines = []

    def read_slowly() -> None:
        for line in probe.stdout:
            lines.append(json.loads(line))
            time.sleep(1 / args.lines_per_s)

    reader = threading.Thread(target=read_slowly, daemon=True)
    reader.start()
    samples = {}
    seconds = args.minutes * 60

    def sample() -> None:
        started = time.monotonic()
        for label, at in (("1 min", 60), (f"{args.minutes:g} min", seconds - 1)):
            time.sleep(max(0, started + at - time.monotonic()))
            samples[label] = (rss_mb(probe.pid), len(lines))

    sampler = threading.Thread(target=sample)
    sampler.start()
    storm(seconds, 9000)
    sampler.join()
    peak = rss_mb(probe.pid, "VmHWM")
    probe.terminate()
    probe.wait(30)
    merged = [line for line in lines if "count" in line]
    for label, (rss, read) in samples.items():
        print(f"after {label} of storm: RSS {rss:.1f} MB, {read} lines read so far")
    print(f"reader at {args.lines_per_s:g} lines/s: {len(lines)} lines read, {len(merged)} "
          f"of them merging {sum(line['count'] for line in merged)} records; lost "
          f"{max((line.get('lost', 0) for line in lines), default=0)}; peak RSS {peak:.1f} MB")


if __name__ == "__main__":
    main()
