"""The share of lines that name the right owner (pid and comm), over several
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
    total_right = total = 0
    port = 9800
    for i in range(args.runs):
        for family, probe_first, label in (("4", True, "IPv4"), ("6", True, "IPv6"),
                                           ("4", False, "IPv4, socket opened before the probe")):
            port += 1
            run = run_pair(port=port, family=family, probe_first=probe_first)
            right, events = owner_share(run, "xpt-client", "xpt-server")
            no_pid = sum("pid" not in e for e in events)
            total_right += right
            total += len(events)
            print(f"run {i + 1}, {label}: {right}/{len(events)} lines name the right owner "
                  f"({no_pid} without pid, {sum(e.get('pid') == 0 for e in events)} with pid 0)")
    print(f"all: {total_right}/{total} = {100 * total_right / total:.2f} % right")


if __name__ == "__main__":
    main()
