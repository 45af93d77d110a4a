"""Bulk TCP throughput with the probe running and without, alternating in
one run, as a ratio; lossless and with one packet in 100 dropped (where the
retransmission programs actually run). Loss makes single runs vary a lot
(one RTO more or less), so it takes several and compares medians.
Run as root: make bench."""

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the lab package

from lab.netns import Netns
from lab.probe import ProbeProcess

SECONDS = 3.0


def throughput(drop_one_in, with_probe: bool, port: int) -> float:
    ns = Netns()
    probe = ProbeProcess() if with_probe else None
    try:
        if drop_one_in:
            ns.drop_one_in(drop_one_in, port)
        result = ns.traffic(port, SECONDS)
        return result["sent"] / SECONDS / 1e6
    finally:
        if probe is not None:
            probe.stop()
            probe.kill()
        ns.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    port = 9700
    for drop_one_in, label in ((0, "lossless"), (100, "1% loss")):
        runs = {False: [], True: []}
        for _ in range(args.runs):
            for with_probe in (False, True):
                port += 1
                runs[with_probe].append(throughput(drop_one_in, with_probe, port))
        without, with_ = statistics.median(runs[False]), statistics.median(runs[True])
        print(f"{label}: without probe {without:.0f} MB/s (runs {min(runs[False]):.0f}-"
              f"{max(runs[False]):.0f}), with probe {with_:.0f} MB/s (runs "
              f"{min(runs[True]):.0f}-{max(runs[True]):.0f}), median of {args.runs} each, "
              f"alternating: ratio {with_ / without:.3f}")


if __name__ == "__main__":
    main()
