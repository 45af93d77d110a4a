"""Bulk TCP throughput with the probe running and without, alternating in
one run, as a ratio; lossless and with one packet in 100 dropped (where the
retransmission programs actually run). Run as root: make bench."""

import statistics

from netlab import Netns, ProbeProcess

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
    port = 9700
    for drop_one_in, label in ((0, "lossless"), (100, "1% loss")):
        runs = {False: [], True: []}
        for _ in range(3):
            for with_probe in (False, True):
                port += 1
                runs[with_probe].append(throughput(drop_one_in, with_probe, port))
        without, with_ = statistics.median(runs[False]), statistics.median(runs[True])
        print(f"{label}: without probe {without:.0f} MB/s, with probe {with_:.0f} MB/s "
              f"(median of 3 each, alternating): ratio {with_ / without:.3f}")


if __name__ == "__main__":
    main()
