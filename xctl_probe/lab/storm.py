"""A loss storm in a namespace of its own: bulk TCP over loopback at MTU
1500, several connections at once, one packet in five dropped by nftables,
then the loss lifted; drops the probe ignores (UDP to a closed port); and
a flood of SYNs nftables drops, every one.
The bench measures the probe's programs in it; the tests' benches run it."""

import contextlib
import shutil
import sys
import time
from pathlib import Path
from typing import Iterator, Optional, Tuple

from ..errors import ProbeError
from .netns import Netns, checked

# Connections of the storm: one alone spends much of it in timeouts, and
# storms of one vary too much to compare.
STORM_CONNECTIONS = 8
LOSS_ONE_IN = 5
MTU = 1500
TRAFFIC = Path(__file__).resolve().with_name("traffic.py")


def storm_tools_missing() -> Optional[str]:
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not found (install iproute2 and nftables)"
    return None


@contextlib.contextmanager
def _namespace(prefix: str) -> Iterator[Netns]:
    """A namespace at MTU 1500; a failure in it as a one-line bench error."""
    try:
        with Netns(prefix, mtu=MTU) as ns:
            yield ns
    except ProbeError as error:
        raise ProbeError(f"bench: {error}") from None


def storm(seconds: float, port: int, connections: int = STORM_CONNECTIONS,
          prefix: str = "xctl-bench") -> None:
    """``connections`` bulk senders towards ``port`` for ``seconds``, one
    packet in five dropped."""
    with _namespace(prefix) as ns:
        ns.drop_one_in(LOSS_ONE_IN, port)
        sender = ns.popen(sys.executable, str(TRAFFIC), "tcp", str(port), str(seconds),
                          str(connections))
        try:
            time.sleep(seconds)
            # Lifted, so the connections close without a long backoff.
            ns.lift_loss()
            sender.wait(120)
        finally:
            if sender.poll() is None:
                sender.kill()
                sender.wait()


def udp_drops(count: int, port: int, prefix: str = "xctl-bench") -> None:
    """``count`` UDP datagrams to a closed port: each a drop the probe ignores."""
    with _namespace(prefix) as ns:
        checked(ns.inside(sys.executable, str(TRAFFIC), "udp", str(port), str(count)))


def syn_flood(seconds: float, port: int, prefix: str = "xctl-bench") -> Tuple[int, int]:
    """A flood of SYNs towards ``port`` for ``seconds``, every one dropped by
    nftables: (SYNs sent, packets nftables dropped)."""
    with _namespace(prefix) as ns:
        ns.drop_one_in(1, port)
        sent = int(checked(ns.inside(sys.executable, str(TRAFFIC), "syn", str(port),
                                     str(seconds))))
        ns.lift_loss()
        return sent, ns.dropped
