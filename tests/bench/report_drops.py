"""Drops in a loss storm, as figures: the probe's drop lines by reason,
against nftables' own counter, and the share of them that name their owner.
Bulk TCP through a namespace that drops one packet in five towards the
port (both ways with --both-ways). Run as root: make bench."""

import argparse
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the lab package

from lab.accounting import drop_lines
from lab.scenarios import run_storm
from lab.xctl_contract import check_probe_line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for run_number in range(1, args.runs + 1):
        run = run_storm(port=9750 + run_number, seconds=args.seconds, drop_one_in=5)
        events = [check_probe_line(raw) for raw in run.lines]
        drops = drop_lines(events, run.port, run.netns)
        by_reason = collections.Counter()
        for line in drops:
            by_reason[line["reason"]] += line["segs"]
        owned = sum("pid" in line for line in drops)
        print(f"run {run_number}: nftables dropped {run.nft_dropped}, NETFILTER_DROP "
              f"{by_reason.get('NETFILTER_DROP', 0)}; reasons {dict(by_reason)}; "
              f"{owned} of {len(drops)} drop lines name their owner")


if __name__ == "__main__":
    main()
