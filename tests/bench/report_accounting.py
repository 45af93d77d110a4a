"""The acceptance scenario, several times over, as figures: the probe's
sum of segs against the namespace's TcpRetransSegs, the split by kind
against the kernel's counters for each kind, and what value read on the
storm flows. Run as root: make bench."""

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the lab package

from lab.scenarios import run_storm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--drop-one-in", type=int, default=5)
    args = parser.parse_args()
    for i in range(args.runs):
        run = run_storm(port=9000 + i, seconds=args.seconds, drop_one_in=args.drop_one_in)
        events = run.events()
        segs = sum(e["segs"] for e in events)
        kernel = run.delta["TcpRetransSegs"]
        values = [float(e["value"]) for e in events if e["dport"] == run.port]
        print(f"run {i + 1}: sum(segs) {segs} vs TcpRetransSegs {kernel} "
              f"({'exact' if segs == kernel else 'MISMATCH'}); {len(events)} lines; "
              f"nft dropped {run.nft_dropped}; "
              f"fast {run.delta.get('TcpExtTCPFastRetrans', 0)}, "
              f"timeouts {run.delta.get('TcpExtTCPTimeouts', 0)}, "
              f"retrans fail {run.delta.get('TcpExtTCPRetransFail', 0)}; "
              f"value on the data flow: median {statistics.median(values):.1f}, "
              f"min {min(values):.1f}, max {max(values):.1f}, "
              f">=10 in {sum(v >= 10 for v in values) * 100 // len(values)}% of lines")
        d = run.delta
        by_kind = {k: sum(e["segs"] for e in events if e.get("kind") == k)
                   for k in ("fast", "rto", "noncongestion", "syn", "tlp", "synack", None)}
        rto_kernel = (d.get("TcpExtTCPTimeouts", 0) - d.get("TcpExtTCPSynRetrans", 0)
                      + d.get("TcpExtTCPSlowStartRetrans", 0))
        print(f"  kinds: fast segs {by_kind['fast']} vs TcpExtTCPFastRetrans "
              f"{d.get('TcpExtTCPFastRetrans', 0)}; rto + noncongestion segs "
              f"{by_kind['rto']} + {by_kind['noncongestion']} vs "
              f"TCPTimeouts - TCPSynRetrans + TCPSlowStartRetrans {rto_kernel}; "
              f"syn {by_kind['syn']}, synack {by_kind['synack']} vs TCPSynRetrans "
              f"{d.get('TcpExtTCPSynRetrans', 0)}; tlp {by_kind['tlp']} "
              f"(TCPLossProbes {d.get('TcpExtTCPLossProbes', 0)}); no kind {by_kind[None]}")


if __name__ == "__main__":
    main()
