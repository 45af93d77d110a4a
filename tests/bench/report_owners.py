"""The lines that name the right owner (pid and comm), a wrong one, or none, over several
runs of the owner tests' scenario: a server and a client process of their
own, both sending through a namespace that drops one packet in five both
ways. Run as root: make bench."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the lab package

from lab.scenarios import owner_share, run_pair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    total_right = total_wrong = total_unnamed = total = 0
    port = 9800
    for i in range(args.runs):
        for family, probe_first, label in (("4", True, "IPv4"), ("6", True, "IPv6"),
                                           ("4", False, "IPv4, socket opened before the probe")):
            port += 1
            owners = owner_share(run_pair(port=port, family=family, probe_first=probe_first),
                                 "xpt-client", "xpt-server")
            total_right += len(owners.right)
            total_wrong += len(owners.wrong)
            total_unnamed += len(owners.unnamed)
            total += len(owners.events)
            print(f"run {i + 1}, {label}: of {len(owners.events)} lines {len(owners.right)} "
                  f"name the right owner, {len(owners.wrong)} a wrong one, "
                  f"{len(owners.unnamed)} none")
    print(f"all: {total} lines, {total_right} right ({100 * total_right / total:.2f} %), "
          f"{total_wrong} wrong, {total_unnamed} without an owner")

if __name__ == "__main__":
    main()
