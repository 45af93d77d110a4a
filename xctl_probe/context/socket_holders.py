"""Which processes hold a descriptor for a socket's file, found by walking
/proc/PID/fd, where each descriptor of a socket links to ``socket:[INODE]``.

A walk reads every descriptor on the node, so walks are rationed by a budget
of walking time: it refills at ``cpu_share`` of wall-clock time, up to
``burst`` seconds, so a burst of new sockets is looked up at once and a
steady churn of them costs at most that share of a CPU. One walk looks up
every inode wanted at the time; the answer is kept for each.
"""

import os
import time
from typing import Dict, FrozenSet, Iterable, Optional, Set

from .bounded_map import BoundedMap

# Lookups that found no holder are tried again on this many later walks.
_RETRIES = 3


def walk_fds(proc: str, wanted: Set[int]) -> Dict[int, Set[int]]:
    """{inode: pids holding it} for the socket inodes in ``wanted`` that are held."""
    links = {f"socket:[{ino}]": ino for ino in wanted}
    found: Dict[int, Set[int]] = {}
    try:
        entries = list(os.scandir(proc))
    except OSError:
        return found
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            descriptors = os.scandir(f"{entry.path}/fd")
        except OSError:  # gone, or not ours to read
            continue
        with descriptors:
            for fd in descriptors:
                try:
                    ino = links.get(os.readlink(fd.path))
                except OSError:
                    continue
                if ino is not None:
                    found.setdefault(ino, set()).add(int(entry.name))
    return found


class WalkBudget:
    """Seconds of walking allowed now: spent by walks, refilled by time passing."""

    def __init__(self, cpu_share: float, burst: float):
        self._cpu_share = cpu_share
        self._burst = burst
        self._left = burst
        self._refilled_at = time.monotonic()

    def refill(self, now: float) -> bool:
        """Whether a walk may start at ``now``."""
        self._left = min(self._burst, self._left + (now - self._refilled_at) * self._cpu_share)
        self._refilled_at = now
        return self._left > 0

    def spend(self, seconds: float) -> None:
        self._left -= seconds


class SocketHolders:
    def __init__(self, proc: str, cpu_share: float, burst: float, limit: int):
        self._proc = proc
        self._budget = WalkBudget(cpu_share, burst)
        self._holders: "BoundedMap[int, FrozenSet[int]]" = BoundedMap(limit)
        # Bounded like the answers: a churn of sockets that never find a
        # holder must not grow it.
        self._misses: "BoundedMap[int, int]" = BoundedMap(limit)

    def prepare(self, inodes: Iterable[int]) -> None:
        """Looks up, in one walk if the budget allows, the inodes not known yet."""
        wanted = {ino for ino in inodes if ino and ino not in self._holders}
        if not wanted:
            return
        started = time.monotonic()
        if not self._budget.refill(started):
            return
        found = walk_fds(self._proc, wanted)
        self._budget.spend(time.monotonic() - started)
        for ino in wanted:
            if ino in found:
                self._holders.put(ino, frozenset(found[ino]))
                self._misses.pop(ino, None)
            else:
                self._missed(ino)

    def _missed(self, ino: int) -> None:
        """After _RETRIES walks without a holder, the answer is that there is none."""
        misses = self._misses.get(ino, 0) + 1
        if misses >= _RETRIES:
            self._holders.put(ino, frozenset())
            self._misses.pop(ino, None)
        else:
            self._misses.put(ino, misses)

    def get(self, ino: int) -> Optional[FrozenSet[int]]:
        """The pids holding ``ino`` as last found; None if not looked up yet."""
        return self._holders.get(ino)
